"""Extract: Reddit over HTTP (transport, client, pacing, listings) and dump files."""
