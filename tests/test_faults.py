"""Lose nothing: the built .pyz against the fake Reddit with faults, bursts, restarts,
kills, locks and full disks, compared with the server's ground truth.

Runs under the oldest supported CPython (standard-library HTTP) and the newest (requests).
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import SUPPORTED, query
from tests.fakereddit import FakeReddit, Fault

pytestmark = pytest.mark.slow
VERSIONS = sorted({SUPPORTED[0][0], SUPPORTED[-1][0]})
FAST = {"--interval": "0.1", "--timeout": "1"}


class Redpipe:
    """One redpipe.pyz process in the background, its stderr in a file."""

    def __init__(self, python: Path, pyz: Path, server: FakeReddit, db: Path, *args: str,
                 preexec: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.log = db.with_name(db.name + f".{time.monotonic_ns()}.log")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(db.parent),
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


def test_every_fault_kind_is_survived_without_loss(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit() as server:
        server.add_posts(50)
        proc = start(server, db)
        wait_until_stored(db, newest(server))
        server.start_feed(20)
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
        again = start(server, db, "--comments")
        time.sleep(2)
        server.stop_feed()
        wait_until_stored(db, [c["name"] for c in server.comments][-500:], table="comments")
        wait_until_stored(db, newest(server)[-5:])
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
    assert "1 gaps (up to 500 posts missing)" in last.stderr


def test_a_short_interval_never_overruns_the_budget(
    start: Callable[..., Redpipe], tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit(ratelimit_budget=12, ratelimit_window=4) as server:
        server.add_posts(20)
        server.start_feed(15)
        proc = start(server, db, "--interval", "0.01")
        time.sleep(10)
        server.stop_feed()
        target = newest(server)
        wait_until_stored(db, target)
        assert proc.stop() == 0
        assert server.rate_limited == 0
        listing = server.listing_requests()
    assert_exact(server, db)
    assert len(listing) <= 12 * (10 // 4 + 3)


def test_after_a_429_no_other_follows(start: Callable[..., Redpipe], tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with FakeReddit(ratelimit_budget=10, ratelimit_window=3) as server:
        server.add_posts(20)
        server.consume(10)  # another client of the same app spent the window
        proc = start(server, db, "--interval", "0.01")
        wait_until_stored(db, newest(server))
        server.start_feed(10)
        time.sleep(7)
        assert proc.stop() == 0
        assert server.rate_limited == 1
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
            other.execute("BEGIN IMMEDIATE")
            held = len(stored(db))
            time.sleep(3)
            assert len(stored(db)) == held  # really locked out meanwhile
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
