"""The stream's logic with an in-memory listing, a fake clock and a fake sleep."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from pipeline.errors import ApiError, NetworkError, RateLimited, ServerError, TransientError
from pipeline.sources.listing import Batch, Sleep, fetch_retrying, slept
from pipeline.sources.listing import Listing as Follow
from pipeline.sources.pacing import Backoff, Budget, PollSchedule, RateInfo
from pipeline.sources.reddit import Page
from pipeline.sources.scheduler import Plan, interleave
from tests.fakereddit import base36

NO_RATE = RateInfo(None, None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Listing:
    """Newest-first pages of 100 over a growing list of posts, reaching back `depth`."""

    def __init__(self, clock: Clock, depth: int = 1000) -> None:
        self.clock = clock
        self.depth = depth
        self.posts: list[dict[str, Any]] = []  # oldest first
        self.removed: set[str] = set()
        self.ids = itertools.count(int("1tvsa59", 36))
        self.calls: list[str | None] = []
        self.times: list[float] = []
        self.faults: list[BaseException] = []
        self.rate = NO_RATE

    def add(self, n: int, since: float | None = None) -> list[str]:
        """`n` items made now, or spread evenly over the time from `since` to now."""
        names = []
        now = self.clock.now
        for i in range(n):
            ident = base36(next(self.ids))
            made = now if since is None else since + (now - since) * (i + 1) / n
            self.posts.append(
                {"kind": "t3", "data": {"name": "t3_" + ident, "created_utc": float(int(made))}}
            )
            names.append("t3_" + ident)
        return names

    def visible(self) -> list[dict[str, Any]]:
        live: list[dict[str, Any]] = []
        for post in reversed(self.posts):
            if len(live) == self.depth:
                break
            if post["data"]["name"] not in self.removed:
                live.append(post)
        return live

    def fetch(self, after: str | None) -> Page:
        self.calls.append(after)
        self.times.append(self.clock.now)
        if self.faults:
            raise self.faults.pop(0)
        items = self.visible()
        start = 0
        if after is not None:
            names = [p["data"]["name"] for p in items]
            if after not in names:
                return Page([], None, self.rate)
            start = names.index(after) + 1
        page = items[start : start + 100]
        more = start + 100 < len(items)
        return Page(list(page), page[-1]["data"]["name"] if more and page else None, self.rate)


def posts(
    fetch: Callable[[str | None], Page],
    known: Callable[[Sequence[str]], set[str]],
    *,
    sleep: Callable[[float], None],
    **options: Any,
) -> Iterator[Batch]:
    """One listing's batches, sleeping in between, as the stream command drives them."""
    listing = Follow(fetch, known, **options)
    for _, batch in interleave([listing], clock=options["clock"], sleep=sleep):
        yield batch


class Harness:
    def __init__(
        self,
        *,
        depth: int = 1000,
        stored: Sequence[str] = (),
        interval: float = 1.0,
        burst: float = 1.0,  # 1: the even spread alone, one request per gap
        sequential: bool = True,
    ):
        self.clock = Clock()
        self.listing = Listing(self.clock, depth)
        self.db: dict[str, float] = {}
        for name in stored:
            self.db[name] = 0.0
        self.problems: list[TransientError] = []
        self.schedule = PollSchedule(min_interval=interval, max_interval=30.0)
        self.budget = Budget(self.clock, burst=burst)
        self.sequential = sequential
        self.stream = self.make_stream(self.listing.fetch)

    def make_stream(self, fetch: Callable[[str | None], Page]) -> Iterator[Batch]:
        return posts(
            fetch,
            self.known,
            newest_stored=self.newest,
            clock=self.clock,
            sleep=self.clock.sleep,
            schedule=self.schedule,
            budget=self.budget,
            backoff=Backoff(rng=random.Random(1)),
            on_problem=self.problems.append,
            sequential=self.sequential,
        )

    def known(self, names: Sequence[str]) -> set[str]:
        return {n for n in names if n in self.db}

    def newest(self) -> tuple[str, float] | None:
        if not self.db:
            return None
        name = max(self.db, key=lambda n: (len(n), n))
        return name, self.db[name]

    def poll(self) -> tuple[Batch, list[str]]:
        """One batch, stored as the real pump would store it."""
        batch = next(self.stream)
        names = [c["data"]["name"] for c in batch.items]
        for child in batch.items:
            assert child["data"]["name"] not in self.db, "yielded a stored post again"
            self.db[child["data"]["name"]] = child["data"]["created_utc"]
        return batch, names


