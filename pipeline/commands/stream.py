"""The stream: every listing followed on one rate-limit budget, each batch through the
transform into the sink, until stopped or `max_records` new rows are stored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Callable

from ..errors import TransientError
from ..sinks.base import Sink
from ..sources.listing import Batch, Listing, Sleep
from ..sources.pacing import Backoff, Budget, PollSchedule
from ..sources.reddit import Page, RedditClient
from ..sources.scheduler import Plan, Strain, interleave
from ..transform.tables import Table
from .context import Context

# Where each table's items are listed, newest first.
PATHS = {"posts": "/r/{}/new", "comments": "/r/{}/comments"}

# Whose ids still follow the order items are made in: Reddit's comment ids stopped in 2026.
SEQUENTIAL = {"posts": True, "comments": False}


def stream(
    sink: Sink,
    client: RedditClient,
    tables: Sequence[Table],
    *,
    subreddits: str,
    interval: float,
    max_records: int | None,
    context: Context,
    on_batch: Callable[[Batch, int, int, str], None],
    on_problem: Callable[[TransientError], None],
    on_strain: Callable[[Strain], None] = lambda strain: None,
    spare: Callable[[Budget], Iterator[Sleep | None]] | None = None,
) -> None:
    """Follow the listing of each of `tables` on r/`subreddits`. `on_batch(batch, offered,
    stored, table)` hears of every write, `on_problem` of every fault retried, `on_strain`
    after every batch while the budget cannot hold the listings. `spare(budget)` is work
    for the requests the listings do not need (refresh)."""
    budget = Budget(context.clock)  # one budget: every listing spends the same app's requests
    listings = [
        _listing(sink, client, t.name, subreddits, interval, budget, context, on_problem)
        for t in tables
    ]
    plan = Plan(budget, listings)
    batches = interleave(
        listings,
        clock=context.clock,
        sleep=context.sleep,
        plan=plan,
        spare=None if spare is None else spare(budget),
    )

    def named() -> Iterator[tuple[str, Batch]]:
        for listing, batch in batches:
            yield listing.name, batch
            if plan.strain is not None:
                on_strain(plan.strain)

    pump(named(), sink, {t.name: t for t in tables}, context, max_records, on_batch)


def _listing(
    sink: Sink,
    client: RedditClient,
    name: str,
    subreddits: str,
    interval: float,
    budget: Budget,
    context: Context,
    on_problem: Callable[[TransientError], None],
) -> Listing:
    """The listing of table `name` on r/`subreddits`, as the sink knows it."""
    path = PATHS[name].format(subreddits)
    # Other streams may share the table: history is what this one's subreddits hold.
    within = () if subreddits.lower() == "all" else tuple(subreddits.lower().split("+"))

    def fetch(after: str | None) -> Page:
        sink.confirm_lead()  # a standby that took over while this one slept polls alone
        return client.listing(path, after=after)

    return Listing(
        fetch=fetch,
        known=lambda names: sink.known(name, names),
        newest_stored=lambda: sink.newest(name, within),
        clock=context.clock,
        schedule=PollSchedule(min_interval=interval),
        budget=budget,
        backoff=Backoff(),
        on_problem=on_problem,
        name=name,
        sequential=SEQUENTIAL[name],
    )


def pump(
    batches: Iterable[tuple[str, Batch]],
    sink: Sink,
    tables: Mapping[str, Table],
    context: Context,
    max_records: int | None,
    on_batch: Callable[[Batch, int, int, str], None],
) -> None:
    """Store every (table, batch) in one transaction each, until `max_records` new rows in
    all if given."""
    builders = {name: table.row_builder() for name, table in tables.items()}
    stored = 0
    for name, batch in batches:
        rows = builders[name](batch.items, context.wall_clock())
        if max_records is not None:
            rows = rows[: max_records - stored]
        with context.critical():
            (added,) = sink.write([(name, rows)])
            stored += added
            on_batch(batch, len(rows), added, name)
        if max_records is not None and stored >= max_records:
            return
