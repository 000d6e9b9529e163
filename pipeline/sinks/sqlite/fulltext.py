"""A SQLite file's full-text index: one FTS5 external-content table per table
(`posts_fts`, `comments_fts`) that holds no copy of the text, kept in step by triggers,
so that every writer keeps it, this redpipe or another, with or without --fts.

Whether the file has one is recorded in `redpipe_meta` ('fts'), so a table made later
(replay makes comments with the first comment) is indexed too; the columns each index
covers are recorded as 'fts:<table>' (joined with commas), and an index is made again
when they change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from ...errors import UsageError
from ...transform.tables import Table
from ...transform.text import column_of, shown_columns, text_columns
from ..base import Match

FTS_KEY = "fts"
COLUMNS_KEY = "fts:{}"
PROBE = "CREATE VIRTUAL TABLE temp.redpipe_probe USING fts5(x)"
# What a query FTS5 cannot read raises, as against a failing database.
QUERY_ERRORS = ("fts5:", "no such column", "unterminated string", "unknown special query")


def missing(conn: sqlite3.Connection) -> str | None:
    """Why this SQLite cannot hold an FTS5 index, or None if it can. The probe lives in the
    connection's temporary schema: the file is not touched."""
    try:
        conn.execute(PROBE)
        conn.execute("DROP TABLE temp.redpipe_probe")
    except sqlite3.OperationalError as exc:
        return f"this Python's SQLite {sqlite3.sqlite_version} has no FTS5 ({exc})"
    return None


def enabled(conn: sqlite3.Connection) -> bool:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'").fetchone():
        return False
    row = conn.execute("SELECT value FROM redpipe_meta WHERE key = ?", (FTS_KEY,)).fetchone()
    return bool(row) and row[0] == "on"


def refuse_without(conn: sqlite3.Connection, path: str) -> None:
    """UsageError if the file keeps an index this SQLite could not update: every write to
    an indexed table would fail."""
    if enabled(conn) and (why := missing(conn)):
        raise UsageError(
            f"{path} keeps a full-text index (--fts), which every write updates, and {why}; "
            "run redpipe with a Python whose SQLite has FTS5"
        )


def require(conn: sqlite3.Connection, path: str) -> None:
    """UsageError if this SQLite cannot make an index."""
    if why := missing(conn):
        raise UsageError(f"--fts: {why}; {path} is unchanged")


def enable(conn: sqlite3.Connection) -> None:
    """Record that the file is indexed, inside the caller's transaction."""
    conn.execute("INSERT OR REPLACE INTO redpipe_meta VALUES (?, 'on')", (FTS_KEY,))


def keep(conn: sqlite3.Connection, table: str, kind: str, mapping: Mapping[str, str]) -> None:
    """Give `table` the index the file's setting asks for, covering the text columns its
    mapping ({column: field}) records, made again over every row if those changed."""
    if not enabled(conn):
        return
    wanted = list(text_columns(kind, mapping))
    key = COLUMNS_KEY.format(table)
    row = conn.execute("SELECT value FROM redpipe_meta WHERE key = ?", (key,)).fetchone()
    if row is not None and row[0] == ",".join(wanted):
        return
    for statement in _dropped(table):
        conn.execute(statement)
    if wanted:
        for statement in _made(table, wanted):
            conn.execute(statement)
    conn.execute("INSERT OR REPLACE INTO redpipe_meta VALUES (?, ?)", (key, ",".join(wanted)))


def _dropped(table: str) -> list[str]:
    return [
        *(f"DROP TRIGGER IF EXISTS {table}_fts_{when}" for when in ("insert", "delete", "update")),
        f"DROP TABLE IF EXISTS {table}_fts",
    ]


def _made(table: str, columns: Sequence[str]) -> list[str]:
    index = f"{table}_fts"
    listed = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    insert = f"INSERT INTO {index} (rowid, {listed}) VALUES (new.rowid, {new});"
    delete = f"INSERT INTO {index} ({index}, rowid, {listed}) VALUES ('delete', old.rowid, {old});"
    return [
        f"CREATE VIRTUAL TABLE {index} USING fts5({listed}, content='{table}', "
        "content_rowid='rowid')",
        f"CREATE TRIGGER {index}_insert AFTER INSERT ON {table} BEGIN {insert} END",
        f"CREATE TRIGGER {index}_delete AFTER DELETE ON {table} BEGIN {delete} END",
        # Only a change of text touches the index: refresh's updates of scores do not.
        f"CREATE TRIGGER {index}_update AFTER UPDATE OF {listed} ON {table} "
        f"BEGIN {delete} {insert} END",
        f"INSERT INTO {index} ({index}) VALUES ('rebuild')",
    ]


def indexed(conn: sqlite3.Connection, table: str) -> bool:
    key = COLUMNS_KEY.format(table)
    if not enabled(conn):
        return False
    row = conn.execute("SELECT value FROM redpipe_meta WHERE key = ?", (key,)).fetchone()
    return bool(row) and bool(row[0])


def search_sql(
    table: str, kind: str, columns: tuple[str, ...], fields: tuple[str, ...], subreddits: int
) -> str:
    """Matches of one parameter, of `subreddits` more if any, newest first, at most the
    last parameter's number."""
    shown = shown_columns(kind, columns, fields, "t.")
    where = column_of(columns, fields, "subreddit")
    among = ""
    if subreddits and where:
        among = f" AND lower(t.{where}) IN ({','.join('?' * subreddits)})"
    elif subreddits:
        among = " AND 0"  # no subreddit kept: none of them can match
    return (
        f"SELECT {', '.join(shown)} FROM {table}_fts f JOIN {table} t ON t.rowid = f.rowid "
        f"WHERE {table}_fts MATCH ?{among} ORDER BY t.created_utc DESC, t.rowid DESC LIMIT ?"
    )


def search(
    conn: sqlite3.Connection, table: Table, query: str, *, subreddits: Sequence[str], limit: int
) -> list[Match]:
    """The newest `limit` matches of `query` in `table` (as adopted); UsageError for a
    query FTS5 cannot read, any other sqlite3.Error as it came."""
    sql = search_sql(table.name, table.kind, table.columns, table.fields, len(subreddits))
    try:
        found = conn.execute(sql, [query, *subreddits, limit]).fetchall()
    except sqlite3.OperationalError as exc:
        if str(exc).startswith(QUERY_ERRORS):
            raise UsageError(f"search: {query!r} is not a query FTS5 can read ({exc})") from None
        raise
    return [Match(*row) for row in found]
