"""Which columns each table has and which listing field fills each: the tutorial's
FIELDS/RENAME, chosen with --fields and --comment-fields, plus the optional raw column.

The default tables keep the transform's fixed columns and its fast row builder. A chosen
set of fields still goes through that transform first, so a column that shares a default
column's name and field gets the same cleaning (url made absolute, author never NULL).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..errors import DatabaseError, UsageError
from .rows import COMMENT_COLUMNS, POST_COLUMNS, Row, comment_row, field_value, post_row, rows_of

# The key, the id (NOT NULL in a default table, which INSERT OR IGNORE would otherwise
# answer by dropping every row), and what catch-up orders by: always there, never renamed.
REQUIRED = ("fullname", "id", "created_utc")
# Kept by `refresh`: when an item was last checked, and whether and when it was found
# deleted by its author, removed, or gone.
BOOKKEEPING = ("refreshed_utc", "removed_how", "removed_utc")
RAW_COLUMN = "raw"
RAW_FIELD = "*"  # how the raw column's source is recorded in the database
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_FIELD = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class Table:
    name: str  # named for what it holds: "posts", "comments"
    kind: str  # t3 or t1
    columns: tuple[str, ...]  # what each row holds, in order
    fields: tuple[str, ...]  # the listing field behind each column; RAW_FIELD for raw
    base: Callable[[Any, float], Row | None]  # the transform for this kind
    base_columns: tuple[str, ...]
    # Columns refresh keeps besides the rows' (BOOKKEEPING), once it has checked the table.
    bookkeeping: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.columns == self.base_columns

    @property
    def structured(self) -> tuple[int, ...]:
        """Where a row may hold an object or a list: raw, and fields the transform does
        not clean (any listing value, as it came)."""
        return tuple(
            i for i, f in enumerate(self.fields) if f == RAW_FIELD or f not in self.base_columns
        )

    def row_builder(self) -> Callable[[Iterable[Any], float], list[Row]]:
        """rows(children, retrieved_utc): the rows for this table's kind, in order."""
        base = self.base
        if self.is_default:
            return functools.partial(rows_of, base)
        index = {c: i for i, c in enumerate(self.base_columns)}
        picks = [(index.get(f, -1), f) for f in self.fields]

        def chosen_rows(children: Iterable[Any], retrieved_utc: float) -> list[Row]:
            rows = []
            for child in children:
                row = base(child, retrieved_utc)
                if row is None:
                    continue
                data = child["data"]
                rows.append(tuple(row[i] if i >= 0 else pick(data, f) for i, f in picks))
            return rows

        return chosen_rows


def pick(data: dict[str, Any], field: str) -> Any:
    """The value of a chosen field that the transform does not clean."""
    return data if field == RAW_FIELD else field_value(data, field)


POSTS = Table("posts", "t3", POST_COLUMNS, POST_COLUMNS, post_row, POST_COLUMNS)
COMMENTS = Table("comments", "t1", COMMENT_COLUMNS, COMMENT_COLUMNS, comment_row, COMMENT_COLUMNS)


def choose(default: Table, spec: str | None, *, raw: bool, option: str) -> Table:
    """`default` with the columns `spec` names ("title,author_fullname:author_id"), and
    the raw column if asked; UsageError for a spec no table could have."""
    if spec is None:
        columns, fields = list(default.columns), list(default.fields)
    else:
        columns, fields = list(REQUIRED), list(REQUIRED)
        for item in spec.split(","):
            chosen = _chosen(item.strip(), option)
            if chosen is None:
                continue
            field, column = chosen
            if column.lower() in (c.lower() for c in columns):
                raise UsageError(f"{option}: two fields would go into the column {column!r}")
            columns.append(column)
            fields.append(field)
    if raw:
        if RAW_COLUMN in columns:
            raise UsageError(f"{option}: the column {RAW_COLUMN!r} is taken by --raw")
        columns.append(RAW_COLUMN)
        fields.append(RAW_FIELD)
    return replace(default, columns=tuple(columns), fields=tuple(fields))


def _chosen(item: str, option: str) -> tuple[str, str] | None:
    """(field, column) of one `field[:column]`; None for an empty item or a required one."""
    if not item:
        return None
    field, _, column = item.partition(":")
    field = field.strip()
    if field == "name":
        field = "fullname"  # Reddit's name is the fullname
    column = column.strip() or field.replace(".", "_")
    if not _FIELD.match(field):
        raise UsageError(f"{option}: {field!r} is not a listing field name")
    if (
        not _COLUMN.match(column)
        or column.lower().startswith(("sqlite_", "redpipe_"))
        or column.lower() in BOOKKEEPING
    ):
        raise UsageError(f"{option}: {column!r} cannot be a column name")
    if field in REQUIRED or column in REQUIRED:
        if field != column:
            raise UsageError(
                f"{option}: fullname, id and created_utc are always stored, under those "
                f"names; {item!r} would rename or overwrite one"
            )
        return None
    return field, column


@dataclass(frozen=True)
class Stored:
    """A table as a sink holds it: its columns, whether fullname is its key, and the
    listing field each column was filled from (bookkeeping columns are not fields)."""

    columns: tuple[str, ...]
    keyed: bool
    fields: Mapping[str, str]


def check_owned(where: str, name: str, stored: Stored) -> None:
    """Refuse a table redpipe did not make: it must have the key and the required columns."""
    if not set(REQUIRED) <= set(stored.columns) or not stored.keyed:
        raise DatabaseError(
            f"{where} already has a '{name}' table that redpipe did not create "
            f"(columns: {', '.join(sorted(stored.columns))}); use another database file"
        )


def check_fields(where: str, table: Table, stored: Stored) -> None:
    """Refuse a choice of fields that would pour another field into an existing column."""
    lower = {c.lower(): c for c in stored.columns}
    for column, field in zip(table.columns, table.fields):
        existing = lower.get(column.lower())
        if existing is None:
            continue  # added as a new column
        held = stored.fields.get(existing)
        if held is None:
            raise UsageError(
                f"{where}: {table.name}.{existing} exists but redpipe never filled it; "
                f"give {field!r} another column name ({field}:another_name)"
            )
        if held != field:
            shown = "the whole item (--raw)" if held == RAW_FIELD else repr(held)
            raise UsageError(
                f"{where}: {table.name}.{existing} already holds {shown}, so "
                f"{'--raw' if field == RAW_FIELD else repr(field)} cannot go there; "
                "choose another column name"
            )


def check_stored(
    where: str, tables: Iterable[Table], found: Mapping[str, Stored], *, fields: bool
) -> None:
    """Refuse, of `tables`, one held in `found` that redpipe did not make, and (with
    `fields`) a choice that would pour another field into an existing column."""
    for table in tables:
        stored = found.get(table.name)
        if stored is not None:
            check_owned(where, table.name, stored)
            if fields:
                check_fields(where, table, stored)


def as_stored(table: Table, stored: Stored) -> Table:
    """`table` with the columns the sink holds and their recorded fields, ready for refresh."""
    kept = tuple(c for c in stored.columns if c in stored.fields)
    return replace(
        table,
        columns=kept,
        fields=tuple(stored.fields[c] for c in kept),
        bookkeeping=BOOKKEEPING,
    )


def revisited(table: Table) -> Table:
    """`table` with the columns refresh keeps, for a stream that refreshes as it goes."""
    return replace(table, bookkeeping=BOOKKEEPING)