def test_fresh_database_takes_the_first_page_oldest_first() -> None:
    h = Harness()
    added = h.listing.add(250)
    batch, names = h.poll()
    assert names == added[-100:]  # oldest first, exactly the newest page
    assert batch.pages == 1
    assert batch.gap is None
    assert h.listing.calls == [None]


def test_next_poll_yields_only_new_posts_in_order() -> None:
    h = Harness()
    h.listing.add(100)
    h.poll()
    newer = h.listing.add(30)
    batch, names = h.poll()
    assert names == newer
    assert batch.seen_again == 70
    assert h.listing.calls == [None, None]


def test_burst_larger_than_a_page_is_caught_up_without_duplicates() -> None:
    h = Harness()
    h.listing.add(100)
    h.poll()
    burst = h.listing.add(350)
    batch, names = h.poll()
    assert names == burst
    assert batch.pages == 4
    assert batch.gap is None
    assert h.listing.calls[1:] == [None, burst[-100], burst[-200], burst[-300]]


def test_restart_catches_up_on_what_was_posted_while_down() -> None:
    h = Harness()
    old = h.listing.add(100)
    h.poll()
    missed = h.listing.add(640)
    # a new stream over the same database, as after a restart
    h2 = Harness()
    h2.listing = h.listing
    h2.db = h.db
    h2.stream = posts(
        h.listing.fetch,
        h2.known,
        newest_stored=h2.newest,
        clock=h.clock,
        sleep=h.clock.sleep,
        schedule=h2.schedule,
        budget=h2.budget,
        backoff=Backoff(),
        on_problem=h2.problems.append,
    )
    batch, names = h2.poll()
    assert names == missed
    assert set(old) <= set(h2.db)
    assert batch.gap is None


def test_gap_beyond_the_listing_reach_is_reported_with_a_bound() -> None:
    h = Harness(depth=1000)
    h.listing.add(100)
    h.poll()
    h.listing.add(1500)
    batch, names = h.poll()
    assert len(names) == 1000  # everything the listing still reaches
    assert batch.gap is not None
    assert batch.gap.up_to == 500  # ids are sequential: exactly the unreachable ones
    assert batch.pages == 10


def test_a_short_listing_read_to_its_end_is_not_a_gap() -> None:
    h = Harness()
    first = h.listing.add(50)
    h.poll()
    for name in first:  # every stored post was removed from the listing
        h.listing.removed.add(name)
    fresh = h.listing.add(120)
    batch, names = h.poll()
    assert names == fresh
    assert batch.gap is None


def test_posts_pushed_off_the_listing_while_catching_up_are_a_gap() -> None:
    h = Harness()
    h.listing.add(100)
    h.poll()
    burst = h.listing.add(500)
    original = h.listing.fetch
    pushed = False

    def fetch(after: str | None) -> Page:
        nonlocal pushed
        if after is not None and not pushed:  # 700 more land while the catch-up pages
            pushed = True
            h.listing.add(700)
        return original(after)

    h.stream = h.make_stream(fetch)
    batch, names = h.poll()
    lost = [n for n in burst if n not in names]
    assert lost  # they fell past the 1000 the listing reaches
    assert batch.gap is not None
    assert batch.gap.up_to is not None and batch.gap.up_to >= len(lost)


def test_removed_anchor_during_catch_up_steps_back_instead_of_stalling() -> None:
    h = Harness()
    h.listing.add(100)
    h.poll()
    burst = h.listing.add(250)
    original = h.listing.fetch

    def fetch(after: str | None) -> Page:
        if after == burst[-100]:  # the anchor is removed just before the catch-up asks
            h.listing.removed.add(after)
        return original(after)

    h.stream = h.make_stream(fetch)
    batch, names = h.poll()
    assert sorted(names) == sorted(burst)
    assert batch.gap is None


