"""A PostgreSQL table's full-text index: a stored generated tsvector column,
`redpipe_fts`, with a GIN index. The server computes it on every insert and on every
change of the text, so any writer keeps it, and adding it indexes the rows held.

As in SQLite, 'fts' in `redpipe_meta` says the database is indexed (tables made later
are indexed too) and 'fts:<table>' which columns each index covers, joined with commas. The 'simple'
configuration lowercases words and keeps them whole, close to FTS5's unicode61: no
stemming and no stop words, so a search finds the words as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...transform.query import parse, tsquery
from ...transform.text import column_of, shown_columns, text_columns
from .connection import Connection, rows

FTS_KEY = "fts"
COLUMNS_KEY = "fts:{}"
COLUMN = "redpipe_fts"
CONFIG = "simple"


def enabled(conn: Connection) -> bool:
    if not rows(conn, "SELECT to_regclass('redpipe_meta') IS NOT NULL")[0][0]:
        return False
    return bool(rows(conn, "SELECT 1 FROM redpipe_meta WHERE key = :k AND value = 'on'", k=FTS_KEY))


def enable(conn: Connection) -> None:
    conn.run(
        "INSERT INTO redpipe_meta VALUES (:k, 'on') ON CONFLICT (key) DO UPDATE SET value = 'on'",
        k=FTS_KEY,
    )


def _covered(conn: Connection, table: str) -> list[str] | None:
    got = rows(conn, "SELECT value FROM redpipe_meta WHERE key = :k", k=COLUMNS_KEY.format(table))
    return [c for c in str(got[0][0]).split(",") if c] if got else None


def keep(conn: Connection, table: str, kind: str, mapping: Mapping[str, str]) -> None:
    """Give `table` the index the database's setting asks for, over the text columns its
    mapping records; made again if those changed. Inside the caller's transaction, under
    the schema lock."""
    if not enabled(conn):
        return
    wanted = list(text_columns(kind, mapping))
    if _covered(conn, table) == wanted:
        return
    conn.run(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {COLUMN}")  # its index goes too
    if wanted:
        # Each column a vector of its own, so that a phrase never runs from one into the next.
        vectors = " || ".join(f"to_tsvector('{CONFIG}', coalesce({c}, ''))" for c in wanted)
        conn.run(
            f"ALTER TABLE {table} ADD COLUMN {COLUMN} tsvector "
            f"GENERATED ALWAYS AS ({vectors}) STORED"
        )
        conn.run(f"CREATE INDEX {table}_fts ON {table} USING gin ({COLUMN})")
    conn.run(
        "INSERT INTO redpipe_meta VALUES (:k, :v) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        k=COLUMNS_KEY.format(table),
        v=",".join(wanted),
    )


def indexed(conn: Connection, table: str) -> bool:
    return enabled(conn) and bool(_covered(conn, table))


def search(
    conn: Connection,
    table: str,
    kind: str,
    held: tuple[tuple[str, ...], tuple[str, ...]],
    query: str,
    *,
    subreddits: Sequence[str],
    limit: int,
) -> list[list[Any]]:
    """The newest `limit` rows of `table` matching `query` (FTS5's syntax, read as a
    tsquery), of `subreddits` only if any; `held` is the table's (columns, fields)."""
    expression, terms = tsquery(parse(query), CONFIG)
    columns, fields = held
    shown = shown_columns(kind, columns, fields)
    where = column_of(columns, fields, "subreddit")
    among = ""
    if subreddits:
        among = f" AND lower({where}) = ANY(CAST(:subs AS text[]))" if where else " AND false"
    params: dict[str, Any] = {f"q{i}": t for i, t in enumerate(terms)}
    params.update(n=limit, **({"subs": list(subreddits)} if subreddits and where else {}))
    return rows(
        conn,
        f"SELECT {', '.join(shown)} FROM {table} WHERE {COLUMN} @@ {expression}{among} "
        "ORDER BY created_utc DESC NULLS LAST, fullname DESC LIMIT :n",
        **params,
    )
