"""The SQLite sink: checks a file before touching it, then writes one transaction per batch."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .errors import DatabaseBusy, DatabaseError, DatabaseFull
from .transform import POST_COLUMNS

SCHEMA_VERSION = 1
HEADER = b"SQLite format 3\x00"
_TYPES = {
    "fullname": "TEXT PRIMARY KEY NOT NULL",
    "id": "TEXT NOT NULL",
    "created_utc": "INTEGER",
    "is_self": "INTEGER",
    "over_18": "INTEGER",
    "score": "INTEGER",
    "num_comments": "INTEGER",
    "edited": "REAL",
    "retrieved_utc": "REAL",
}
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS posts (\n"
    + ",\n".join(f"    {c} {_TYPES.get(c, 'TEXT')}" for c in POST_COLUMNS)
    + "\n);\n"
    "CREATE INDEX IF NOT EXISTS posts_created_utc ON posts (created_utc);\n"
    "CREATE TABLE IF NOT EXISTS redpipe_meta (key TEXT PRIMARY KEY, value TEXT);\n"
    f"INSERT OR IGNORE INTO redpipe_meta VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
)
INSERT = (
    f"INSERT OR IGNORE INTO posts ({', '.join(POST_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in POST_COLUMNS)})"
)

# Made by the first replay only; the live stream never needs it.
REPLAY_TABLE = (
    "CREATE TABLE IF NOT EXISTS redpipe_replay "
    "(dump TEXT PRIMARY KEY, lines INTEGER NOT NULL, finished INTEGER NOT NULL)"
)
REPLAY_SAVE = "INSERT OR REPLACE INTO redpipe_replay VALUES (?, ?, ?)"


def _fail(path: str, exc: sqlite3.Error, doing: str) -> DatabaseError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return DatabaseBusy(f"{path}: {doing}: another process has held the write lock too long")
    if "full" in text:
        return DatabaseFull(f"{path}: {doing}: {text}")
    if "not a database" in text or "malformed" in text or "encrypted" in text:
        return DatabaseError(f"{path} is not a usable SQLite database ({text})")
    if "readonly" in text or "read-only" in text:
        return DatabaseError(f"{path}: cannot write ({text})")
    return DatabaseError(f"{path}: {doing}: {text}")


def _check_path(path: str) -> bool:
    """Raise for a path redpipe must not use; True when the file already has content."""
    if os.path.isdir(path):
        raise DatabaseError(f"{path} is a directory, not a database file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise DatabaseError(f"{path}: directory {parent} does not exist")
    if not os.path.exists(path):
        if not os.access(parent, os.W_OK):
            raise DatabaseError(f"{path}: cannot create it, {parent} is not writable")
        return False
    try:
        with open(path, "rb") as f:
            header = f.read(len(HEADER))
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot read it ({exc.strerror})") from exc
    if not header:
        return False  # an empty file is an empty database
    if header != HEADER:
        raise DatabaseError(f"{path} is not a SQLite database; refusing to touch it")
    if not os.access(path, os.W_OK):
        raise DatabaseError(f"{path}: the file is not writable")
    return True


def _inspect(path: str) -> None:
    """Refuse, through a read-only connection, a database whose tables redpipe can't own."""
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise _fail(path, exc, "opening it") from exc
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(posts)")}
        unique = any(
            row[2]
            and [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")] == ["fullname"]
            for row in conn.execute("PRAGMA index_list(posts)").fetchall()
        )
        version = None
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'").fetchone():
            found = conn.execute(
                "SELECT value FROM redpipe_meta WHERE key = 'schema_version'"
            ).fetchone()
            version = found[0] if found else None
    except sqlite3.Error as exc:
        raise _fail(path, exc, "reading its schema") from exc
    finally:
        conn.close()
    if columns and (not set(POST_COLUMNS) <= columns or not unique):
        raise DatabaseError(
            f"{path} already has a 'posts' table that redpipe did not create "
            f"(columns: {', '.join(sorted(columns))}); use another database file"
        )
    if version is not None and str(version) != str(SCHEMA_VERSION):
        raise DatabaseError(f"{path} has redpipe schema version {version}; this redpipe knows 1")


class Store:
    """A redpipe database: posts keyed by fullname, WAL, one transaction per batch."""

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: str, *, busy_timeout: float = 30.0) -> Store:
        if _check_path(path):
            _inspect(path)
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _fail(path, exc, "opening it") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(
                    f"{path}: cannot use WAL mode here (got {mode}); use a local filesystem"
                )
            conn.execute("PRAGMA synchronous=NORMAL")
            # One script: executescript() commits any open transaction before it runs.
            conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            conn.close()
            raise _fail(path, exc, "creating the schema") from exc
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    def insert(
        self, rows: Sequence[tuple[Any, ...]], *, replay: tuple[str, int, bool] | None = None
    ) -> int:
        """Store `rows` (oldest first) in one transaction; how many were new.

        `replay` is (dump, lines done, finished), recorded in the same transaction so a
        resumed replay starts exactly after the rows that were stored.
        """
        if not rows and replay is None:
            return 0
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany(INSERT, rows)
            added = conn.total_changes - before
            if replay is not None:
                conn.execute(REPLAY_SAVE, (replay[0], replay[1], int(replay[2])))
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            lost = (
                f"{len(rows)} posts {rows[0][0]} .. {rows[-1][0]} not stored"
                if rows
                else "progress"
            )
            if isinstance(exc, sqlite3.Error):
                raise _fail(self.path, exc, f"writing a batch ({lost})") from exc
            raise DatabaseError(f"{self.path}: writing a batch ({lost}): {exc}") from exc
        return added

    def replay_position(self, dump: str) -> tuple[int, bool]:
        """(lines stored, finished) of an earlier replay of `dump`; (0, False) if none."""
        try:
            self.conn.execute(REPLAY_TABLE)
            row = self.conn.execute(
                "SELECT lines, finished FROM redpipe_replay WHERE dump = ?", (dump,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise _fail(self.path, exc, "reading replay progress") from exc
        return (int(row[0]), bool(row[1])) if row else (0, False)

    def known(self, fullnames: Sequence[str]) -> set[str]:
        """Which of `fullnames` are stored already."""
        found: set[str] = set()
        for i in range(0, len(fullnames), 500):  # old SQLite allows 999 variables
            chunk = fullnames[i : i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT fullname FROM posts WHERE fullname IN ({marks})"
            try:
                found.update(row[0] for row in self.conn.execute(query, chunk))
            except sqlite3.Error as exc:
                raise _fail(self.path, exc, "reading") from exc
        return found

    def newest(self) -> tuple[str, float] | None:
        """The newest stored post's (fullname, created_utc), if any."""
        row = self.conn.execute(
            "SELECT fullname, created_utc FROM posts WHERE created_utc IS NOT NULL "
            "ORDER BY created_utc DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return (row[0], float(row[1])) if row else None

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM posts").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