def test_empty_listing_yields_an_empty_batch() -> None:
    h = Harness()
    batch, names = h.poll()
    assert names == []
    assert batch.gap is None


@pytest.mark.parametrize(
    "fault", [NetworkError("connection refused"), ServerError("HTTP 503"), RateLimited("429")]
)
def test_transient_failures_are_retried_with_growing_backoff(fault: TransientError) -> None:
    h = Harness()
    added = h.listing.add(10)
    h.listing.faults = [fault, fault, fault]
    _, names = h.poll()
    assert names == added
    assert len(h.problems) == 3
    waits = [s for s in h.clock.sleeps if s > 0]
    assert len(waits) == 3
    assert waits[0] < waits[1] < waits[2]


def test_retry_after_is_honoured() -> None:
    h = Harness()
    h.listing.add(5)
    h.listing.faults = [RateLimited("429", retry_after=7.0)]
    h.poll()
    assert sum(h.clock.sleeps) >= 7.0


def test_a_429_with_headers_waits_for_the_reset_it_names() -> None:
    h = Harness()
    h.listing.add(5)
    headers = {"x-ratelimit-used": "1000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "40"}
    limited = RateLimited("429", headers=headers)
    h.listing.faults = [limited]
    h.poll()
    assert h.listing.times[1] - h.listing.times[0] >= 41.0  # reset + 1 s, one retry only
    assert len(h.listing.calls) == 2


def test_fatal_errors_propagate() -> None:
    h = Harness()
    h.listing.faults = [ApiError("not found")]
    with pytest.raises(ApiError):
        h.poll()


def test_budget_spreads_requests_until_the_reset() -> None:
    h = Harness()
    h.listing.add(5)
    h.listing.rate = RateInfo(used=990.0, remaining=10.0, reset=100.0)
    h.poll()
    h.poll()
    # 10 requests left for 100 s: at least 10 s between requests
    assert h.listing.times[1] - h.listing.times[0] >= 10.0 - 1e-9


def test_spent_budget_waits_past_the_reset() -> None:
    clock = Clock()
    budget = Budget(clock)
    budget.update(RateInfo(used=1000.0, remaining=0.0, reset=0.0))
    assert budget.wait() >= 1.0  # reset=0 with nothing left still waits a second


def test_catch_up_pages_go_at_once_while_the_budget_has_requests_to_spare() -> None:
    h = Harness()
    h.listing.add(100)
    h.listing.rate = RateInfo(used=500.0, remaining=500.0, reset=600.0)  # spread: 1.2 s
    h.poll()
    h.listing.add(350)
    h.poll()
    polls, pages = h.listing.times[1], h.listing.times[2:]
    assert len(pages) == 3 and pages == [polls] * 3  # racing the listing's end: no waits
    assert polls - h.listing.times[0] >= 1.2 - 1e-9  # an ordinary poll still waits
    h.listing.add(350)
    h.listing.rate = RateInfo(used=985.0, remaining=15.0, reset=150.0)  # within the reserve
    h.poll()
    pages = h.listing.times[-3:]
    assert [b - a for a, b in zip(pages, pages[1:])] == pytest.approx([10.0, 10.0])  # spread


def test_urgent_requests_never_skip_a_retry_after_or_a_spent_window() -> None:
    clock = Clock()
    budget = Budget(clock, reserve=20, burst=1.0)
    budget.update(RateInfo(used=10.0, remaining=990.0, reset=600.0))
    budget.spend()
    assert budget.wait(urgent=True) == 0.0 and budget.wait() > 0.5
    budget.hold(30.0)
    assert budget.wait(urgent=True) == 30.0
    budget.update(RateInfo(used=1000.0, remaining=0.0, reset=5.0))
    assert budget.wait(urgent=True) == 30.0  # the longer of the two
    clock.sleep(30.0)
    budget.update(RateInfo(used=0.0, remaining=0.0, reset=5.0))
    assert budget.wait(urgent=True) == 6.0


def test_polling_adapts_to_the_arrival_rate() -> None:
    h = Harness(interval=0.5)
    h.listing.add(100)
    h.poll()
    intervals = []
    for _ in range(20):
        # 10 posts/s arrive during whatever gap the stream chose
        before = h.clock.now
        h.poll()
        intervals.append(h.clock.now - before)
        h.listing.add(max(1, round(10 * (h.clock.now - before))))
    # about 50 posts per poll at 10 posts/s is ~5 s, never below the floor
    assert 3.0 < intervals[-1] < 8.0
    assert min(intervals) >= 0.5


def test_schedule_backs_off_when_nothing_arrives() -> None:
    schedule = PollSchedule(min_interval=1.0, max_interval=30.0)
    assert schedule.interval() == 1.0
    schedule.observe(0, 1.0)
    assert schedule.interval() == 30.0


def test_backoff_is_capped_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(0))
    delays = [backoff.next() for _ in range(12)]
    assert max(delays) <= 60.0
    assert delays[-1] >= 30.0
    backoff.reset()
    assert backoff.next() <= 1.0


