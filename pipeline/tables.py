"""Which columns each table has and which listing field fills each: the tutorial's
FIELDS/RENAME, chosen with --fields and --comment-fields, plus the optional raw column.

The default tables keep the transform's fixed columns and its fast row builder. A chosen
set of fields still goes through that transform first, so a column that shares a default
column's name and field gets the same cleaning (url made absolute, author never NULL).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UsageError
from .transform import (
    COMMENT_COLUMNS,
    POST_COLUMNS,
    Row,
    comment_row,
    field_value,
    post_row,
    raw_json,
    rows_of,
)

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
}


@dataclass(frozen=True)
class Table:
    name: str  # the SQLite table, named for what it holds: "posts", "comments"
    kind: str  # t3 or t1
    columns: tuple[str, ...]
    fields: tuple[str, ...]  # the listing field behind each column; RAW_FIELD for raw
    base: Callable[[Any, float], Row | None]  # the transform for this kind
    base_columns: tuple[str, ...]

    @property
    def is_default(self) -> bool:
        return self.columns == self.base_columns

    def sql_type(self, column: str, *, creating: bool) -> str:
        """The declared type; ALTER TABLE cannot add a NOT NULL column to existing rows."""
        field = self.fields[self.columns.index(column)]
        if field == RAW_FIELD:
            return "TEXT"
        if field.startswith("="):  # redpipe's own bookkeeping
            return SQL_TYPES[field[1:]]
        if field not in self.base_columns:
            return ""  # any listing value, stored as it came: no type affinity
        declared = SQL_TYPES.get(field, "TEXT")
        return declared if creating else declared.split(" ")[0]

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
                rows.append(
                    tuple(
                        row[i]
                        if i >= 0
                        else raw_json(child)
                        if f == RAW_FIELD
                        else field_value(data, f)
                        for i, f in picks
                    )
                )
            return rows

        return chosen_rows


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
            item = item.strip()
            if not item:
                continue
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
                continue
            if column.lower() in (c.lower() for c in columns):
                raise UsageError(f"{option}: two fields would go into the column {column!r}")
            columns.append(column)
            fields.append(field)
    if raw:
        if RAW_COLUMN in columns:
            raise UsageError(f"{option}: the column {RAW_COLUMN!r} is taken by --raw")
        columns.append(RAW_COLUMN)
        fields.append(RAW_FIELD)
    return Table(default.name, default.kind, tuple(columns), tuple(fields), default.base,
                 default.base_columns)  # fmt: skip
