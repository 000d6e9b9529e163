"""The SQLite sink: checks a file before touching it, then writes one transaction per batch."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from .errors import DatabaseBusy, DatabaseError, DatabaseFull, UsageError
from .tables import BOOKKEEPING, POSTS, RAW_FIELD, REQUIRED, Table

# table name -> (its columns, whether fullname is unique, column -> field it holds)
Schema = dict[str, tuple[list[str], bool, dict[str, str]]]

SCHEMA_VERSION = 1
HEADER = b"SQLite format 3\x00"
META = (
    "CREATE TABLE IF NOT EXISTS redpipe_meta (key TEXT PRIMARY KEY, value TEXT)",
    f"INSERT OR IGNORE INTO redpipe_meta VALUES ('schema_version', '{SCHEMA_VERSION}')",
)
# Which listing field each column of a table was ever filled from, as a JSON object: a
# later run may add columns, never pour a different field into an existing one.
MAPPING_KEY = "columns:{}"


def insert_sql(table: Table) -> str:
    return (
        f"INSERT OR IGNORE INTO {table.name} ({', '.join(table.columns)}) "
        f"VALUES ({', '.join('?' for _ in table.columns)})"
    )


INSERT = insert_sql(POSTS)


def create_sql(table: Table) -> list[str]:
    columns = ",\n".join(f"    {c} {table.sql_type(c, creating=True)}".rstrip()
                         for c in table.columns)  # fmt: skip
    return [
        f"CREATE TABLE IF NOT EXISTS {table.name} (\n{columns}\n)",
        f"CREATE INDEX IF NOT EXISTS {table.name}_created_utc ON {table.name} (created_utc)",
    ]


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


def _read_schema(conn: sqlite3.Connection, path: str, tables: Sequence[Table]) -> Schema:
    """What the file holds now: each table's columns, key and recorded field mapping."""
    found: Schema = {}
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'"
        ).fetchone()
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")]
            if not columns:
                continue
            unique = any(
                row[2]
                and [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")] == ["fullname"]
                for row in conn.execute(f"PRAGMA index_list({table.name})").fetchall()
            )
            recorded = None
            if has_meta:
                value = conn.execute(
                    "SELECT value FROM redpipe_meta WHERE key = ?",
                    (MAPPING_KEY.format(table.name),),
                ).fetchone()
                recorded = json.loads(value[0]) if value else None
            if recorded is None:
                # Made before mappings were recorded: only the default columns existed.
                recorded = {c: c for c in columns if c in table.base_columns}
            found[table.name] = (columns, unique, recorded)
    except (sqlite3.Error, ValueError) as exc:
        if isinstance(exc, sqlite3.Error):
            raise _fail(path, exc, "reading its schema") from exc
        raise DatabaseError(f"{path}: redpipe_meta holds an unreadable column mapping") from exc
    return found


def _check_schema(path: str, tables: Sequence[Table], found: Schema) -> None:
    """Refuse tables redpipe can't own, and field choices that would mix two fields."""
    for table in tables:
        if table.name not in found:
            continue
        columns, unique, recorded = found[table.name]
        if not set(REQUIRED) <= set(columns) or not unique:
            raise DatabaseError(
                f"{path} already has a '{table.name}' table that redpipe did not create "
                f"(columns: {', '.join(sorted(columns))}); use another database file"
            )
        lower = {c.lower(): c for c in columns}
        for column, field in zip(table.columns, table.fields):
            existing = lower.get(column.lower())
            if existing is None:
                continue  # added as a new column
            held = recorded.get(existing)
            if held is None:
                raise UsageError(
                    f"{path}: {table.name}.{existing} exists but redpipe never filled it; "
                    f"give {field!r} another column name ({field}:another_name)"
                )
            if held != field:
                shown = "the whole item (--raw)" if held == RAW_FIELD else repr(held)
                raise UsageError(
                    f"{path}: {table.name}.{existing} already holds {shown}, so "
                    f"{'--raw' if field == RAW_FIELD else repr(field)} cannot go there; "
                    "choose another column name"
                )


def _inspect(path: str, tables: Sequence[Table]) -> None:
    """Refuse, through a read-only connection, a file redpipe can't use as asked."""
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise _fail(path, exc, "opening it") from exc
    try:
        found = _read_schema(conn, path, tables)
        version = None
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_meta'").fetchone():
                row = conn.execute(
                    "SELECT value FROM redpipe_meta WHERE key = 'schema_version'"
                ).fetchone()
                version = row[0] if row else None
        except sqlite3.Error as exc:
            raise _fail(path, exc, "reading its schema") from exc
    finally:
        conn.close()
    _check_schema(path, tables, found)
    if version is not None and str(version) != str(SCHEMA_VERSION):
        raise DatabaseError(f"{path} has redpipe schema version {version}; this redpipe knows 1")


def _as_found(table: Table, found: tuple[list[str], bool, dict[str, str]]) -> Table:
    columns, _, recorded = found
    kept = [c for c in columns if c in recorded and not recorded[c].startswith("=")]
    return Table(table.name, table.kind, tuple(kept), tuple(recorded[c] for c in kept),
                 table.base, table.base_columns)  # fmt: skip


class Store:
    """A redpipe database: tables keyed by fullname, WAL, one transaction per batch."""

    def __init__(self, path: str, conn: sqlite3.Connection, tables: Sequence[Table]) -> None:
        self.path = path
        self.conn = conn
        self.tables = {t.name: t for t in tables}
        self._inserts = {t.name: insert_sql(t) for t in tables}
        self._made: set[str] = set()

    @classmethod
    def open(
        cls,
        path: str,
        tables: Sequence[Table] = (POSTS,),
        *,
        lazy: Sequence[str] = (),
        as_found: bool = False,
        busy_timeout: float = 30.0,
    ) -> Store:
        """Open `path` for `tables`, creating or widening them now, or for a table named in
        `lazy`, on its first insert (checked now all the same). With `as_found`, a table
        already in the file keeps the columns it has, whatever `tables` says."""
        if _check_path(path):
            _inspect(path, tables)
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise _fail(path, exc, "opening it") from exc
        try:
            if as_found:
                found = _read_schema(conn, path, tables)
                tables = [_as_found(t, found[t.name]) if t.name in found else t for t in tables]
            store = cls(path, conn, tables)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(
                    f"{path}: cannot use WAL mode here (got {mode}); use a local filesystem"
                )
            conn.execute("PRAGMA synchronous=NORMAL")
            present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            store._make(
                [t for t in tables if t.name not in lazy or t.name in present], always_meta=True
            )
        except sqlite3.Error as exc:
            conn.close()
            raise _fail(path, exc, "opening it") from exc
        except BaseException:
            conn.close()
            raise
        return store

    def _make(self, tables: Sequence[Table], *, always_meta: bool = False) -> None:
        """Create or widen `tables`, recording each column's field, in one transaction."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Read again under the write lock: another redpipe may have changed it since.
            found = _read_schema(conn, self.path, tables)
            _check_schema(self.path, tables, found)
            if always_meta or tables:
                for statement in META:
                    conn.execute(statement)
            for table in tables:
                have = found.get(table.name)
                if have is None:
                    for statement in create_sql(table):
                        conn.execute(statement)
                    mapping: dict[str, str] = {}
                else:
                    lower = {c.lower() for c in have[0]}
                    for column in table.columns:
                        if column.lower() not in lower:
                            declared = table.sql_type(column, creating=False)
                            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column} {declared}")
                    mapping = dict(have[2])
                mapping.update(zip(table.columns, table.fields))
                conn.execute(
                    "INSERT OR REPLACE INTO redpipe_meta VALUES (?, ?)",
                    (MAPPING_KEY.format(table.name), json.dumps(mapping)),
                )
                self._made.add(table.name)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _fail(self.path, exc, "creating the schema") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def insert(
        self,
        rows: Sequence[tuple[Any, ...]],
        *,
        table: str = "posts",
        replay: tuple[str, int, bool] | None = None,
    ) -> int:
        """Store `rows` (oldest first) in one transaction; how many were new."""
        return self.insert_parts([(table, rows)], replay=replay)[0]

    def insert_parts(
        self,
        parts: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
        *,
        replay: tuple[str, int, bool] | None = None,
    ) -> list[int]:
        """Store each (table, rows) in one transaction together; how many were new in each.

        `replay` is (dump, lines done, finished), recorded in the same transaction so a
        resumed replay starts exactly after the rows that were stored.
        """
        if not any(rows for _, rows in parts) and replay is None:
            return [0] * len(parts)
        unmade = [self.tables[t] for t, rows in parts if rows and t not in self._made]
        if unmade:
            self._make(unmade)
        conn = self.conn
        added = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table, rows in parts:
                before = conn.total_changes
                if rows:
                    conn.executemany(self._inserts[table], rows)
                added.append(conn.total_changes - before)
            if replay is not None:
                conn.execute(REPLAY_SAVE, (replay[0], replay[1], int(replay[2])))
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            lost = "; ".join(
                f"{len(rows)} {table} {rows[0][0]} .. {rows[-1][0]} not stored"
                for table, rows in parts
                if rows
            )
            lost = lost or "progress"
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

    # -- refresh ----------------------------------------------------------------------

    def add_bookkeeping(self, table: str) -> None:
        """Give `table` the columns refresh keeps (BOOKKEEPING), recorded like chosen
        fields so that no field can ever be poured into them."""
        spec = self.tables[table]
        self._make(
            [
                Table(
                    spec.name,
                    spec.kind,
                    REQUIRED + BOOKKEEPING,
                    REQUIRED + tuple("=" + c for c in BOOKKEEPING),
                    spec.base,
                    spec.base_columns,
                )
            ]
        )

    def due(self, table: str, cutoff: float, limit: int) -> list[str]:
        """Up to `limit` fullnames, oldest first, created and last checked before `cutoff`."""
        return [
            r[0]
            for r in self._read(
                f"SELECT fullname FROM {table} WHERE coalesce(refreshed_utc, created_utc) "
                "<= ? ORDER BY created_utc LIMIT ?",
                (cutoff, limit),
            )
        ]

    def count_due(self, table: str, cutoff: float) -> int:
        query = f"SELECT count(*) FROM {table} WHERE coalesce(refreshed_utc, created_utc) <= ?"
        return int(self._read(query, (cutoff,))[0][0])

    def current(
        self, table: str, fullnames: Sequence[str], columns: Sequence[str]
    ) -> dict[str, tuple[Any, ...]]:
        """The stored values of `columns` for those of `fullnames` still stored."""
        marks = ",".join("?" * len(fullnames))
        query = f"SELECT fullname, {', '.join(columns)} FROM {table} WHERE fullname IN ({marks})"
        return {r[0]: tuple(r[1:]) for r in self._read(query, list(fullnames))}

    def update(
        self, table: str, changes: Sequence[tuple[str, dict[str, Any]]], purge: Sequence[str]
    ) -> int:
        """Apply {column: value} per fullname, then NULL the `purge` columns of every item
        marked deleted by its author, all in one transaction; how many were purged."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for name, values in changes:
                sets = ", ".join(f"{c} = ?" for c in values)
                conn.execute(
                    f"UPDATE {table} SET {sets} WHERE fullname = ?", [*values.values(), name]
                )
            purged = 0
            if purge:
                before = conn.total_changes
                conn.execute(
                    f"UPDATE {table} SET {', '.join(f'{c} = NULL' for c in purge)} "
                    f"WHERE removed_how = 'deleted' AND "
                    f"({' OR '.join(f'{c} IS NOT NULL' for c in purge)})"
                )
                purged = conn.total_changes - before
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _fail(self.path, exc, f"updating {table}") from exc
        return purged

    def _read(self, query: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self.conn.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise _fail(self.path, exc, "reading") from exc

    def known(self, fullnames: Sequence[str], *, table: str = "posts") -> set[str]:
        """Which of `fullnames` are stored already."""
        found: set[str] = set()
        if table not in self._made:
            return found
        for i in range(0, len(fullnames), 500):  # old SQLite allows 999 variables
            chunk = fullnames[i : i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT fullname FROM {table} WHERE fullname IN ({marks})"
            try:
                found.update(row[0] for row in self.conn.execute(query, chunk))
            except sqlite3.Error as exc:
                raise _fail(self.path, exc, "reading") from exc
        return found

    def newest(self, *, table: str = "posts") -> tuple[str, float] | None:
        """The newest stored item's (fullname, created_utc), if any."""
        if table not in self._made:
            return None
        row = self.conn.execute(
            f"SELECT fullname, created_utc FROM {table} WHERE created_utc IS NOT NULL "
            "ORDER BY created_utc DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return (row[0], float(row[1])) if row else None

    def count(self, *, table: str = "posts") -> int:
        if table not in self._made:
            return 0
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

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
