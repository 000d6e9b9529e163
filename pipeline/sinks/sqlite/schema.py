"""A SQLite file's schema: checked before anything touches the file, then created or
widened, with the field behind each column recorded in `redpipe_meta`."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from urllib.parse import quote

from ...errors import DatabaseBusy, DatabaseError, DatabaseFull
from ...transform.tables import RAW_FIELD, Stored, Table, check_stored
from . import fulltext

SCHEMA_VERSION = 1
HEADER = b"SQLite format 3\x00"
META = (
    "CREATE TABLE IF NOT EXISTS redpipe_meta (key TEXT PRIMARY KEY, value TEXT)",
    f"INSERT OR IGNORE INTO redpipe_meta VALUES ('schema_version', '{SCHEMA_VERSION}')",
)
# Which listing field each column of a table was ever filled from, as a JSON object: a
# later run may add columns, never pour a different field into an existing one. A column
# of refresh's own is recorded as "=" and its name, so no field can ever match it.
MAPPING_KEY = "columns:{}"
OWN = "="
# Declared types by the field a column holds (refresh's own columns by their names).
SQL_TYPES = {
    "fullname": "TEXT PRIMARY KEY NOT NULL",
    "id": "TEXT NOT NULL",
    "created_utc": "INTEGER",
    "is_self": "INTEGER",
    "over_18": "INTEGER",
    "score": "INTEGER",
    "num_comments": "INTEGER",
    "edited": "REAL",
    "retrieved_utc": "REAL",
    "refreshed_utc": "REAL",
    "removed_how": "TEXT",
    "removed_utc": "REAL",
    RAW_FIELD: "TEXT",
}


def fail(path: str, exc: sqlite3.Error, doing: str) -> DatabaseError:
    """The one-line error for a failed SQLite call."""
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


def check_path(path: str) -> bool:
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


def read_schema(conn: sqlite3.Connection, path: str, tables: Sequence[Table]) -> dict[str, Stored]:
    """Those of `tables` that the file holds, as it holds them."""
    try:
        has_meta = bool(
            conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'").fetchone()
        )
        found = {}
        for table in tables:
            stored = _read_table(conn, table, has_meta)
            if stored is not None:
                found[table.name] = stored
    except sqlite3.Error as exc:
        raise fail(path, exc, "reading its schema") from exc
    except ValueError as exc:
        raise DatabaseError(f"{path}: redpipe_meta holds an unreadable column mapping") from exc
    return found


def _read_table(conn: sqlite3.Connection, table: Table, has_meta: bool) -> Stored | None:
    columns = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table.name})"))
    if not columns:
        return None
    keyed = any(
        row[2] and [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")] == ["fullname"]
        for row in conn.execute(f"PRAGMA index_list({table.name})").fetchall()
    )
    recorded = _recorded(conn, table.name) if has_meta else None
    if recorded is None:
        # Made before mappings were recorded: only the default columns existed.
        recorded = {c: c for c in columns if c in table.base_columns}
    fields = {c: f for c, f in recorded.items() if not f.startswith(OWN)}
    return Stored(columns, keyed, fields)


def inspect(path: str, tables: Sequence[Table], *, fields: bool) -> None:
    """Refuse, through a read-only connection, a file redpipe can't use as asked: a newer
    schema, a table it did not make, and (with `fields`) a choice that would mix fields."""
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise fail(path, exc, "opening it") from exc
    try:
        found = read_schema(conn, path, tables)
        try:
            row = None
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'").fetchone():
                row = conn.execute(
                    "SELECT value FROM redpipe_meta WHERE key = 'schema_version'"
                ).fetchone()
            fulltext.refuse_without(conn, path)
        except sqlite3.Error as exc:
            raise fail(path, exc, "reading its schema") from exc
    finally:
        conn.close()
    check_stored(path, tables, found, fields=fields)
    if row is not None and str(row[0]) != str(SCHEMA_VERSION):
        raise DatabaseError(f"{path} has redpipe schema version {row[0]}; this redpipe knows 1")


def make(conn: sqlite3.Connection, path: str, tables: Sequence[Table]) -> None:
    """Create or widen `tables`, recording each column's field, inside the caller's write
    transaction; the schema is read again under its lock, since another redpipe may have
    changed it since it was checked."""
    found = read_schema(conn, path, tables)
    check_stored(path, tables, found, fields=True)
    for statement in META:
        conn.execute(statement)
    for table in tables:
        stored = found.get(table.name)
        if stored is None:
            for statement in create_sql(table):
                conn.execute(statement)
            mapping: dict[str, str] = {}
        else:
            have = {c.lower() for c in stored.columns}
            for column, declared in _declared(table, creating=False):
                if column.lower() not in have:
                    conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} {declared}")
            mapping = _recorded(conn, table.name) or dict(stored.fields)
        mapping.update(zip(table.columns, table.fields))
        mapping.update((c, OWN + c) for c in table.bookkeeping)
        conn.execute(
            "INSERT OR REPLACE INTO redpipe_meta VALUES (?, ?)",
            (MAPPING_KEY.format(table.name), json.dumps(mapping)),
        )
        fulltext.keep(conn, table.name, table.kind, mapping)


def recorded_fields(conn: sqlite3.Connection, name: str) -> dict[str, str]:
    """{column: field} as recorded for the table `name`."""
    return _recorded(conn, name) or {}


def _recorded(conn: sqlite3.Connection, name: str) -> dict[str, str] | None:
    row = conn.execute(
        "SELECT value FROM redpipe_meta WHERE key = ?", (MAPPING_KEY.format(name),)
    ).fetchone()
    return dict(json.loads(row[0])) if row else None


def _declared(table: Table, *, creating: bool) -> list[tuple[str, str]]:
    """(column, declared type) of every column; ALTER TABLE cannot add NOT NULL ones."""
    out = []
    for column, field in zip(table.columns, table.fields):
        if field == RAW_FIELD or field in table.base_columns:
            declared = SQL_TYPES.get(field, "TEXT")
        else:
            declared = ""  # any listing value, stored as it came: no type affinity
        out.append((column, declared))
    out += [(c, SQL_TYPES[c]) for c in table.bookkeeping]
    return [(c, d if creating else d.split(" ")[0]) for c, d in out]


def create_sql(table: Table) -> list[str]:
    columns = ",\n".join(
        f"    {c} {declared}".rstrip() for c, declared in _declared(table, creating=True)
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {table.name} (\n{columns}\n)",
        f"CREATE INDEX IF NOT EXISTS {table.name}_created_utc ON {table.name} (created_utc)",
    ]


def insert_sql(table: Table) -> str:
    return (
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(table.columns)}) "
        f"VALUES ({', '.join('?' for _ in table.columns)})"
    )


# Made by the first replay only; the live stream never needs it.
REPLAY_TABLE = (
    "CREATE TABLE IF NOT EXISTS redpipe_replay "
    "(dump TEXT PRIMARY KEY, lines INTEGER NOT NULL, finished INTEGER NOT NULL)"
)
REPLAY_SAVE = "INSERT OR REPLACE INTO redpipe_replay VALUES (?, ?, ?)"
# Made by the first refresh that finds text edited: what each column held before.
EDITS_TABLE = (
    "CREATE TABLE IF NOT EXISTS edits (fullname TEXT NOT NULL, column_name TEXT NOT NULL, "
    "old_text TEXT NOT NULL, replaced_utc REAL NOT NULL, "
    "PRIMARY KEY (fullname, column_name, replaced_utc))"
)
EDITS_SAVE = "INSERT OR IGNORE INTO edits VALUES (?, ?, ?, ?)"


def by_subreddit(table: str) -> str:
    """The index that finds a subreddit's newest item in a table other streams share."""
    return (
        f"CREATE INDEX IF NOT EXISTS {table}_subreddit_created_utc "
        f"ON {table} (lower(subreddit), created_utc)"
    )


def newest_sql(table: str, subreddits: int) -> str:
    """The newest dated item, of `subreddits` (as many parameters) if any."""
    among = f"lower(subreddit) IN ({','.join('?' * subreddits)}) AND " if subreddits else ""
    return (
        f"SELECT fullname, created_utc FROM {table} WHERE {among}created_utc IS NOT NULL "
        "ORDER BY created_utc DESC, rowid DESC LIMIT 1"
    )
