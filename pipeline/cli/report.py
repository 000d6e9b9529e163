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
from .pace import STRAIN_EVERY, RefreshPace, strain_message

if TYPE_CHECKING:  # pragma: no cover
    from ..commands.spare import Backlog
    from ..sources.listing import Batch, Gap
    from ..sources.scheduler import Strain

# Problems of one kind are logged at most once per this many seconds.
PROBLEM_QUIET = 60.0
# Tables whose ids count up, as Reddit's post ids do, so two ids bound how many items lie
# between them. Comment ids have not since 2026: a comment gap is told by its ends only.
COUNTED_BY_ID = frozenset({"posts"})
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
    # Per table with a gap: the most its gaps may have lost, or None when that cannot
    # be told (any comment gap, or a post gap whose ids were not both known).
    missing: dict[str, int | None] = field(default_factory=dict)
    last_problem: str | None = None
    last_problem_at: float = 0.0
    refresh: str = ""  # the live line's part about --refresh
    _quiet_until: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def add_batch(self, batch: Batch, offered: int, stored: int, table: str = "posts") -> None:
        self.polls += 1
        self.pages += batch.pages
        self.stored += stored
        self.stored_by[table] = self.stored_by.get(table, 0) + stored
        # Rows the database ignored were stored meanwhile by another writer.
        self.seen_again += batch.seen_again + (offered - stored)

    def add_gap(self, gap: Gap, table: str) -> None:
        self.gaps += 1
        bound = gap.up_to if table in COUNTED_BY_ID else None
        so_far = self.missing.get(table, 0)
        self.missing[table] = None if bound is None or so_far is None else so_far + bound

    def _missing(self) -> str:
        """What the gaps may have lost, e.g. "up to 350 posts and an unknown number of
        comments missing"."""
        parts = [
            f"an unknown number of {table}" if n is None else f"up to {n:,} {table}"
            for table, n in sorted(self.missing.items(), reverse=True)  # posts first
        ]
        return " and ".join(parts) + " missing"

    def rate(self, now: float) -> float:
        return self.stored / max(now - self.started, 1e-9)

    def line(self, now: float) -> str:
        text = (
            f"stored {self.stored:,} ({self.rate(now):.1f}/s) | seen again {self.seen_again:,}"
            f" | polls {self.polls:,}"
        )
        if self.gaps:
            text += f" | gaps {self.gaps} ({self._missing()})"
        text += self.refresh
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
            gaps = "1 gap" if self.gaps == 1 else f"{self.gaps:,} gaps"
            text += f", {gaps} ({self._missing()})"
        return text


def gap_message(gap: Gap, table: str = "posts") -> str:
    """One line: which items of `table` may be missing, between which two and when; for
    posts, also how many at most."""

    def when(utc: float | None) -> str:
        return "?" if utc is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(utc))

    what = table
    if table in COUNTED_BY_ID:
        count = "an unknown number of" if gap.up_to is None else f"up to {gap.up_to:,}"
        what = f"{count} {table}"
    created = f"created between {when(gap.older_utc)} and {when(gap.newer_utc)}"
    if gap.older_name and gap.newer_name:
        what += f" after {gap.older_name} and before {gap.newer_name},"
        created += ","
    return f"gap: {what} {created} may be missing; Reddit's listing no longer reaches back that far"


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
        self._next_strain = 0.0
        self.pace = RefreshPace(clock)

    def batch(self, batch: Batch, offered: int, stored: int, table: str = "posts") -> None:
        self.stats.add_batch(batch, offered, stored, table)
        if batch.gap is not None:
            self.stats.add_gap(batch.gap, table)
            self._log.warning("%s", gap_message(batch.gap, table))
        self._refresh()

    def strain(self, strain: Strain) -> None:
        now = self._clock()
        if now >= self._next_strain:
            self._log.warning("%s", strain_message(strain))
            self._next_strain = now + STRAIN_EVERY

    def refreshed(self, backlog: Backlog) -> None:
        now = self._clock()
        self.pace.backlog = backlog
        self.stats.refresh = self.pace.fragment(now)
        behind = self.pace.behind(now, self.stats.stored)
        if behind:
            self._log.warning("%s", behind)
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
    """A replay's live line: bytes of the file read, lines, with a filter the items kept,
    rate and time left; for standard input, whose size is unknown, lines a second."""

    def __init__(self, live: LiveLine | None, name: str, clock: Callable[[], float]) -> None:
        self._live, self._name, self._clock = live, name, clock
        self._start: tuple[float, int, int] | None = None

    def __call__(
        self, done: int | None, total: int | None, lines: int, kept: int | None = None
    ) -> None:
        if self._live is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = (now, done or 0, lines)
        elapsed = now - self._start[0]
        what = f"{lines:,} lines" + ("" if kept is None else f", {kept:,} kept")
        if done is None or total is None:
            per_second = (lines - self._start[2]) / elapsed if elapsed > 0 else 0.0
            self._live.show(f"{self._name}: {what}, {per_second:,.0f} lines/s")
            return
        rate = (done - self._start[1]) / elapsed if elapsed > 0 else 0.0
        eta = f", {_duration((total - done) / rate)} left" if rate > 0 and done < total else ""
        self._live.show(
            f"{self._name}: {done / 1e6:,.1f} of {total / 1e6:,.1f} MB, "
            f"{what}, {rate / 1e6:,.1f} MB/s{eta}",
            force=done >= total,
        )
