"""A PostgreSQL database's schema: read and checked inside the transaction that creates or
widens it, under a lock every redpipe takes, with the field behind each column recorded in
`redpipe_meta` exactly as in SQLite."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ...errors import DatabaseError
from ...transform.tables import RAW_FIELD, Stored, Table, check_stored
from . import fulltext
from .connection import Connection, rows

SCHEMA_VERSION = 1
MAPPING_KEY = "columns:{}"
OWN = "="
# One lock for every change of schema, so two redpipes starting at once cannot both
# create a table or both add a column (pg_advisory_xact_lock: held until commit).
SCHEMA_LOCK = 0x72656470  # "redp"
# Real types by the field a column holds; any other chosen field is a listing value as it
# came, which may be a number, a string, an object or a list: jsonb holds each as itself.
TYPES = {
    "fullname": "text",
    "id": "text",
    "created_utc": "double precision",
    "is_self": "boolean",
    "over_18": "boolean",
    "score": "bigint",
    "num_comments": "bigint",
    "edited": "double precision",
    "retrieved_utc": "double precision",
    "refreshed_utc": "double precision",
    "removed_how": "text",
    "removed_utc": "double precision",
    RAW_FIELD: "jsonb",
}
META = (
    "CREATE TABLE IF NOT EXISTS redpipe_meta (key text PRIMARY KEY, value text NOT NULL)",
    "INSERT INTO redpipe_meta VALUES ('schema_version', '1') ON CONFLICT DO NOTHING",
)
# Made by the first refresh that finds text edited: what each column held before.
EDITS_TABLE = (
    "CREATE TABLE IF NOT EXISTS edits (fullname text NOT NULL, column_name text NOT NULL, "
    "old_text text NOT NULL, replaced_utc double precision NOT NULL, "
    "PRIMARY KEY (fullname, column_name, replaced_utc))"
)
# Made by the first replay; the live stream never needs it.
REPLAY_TABLE = (
    "CREATE TABLE IF NOT EXISTS redpipe_replay "
    "(dump text PRIMARY KEY, lines bigint NOT NULL, finished boolean NOT NULL)"
)


def types(table: Table) -> list[tuple[str, str]]:
    """(column, type) of every column of `table`, bookkeeping included."""
    out = []
    for column, field in zip(table.columns, table.fields):
        if field == RAW_FIELD or field in table.base_columns:
            out.append((column, TYPES.get(field, "text")))
        else:
            out.append((column, "jsonb"))
    return out + [(c, TYPES[c]) for c in table.bookkeeping]


def read_schema(conn: Connection, where: str, tables: Sequence[Table]) -> dict[str, Stored]:
    """Those of `tables` in the current schema, as they are held there."""
    names = [t.name for t in tables]
    found_columns: dict[str, list[str]] = {}
    for name, column in rows(
        conn,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(:names) "
        "ORDER BY table_name, ordinal_position",
        names=names,
    ):
        found_columns.setdefault(name, []).append(column)
    if not found_columns:
        return {}
    keyed = {
        name
        for (name,) in rows(
            conn,
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE c.relnamespace = current_schema()::regnamespace AND i.indisunique "
            "AND i.indnatts = 1 AND a.attname = 'fullname' AND c.relname = ANY(:names)",
            names=names,
        )
    }
    has_meta = bool(rows(conn, "SELECT to_regclass('redpipe_meta') IS NOT NULL")[0][0])
    found = {}
    for table in tables:
        columns = tuple(found_columns.get(table.name, ()))
        if not columns:
            continue
        recorded = _recorded(conn, where, table.name) if has_meta else None
        # No mapping recorded: not made by redpipe, however it looks (check_owned refuses).
        ours = recorded is not None and table.name in keyed
        fields = {c: f for c, f in (recorded or {}).items() if not f.startswith(OWN)}
        found[table.name] = Stored(columns, ours, fields)
    return found


def _recorded(conn: Connection, where: str, name: str) -> dict[str, str] | None:
    got = rows(conn, "SELECT value FROM redpipe_meta WHERE key = :k", k=MAPPING_KEY.format(name))
    if not got:
        return None
    try:
        return dict(json.loads(got[0][0]))
    except ValueError:
        raise DatabaseError(f"{where}: redpipe_meta holds an unreadable column mapping") from None


def version(conn: Connection, where: str) -> None:
    """Refuse a database a newer redpipe has made."""
    if not rows(conn, "SELECT to_regclass('redpipe_meta') IS NOT NULL")[0][0]:
        return
    got = rows(conn, "SELECT value FROM redpipe_meta WHERE key = 'schema_version'")
    if got and str(got[0][0]) != str(SCHEMA_VERSION):
        raise DatabaseError(f"{where} has redpipe schema version {got[0][0]}; this redpipe knows 1")


def make(conn: Connection, where: str, tables: Sequence[Table]) -> None:
    """Create or widen `tables` inside the caller's transaction, under the schema lock,
    after reading the schema again: another redpipe may have changed it meanwhile."""
    conn.run(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
    version(conn, where)
    found = read_schema(conn, where, tables)
    check_stored(where, tables, found, fields=True)
    for statement in META:
        conn.run(statement)
    for table in tables:
        stored = found.get(table.name)
        declared = types(table)
        if stored is None:
            # ADD COLUMN cannot add NOT NULL ones later, so only the required id has it.
            columns = ", ".join(f"{c} {t}{' NOT NULL' * (c == 'id')}" for c, t in declared)
            conn.run(f"CREATE TABLE {table.name} ({columns}, PRIMARY KEY (fullname))")
            conn.run(f"CREATE INDEX {table.name}_created_utc ON {table.name} (created_utc)")
            mapping: dict[str, str] = {}
        else:
            have = {c.lower() for c in stored.columns}
            for column, kind in declared:
                if column.lower() not in have:
                    conn.run(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind}")
            mapping = _recorded(conn, where, table.name) or dict(stored.fields)
        mapping.update(zip(table.columns, table.fields))
        mapping.update((c, OWN + c) for c in table.bookkeeping)
        conn.run(
            "INSERT INTO redpipe_meta VALUES (:k, :v) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            k=MAPPING_KEY.format(table.name),
            v=json.dumps(mapping),
        )
        fulltext.keep(conn, table.name, table.kind, mapping)


def index(conn: Connection, where: str, tables: Sequence[tuple[str, str]]) -> None:
    """Turn the full-text index on and give each of `tables` ((name, kind) of those made)
    its index, inside the caller's transaction, under the schema lock."""
    conn.run(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
    for statement in META:
        conn.run(statement)
    fulltext.enable(conn)
    for name, kind in tables:
        fulltext.keep(conn, name, kind, recorded_fields(conn, where, name))


def recorded_fields(conn: Connection, where: str, name: str) -> dict[str, str]:
    """{column: field} as recorded for the table `name`."""
    return _recorded(conn, where, name) or {}


def by_subreddit(table: str) -> str:
    """The index that finds a subreddit's newest item in a table other streams share."""
    return (
        f"CREATE INDEX IF NOT EXISTS {table}_subreddit_created_utc "
        f"ON {table} (lower(subreddit), created_utc)"
    )


def newest_sql(table: str, within: bool) -> str:
    """The newest dated item (of the subreddits in :within, if asked). Ties, items of one
    second, go to the highest id: the latest made of those posts."""
    among = "lower(subreddit) = ANY(CAST(:within AS text[])) AND " if within else ""
    return (
        f"SELECT fullname, created_utc FROM {table} WHERE {among}created_utc IS NOT NULL "
        "ORDER BY created_utc DESC, length(fullname) DESC, fullname DESC LIMIT 1"
    )