class Window:
    """One app's rate-limit window shared by every listing, as Reddit counts it."""

    def __init__(self, clock: Clock, budget: int, seconds: float) -> None:
        self.clock, self.budget, self.seconds = clock, budget, seconds
        self.start, self.used, self.worst = clock.now, 0, 0

    def spend(self) -> RateInfo:
        if self.clock.now - self.start >= self.seconds:
            self.start, self.used = self.clock.now, 0
        self.used += 1
        self.worst = max(self.worst, self.used)
        reset = self.start + self.seconds - self.clock.now
        return RateInfo(float(self.used), float(self.budget - self.used), reset)


def follow(
    rates: dict[str, float],
    budget: int,
    seconds: float,
    *,
    window: float = 600.0,
    latency: float = 0.0,
    min_interval: float = 1.0,
    spare: bool = False,
) -> dict[str, Any]:
    """Listings growing at `rates` items a second, followed under one budget as the
    stream command does: one plan, one budget. Each request takes `latency` seconds.
    With `spare`, refresh-like requests take whatever the plan leaves."""
    clock = Clock()
    reddit = Window(clock, budget, window)
    shared = Budget(clock)
    listings: dict[str, Listing] = {}
    made: dict[str, float] = {}
    stored: dict[str, list[str]] = {name: [] for name in rates}
    seen: dict[str, set[str]] = {name: set() for name in rates}
    calls = dict.fromkeys(rates, 0)
    strained = []
    last: dict[str, float] = {}

    def fetch_of(name: str) -> Callable[[str | None], Page]:
        def fetch(after: str | None) -> Page:
            clock.now += latency
            due = int((clock.now - 1000.0) * rates[name]) - int(made.get(name, 0))
            listings[name].add(due, since=last.get(name, clock.now))
            last[name] = clock.now
            made[name] = made.get(name, 0) + due
            calls[name] += 1
            listings[name].rate = reddit.spend()
            return listings[name].fetch(after)

        return fetch

    follows = []
    for name in rates:
        listings[name] = Listing(clock)
        follows.append(
            Follow(
                fetch_of(name),
                lambda names, name=name: {n for n in names if n in seen[name]},
                newest_stored=lambda name=name: (stored[name][-1], 0.0) if stored[name] else None,
                clock=clock,
                schedule=PollSchedule(min_interval=min_interval, max_interval=30.0),
                budget=shared,
                backoff=Backoff(rng=random.Random(1)),
                on_problem=lambda exc: None,
                name=name,
                sequential=name == "posts",
            )
        )
    plan = Plan(shared, follows)
    polls: dict[str, list[float]] = {name: [] for name in rates}
    spent: list[float] = []

    def spare_steps() -> Iterator[Sleep | None]:
        def info() -> Page:
            clock.now += latency
            spent.append(clock.now)
            return Page([], None, reddit.spend())

        while True:
            yield from fetch_retrying(
                info, budget=shared, backoff=Backoff(), on_problem=lambda exc: None, spare=True
            )
            yield None

    steps = interleave(
        follows,
        clock=clock,
        sleep=clock.sleep,
        plan=plan,
        spare=spare_steps() if spare else None,
    )
    for f, batch in steps:
        stored[f.name] += [c["data"]["name"] for c in batch.items]
        seen[f.name].update(c["data"]["name"] for c in batch.items)
        polls[f.name].append(clock.now)
        if plan.strain is not None:
            strained.append(plan.strain)
        if clock.now > 1000.0 + seconds:
            break
    everything = {n: [p["data"]["name"] for p in listings[n].posts] for n in rates}
    return {
        "calls": calls,
        "stored": stored,
        "all": everything,
        "worst": reddit.worst,
        "fills": {f.name: f.schedule.fill for f in follows},
        "polls": polls,
        "strain": strained,
        "spare": spent,
    }


