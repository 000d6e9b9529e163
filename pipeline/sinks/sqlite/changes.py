"""What refresh changes in a SQLite file: new values, the text they replaced, purges."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from .. import statements
from ..base import Edit
from . import schema
from .encoding import sql_value


def apply(
    conn: sqlite3.Connection,
    table: str,
    changes: Sequence[tuple[str, Mapping[str, Any]]],
    edits: Sequence[Edit],
) -> None:
    """Set {column: value} per fullname and record `edits`, inside the caller's transaction."""
    for name, values in changes:
        sets = ", ".join(f"{c} = ?" for c in values)
        conn.execute(
            f"UPDATE {table} SET {sets} WHERE fullname = ?",
            [*map(sql_value, values.values()), name],
        )
    if edits:
        conn.execute(schema.EDITS_TABLE)
        conn.executemany(
            schema.EDITS_SAVE, [(e.fullname, e.column, e.old, e.replaced_utc) for e in edits]
        )


def purge(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], fullnames: Sequence[str] | None
) -> int:
    """Purge what authors deleted (of `fullnames` only, if given): the text of `columns`
    and the edits recorded; how many items had text to purge."""
    among, args = "", list(fullnames or ())
    if fullnames is not None:
        among = f"fullname IN ({','.join('?' * len(args))}) AND " if args else "0 AND "
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'edits'").fetchone():
        conn.execute(statements.purge_edits(table, among), args)
    if not columns:
        return 0
    # rowcount, not total_changes: the full-text index's triggers change rows too.
    return max(conn.execute(statements.purge(table, columns, among), args).rowcount, 0)
