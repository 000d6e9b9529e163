"""What the user is told: counts, gap and problem lines, the summary, a replay's progress.
How it is drawn is the console's."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..errors import TransientError
from .console import LiveLine

if TYPE_CHECKING:  # pragma: no cover
    from ..sources.listing import Batch, Gap

# Problems of one kind are logged at most once per this many seconds.
PROBLEM_QUIET = 60.0
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


@dataclass
class Stats:
    started: float
    stored: int = 0
    stored_by: dict[str, int] = field(default_factory=dict)  # per table
    seen_again: int = 0
    polls: int = 0
    pages: int = 0
    problems: int = 0
    gaps: int = 0
    possibly_missing: int = 0
    last_problem: str | None = None
    last_problem_at: float = 0.0
    _quiet_until: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def add_batch(self, batch: Batch, offered: int, stored: int, table: str = "posts") -> None:
        self.polls += 1
        self.pages += batch.pages
        self.stored += stored
        self.stored_by[table] = self.stored_by.get(table, 0) + stored
        # Rows the database ignored were stored meanwhile by another writer.
        self.seen_again += batch.seen_again + (offered - stored)

    def rate(self, now: float) -> float:
        return self.stored / max(now - self.started, 1e-9)

    def line(self, now: float) -> str:
        text = (
            f"stored {self.stored:,} ({self.rate(now):.1f}/s) | seen again {self.seen_again:,}"
            f" | polls {self.polls:,}"
        )
        if self.gaps:
            text += f" | gaps {self.gaps} (up to {self.possibly_missing:,} missing)"
        if self.last_problem:
            ago = _duration(now - self.last_problem_at)
            text += f" | last problem {ago} ago: {self.last_problem}"
        return text

    def summary(self, now: float) -> str:
        kinds = " and ".join(
            f"{n:,} new {table}" for table, n in sorted(self.stored_by.items(), reverse=True)
        )
        text = (
            f"stored {kinds or '0 new posts'} in {_duration(now - self.started)}"
            f" ({self.rate(now):.1f}/s), {self.seen_again:,} seen again, {self.polls:,} polls,"
            f" {self.problems:,} problems"
        )
        if self.gaps:
            noun = "posts" if set(self.stored_by) <= {"posts"} else "items"
            text += f", {self.gaps} gaps (up to {self.possibly_missing:,} {noun} missing)"
        return text


def gap_message(gap: Gap, noun: str = "posts") -> str:
    def when(utc: float | None) -> str:
        return "?" if utc is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(utc))

    count = "an unknown number of" if gap.up_to is None else f"up to {gap.up_to:,}"
    between = ""
    if gap.older_name and gap.newer_name:
        between = f" after {gap.older_name} and before {gap.newer_name}"
    return (
        f"gap: {count} {noun}{between}, created between {when(gap.older_utc)} and "
        f"{when(gap.newer_utc)}, may be missing; Reddit's listing no longer reaches back that far"
    )


class Reporter:
    """Feeds Stats and turns them into output; the one place that decides what is shown."""

    def __init__(
        self,
        stats: Stats,
        log: logging.Logger,
        clock: Callable[[], float],
        *,
        live: LiveLine | None,
        period: float | None,
    ) -> None:
        self.stats = stats
        self._log = log
        self._clock = clock
        self._live = live
        self._period = period
        self._next_report = clock() + (period or 0.0)
        self._stored_at_report = 0

    def batch(self, batch: Batch, offered: int, stored: int, table: str = "posts") -> None:
        self.stats.add_batch(batch, offered, stored, table)
        if batch.gap is not None:
            self.stats.gaps += 1
            self.stats.possibly_missing += batch.gap.up_to or 0
            self._log.warning("%s", gap_message(batch.gap, table))
        self._refresh()

    def problem(self, exc: TransientError) -> None:
        now = self._clock()
        stats = self.stats
        stats.problems += 1
        stats.last_problem, stats.last_problem_at = str(exc), now
        # One kind of problem is its message with the numbers left out: HTTP 502 and 503
        # are one kind, a refused connection and a timeout are two.
        kind = _NUMBERS.sub("#", str(exc))
        if now < stats._quiet_until.get(kind, 0.0):
            stats._suppressed[kind] = stats._suppressed.get(kind, 0) + 1
        else:
            extra = stats._suppressed.pop(kind, 0)
            more = f" ({extra} more like this in the last minute)" if extra else ""
            self._log.warning("%s; retrying%s", exc, more)
            stats._quiet_until[kind] = now + PROBLEM_QUIET
        self._refresh()

    def _refresh(self) -> None:
        now = self._clock()
        if self._live is not None:
            self._live.show(self.stats.line(now))
        elif self._period is not None and now >= self._next_report:
            added = self.stats.stored - self._stored_at_report
            self._log.info(
                "+%d in the last %s; %s", added, _duration(self._period), self.stats.line(now)
            )
            self._stored_at_report = self.stats.stored
            self._next_report = now + self._period

    def close(self) -> None:
        if self._live is not None:
            self._live.clear()


class DumpProgress:
    """A replay's live line: bytes of the file read, lines, rate and time left."""

    def __init__(self, live: LiveLine | None, name: str, clock: Callable[[], float]) -> None:
        self._live, self._name, self._clock = live, name, clock
        self._start: tuple[float, int] | None = None

    def __call__(self, done: int, total: int, lines: int) -> None:
        if self._live is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, done)
        elapsed, read = now - self._start[0], done - self._start[1]
        rate = read / elapsed if elapsed > 0 else 0.0
        eta = f", {_duration((total - done) / rate)} left" if rate > 0 and done < total else ""
        self._live.show(
            f"{self._name}: {done / 1e6:,.1f} of {total / 1e6:,.1f} MB, "
            f"{lines:,} lines, {rate / 1e6:,.1f} MB/s{eta}",
            force=done >= total,
        )