def captured(run: dict[str, Any], name: str, reach: int = 1000) -> float:
    """The share of `name`'s items stored, leaving out the newest `reach`, which a run
    stopped at any moment has not necessarily had a chance to fetch."""
    stored, made = run["stored"][name], run["all"][name][:-reach]
    assert len(stored) == len(set(stored))  # nothing twice
    return len(set(made) & set(stored)) / max(1, len(made))


def test_one_budget_is_split_between_listings_by_how_fast_each_moves() -> None:
    # 10 posts/s and 50 comments/s with 1 request/s to spend: both fill their pages alike,
    # so the requests split as the items do.
    run = follow({"posts": 10.0, "comments": 50.0}, budget=600, seconds=1200)
    calls = run["calls"]
    assert 4.5 <= calls["comments"] / calls["posts"] <= 5.5, calls  # 4.0 first-come
    assert run["worst"] <= 600  # never over the window
    assert captured(run, "posts") == captured(run, "comments") == 1.0


def test_pages_fill_as_the_budget_tightens_at_r_all_volume() -> None:
    # Reddit's own budget, r/all's own pace, two windows and more, 30 ms a request.
    rates = {"posts": 17.0, "comments": 132.0}
    run = follow(rates, budget=1000, seconds=1500, latency=0.03)
    items = sum(len(v) for v in run["stored"].values())
    assert captured(run, "posts") >= 0.999 and captured(run, "comments") >= 0.999
    assert 1000 * sum(run["calls"].values()) / items <= 11.0, run["calls"]
    assert run["worst"] <= 1000 and not run["strain"]
    # A smaller window at the same rate a second behaves alike.
    small = follow(rates, budget=100, seconds=400, window=60.0, latency=0.03)
    assert captured(small, "comments") >= 0.999 and small["worst"] <= 100


def test_an_ample_budget_keeps_polls_at_half_a_page() -> None:
    run = follow({"posts": 10.0, "comments": 50.0}, budget=10_000, seconds=600)
    assert run["fills"] == {"posts": 50.0, "comments": 50.0}  # lowest latency
    posts = run["polls"]["posts"]
    assert 4.0 <= (posts[-1] - posts[10]) / (len(posts) - 11) <= 6.0  # 50 posts at 10/s


def test_a_budget_that_binds_hard_starves_no_listing() -> None:
    # 24 requests a minute for 5 posts/s and 25 comments/s: about 80% of the budget with
    # full pages. No listing waits near its end while the other's polls come back
    # mostly empty (the split by pace of 1.x left comments unpolled for 31 s while each
    # post poll found 13 posts).
    rates = {"posts": 5.0, "comments": 25.0}
    run = follow(rates, budget=24, window=60.0, seconds=1800)
    assert captured(run, "posts") == captured(run, "comments") == 1.0
    for name, rate in rates.items():
        times = run["polls"][name][5:]
        assert max(b - a for a, b in zip(times, times[1:])) < 0.9 * 1000 / rate, name
        assert len(run["stored"][name]) / run["calls"][name] >= 70, name  # items a request
    assert run["worst"] <= 24 and not run["strain"]


def test_a_budget_that_cannot_hold_the_listings_is_reported_with_the_share_lost() -> None:
    run = follow({"posts": 17.0, "comments": 132.0}, budget=50, window=60.0, seconds=600)
    strain = run["strain"][-1]
    assert strain.allowed == pytest.approx(50 / 60)
    assert strain.need > strain.allowed and 0.3 < strain.lost < 0.6  # about 44% of items
    assert captured(run, "posts") == 1.0  # the cheap listing is kept whole
    assert run["worst"] <= 50


