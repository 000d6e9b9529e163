"""`refresh`: fetch stored items again once they are old enough, as Arctic Shift does
about 36 hours on, to update their scores and learn which were deleted or removed.

Reddit's Developer Terms want content its author deleted gone from copies too; with
`purge`, the text of every item marked deleted by its author is set to NULL.

Each batch of 100 is fetched with /api/info and written in one transaction together with
its `refreshed_utc`, so a stopped refresh resumes with the items it had not reached.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import TransientError
from ..sinks.base import Archive, Edit, Row
from ..sources.listing import fetch_retrying, slept
from ..sources.pacing import Backoff, Budget
from ..sources.reddit import Page, RedditClient
from ..transform.records import COUNTERS, KEEP_ON_PURGE, removal
from ..transform.tables import COMMENTS, POSTS, RAW_FIELD, Table
from ..transform.text import edited, text_columns
from .context import Context

BATCH = 100  # /api/info's limit


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
    edited: int = 0  # items whose text changed: the old text kept in `edits`

    def line(self, table: str) -> str:
        return (
            f"{table}: {self.checked:,} checked, {self.changed:,} changed, "
            f"{self.edited:,} edited, "
            f"{self.deleted:,} deleted by their authors, {self.removed:,} removed, "
            f"{self.gone:,} gone, {self.restored:,} restored, {self.purged:,} purged"
        )


def refresh(
    sink: Archive,
    client: RedditClient,
    *,
    older_than: float,
    purge: bool,
    context: Context,
    on_problem: Callable[[TransientError], None],
    progress: Callable[[str, Counts], None],
    finished: Callable[[str, Counts], None],
    fts: bool = False,
) -> None:
    """Check the items of every table the archive holds that are due; with `fts`, index
    their text first."""
    info = _asker(client, context, on_problem)
    cutoff = context.wall_clock() - older_than
    # Each table as it is stored: refresh adds no chosen fields of its own.
    held = sink.adopt([POSTS, COMMENTS])
    if fts:
        sink.full_text(list(held.values()))
    for table in held.values():
        if not sink.count(table.name):
            continue  # empty: nothing to check
        sink.prepare([table])  # its bookkeeping columns, the first time
        counts = refresh_table(
            sink,
            table,
            info,
            cutoff=cutoff,
            purge=purge,
            context=context,
            progress=functools.partial(progress, table.name),
        )
        finished(table.name, counts)


def _asker(
    client: RedditClient, context: Context, on_problem: Callable[[TransientError], None]
) -> Callable[[list[str]], Page]:
    """/api/info for a batch of names, retried and paced on the one budget."""
    budget, backoff = Budget(context.clock), Backoff()

    def info(names: list[str]) -> Page:
        steps = fetch_retrying(
            lambda: client.info(names), budget=budget, backoff=backoff, on_problem=on_problem
        )
        return slept(steps, context.sleep)

    return info


class Checker:
    """What a check of one table needs: which columns to compare, how to build rows."""

    def __init__(self, table: Table, *, purge: bool) -> None:
        fields = dict(zip(table.columns, table.fields))
        self.table = table
        self.counters = [c for c, f in fields.items() if f in COUNTERS]
        self.texts = text_columns(table.kind, fields)
        self.at = {c: i for i, c in enumerate(table.columns)}
        self.build = table.row_builder()
        self.wiped = (
            [c for c, f in fields.items() if f not in KEEP_ON_PURGE or f == RAW_FIELD]
            if purge
            else []
        )

    def check(
        self, sink: Archive, names: list[str], page: Page, counts: Counts, context: Context
    ) -> None:
        """Write what `page`, /api/info's answer for `names`, says of each of them."""
        table = self.table
        now = context.wall_clock()
        fresh = {
            row[0]: (row, child["data"])
            for child in page.children
            for row in self.build([child], now)
        }
        stored = sink.current(table.name, names, [*self.counters, *self.texts, "removed_how"])
        changes, edits = [], []
        for name, old in stored.items():
            item = fresh.get(name)
            values = _change(counts, item, old, self.counters, self.at, table.kind, now)
            found = self._edits(name, item, old[len(self.counters) : -1], values, now)
            counts.edited += bool(found)
            edits += found
            changes.append((name, values))
        with context.critical():
            sink.update(table.name, changes, edits)
            counts.checked += len(changes)  # inside: a stop at the commit still counts it

    def _edits(
        self,
        name: str,
        fresh: tuple[Row, dict[str, Any]] | None,
        old: Row,
        values: dict[str, Any],
        now: float,
    ) -> list[Edit]:
        """The text columns of `name` that changed, set in `values`, their old text as
        edits. Not of an item taken down: what Reddit shows then stands in for the text."""
        if fresh is None or removal(self.table.kind, fresh[1]) is not None:
            return []
        row = fresh[0]
        out = []
        for column, before in zip(self.texts, old):
            after = row[self.at[column]]
            if edited(before, after):
                values[column] = after
                out.append(Edit(name, column, before, now))
        return out


def refresh_table(
    sink: Archive,
    table: Table,
    info: Callable[[list[str]], Page],
    *,
    cutoff: float,
    purge: bool,
    context: Context,
    progress: Callable[[Counts], None],
) -> Counts:
    """Check every item of `table` created, and last checked, before `cutoff`."""
    checker = Checker(table, purge=purge)
    counts = Counts(due=sink.count_due(table.name, cutoff=cutoff))
    progress(counts)
    while names := sink.due(table.name, cutoff=cutoff, limit=BATCH):
        checker.check(sink, names, info(names), counts, context)
        progress(counts)
    if checker.wiped:
        with context.critical():
            counts.purged = sink.purge_deleted(table.name, checker.wiped)
    return counts


def _change(
    counts: Counts,
    fresh: tuple[Row, dict[str, Any]] | None,
    old: Row,
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
        _count(counts, how)
        values["removed_how"] = how
        values["removed_utc"] = None if how is None else now
    return values


def _count(counts: Counts, how: str | None) -> None:
    """Count a change of mark: restored, deleted, removed or gone."""
    if how is None:
        counts.restored += 1
        return
    kind_of = how.partition(":")[0]
    if kind_of == "deleted":
        counts.deleted += 1
    elif kind_of == "removed":
        counts.removed += 1
    else:
        counts.gone += 1
