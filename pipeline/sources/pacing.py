"""When to send the next request: the API budget, adaptive polling, and error backoff."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

# A listing that finds nothing new is still polled this often, so the first item after
# a lull waits at most this long.
MAX_INTERVAL = 30.0


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
    """Spreads Reddit's x-ratelimit budget evenly until the window resets.

    Waiting `reset / remaining` between requests can never spend the budget early, so a
    server whose headers are honest never has to answer 429. Urgent requests (catch-up
    pages, racing posts that are about to fall off the end of the listing) go at once
    while more than `reserve` requests remain, so the spreading resumes well before the
    window runs dry.
    """

    def __init__(self, clock: Callable[[], float], *, reserve: int = 20) -> None:
        self._clock = clock
        self._reserve = reserve
        self._not_before = 0.0  # the even spread
        self._held_until = 0.0  # a 429's retry-after, or a spent window: never skipped
        self._remaining: float | None = None

    def update(self, rate: RateInfo) -> None:
        """Call after every answer that carried (or lacked) rate-limit headers."""
        if rate.remaining is None or rate.reset is None:
            return
        now = self._clock()
        self._remaining = rate.remaining
        if rate.remaining < 1:
            # At least a second: Reddit has been seen to say reset=0 with nothing left.
            self._held_until = max(self._held_until, now + rate.reset + 1.0)
        else:
            self._not_before = now + rate.reset / rate.remaining

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (a 429's retry-after)."""
        self._held_until = max(self._held_until, self._clock() + seconds)

    def wait(self, *, urgent: bool = False) -> float:
        """Seconds to wait before the next request may go out."""
        spare = self._remaining is not None and self._remaining > self._reserve
        until = self._held_until if urgent and spare else max(self._held_until, self._not_before)
        return max(0.0, until - self._clock())


class PollSchedule:
    """Adapts the gap between polls to how fast posts arrive.

    The aim is about `fill` new posts per poll: half a page, so a burst of twice the usual
    rate still fits in one page, while a steady stream costs few requests. Anything that
    overflows a page is recovered by catch-up paging, so a low estimate costs requests,
    never posts.
    """

    def __init__(
        self,
        *,
        min_interval: float,
        max_interval: float = MAX_INTERVAL,
        fill: float = 50.0,
        weight: float = 0.3,
    ) -> None:
        self.min_interval = min_interval
        self.max_interval = max(max_interval, min_interval)
        self.fill = fill
        self._weight = weight
        self._rate: float | None = None

    @property
    def rate(self) -> float | None:
        """Estimated new posts per second, once a poll has been measured."""
        return self._rate

    def observe(self, new: int, elapsed: float) -> None:
        if elapsed <= 0:
            return
        sample = new / elapsed
        if self._rate is None:
            self._rate = sample
        else:
            self._rate += self._weight * (sample - self._rate)

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
