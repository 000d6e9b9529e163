"""`refresh`: fetch stored items again once they are old enough, as Arctic Shift does
about 36 hours on, to update their scores and learn which were deleted or removed.

Reddit's Developer Terms want content its author deleted gone from copies too; with
`purge`, the text of every item marked deleted by its author is set to NULL.

Each batch of 100 is fetched with /api/info and written in one transaction together with
its `refreshed_utc`, so a stopped refresh resumes with the items it had not reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

from .reddit import Page
from .store import Store
from .tables import RAW_FIELD, Table

BATCH = 100  # /api/info's limit
# Fields that change after posting; refresh writes their new values when the table has
# a column for them.
COUNTERS = frozenset(
    ("score", "num_comments", "edited", "upvote_ratio", "num_crossposts", "locked",
     "archived", "stickied", "over_18", "spoiler")
)  # fmt: skip
# What a purge keeps of an item its author deleted: where and when it was, not what it said
# or who said it.
KEEP_ON_PURGE = frozenset(
    ("fullname", "id", "created_utc", "subreddit", "subreddit_id", "link_id", "parent_id",
     "retrieved_utc", "score", "num_comments", "edited", "over_18", "is_self")
)  # fmt: skip


def removal(kind: str, data: dict[str, Any]) -> str | None:
    """How an item as /api/info shows it now was taken down, or None if it was not.

    'deleted': by its author. 'removed:<who>': Reddit's removed_by_category for posts
    (moderator, reddit, anti_evil_ops, automod_filtered, copyright_takedown, ...).
    'removed': the text says [removed] but not by whom (comments never say).
    """
    category = data.get("removed_by_category")
    text = data.get("selftext" if kind == "t3" else "body")
    if category == "deleted" or (text == "[deleted]" and data.get("author") == "[deleted]"):
        return "deleted"
    if isinstance(category, str) and category:
        return "removed:" + category
    if text == "[removed]":
        return "removed"
    return None


@dataclass
class Counts:
    due: int = 0
    checked: int = 0
    changed: int = 0  # items whose score, comment count or other counters moved
    deleted: int = 0
    removed: int = 0
    gone: int = 0  # no longer returned at all (banned subreddit, spam, ...)
    restored: int = 0  # marked before, up again now (a removal undone)
    purged: int = 0

    def line(self, table: str) -> str:
        return (
            f"{table}: {self.checked:,} checked, {self.changed:,} changed, "
            f"{self.deleted:,} deleted by their authors, {self.removed:,} removed, "
            f"{self.gone:,} gone, {self.restored:,} restored, {self.purged:,} purged"
        )


def refresh_table(
    store: Store,
    table: Table,
    info: Callable[[list[str]], Page],
    *,
    cutoff: float,
    wall_clock: Callable[[], float],
    purge: bool,
    critical: Callable[[], AbstractContextManager[object]],
    progress: Callable[[Counts], None],
) -> Counts:
    """Check every item of `table` created, and last checked, before `cutoff`."""
    store.add_bookkeeping(table.name)
    counters = [c for c, f in zip(table.columns, table.fields) if f in COUNTERS]
    wiped = [
        c for c, f in zip(table.columns, table.fields) if f not in KEEP_ON_PURGE or f == RAW_FIELD
    ]
    at = {c: i for i, c in enumerate(table.columns)}
    build = table.row_builder()
    counts = Counts(due=store.count_due(table.name, cutoff))
    progress(counts)
    while True:
        names = store.due(table.name, cutoff, BATCH)
        if not names:
            break
        page = info(names)
        now = wall_clock()
        fresh = {row[0]: (row, child["data"]) for child in page.children
                 for row in build([child], now)}  # fmt: skip
        stored = store.current(table.name, names, [*counters, "removed_how"])
        changes = [
            (name, _change(counts, fresh.get(name), old, counters, at, table.kind, now))
            for name, old in stored.items()
        ]
        with critical():
            store.update(table.name, changes, [])
        counts.checked += len(changes)
        progress(counts)
    if purge:
        with critical():
            counts.purged = store.update(table.name, [], wiped)
    return counts


def _change(
    counts: Counts,
    fresh: tuple[tuple[Any, ...], dict[str, Any]] | None,
    old: tuple[Any, ...],
    counters: Sequence[str],
    at: dict[str, int],
    kind: str,
    now: float,
) -> dict[str, Any]:
    """The columns to write for one checked item, counted into `counts`."""
    values: dict[str, Any] = {"refreshed_utc": now}
    was = old[-1]
    how: str | None
    if fresh is None:
        how = "deleted" if was == "deleted" else "gone"  # deleted, then gone: still deleted
    else:
        row, data = fresh
        how = removal(kind, data)
        moved = {c: row[at[c]] for c, before in zip(counters, old) if row[at[c]] != before}
        if moved:
            counts.changed += 1
            values.update(moved)
    if how != was:
        if how is None:
            counts.restored += 1
        else:
            kind_of = how.partition(":")[0]
            if kind_of == "deleted":
                counts.deleted += 1
            elif kind_of == "removed":
                counts.removed += 1
            else:
                counts.gone += 1
        values["removed_how"] = how
        values["removed_utc"] = None if how is None else now
    return values
