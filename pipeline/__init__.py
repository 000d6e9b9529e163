"""redpipe: stream new Reddit posts into SQLite."""

__version__ = "1.0.0"
