"""Rows as SQLite values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Callable

from ...transform.tables import Table

Row = tuple[Any, ...]


def sql_value(value: Any) -> Any:
    # An object or a list is stored as its JSON text, for json_extract() later.
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def encoder(table: Table) -> Callable[[Sequence[Row]], Sequence[Row]]:
    """How rows of `table` become SQLite values. sqlite3 binds a bool as 0/1 itself, so only
    columns that may hold objects need work; the default tables have none."""
    structured = table.structured
    if not structured:
        return lambda rows: rows

    def encode(rows: Sequence[Row]) -> Sequence[Row]:
        out = []
        for row in rows:
            values = list(row)
            for i in structured:
                values[i] = sql_value(values[i])
            out.append(tuple(values))
        return out

    return encode
