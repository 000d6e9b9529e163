"""One budget, many listings: how full each listing's polls should be, which listing the
next request goes to, and what is left over for work that can wait (refresh).

Reddit gives one client about 1,000 requests a 10 minutes; r/all's posts and comments
together need about nine tenths of that with every page full. So the plan starts from
half a page a poll, which keeps latency low, and raises every listing's fill together
until what they need fits the budget: full pages first, then polls of several full
pages. Whatever the listings do not need is spare, and only the spare goes to refresh.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Callable

from .listing import URGENT, Batch, Listing, Sleep
from .pacing import PAGE, Budget, PollSchedule

LOW = 50.0  # half a page: the fill while the budget is ample
HEADROOM = 0.92  # of the budget that fills below a page may take; the rest absorbs overflow
FULL = 0.985  # of the budget that full pages may take, before polls of several pages
MAX_POLL_PAGES = 5  # half the listing's reach: the rest is the margin against its end


@dataclass(frozen=True)
class Strain:
    """The listings need more requests than the budget gives, even with every page full."""

    rates: dict[str, float]  # items a second, by listing
    need: float  # requests a second they would take
    allowed: float  # requests a second the budget gives

    @property
    def lost(self) -> float:
        """The share of items expected to fall off the listings' ends unfetched."""
        return max(0.0, 1.0 - self.allowed / self.need)


class Plan:
    """Sets each listing's fill so that, together, they fit the budget."""

    def __init__(
        self,
        budget: Budget,
        listings: Sequence[Listing],
        *,
        low: float = LOW,
        headroom: float = HEADROOM,
    ) -> None:
        self.budget = budget
        self._names = [listing.name for listing in listings]
        self._schedules: list[PollSchedule] = [listing.schedule for listing in listings]
        self._low = low
        self._headroom = headroom
        self.need = 0.0  # requests a second the current fills take
        self.strain: Strain | None = None

    def _fills(self, fill: float) -> list[float]:
        """Each listing's fill for `fill`: up to PAGE, one page less its margin; past it, a
        whole number of pages less the margin. A listing whose shortest interval brings
        more than that takes the pages those items need."""
        fills = []
        for s in self._schedules:
            floor = (s.rate or 0.0) * s.min_interval
            pages = math.ceil(fill / PAGE)
            want = min(fill, PAGE - s.margin) if pages <= 1 else pages * PAGE - s.margin
            if floor > want:
                pages = min(MAX_POLL_PAGES, math.ceil((floor + s.margin) / PAGE))
                want = floor if pages <= 1 else pages * PAGE - s.margin
            fills.append(want)
        return fills

    def _need(self, fills: Sequence[float]) -> float:
        total = 0.0
        for s, fill in zip(self._schedules, fills):
            rate = s.rate or 0.0
            total += rate * s.pages(fill) / fill if rate else 1.0 / s.max_interval
        return total

    def _choose(self, allowed: float) -> list[float]:
        """The lowest fills that fit: below a page, within the headroom; then full pages,
        and polls of several full pages, within all but a little of the budget."""
        fits = self._headroom * allowed
        if self._need(fills := self._fills(self._low)) <= fits:
            return fills
        if self._need(self._fills(PAGE)) <= fits:
            lo, hi = self._low, float(PAGE)
            for _ in range(30):  # the smallest fill that fits: need falls as fill grows
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if self._need(self._fills(mid)) <= fits else (mid, hi)
            return self._fills(hi)
        # Past one page, more pages a poll save little (k requests for k pages less the
        # margin): go there only when one page cannot hold, as its latency is k times.
        for pages in range(1, MAX_POLL_PAGES + 1):
            fills = self._fills(pages * PAGE)
            if self._need(fills) <= FULL * allowed:
                return fills
        need = self._need(fills)
        if need > allowed:
            rates = {n: s.rate or 0.0 for n, s in zip(self._names, self._schedules)}
            self.strain = Strain(rates, need, allowed)
        return fills

    def update(self) -> None:
        """Set every listing's fill for the rates measured so far."""
        allowed = self.budget.nominal()
        self.strain = None
        fills = self._fills(self._low) if allowed is None else self._choose(allowed)
        for s, fill in zip(self._schedules, fills):
            s.fill = fill
        self.need = self._need(fills)


def _claim(listing: Listing, now: float) -> tuple[bool, float]:
    """How much `listing` loses by waiting: first, whether it is about to lose items off
    its end; then how far past its planned fill it is."""
    waiting = listing.backlog(now)
    return waiting >= URGENT, waiting / max(1.0, listing.schedule.fill)


def interleave(
    listings: Sequence[Listing],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    plan: Plan | None = None,
    spare: Iterator[Sleep | None] | None = None,
) -> Iterator[tuple[Listing, Batch]]:
    """Follow every listing in one thread, yielding (listing, batch) forever.

    Whichever listing can go on soonest takes the next step. When several can (they all
    waited for the same budget), the one that loses most by waiting goes first. `spare`
    is work that may only use requests no listing needs: it steps only while no listing
    is due and the budget has a surplus beyond what the plan needs until the reset.
    """
    steps = [listing.steps() for listing in listings]
    wake = [0.0] * len(listings)
    later = _Spare(spare, plan)
    while True:
        now = clock()
        if plan is not None:
            plan.update()
        ready = [i for i, t in enumerate(wake) if t <= now]
        if not ready:
            until = min(wake)
            if later.step(now, until, clock):
                continue
            if later.pending(now):
                until = min(until, later.wake)
            sleep(max(0.0, until - now))
            continue
        i = max(ready, key=lambda i: _claim(listings[i], now))
        step = next(steps[i])
        if isinstance(step, Sleep):
            wake[i] = clock() + step.seconds
        else:
            yield listings[i], step


class _Spare:
    """Work that may only use the requests no listing needs, one step at a time."""

    def __init__(self, steps: Iterator[Sleep | None] | None, plan: Plan | None) -> None:
        self._steps, self._plan = steps, plan
        self.wake = 0.0

    def pending(self, now: float) -> bool:
        """Whether it is sleeping (backing off, or idle) until `wake`."""
        return self._steps is not None and self.wake > now

    def step(self, now: float, until: float, clock: Callable[[], float]) -> bool:
        """Take a step if the budget has a surplus beyond the plan's need and will still
        have a request for the listing due at `until`; whether one was taken."""
        plan = self._plan
        if self._steps is None or plan is None or self.wake > now:
            return False
        if not plan.budget.surplus(plan.need, until):
            return False
        done = next(self._steps)
        self.wake = clock() + done.seconds if isinstance(done, Sleep) else 0.0
        return True
