"""When to send the next request: the API budget, adaptive polling, and error backoff."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

# A listing that finds nothing new is still polled this often, so the first item after
# a lull waits at most this long.
MAX_INTERVAL = 30.0

PAGE = 100  # items a listing request returns at most

# A spare request leaves the listings' need until the reset with this to spare, and goes
# only with no listing due for this many seconds.
SPARE_MARGIN, SPARE_GAP = 1.05, 0.25

# How far below a whole number of pages a poll aims, in items: a steady feed earns the
# least, a bursty one more (PollSchedule.fitted). At most 15: wider margins make pages
# so much emptier that r/all's two listings no longer fit the budget with full pages.
MARGIN, MIN_MARGIN, MAX_MARGIN = 5.0, 2.0, 15.0


@dataclass(frozen=True)
class RateInfo:
    """Reddit's x-ratelimit-* headers; any of them may be absent (CDN-cached answers)."""

    used: float | None
    remaining: float | None
    reset: float | None


def _number(value: str | None) -> float | None:
    # remaining comes as "997.0" or "995"; anything unparsable counts as absent.
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number >= 0 else None  # drops NaN


def rate_info(headers: Mapping[str, str]) -> RateInfo:
    return RateInfo(
        _number(headers.get("x-ratelimit-used")),
        _number(headers.get("x-ratelimit-remaining")),
        _number(headers.get("x-ratelimit-reset")),
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = _number(headers.get("retry-after"))
    return None if value is None else min(value, 3600.0)


class Budget:
    """Spends Reddit's x-ratelimit budget so that the window never runs dry.

    Requests draw on a bucket that refills at `remaining / reset`, the rate that spreads
    what is left evenly until the window resets, so a server whose headers are honest
    never has to answer 429. The bucket holds `burst` requests: two listings due at the
    same moment both go at once, rather than one waiting a whole spread and overflowing
    its page. Urgent requests (catch-up pages, racing items that are about to fall off
    the end of the listing) go at once while more than `reserve` requests remain (2% of
    the window once its size is known, as 20 is of Reddit's 1,000); they still draw on
    the bucket, so the spreading resumes well before the window runs dry.
    """

    def __init__(self, clock: Callable[[], float], *, reserve: int = 20, burst: float = 3.0):
        self._clock = clock
        self._reserve = reserve
        self._burst = burst
        self._tokens = burst
        self._stamp = clock()
        self._refill: float | None = None  # requests a second; None before any headers
        self._held_until = 0.0  # a 429's retry-after, or a spent window: never skipped
        self._remaining: float | None = None
        self._reset: float | None = None
        self._size: float | None = None  # used + remaining: requests a window allows
        self._window = 0.0  # the longest reset seen: how long a window lasts
        self._spare_next = 0.0  # spare requests are spread as well
        self._spare_gap = 0.0
        self._ends = math.inf  # when the window told of last ends

    def _fill(self) -> float:
        now = self._clock()
        if self._refill is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._refill)
        self._stamp = now
        return now

    def spend(self, *, spare: bool = False) -> None:
        """Call as each request goes out, answered or not: Reddit counts them all. A
        `spare` one (see surplus) counts against the window, not the bucket."""
        now = self._fill()
        if spare:
            self._spare_next = now + self._spare_gap
        else:
            self._tokens -= 1.0
        if self._remaining is not None:
            self._remaining = max(0.0, self._remaining - 1.0)

    def update(self, rate: RateInfo) -> None:
        """Call after every answer that carried (or lacked) rate-limit headers."""
        if rate.remaining is None or rate.reset is None:
            return
        now = self._fill()
        self._remaining, self._reset = rate.remaining, rate.reset
        self._window = max(self._window, rate.reset)
        self._ends = now + rate.reset
        if rate.used is not None:
            self._size = rate.used + rate.remaining
        if rate.remaining < 1:
            # At least a second: Reddit has been seen to say reset=0 with nothing left.
            self._held_until = max(self._held_until, now + rate.reset + 1.0)
            # The hold covers the rest of the window; the first answer of the next one
            # brings fresh figures.
            self._remaining = self._refill = None
            self._tokens = 1.0
        else:
            self._refill = rate.remaining / max(rate.reset, 1.0)
            # Never more in the bucket than the window has left.
            self._tokens = min(self._tokens, rate.remaining - 1.0)

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (a 429's retry-after)."""
        self._held_until = max(self._held_until, self._clock() + seconds)

    def wait(self, *, urgent: bool = False, spare: bool = False) -> float:
        """Seconds to wait before the next request may go out. A `spare` one (see
        surplus) waits only for a hold: a 429's retry-after, or a spent window."""
        now = self._fill()
        until = self._held_until
        if spare:
            return max(0.0, until - now)
        spare = self._remaining is not None and self._remaining > self.reserve
        if not (urgent and spare) and self._tokens < 1.0 and self._refill:
            # Never past the window's end: the next one starts with all its requests,
            # whatever this one's figures say (they would hold a listing for minutes).
            spread = now + (1.0 - self._tokens) / self._refill
            until = max(until, min(spread, self._ends + 0.5))
        return max(0.0, until - now)

    @property
    def reserve(self) -> float:
        return self._reserve if self._size is None else max(3.0, 0.02 * self._size)

    def nominal(self) -> float | None:
        """Requests a second the window allows on average, whoever spent it so far.

        The plan is made against this rather than against what is left of the window
        now, which swings with every catch-up and would swing the plan with it."""
        if self._size is None or self._window <= 0:
            return None
        return self._size / self._window

    def surplus(self, need: float, until: float) -> bool:
        """Whether one request now leaves what `need` requests a second will take until
        the window resets, with no listing due before `until` (it should not wait on it).

        Spare requests are judged by the window alone: the bucket smooths the listings'
        own requests, which keep it near empty at r/all's pace, and a spare request that
        drew on it would push their next poll back."""
        now = self._fill()
        if now < max(self._held_until, self._spare_next):
            return False
        if self._remaining is None or self._reset is None:
            return False
        extra = self._remaining - 1.0 - self.reserve / 2 - need * self._reset * SPARE_MARGIN
        # Spread too: what is spare is spent evenly until the reset, never in a burst.
        self._spare_gap = self._reset / max(1.0, extra)
        return extra >= 0 and until - now >= SPARE_GAP


class PollSchedule:
    """Adapts the gap between polls to how fast items arrive and how full a poll should be.

    `fill` is the number of new items a poll aims at, which the plan (`scheduler.Plan`)
    raises from half a page as the budget tightens: half a page lets a burst of twice the
    usual rate fit in one page, full pages spend the fewest requests. `margin` is how far
    below a whole number of pages it stays: it grows each time a poll needs a page more
    than planned, and shrinks while none does, so bursty arrivals keep a wider margin
    than steady ones. Anything that overflows is recovered by catch-up paging, so a low
    estimate costs requests, never items.
    """

    def __init__(
        self,
        *,
        min_interval: float,
        max_interval: float = MAX_INTERVAL,
        fill: float = 50.0,
        weight: float = 0.15,
    ) -> None:
        self.min_interval = min_interval
        self.max_interval = max(max_interval, min_interval)
        self.fill = fill
        self.margin = MARGIN
        self._weight = weight
        self._rate: float | None = None

    @property
    def rate(self) -> float | None:
        """Estimated new items per second, once a poll has been measured."""
        return self._rate

    def observe(self, new: int, elapsed: float) -> None:
        if elapsed <= 0:
            return
        sample = new / elapsed
        if self._rate is None:
            self._rate = sample
        else:
            self._rate += self._weight * (sample - self._rate)

    def pages(self, fill: float | None = None) -> int:
        """Requests a poll aiming at `fill` new items should take."""
        return max(1, math.ceil((self.fill if fill is None else fill) / PAGE))

    def fitted(self, pages: int, waited: float) -> None:
        """A poll took `pages` requests `waited` seconds after the one before: widen the
        margin if that was more than it should have taken, narrow it if not.

        The steps aim at about one poll in twenty taking an extra page: for a count
        that varies as arrivals at random do, fewer overflows cost more in items a page
        than they save in requests, and more cost requests the budget may not have.
        """
        expected = max(self.fill, (self._rate or 0.0) * waited)
        if pages > self.pages(expected):
            self.margin = min(MAX_MARGIN, self.margin + 3.0)
        else:
            self.margin = max(MIN_MARGIN, self.margin - 0.15)

    def interval(self) -> float:
        if not self._rate:
            return self.min_interval if self._rate is None else self.max_interval
        return min(self.max_interval, max(self.min_interval, self.fill / self._rate))


class Backoff:
    """Exponential backoff with jitter and a cap; `reset()` on the first success."""

    def __init__(
        self, *, base: float = 1.0, cap: float = 120.0, rng: random.Random | None = None
    ) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self._cap, self._base * (2.0 ** min(self.failures, 30)))
        self.failures += 1
        # Jitter in the upper half keeps the delay growing while spreading restarts of
        # many redpipes that failed together.
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self.failures = 0
