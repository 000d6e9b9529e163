"""The PostgreSQL sink: a server named by a postgresql:// URL, reached through pg8000."""