def test_a_quiet_listing_is_not_starved_by_a_busy_one() -> None:
    # 60 requests a 10 minutes cannot hold 8 comments/s and a poll of the quiet listing
    # every 30 s: the quiet one is polled less often, but never waits a window out (its
    # wait used to be figured from the spent window's spread: 48 minutes).
    run = follow({"posts": 0.0, "comments": 8.0}, budget=60, seconds=3600)
    times = run["polls"]["posts"]
    assert max(b - a for a, b in zip(times, times[1:])) < 300.0
    assert run["worst"] <= 60


def test_a_page_of_new_posts_that_follows_the_stored_ids_needs_no_catch_up() -> None:
    h = Harness()
    h.listing.add(100)
    h.poll()
    h.listing.add(100)  # exactly a page: every id after the newest stored one
    batch, _ = h.poll()
    assert batch.pages == 1 and len(batch.items) == 100
    h.listing.add(101)
    batch, _ = h.poll()
    assert batch.pages == 2 and len(batch.items) == 101  # one id short: catch up


def test_comment_ids_prove_nothing_so_a_full_page_is_caught_up() -> None:
    h = Harness(sequential=False)
    h.listing.add(100)
    h.poll()
    h.listing.add(100)
    batch, _ = h.poll()
    assert batch.pages == 2 and len(batch.items) == 100


def test_the_margin_widens_when_polls_overflow_and_narrows_when_they_fit() -> None:
    schedule = PollSchedule(min_interval=1.0)
    schedule.observe(100, 1.0)
    schedule.fill = 195.0
    start = schedule.margin
    schedule.fitted(3, 1.9)  # planned 2 pages for 190 items; took 3
    assert schedule.margin > start
    widened = schedule.margin
    schedule.fitted(3, 2.5)  # 250 expected: 3 pages was right, whatever the fill
    schedule.fitted(2, 1.9)
    assert schedule.margin < widened


def test_the_bucket_lets_listings_due_together_go_together_then_spreads() -> None:
    clock = Clock()
    budget = Budget(clock, burst=3.0)
    budget.update(RateInfo(used=0.0, remaining=600.0, reset=600.0))  # 1 a second
    waits = []
    for _ in range(6):
        waits.append(budget.wait())
        clock.sleep(waits[-1])
        budget.spend()
        budget.update(RateInfo(used=0.0, remaining=600.0, reset=600.0))
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3:] == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("rates", "budget"),
    [({"posts": 10.0}, 1000), ({"posts": 17.0, "comments": 132.0}, 1000)],
    ids=["ample", "r-all"],
)
def test_spare_requests_never_cost_the_listings_an_item(
    rates: dict[str, float], budget: int
) -> None:
    alone = follow(rates, budget=budget, seconds=1500, latency=0.03)
    shared = follow(rates, budget=budget, seconds=1500, latency=0.03, spare=True)
    assert shared["worst"] <= budget  # never over the window, spare requests included
    for run in (alone, shared):
        items = sum(len(v) for v in run["stored"].values())
        assert 1000 * sum(run["calls"].values()) / items <= 11.0 if len(rates) > 1 else True
        for name in rates:
            assert captured(run, name) == 1.0
    spare, whole = len(shared["spare"]), 1500 * budget / 600
    if len(rates) == 1:  # ample: the spare is most of the budget
        assert spare > 0.5 * whole
    else:  # r/all: about a tenth of the budget is left
        assert 0.02 * whole < spare < 0.15 * whole


def test_a_spare_request_that_gets_a_429_waits_its_retry_after() -> None:
    clock = Clock()
    budget = Budget(clock)
    budget.update(RateInfo(used=0.0, remaining=600.0, reset=600.0))
    times: list[float] = []

    def info() -> Page:
        times.append(clock.now)
        if len(times) == 1:
            raise RateLimited("429", retry_after=5.0)
        return Page([], None, NO_RATE)

    steps = fetch_retrying(
        info, budget=budget, backoff=Backoff(rng=random.Random(1)), on_problem=lambda e: None,
        spare=True,
    )  # fmt: skip
    slept(steps, clock.sleep)
    assert times[1] - times[0] >= 5.0  # the spare skips the bucket, never a hold
