"""Lose nothing: the built .pyz against the fake Reddit with faults, bursts, restarts,
kills, locks and full disks, compared with the server's ground truth.

Runs under the oldest supported CPython (standard-library HTTP) and the newest (requests).
Waits are for something observable at the fake server or in the database, never a fixed
time: a test that must watch for a while (the budget) watches a number of rate-limit
windows, made short.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SUPPORTED, query
from tests.fakereddit import FakeReddit, Fault

pytestmark = pytest.mark.slow
FLOOR = SUPPORTED[0][0]
VERSIONS = sorted({FLOOR, SUPPORTED[-1][0]})
FAST = {"--interval": "0.1", "--timeout": "1"}


class Redpipe:
    """One redpipe.pyz process in the background, its stderr in a file."""

    def __init__(self, python: Path, pyz: Path, server: FakeReddit, db: Path, *args: str,
                 preexec: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.log = db.with_name(db.name + f".{time.monotonic_ns()}.log")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(db.parent),
               # the session's compiled copy (see conftest), not a new one for each test
               "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
               "REDPIPE_CLIENT_ID": "test-client",
               "REDPIPE_CLIENT_SECRET": "test-secret"}  # fmt: skip
        argv = [str(python), str(pyz), str(db), "--base-url", server.url,
                "--auth-url", server.url, *args]  # fmt: skip
        for option, value in FAST.items():
            if option not in args:
                argv += [option, value]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=preexec)  # fmt: skip

    @property
    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)


@pytest.fixture(params=VERSIONS)
def start(
    request: pytest.FixtureRequest, pyz: Path, empty_python: Callable[[str], Path]
) -> Iterator[Callable[..., Redpipe]]:
    python = empty_python(request.param)
    running: list[Redpipe] = []

    def go(server: FakeReddit, db: Path, *args: str, **kw: object) -> Redpipe:
        proc = Redpipe(python, pyz, server, db, *args, **kw)  # type: ignore[arg-type]
        running.append(proc)
        return proc

    yield go
    for proc in running:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


def stored(db: Path, table: str = "posts") -> list[str]:
    try:
        return [n for (n,) in query(db, f"SELECT fullname FROM {table} ORDER BY rowid")]
    except sqlite3.OperationalError:
        return []  # not created yet


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def wait_until_stored(
    db: Path, names: list[str], timeout: float = 30, table: str = "posts"
) -> None:
    wait_for(lambda: set(names) <= set(stored(db, table)), timeout)


def assert_exact(server: FakeReddit, db: Path, table: str = "posts") -> list[str]:
    """Everything the server listed from the first stored item on is stored, once."""
    names = stored(db, table)
    order = [p["name"] for p in (server.posts if table == "posts" else server.comments)]
    assert len(names) == len(set(names))
    assert set(names) <= set(order), "stored a post the server never had"
    first = min(order.index(n) for n in names)
    last = max(order.index(n) for n in names)
    missing = [n for n in order[first : last + 1] if n not in set(names)]
    assert not missing, f"{len(missing)} {table} missing, e.g. {missing[:3]}"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    return names


def recovered(server: FakeReddit, since: int) -> bool:
    """A fault was served after request `since`, and a clean listing after that."""
    later = server.requests[since:]
    hit = next((i for i, r in enumerate(later) if r.fault), None)
    return hit is not None and any(
        r.status == 200 and not r.fault and r.path.startswith("/r/") for r in later[hit + 1 :]
    )


def no_traceback(text: str) -> None:
    assert "Traceback" not in text


def newest(server: FakeReddit) -> list[str]:
    return [p["name"] for p in server.posts]


@pytest.mark.parametrize("start", [FLOOR], indirect=True)
def test_every_fault_kind_is_survived_without_loss(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    """Under the oldest CPython only. How each transport reads every one of these faults is
    tested for both (requests and http.client) in test_client.py, and the test below puts
    a 503, a 429, truncated JSON, a reset and a hang through the .pyz under both ends of
    the range; what this adds is the stream's recovery, which is the same code on every
    interpreter, and 3.9's own http.client, which test_client.py does not run under."""
    db = tmp_path / "p.sqlite"
    with FakeReddit() as server:
        server.add_posts(50)
        proc = start(server, db)
        wait_until_stored(db, newest(server))
        # Fast enough that polls come as often as the budget allows (not every 2.5 s, the
        # schedule's pace for 20/s), and each outage overflows a page: faults land on
        # catch-up pages too.
        server.start_feed(80)
        faults = [
            Fault.status(503, b"<html>busy</html>", "text/html"),
            Fault.status(500),
            Fault.status(502, b"", None),
            Fault.rate_limited(retry_after=1, body="json"),
            Fault.rate_limited(retry_after=None, body="html"),
            Fault.rate_limited(retry_after=None, body="empty"),
            Fault.truncated_json(),
            Fault.html_200(),
            Fault.empty_listing(),
            Fault.reset(),
            Fault.hang(),  # accepted, never answered: the 1 s --timeout must end it
            Fault.slow(0.5),
        ]
        for fault in faults:
            # one at a time, each followed by a success, so backoff restarts from 1 s
            mark = len(server.requests)
            server.inject(fault)
            wait_for(lambda mark=mark: recovered(server, mark))
        server.pause()  # connection refused, and open connections cut
        wait_for(lambda: "connection refused" in proc.stderr)
        server.resume()
        # the anchor a catch-up would page from disappears, then a burst of 250 lands
        server.remove(stored(db)[-1])
        server.add_posts(250)
        server.stop_feed()
        wait_until_stored(db, newest(server)[-250:])
        assert proc.stop() == 0
        assert server.rate_limited == 0
    names = assert_exact(server, db)
    assert len(names) >= 50 + 250
    err = proc.stderr
    no_traceback(err)
    problems = [line for line in err.splitlines() if "retrying" in line]
    assert any("429" in line for line in problems)
    assert any("refused" in line for line in problems)
    assert any("no answer within 1s" in line or "timed out" in line for line in problems)
    assert any("not JSON" in line for line in problems)
    assert len(problems) < 20  # repeats of one kind are quieted


