"""What the user sees: the live line, periodic log lines, quieted problem repeats."""

from __future__ import annotations

import io
import logging

from pipeline.cli.console import ConsoleHandler, LiveLine
from pipeline.cli.report import DumpProgress, Reporter, Stats
from pipeline.errors import NetworkError, ServerError
from pipeline.sources.listing import Batch, Gap


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(live: bool, period: float | None = 60.0) -> tuple[Reporter, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    line = LiveLine(out, clock, min_gap=0) if live else None
    log = logging.getLogger(f"test-progress-{live}-{period}")
    handler = ConsoleHandler(out, line)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return (
        Reporter(Stats(clock()), log, clock, live=line, period=None if live else period),
        out,
        clock,
    )


def batch(n: int, seen: int = 0, gap: Gap | None = None) -> Batch:
    return Batch([{"kind": "t3"}] * n, seen, 1, gap)


def test_live_line_shows_stored_rate_seen_again_and_last_problem() -> None:
    reporter, out, clock = setup(live=True)
    clock.now += 10
    reporter.batch(batch(50, seen=7), 50, 50)
    assert out.getvalue().endswith("\r\x1b[Kstored 50 (5.0/s) | seen again 7 | polls 1")
    reporter.problem(NetworkError("GET /r/all/new: connection reset"))
    text = out.getvalue()
    assert "WARNING GET /r/all/new: connection reset; retrying\n" in text  # printed above
    assert text.endswith("| last problem 0s ago: GET /r/all/new: connection reset")
    reporter.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_without_a_terminal_a_plain_line_every_period() -> None:
    reporter, out, clock = setup(live=False)
    for _ in range(5):
        clock.now += 10
        reporter.batch(batch(20), 20, 20)
    assert out.getvalue() == ""  # less than a period so far
    clock.now += 15
    reporter.batch(batch(20), 20, 18)  # two were stored meanwhile by someone else
    lines = out.getvalue().splitlines()
    assert lines == ["INFO +118 in the last 1m00s; stored 118 (1.8/s) | seen again 2 | polls 6"]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_repeated_problems_are_logged_once_a_minute_with_a_count() -> None:
    reporter, out, clock = setup(live=False, period=None)
    for _ in range(5):
        reporter.problem(ServerError("GET /r/all/new: HTTP 503"))
        clock.now += 5
    reporter.problem(NetworkError("GET /r/all/new: connection refused"))  # another kind
    clock.now += 60
    reporter.problem(ServerError("GET /r/all/new: HTTP 502"))
    assert out.getvalue().splitlines() == [
        "WARNING GET /r/all/new: HTTP 503; retrying",
        "WARNING GET /r/all/new: connection refused; retrying",
        "WARNING GET /r/all/new: HTTP 502; retrying (4 more like this in the last minute)",
    ]
    assert reporter.stats.problems == 7


def test_a_gap_is_one_line_with_its_time_range_and_counted() -> None:
    reporter, out, _ = setup(live=False, period=None)
    reporter.batch(
        batch(100, gap=Gap(1_610_930_669.0, 1_610_920_000.0, 350, "t3_kzj68i", "t3_kzj5xx")),
        100,
        100,
    )
    assert out.getvalue().splitlines() == [
        "WARNING gap: up to 350 posts after t3_kzj5xx and before t3_kzj68i, created between "
        "2021-01-17 21:46:40Z and 2021-01-18 00:44:29Z, may be missing; Reddit's listing no "
        "longer reaches back that far"
    ]
    assert "| gaps 1 (up to 350 posts missing)" in reporter.stats.line(0)
    assert reporter.stats.summary(0).endswith(", 1 gap (up to 350 posts missing)")


def test_a_comment_gap_gives_its_ends_and_times_but_no_count() -> None:
    reporter, out, _ = setup(live=False, period=None)
    # Comment ids are not sequential: a bound from them (here 0) would be nonsense.
    gap = Gap(1_767_225_605.0, 1_767_225_600.0, 0, "t1_o0a1b2c", "t1_nzz9x8w")
    reporter.batch(batch(100, gap=gap), 100, 100, "comments")
    assert out.getvalue().splitlines() == [
        "WARNING gap: comments after t1_nzz9x8w and before t1_o0a1b2c, created between "
        "2026-01-01 00:00:00Z and 2026-01-01 00:00:05Z, may be missing; Reddit's listing no "
        "longer reaches back that far"
    ]
    assert reporter.stats.summary(0).endswith(", 1 gap (an unknown number of comments missing)")
    reporter.batch(batch(10, gap=Gap(None, 1_767_225_000.0, 40, "t3_1tvb1zy", None)), 10, 10)
    assert out.getvalue().splitlines()[-1] == (
        "WARNING gap: up to 40 posts created between 2025-12-31 23:50:00Z and ? may be "
        "missing; Reddit's listing no longer reaches back that far"
    )
    reporter.batch(batch(1, gap=gap), 1, 1, "comments")
    line, summary = reporter.stats.line(0), reporter.stats.summary(0)
    both = "(up to 40 posts and an unknown number of comments missing)"
    assert line.endswith(f"| gaps 3 {both}") and summary.endswith(f", 3 gaps {both}")


def test_a_post_gap_without_a_bound_makes_the_total_unknown() -> None:
    stats = Stats(0.0)
    stats.add_gap(Gap(None, None, 350, "t3_b", "t3_a"), "posts")
    stats.add_gap(Gap(None, None, None, "t3_d", "t3_c"), "posts")
    assert stats.summary(0).endswith(", 2 gaps (an unknown number of posts missing)")


def test_a_replays_live_line_shows_progress_and_time_left_and_its_last_state() -> None:
    out = io.StringIO()
    now = [0.0]
    live = LiveLine(out, lambda: now[0], min_gap=0.5)
    progress = DumpProgress(live, "RS_x.zst", lambda: now[0])
    progress(0, 4_000_000, 0)
    now[0] = 1.0
    progress(1_000_000, 4_000_000, 5_000)
    now[0] = 1.1
    progress(1_100_000, 4_000_000, 5_500)  # too soon to redraw
    assert out.getvalue().endswith("RS_x.zst: 1.0 of 4.0 MB, 5,000 lines, 1.0 MB/s, 3s left")
    progress(4_000_000, 4_000_000, 20_000)  # the end is always drawn
    assert out.getvalue().endswith("RS_x.zst: 4.0 of 4.0 MB, 20,000 lines, 3.6 MB/s")
    live.clear()
    live.above("redpipe: done")
    assert out.getvalue().endswith("\r\x1b[Kredpipe: done\n")  # the cleared line stays gone


def test_a_refresh_that_falls_behind_says_so_once_an_hour_with_the_figures() -> None:
    from pipeline.cli.pace import RefreshPace
    from pipeline.commands.refresh import Counts
    from pipeline.commands.spare import Backlog

    pace = RefreshPace(lambda: 0.0)
    assert pace.fragment(5.0) == "" and pace.lines() == []  # no --refresh: nothing said
    pace.backlog = Backlog({"posts": Counts(due=5000), "comments": Counts(due=0)})
    assert pace.behind(10.0, stored=100) is None  # not an hour yet
    pace.backlog.counts["posts"].checked = 4000
    line = pace.behind(3600.0, stored=500_000)
    assert line is not None and "checked 4,000 items in the last hour while 500,000" in line
    assert "and 5,000 are due" in line
    assert pace.behind(3700.0, stored=600_000) is None  # once an hour
    pace.backlog.counts["posts"].checked = 800_000
    assert pace.behind(7300.0, stored=700_000) is None  # this hour it kept up
    assert pace.fragment(3600.0) == " | refresh 5,000 due, 800,000/h"
    assert pace.lines()[0].startswith("refreshed posts: 800,000 checked")
