"""The commands, each handed its sink and client: stream, replay, refresh."""
