"""Pure: which columns hold what people wrote, the text a full-text index covers, and
when a checked item's text counts as edited."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError

# What people wrote, by kind: the fields a full-text index covers and refresh compares.
TEXT_FIELDS = {"t3": ("title", "selftext"), "t1": ("body",)}
# What Reddit shows in place of text taken down: never an edit, never stored over text.
PLACEHOLDERS = frozenset(("[deleted]", "[removed]"))
# Reddit's own label for a match's text, by kind.
SHOWN_FIELD = {"t3": "title", "t1": "body"}


def text_columns(kind: str, fields: Mapping[str, str]) -> tuple[str, ...]:
    """The columns of a table of `kind` that hold its text, given {column: field} as
    recorded, in the order of TEXT_FIELDS."""
    by_field = {f: c for c, f in fields.items()}
    return tuple(by_field[f] for f in TEXT_FIELDS[kind] if f in by_field)


def shown_columns(
    kind: str, columns: tuple[str, ...], fields: tuple[str, ...], prefix: str = ""
) -> list[str]:
    """What a search selects, in Match's order: each column as `prefix` + its name, or
    NULL where the table keeps no such field."""
    wanted = ("fullname", "created_utc", "subreddit", "author", SHOWN_FIELD[kind],
              "permalink", "link_id")  # fmt: skip
    return [prefix + c if (c := column_of(columns, fields, f)) else "NULL" for f in wanted]


def column_of(columns: tuple[str, ...], fields: tuple[str, ...], field: str) -> str | None:
    """The column a table fills from `field`, if it has one."""
    for column, source in zip(columns, fields):
        if source == field:
            return column
    return None


def edited(old: Any, new: Any) -> bool:
    """Whether text stored as `old` and shown now as `new` was edited: not when either is
    missing (purged, or never kept), not when Reddit shows a placeholder, and not when
    `old` is the same text HTML-escaped, as dumps made without raw_json hold it, or with
    its NUL characters replaced, as PostgreSQL holds it."""
    if not isinstance(old, str) or not isinstance(new, str) or new in PLACEHOLDERS:
        return False
    if old == new or html.unescape(old) == new:
        return False
    return "\x00" not in new or new.replace("\x00", "\ufffd") != old


def unindexed(where: str, table: str) -> UsageError:
    """What a search of a table without an index says."""
    return UsageError(
        f"{where}: {table} has no full-text index; run a stream, replay or refresh of it "
        "with --fts once"
    )