def test_comments_and_posts_on_one_budget_survive_faults_and_kill_9(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "pc.sqlite"
    # 6 requests/s for the app: less than two listings polled every 0.1 s would spend.
    with FakeReddit(ratelimit_budget=60, ratelimit_window=10) as server:
        server.add_posts(30)
        server.add_comments(80)
        proc = start(server, db, "--comments")
        wait_until_stored(db, [c["name"] for c in server.comments], table="comments")
        server.start_feed(4, comment_rate=20)
        for fault in (Fault.status(503), Fault.rate_limited(retry_after=1),
                      Fault.truncated_json(), Fault.reset(), Fault.hang()):  # fmt: skip
            mark = len(server.requests)
            server.inject(fault, endpoint="comments")
            wait_for(lambda mark=mark: recovered(server, mark))
        proc.proc.kill()
        proc.wait()
        server.add_comments(450)  # a burst while it is down: more than four pages
        # Comments go on arriving while the restarted run pages back through the burst;
        # posts stop, so its first post poll, which comes at once, must find every one.
        # (Posts that came later would wait for the next post poll, which the adaptive
        # schedule may put as far as its 30 s maximum away.)
        server.start_feed(0, comment_rate=20)
        burst, posts = [c["name"] for c in server.comments], newest(server)
        again = start(server, db, "--comments")
        wait_until_stored(db, burst, table="comments")
        wait_until_stored(db, posts)
        server.stop_feed()
        assert len(server.comments) > len(burst)  # some arrived during the catch-up
        # The last comments need one more comment poll: allow for the schedule's maximum.
        wait_until_stored(db, [c["name"] for c in server.comments], timeout=45, table="comments")
        assert again.stop() == 0
        assert server.rate_limited == 0
        comment_polls = [r for r in server.comment_requests() if not r.params.get("after")]
        post_polls = [r for r in server.post_requests() if not r.params.get("after")]
    assert len(assert_exact(server, db, "comments")) >= 80 + 450
    assert len(assert_exact(server, db, "posts")) >= 30
    # Polls follow each stream's pace: five times the comments, so more comment polls.
    assert len(comment_polls) > 2 * len(post_polls)
    no_traceback(proc.stderr + again.stderr)
    assert "caught up" in again.stderr and "gap" not in again.stderr


def test_bursts_between_polls_are_caught_up(start: Callable[..., Redpipe], tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit() as server:
        server.add_posts(30)
        proc = start(server, db, "--interval", "2")
        wait_until_stored(db, newest(server))
        for size in (600, 950):
            server.add_posts(size)
            wait_until_stored(db, newest(server)[-size:])
        assert proc.stop() == 0
    assert len(assert_exact(server, db)) == 30 + 600 + 950
    assert "gap" not in proc.stderr


def test_restart_catches_up_and_reports_what_the_listing_lost(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit() as server:
        server.add_posts(50)
        assert start(server, db, "--max-records", "50").wait() == 0
        server.add_posts(700)  # while redpipe was down, within the listing's reach
        again = start(server, db, "--max-records", "700")
        assert again.wait() == 0
        assert len(assert_exact(server, db)) == 750
        assert "gap" not in again.stderr
        server.add_posts(1500)  # more than the 1000 the listing reaches back
        last = start(server, db, "--max-records", "1000")
        assert last.wait() == 0
    names = stored(db)
    assert len(names) == 1750
    assert set(names[-1000:]) == set(newest(server)[-1000:])
    gaps = [line for line in last.stderr.splitlines() if "gap:" in line]
    assert len(gaps) == 1
    newest_stored_before, oldest_listed = newest(server)[749], newest(server)[1250]
    assert (
        f"gap: up to 500 posts after {newest_stored_before} and before {oldest_listed}, created "
        "between " in gaps[0]
    )
    assert "1 gap (up to 500 posts missing)" in last.stderr


@pytest.mark.parametrize("start", [FLOOR], indirect=True)
def test_a_comment_gap_names_its_ends_and_counts_nothing(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "c.sqlite"
    with FakeReddit() as server:
        server.add_posts(5)
        server.add_comments(50)
        assert start(server, db, "--comments", "--max-records", "55").wait() == 0
        server.add_comments(1500)  # more than the 1000 the listing reaches back
        last = start(server, db, "--comments", "--max-records", "1000")
        assert last.wait() == 0
    order = [c["name"] for c in server.comments]
    assert stored(db, "comments")[-1000:] == order[-1000:]
    gaps = [line for line in last.stderr.splitlines() if "gap:" in line]
    # Comment ids are random (as Reddit's), so no count is made up from them.
    assert len(gaps) == 1 and gaps[0].startswith(
        f"redpipe: warning: gap: comments after {order[49]} and before {order[550]}, created "
        "between "
    )
    assert "may be missing; Reddit's listing no longer reaches back that far" in gaps[0]
    assert "1 gap (an unknown number of comments missing)" in last.stderr


def windows(server: FakeReddit, opened: float) -> Counter[int]:
    """Listing requests in each of the server's rate-limit windows, by index from 0;
    `opened` is time.monotonic() just before the server was made (its first window)."""
    return Counter(
        int((r.time - opened) // server.ratelimit_window) for r in server.listing_requests()
    )


def test_a_short_interval_never_overruns_the_budget(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    budget = 10
    opened = time.monotonic()
    # Every poll finds 80 new posts, so the schedule wants the next one as soon as
    # --interval 0.01 allows, until the plan makes its pages fuller: the budget is what
    # holds polling back, window after window.
    with FakeReddit(ratelimit_budget=budget, ratelimit_window=2, firehose=80) as server:
        server.add_posts(20)
        proc = start(server, db, "--interval", "0.01")
        wait_for(lambda: len(windows(server, opened)) >= 5)  # four windows rolled over
        server.firehose = 0
        wait_until_stored(db, newest(server))
        assert proc.stop() == 0
        assert server.rate_limited == 0
        used = windows(server, opened)
    assert_exact(server, db)
    first, last = min(used), max(used)
    assert sum(used.values()) <= budget * (last - first + 1)
    # And it pressed on the budget (else an overrun could not have shown): the whole
    # windows in between were spent a third or more, though fuller pages need fewer.
    between = [used[i] for i in range(first + 1, last)]
    assert len(between) >= 3 and sum(between) >= budget * len(between) * 0.3, used


def test_after_a_429_no_other_follows(start: Callable[..., Redpipe], tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    budget, window = 10, 2
    opened = time.monotonic()
    # Every poll finds 80 new posts: only the budget holds polling back (see above).
    with FakeReddit(ratelimit_budget=budget, ratelimit_window=window, firehose=80) as server:
        server.add_posts(20)
        proc = start(server, db, "--interval", "0.01")
        wait_until_stored(db, newest(server))
        # Just after a window opens, another client of the same app spends all of it.
        opening = max(windows(server, opened)) + 1
        wait_for(lambda: max(windows(server, opened)) >= opening)
        server.consume(budget)
        wait_for(lambda: server.rate_limited > 0)
        limited = next(r for r in server.listing_requests() if r.status == 429)
        spent = int((limited.time - opened) // window)
        wait_for(lambda: max(windows(server, opened)) >= spent + 3)
        assert proc.stop() == 0
        assert server.rate_limited == 1
        used = windows(server, opened)
    # The hold ended with the spent window: the next whole one is polled again (as often
    # as the plan's fuller pages need, which is less than the budget allows).
    assert used[spent + 2] >= 1, used
    assert_exact(server, db)
    no_traceback(proc.stderr)


def test_kill_9_at_any_moment_leaves_a_sound_database(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    rng = random.Random(7)
    with FakeReddit() as server:
        server.add_posts(100)
        server.start_feed(80)
        for _ in range(6):
            proc = start(server, db)
            time.sleep(rng.uniform(0.3, 1.5))
            proc.proc.kill()
            proc.proc.wait()
            if db.exists():
                assert query(db, "PRAGMA integrity_check") == [("ok",)]
        server.stop_feed()
        asked = len(server.listing_requests())
        proc = start(server, db)
        # The killed runs may have stored the newest posts already; a SIGTERM must not
        # reach the last run before it is running (and has its handlers).
        deadline = time.monotonic() + 30
        while len(server.listing_requests()) == asked and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_until_stored(db, newest(server)[-100:])
        assert proc.stop() == 0
    assert_exact(server, db)


def test_a_database_locked_by_another_writer_is_waited_out(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit() as server:
        server.add_posts(20)
        server.start_feed(30)
        proc = start(server, db)
        wait_until_stored(db, newest(server)[:20])
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
            # Lock while a poll is held up at the server: no write of an earlier poll can
            # be pending, and the posts this one brings must wait for the lock.
            server.inject(Fault.slow(0.5))
            wait_for(lambda: any(r.fault == "slow" for r in server.listing_requests()))
            other.execute("BEGIN IMMEDIATE")
            held = len(stored(db))
            (poll,) = [r for r in server.listing_requests() if r.fault == "slow"]
            assert poll.status == 0  # locked before it was answered
            wait_for(lambda: poll.status != 0)
            time.sleep(0.5)  # ample for a write that fails at once to have failed
            assert len(stored(db)) == held  # really locked out meanwhile
            assert server.listing_requests()[-1] is poll  # waiting to store, not polling on
            assert proc.proc.poll() is None
            other.execute("COMMIT")
        server.stop_feed()
        wait_until_stored(db, newest(server))
        assert proc.proc.poll() is None
        assert proc.stop() == 0
    assert_exact(server, db)
    no_traceback(proc.stderr)


def limit_file_size(size: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def test_a_write_that_fails_is_fatal_names_the_lost_range_and_keeps_the_rest(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit(big=True) as server:
        server.add_posts(30)
        assert start(server, db, "--max-records", "30").wait() == 0
        server.add_posts(900)
        # Files may grow by no more than 64 KB: the WAL cannot take 900 posts.
        proc = start(server, db, preexec=limit_file_size(db.stat().st_size + 65536))
        assert proc.wait(timeout=30) == 3
    err = proc.stderr
    no_traceback(err)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1
    assert re.search(r"900 posts t3_\w+ \.\. t3_\w+ not stored", lines[0])
    assert query(db, "SELECT count(*) FROM posts") == [(30,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_a_full_disk_is_a_clear_fatal_error(start: Callable[..., Redpipe], tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the RLIMIT test covers it")
    try:
        db = mount / "p.sqlite"
        with FakeReddit(big=True) as server:
            server.add_posts(10)
            assert start(server, db, "--max-records", "10").wait() == 0
            server.add_posts(900)
            proc = start(server, db)
            assert proc.wait(timeout=30) == 3
        lines = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(lines) == 1
        assert "full" in lines[0] and "not stored" in lines[0]
        assert query(db, "SELECT count(*) FROM posts") == [(10,)]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
