"""What refresh changes in a PostgreSQL database: new values, the text they replaced,
purges. Rows are updated in key order, as batches are inserted, so that two writers
wait for each other rather than deadlock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import statements
from ..base import Edit
from .connection import Connection, rows
from .rows import json_text, text


def apply(
    conn: Connection,
    table: str,
    changes: Sequence[tuple[str, Mapping[str, Any]]],
    edits: Sequence[Edit],
    jsonb: Mapping[str, bool],
    *,
    checked: bool,
) -> None:
    """Set {column: value} per fullname (`jsonb` says which columns are), record `edits`,
    and, if refresh hands items out (`checked`), let go of these; inside the caller's
    transaction."""
    for name, values in sorted(changes, key=lambda change: change[0]):
        sets = ", ".join(f"{c} = :v{i}" for i, c in enumerate(values))
        params = {
            f"v{i}": json_text(v) if jsonb.get(c) else text(v)
            for i, (c, v) in enumerate(values.items())
        }
        conn.run(f"UPDATE {table} SET {sets} WHERE fullname = :name", name=name, **params)
    for edit in sorted(edits, key=lambda e: (e.fullname, e.column)):
        conn.run(
            "INSERT INTO edits VALUES (:f, :c, :o, :r) ON CONFLICT DO NOTHING",
            f=edit.fullname, c=edit.column, o=text(edit.old), r=edit.replaced_utc,
        )  # fmt: skip
    if checked:
        conn.run(
            "DELETE FROM redpipe_checking WHERE tbl = :t "
            "AND fullname = ANY(CAST(:names AS text[]))",
            t=table,
            names=[name for name, _ in changes],
        )


def purge(
    conn: Connection, table: str, columns: Sequence[str], fullnames: Sequence[str] | None
) -> int:
    """Purge what authors deleted (of `fullnames` only, if given): the text of `columns`
    and the edits recorded; how many items had text to purge."""
    among = "fullname = ANY(CAST(:names AS text[])) AND " if fullnames is not None else ""
    params = {"names": list(fullnames)} if fullnames is not None else {}
    if rows(conn, "SELECT to_regclass('edits') IS NOT NULL")[0][0]:
        conn.run(statements.purge_edits(table, among), **params)
    if not columns:
        return 0
    conn.run(statements.purge(table, columns, among), **params)
    return max(conn.row_count, 0)
