"""The SQLite sink: the embedded default, one file."""
