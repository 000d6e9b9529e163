"""SQL that both database sinks send as it is, but for how parameters are written."""

from __future__ import annotations

from collections.abc import Sequence


def purge_edits(table: str, among: str) -> str:
    """Drop the edits recorded of `table`'s items deleted by their authors (of those the
    `among` clause, "" or "<condition> AND ", picks)."""
    return (
        "DELETE FROM edits WHERE fullname IN "
        f"(SELECT fullname FROM {table} WHERE {among}removed_how = 'deleted')"
    )


def purge(table: str, columns: Sequence[str], among: str) -> str:
    """Set `columns` to NULL for `table`'s items deleted by their authors that still hold
    some of it, so that the count of rows changed is the count of items purged."""
    return (
        f"UPDATE {table} SET {', '.join(f'{c} = NULL' for c in columns)} "
        f"WHERE {among}removed_how = 'deleted' AND "
        f"({' OR '.join(f'{c} IS NOT NULL' for c in columns)})"
    )
