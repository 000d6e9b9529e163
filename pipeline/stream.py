"""The stream: polls a newest-first listing and yields each unseen post once, oldest first.

What counts as seen is asked of the database (`known`) on every poll rather than kept in
memory, so memory stays bounded however long the run and a restart resumes exactly where
the database stops. A poll that overlaps nothing already stored may have missed posts,
so the stream pages back with `after` until it meets a stored post or the listing ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable

from .errors import RateLimited, TransientError
from .pacing import Backoff, Budget, PollSchedule
from .reddit import Page

log = logging.getLogger(__name__)

# Reddit's listings reach back about 1000 items: 10 pages of 100.
MAX_PAGES = 10


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


def posts(
    fetch: Callable[[str | None], Page],
    known: Callable[[Sequence[str]], set[str]],
    *,
    newest_stored: Callable[[], tuple[str, float] | None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    schedule: PollSchedule,
    budget: Budget,
    backoff: Backoff,
    on_problem: Callable[[TransientError], None],
    max_pages: int = MAX_PAGES,
) -> Iterator[Batch]:
    """Yield a Batch per poll, forever.

    `fetch(after)` gets one newest-first page; `known(names)` says which are stored. The
    caller must store each batch before asking for the next one.
    """

    def fetch_retrying(after: str | None) -> Page:
        while True:
            # Catch-up pages race posts sliding off the listing's end: they do not wait
            # for the even spread while the budget has requests to spare.
            delay = budget.wait(urgent=after is not None)
            if delay > 0:
                sleep(delay)
            try:
                page = fetch(after)
            except TransientError as exc:
                on_problem(exc)
                if exc.rate is not None:
                    budget.update(exc.rate)
                pause = max(exc.retry_after or 0.0, backoff.next())
                if isinstance(exc, RateLimited):
                    budget.hold(pause)  # on top of what the headers said, if anything
                else:
                    sleep(pause)
                continue
            backoff.reset()
            budget.update(page.rate)
            return page

    have_history = newest_stored() is not None
    last_poll: float | None = None
    while True:
        if last_poll is not None:
            wait = last_poll + schedule.interval() - clock()
            if wait > 0:
                sleep(wait)
        poll_time = clock()
        page = fetch_retrying(None)
        taken: set[str] = set()
        first = _Split(page.children, known, taken)
        new, seen_again, pages, gap = first.new, first.seen_again, 1, None
        if have_history and page.children and not first.overlap:
            more, again, extra, gap = _catch_up(
                page, known, taken, fetch_retrying, newest_stored, max_pages
            )
            new += more
            seen_again += again
            pages += extra
        if last_poll is not None:
            schedule.observe(len(new), poll_time - last_poll)
        last_poll = poll_time
        if new:
            have_history = True
        new.reverse()
        yield Batch(new, seen_again, pages, gap)


def _catch_up(
    page: Page,
    known: Callable[[Sequence[str]], set[str]],
    taken: set[str],
    fetch: Callable[[str | None], Page],
    newest_stored: Callable[[], tuple[str, float] | None],
    max_pages: int,
) -> tuple[list[Any], int, int, Gap | None]:
    """Page back from `page` until a stored post shows up; report a gap if none does."""
    collected: list[Any] = []
    anchors = [n for c in page.children if (n := _name(c)) is not None]
    after = page.after or (anchors[-1] if anchors else None)
    seen_again = 0
    pages = 0
    retries_on_empty = 3
    while after is not None and pages + 1 < max_pages:
        nxt = fetch(after)
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
            log.info("caught up: %d posts that arrived between polls", len(collected))
            return collected, seen_again, pages, None
        anchors += [n for c in nxt.children if (n := _name(c)) is not None]
        after = nxt.after
    # No stored post came back. Reaching the listing's end proves nothing: posts can fall
    # off its bottom while we page (a burst on top pushes them past the reach), and an
    # anchor can vanish. Only the ids can clear it: when the oldest post in hand directly
    # follows the newest stored one, nothing can be between them.
    gap = _gap(page.children + collected, newest_stored())
    return collected, seen_again, pages, None if gap.up_to == 0 else gap


def _gap(fetched: list[Any], stored: tuple[str, float] | None) -> Gap:
    named = [c for c in fetched if _name(c) is not None]
    oldest = named[-1] if named else None
    oldest_name, newer_utc = _name(oldest), _created(oldest)
    up_to = None
    if stored is not None and oldest_name is not None:
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
