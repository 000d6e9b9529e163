"""`--refresh`: the stream's own refresh, on the requests its listings do not need.

The same checks as the `refresh` command, one /api/info request at a time, as steps the
stream's scheduler runs only while the budget has a surplus beyond what the listings'
plan needs until the window resets. So turning it on never delays a listing's poll.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TransientError
from ..sinks.base import Archive
from ..sources.listing import Sleep, fetch_retrying
from ..sources.pacing import Backoff, Budget
from ..sources.reddit import Page, RedditClient
from ..transform.tables import Table
from .context import Context
from .refresh import BATCH, Checker, Counts

IDLE = 60.0  # nothing due: look again this much later
RECOUNT = 600.0  # how often the backlog is counted again: a count reads the whole table


@dataclass
class Backlog:
    """What the stream's refresh has done, and how much waits, by table."""

    counts: dict[str, Counts] = field(default_factory=dict)

    @property
    def due(self) -> int:
        return sum(c.due for c in self.counts.values())

    @property
    def checked(self) -> int:
        return sum(c.checked for c in self.counts.values())

    def recount(self, sink: Archive, cutoff: float) -> None:
        for name, counts in self.counts.items():
            counts.due = sink.count_due(name, cutoff=cutoff)


def refreshing(
    sink: Archive,
    client: RedditClient,
    tables: Sequence[Table],
    *,
    older_than: float,
    purge: bool,
    context: Context,
    on_problem: Callable[[TransientError], None],
    on_progress: Callable[[Backlog], None],
) -> Callable[[Budget], Iterator[Sleep | None]]:
    """The steps of a refresh of `tables` that never ends, for `stream(spare=...)`."""

    def steps(budget: Budget) -> Iterator[Sleep | None]:
        backoff, checkers = Backoff(), [Checker(t, purge=purge) for t in tables]
        backlog, recount_at = Backlog({t.name: Counts() for t in tables}), context.clock()
        while True:
            cutoff = context.wall_clock() - older_than
            if context.clock() >= recount_at:
                backlog.recount(sink, cutoff)
                # A small backlog is cheap to count and soon out of date: count it often.
                recount_at = context.clock() + (RECOUNT if backlog.due > 10_000 else IDLE)
                on_progress(backlog)
            due = [
                (c, n)
                for c in checkers
                if (n := sink.due(c.table.name, cutoff=cutoff, limit=BATCH))
            ]
            for checker, names in due:  # a batch of each table in turn
                ask = functools.partial(client.info, names)
                page = yield from fetch_retrying(
                    ask, budget=budget, backoff=backoff, on_problem=on_problem, spare=True
                )
                _check(sink, checker, names, page, backlog, context)
                on_progress(backlog)
                yield None
            if not due:
                yield Sleep(IDLE)

    return steps


def _check(
    sink: Archive,
    checker: Checker,
    names: list[str],
    page: Page,
    backlog: Backlog,
    context: Context,
) -> None:
    name = checker.table.name
    counts = backlog.counts[name]
    checker.check(sink, names, page, counts, context)
    counts.due = max(0, counts.due - len(names))
    if checker.wiped:
        with context.critical():
            counts.purged += sink.purge_deleted(name, checker.wiped, names)
