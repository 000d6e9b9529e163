"""A listing followed forever: each unseen item once, oldest first, as a series of steps.

What counts as seen is asked of the database (`known`) on every poll rather than kept in
memory, so memory stays bounded however long the run and a restart resumes exactly where
the database stops. A poll that overlaps nothing already stored may have missed posts,
so the stream pages back with `after` until it meets a stored post or the listing ends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ..errors import RateLimited, TransientError
from .pacing import Backoff, Budget, PollSchedule, rate_info
from .reddit import Page

log = logging.getLogger(__name__)

T = TypeVar("T")

# Reddit's listings reach back about 1000 items: 10 pages of 100.
MAX_PAGES = 10
URGENT = 800  # items likely waiting: past this a listing is about to lose some


@dataclass(frozen=True)
class Gap:
    """Posts that may be missing because the listing no longer reaches back to them."""

    newer_utc: float | None  # created_utc of the oldest post the listing still showed
    older_utc: float | None  # created_utc of the newest post already stored
    up_to: int | None  # upper bound from the base36 id range, when both ends are known
    newer_name: str | None = None  # that oldest listed post's fullname
    older_name: str | None = None  # that newest stored post's fullname


@dataclass(frozen=True)
class Batch:
    items: list[Any]  # listing children never stored before, oldest first
    seen_again: int  # children on the fetched pages that were already stored
    pages: int
    gap: Gap | None = None


def _name(child: Any) -> str | None:
    data = child.get("data") if isinstance(child, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _created(child: Any) -> float | None:
    data = child.get("data") if isinstance(child, dict) else None
    value = data.get("created_utc") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _base36(fullname: str) -> int | None:
    try:
        return int(fullname.partition("_")[2], 36)
    except ValueError:
        return None


class _Split:
    """One page divided into what is new and whether it touched stored history."""

    def __init__(
        self, children: list[Any], known: Callable[[Sequence[str]], set[str]], taken: set[str]
    ) -> None:
        named = [(n, c) for c in children if (n := _name(c)) is not None]
        stored = known([n for n, _ in named]) if named else set()
        self.new: list[Any] = []
        for name, child in named:
            if name not in stored and name not in taken:
                taken.add(name)
                self.new.append(child)
        self.overlap = bool(stored)
        self.seen_again = len(stored)


@dataclass(frozen=True)
class Sleep:
    """A listing cannot go on for this long: its poll is not due, or it is backing off."""

    seconds: float


def fetch_retrying(
    fetch: Callable[[], Page],
    *,
    budget: Budget,
    backoff: Backoff,
    on_problem: Callable[[TransientError], None],
    urgent: bool = False,
    spare: bool = False,
) -> Generator[Sleep, None, Page]:
    """Sleeps until the page comes: waits for the budget (for a hold only if `spare`:
    the caller asked Budget.surplus), retries transient faults."""
    while True:
        # Another listing may spend the budget while this one sleeps: ask again after.
        while (delay := budget.wait(urgent=urgent, spare=spare)) > 0:
            yield Sleep(delay)
        budget.spend(spare=spare)
        try:
            page = fetch()
        except TransientError as exc:
            on_problem(exc)
            if exc.headers is not None:
                budget.update(rate_info(exc.headers))
            pause = max(exc.retry_after or 0.0, backoff.next())
            if isinstance(exc, RateLimited):
                budget.hold(pause)  # on top of what the headers said, if anything
            else:
                yield Sleep(pause)
            continue
        backoff.reset()
        budget.update(page.rate)
        return page


def slept(steps: Generator[Sleep, None, T], sleep: Callable[[float], None]) -> T:
    """Run `steps` to its result, sleeping where it says."""
    while True:
        try:
            step = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        sleep(step.seconds)


@dataclass(eq=False)
class Listing:
    """One newest-first listing followed forever, as a series of steps: Sleep or Batch.

    Steps rather than sleeping lets one thread follow several listings that share one
    rate-limit budget (`interleave`). `fetch(after)` gets a page, `known(names)` says
    which are stored already, `newest_stored()` the newest stored (fullname, created).
    """

    fetch: Callable[[str | None], Page]
    known: Callable[[Sequence[str]], set[str]]
    newest_stored: Callable[[], tuple[str, float] | None]
    clock: Callable[[], float]
    schedule: PollSchedule
    budget: Budget
    backoff: Backoff
    on_problem: Callable[[TransientError], None]
    max_pages: int = MAX_PAGES
    name: str = "posts"
    sequential: bool = True  # ids in creation order (posts; comments since 2026 are not)
    last_poll: float | None = field(default=None, init=False)
    _sent: float = field(default=0.0, init=False)

    def backlog(self, now: float) -> float:
        """How many new items are likely waiting: the claim this listing has on the next
        request when the budget cannot serve every listing's schedule."""
        schedule = self.schedule
        if self.last_poll is None or now - self.last_poll >= schedule.max_interval:
            return math.inf  # never polled, or kept waiting its longest interval: first
        return (schedule.rate or 0.0) * (now - self.last_poll)

    def _fetch(self, after: str | None) -> Page:
        self._sent = self.clock()  # when the listing was read, not when we meant to
        return self.fetch(after)

    def _get(self, after: str | None) -> Generator[Sleep, None, Page]:
        # Catch-up pages race posts sliding off the listing's end, and a listing kept
        # waiting its longest interval (or near its end) is losing most by waiting: they
        # do not wait for the even spread while the budget has requests to spare.
        urgent = after is not None or self.backlog(self.clock()) >= URGENT
        return fetch_retrying(
            lambda: self._fetch(after),
            budget=self.budget,
            backoff=self.backoff,
            on_problem=self.on_problem,
            urgent=urgent,
        )

    def steps(self) -> Iterator[Sleep | Batch]:
        """Forever: Sleep while nothing can be done, a Batch per poll.

        The caller must store each batch before asking for the next step.
        """
        known, schedule = self.known, self.schedule
        have_history = self.newest_stored() is not None
        while True:
            if self.last_poll is not None:
                wait = self.last_poll + schedule.interval() - self.clock()
                if wait > 0:
                    yield Sleep(wait)
            page = yield from self._get(None)
            poll_time = self._sent
            taken: set[str] = set()
            first = _Split(page.children, known, taken)
            new, seen_again, pages, gap = first.new, first.seen_again, 1, None
            if have_history and page.children and not first.overlap and not self._follows(page):
                more, again, extra, gap = yield from self._catch_up(page, taken)
                new += more
                seen_again += again
                pages += extra
            if self.last_poll is not None:
                elapsed = poll_time - self.last_poll
                schedule.fitted(pages, elapsed)
                # Items lost to a gap arrived too: count them by the time the fetched
                # ones span, or a listing that cannot keep up would seem to slow down.
                arrived = len(new) if gap is None else round(_span_rate(new) * elapsed)
                schedule.observe(max(len(new), arrived), elapsed)
            self.last_poll = poll_time
            if new:
                have_history = True
            new.reverse()
            yield Batch(new, seen_again, pages, gap)

    def _follows(self, page: Page) -> bool:
        """Whether a page of nothing but new items holds every id since the newest
        stored one, so that nothing can be missing below it and no catch-up is needed."""
        stored = self.newest_stored() if self.sequential else None
        ids = {_base36(n) for c in page.children if (n := _name(c)) is not None}
        if stored is None or None in ids or len(ids) != len(page.children):
            return False
        lo = _base36(stored[0])
        return lo is not None and ids == set(range(lo + 1, lo + 1 + len(ids)))

    def _catch_up(
        self, page: Page, taken: set[str]
    ) -> Generator[Sleep, None, tuple[list[Any], int, int, Gap | None]]:
        """Page back from `page` until a stored post shows up; report a gap if none does."""
        known = self.known
        collected: list[Any] = []
        anchors = [n for c in page.children if (n := _name(c)) is not None]
        after = page.after or (anchors[-1] if anchors else None)
        seen_again = 0
        pages = 0
        retries_on_empty = 3
        while after is not None and pages + 1 < self.max_pages:
            nxt = yield from self._get(after)
            pages += 1
            if not nxt.children and retries_on_empty and len(anchors) > 1:
                # The anchor post was removed meanwhile, which makes Reddit answer an empty
                # page; step one post back and ask again rather than stalling or giving up.
                retries_on_empty -= 1
                anchors.pop()
                after = anchors[-1]
                continue
            split = _Split(nxt.children, known, taken)
            collected += split.new
            seen_again += split.seen_again
            if split.overlap:
                log.info("caught up: %d %s that arrived between polls", len(collected), self.name)
                return collected, seen_again, pages, None
            anchors += [n for c in nxt.children if (n := _name(c)) is not None]
            after = nxt.after
        # No stored item came back. Reaching the listing's end proves nothing: items can
        # fall off its bottom while we page (a burst on top pushes them past the reach),
        # and an anchor can vanish. Only the ids can clear it: when the oldest item in
        # hand directly follows the newest stored one, nothing can be between them.
        gap = _gap(page.children + collected, self.newest_stored(), self.sequential)
        return collected, seen_again, pages, None if gap.up_to == 0 else gap


def _gap(fetched: list[Any], stored: tuple[str, float] | None, sequential: bool) -> Gap:
    named = [c for c in fetched if _name(c) is not None]
    oldest = named[-1] if named else None
    oldest_name, newer_utc = _name(oldest), _created(oldest)
    up_to = None
    if sequential and stored is not None and oldest_name is not None:
        hi, lo = _base36(oldest_name), _base36(stored[0])
        if hi is not None and lo is not None and hi > lo:
            up_to = hi - lo - 1
    return Gap(
        newer_utc,
        stored[1] if stored else None,
        up_to,
        oldest_name,
        stored[0] if stored else None,
    )


def _span_rate(items: list[Any]) -> float:
    """Items a second, from the creation times of a run of consecutive items."""
    times = [t for c in items if (t := _created(c)) is not None]
    if len(times) < 2:
        return 0.0
    # Creation times have a resolution of a second: a run within one counts as a second.
    return len(times) / max(1.0, max(times) - min(times))
