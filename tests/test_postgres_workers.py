"""Parallel workers on one PostgreSQL database, for real: several `replay` processes at
once (different dumps, overlapping dumps, the same dump twice) and a replay killed -9 and
resumed; several `refresh` processes, and `--refresh` streams, splitting the due items so
that none is fetched twice in a pass; streams of different subreddits side by side.

Every process is the built redpipe.pyz under the floor CPython.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SUPPORTED
from tests.fakereddit import FakeReddit, Fault, base36
from tests.pgcluster import Cluster
from tests.pgproc import Process, environment, query, stored, stream_args, wait_for

pytestmark = pytest.mark.slow
FLOOR = SUPPORTED[0][0]
LONG_AGO = 1_500_000_000.0  # 2017: every item made here is due for any --older-than
ID0 = int("a00000", 36)
PROBLEMS = ("Traceback", "deadlock", "reconnecting", "error", "gap:")


# -- dumps --------------------------------------------------------------------------------


def post(n: int, sub: str = "dumps") -> dict[str, Any]:
    """A Pushshift-style post record (no `name`), number n."""
    ident = base36(ID0 + n)
    return {
        "id": ident,
        "title": f"post {n}",
        "selftext": f"body of {n}" if n % 3 == 0 else "",
        "subreddit": sub,
        "author": f"user_{n % 97}",
        "created_utc": str(int(LONG_AGO) + n),
        "score": n % 50,
        "num_comments": n % 9,
        "permalink": f"/r/{sub}/comments/{ident}/post_{n}/",
        "url": f"https://example.com/{n}",
        "is_self": n % 3 == 0,
        "over_18": False,
        "retrieved_on": 1_600_000_000,
    }


def comment(n: int, sub: str = "dumps") -> dict[str, Any]:
    """A Pushshift-style comment record on one of the posts, number n."""
    link = base36(ID0 + n % 500)
    return {
        "id": base36(int("1000000", 36) + n),
        "body": f"comment {n}",
        "link_id": f"t3_{link}",
        "parent_id": f"t3_{link}",
        "subreddit": sub,
        "author": f"user_{n % 89}",
        "created_utc": int(LONG_AGO) + n,
        "score": n % 20,
        "retrieved_on": 1_600_000_000,
    }


def dump(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def key(path: Path) -> str:
    """The dump's name in redpipe_replay: its file name and size."""
    return f"{path.name}:{path.stat().st_size}"


# -- processes ----------------------------------------------------------------------------


@pytest.fixture
def run(
    pyz: Path, empty_python: Callable[[str], Path], pg_cluster: Cluster, tmp_path: Path
) -> Iterator[Callable[..., Process]]:
    """run(name, *args): redpipe.pyz with `args` in the background, stderr in name.log;
    whatever still runs at the end is killed."""
    running: list[Process] = []
    env = environment(pg_cluster, tmp_path)
    python = empty_python(FLOOR)

    def start(name: str, *args: str) -> Process:
        proc = Process(python, pyz, list(args), env, tmp_path / f"{name}.log")
        running.append(proc)
        return proc

    yield start
    for proc in running:
        proc.kill()


def url(cluster: Cluster, database: str) -> str:
    return cluster.url(database) + "?sslmode=verify-full"


def clean(proc: Process, *allowed: str) -> None:
    """It said nothing of a problem: no traceback, deadlock, retry, error or gap (but
    those `allowed`)."""
    text = proc.stderr
    found = [word for word in PROBLEMS if word in text and word not in allowed]
    assert not found, f"{found} in:\n{text[-3000:]}"


def summary(proc: Process, name: str) -> tuple[int, int, int, int] | None:
    """(lines, new posts, new comments, already stored) of a replay's line for dump
    `name`; None if it said the dump was replayed to its end before."""
    text = proc.stderr
    if f"{name}: replayed to its end before; skipped" in text:
        return None
    found = re.search(
        rf"{re.escape(name)}: ([\d,]+) lines, ([\d,]+) new posts, ([\d,]+) new comments, "
        r"([\d,]+) already stored, 0 malformed",
        text,
    )
    assert found, text[-3000:]
    lines, posts, comments, again = (int(g.replace(",", "")) for g in found.groups())
    return lines, posts, comments, again


def checkpoints(cluster: Cluster, database: str) -> dict[str, tuple[int, bool]]:
    if not query(cluster, database, "SELECT to_regclass('redpipe_replay') IS NOT NULL")[0][0]:
        return {}
    got = query(cluster, database, "SELECT dump, lines, finished FROM redpipe_replay")
    return {d: (int(n), bool(f)) for d, n, f in got}


def exact_counts(cluster: Cluster, database: str, table: str, expected: set[str]) -> None:
    count = query(cluster, database, f"SELECT count(*), count(DISTINCT fullname) FROM {table}")
    assert count == [[len(expected), len(expected)]]
    assert set(stored(cluster, database, table)) == expected


# -- replay -------------------------------------------------------------------------------

N = 20_000  # lines a dump
BATCH = 1000  # lines a replay commits at once (pipeline/commands/replay.py)


def shuffled(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """`records` in another order within each batch: two replays whose batches share
    items then insert them in different orders, unless the sink sorts them."""
    rng = random.Random(seed)
    out = []
    for i in range(0, len(records), BATCH):
        block = records[i : i + BATCH]
        rng.shuffle(block)
        out += block
    return out


# How many connections to the database wait for a lock (a table's, a row's, an advisory).
WAITING = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@contextlib.contextmanager
def locked(cluster: Cluster, database: str, tables: Sequence[str]) -> Iterator[Callable[[], int]]:
    """`tables` locked (ACCESS EXCLUSIVE) until the block ends, so that processes started
    inside it all wait at their first use of them (or behind one that waits so) and then
    go at once; yields how many processes wait for a lock."""
    conn = cluster.connect(database, tls=False)
    try:
        conn.run("BEGIN")
        conn.run(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")

        def waiting() -> int:
            return int(query(cluster, database, WAITING)[0][0])

        yield waiting
        conn.run("COMMIT")
    finally:
        conn.close()


def fullnames(kind: str, numbers: range | Sequence[int]) -> set[str]:
    first = ID0 if kind == "t3" else int("1000000", 36)
    return {f"{kind}_{base36(first + n)}" for n in numbers}


def test_four_replays_at_once_store_each_item_once_and_a_killed_one_resumes(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str, tmp_path: Path
) -> None:
    db = url(pg_cluster, pg_database)
    # The tables first, with one post and one comment, so that they can be locked.
    seed = dump(tmp_path / "RS_seed.ndjson", [post(10 * N), comment(10 * N)])
    first = run("seed", "replay", db, str(seed))
    assert first.wait() == 0, first.stderr
    # A and B share 30% of their posts: their first 30% of lines, the batches that run
    # side by side once the lock goes, each batch in its own order (without the sink's
    # ORDER BY these deadlock). C is comments; A goes to two processes at once.
    a = dump(tmp_path / "RS_a.ndjson", shuffled([post(n) for n in range(N)], 1))
    shared = [n if n < 0.3 * N else N + n for n in range(N)]
    b = dump(tmp_path / "RS_b.ndjson", shuffled([post(n) for n in shared], 2))
    c = dump(tmp_path / "RC_c.ndjson", shuffled([comment(n) for n in range(N)], 3))
    with locked(pg_cluster, pg_database, ["posts", "comments"]) as waiting:
        procs = {
            "a1": (run("a1", "replay", db, str(a)), a),
            "b": (run("b", "replay", db, str(b)), b),
            "c": (run("c", "replay", db, str(c)), c),
            "a2": (run("a2", "replay", db, str(a)), a),
        }
        wait_for(lambda: waiting() == 4, timeout=60)
    for proc, _ in procs.values():
        assert proc.wait(timeout=120) == 0, proc.stderr[-3000:]
        clean(proc)
    posts = fullnames("t3", [*range(N), *shared, 10 * N])
    comments = fullnames("t1", [*range(N), 10 * N])
    assert len(posts) == 1.7 * N + 1
    exact_counts(pg_cluster, pg_database, "posts", posts)
    exact_counts(pg_cluster, pg_database, "comments", comments)
    assert checkpoints(pg_cluster, pg_database) == {
        key(seed): (2, True),
        key(a): (N, True),
        key(b): (N, True),
        key(c): (N, True),
    }
    # What each process says it stored adds up to what is stored: each row was new to
    # exactly one of them, and seen again by the others.
    said = {name: summary(proc, path.name) for name, (proc, path) in procs.items()}
    assert said["a1"] is not None and said["b"] is not None and said["c"] is not None
    told = [s for s in said.values() if s is not None]
    assert all(s[0] == N for s in told)
    assert sum(s[1] for s in told) == len(posts) - 1
    assert sum(s[2] for s in told) == len(comments) - 1
    # A dump no other process had is read whole; of the two given A, the one that
    # started second may resume after the lines the first has committed already.
    assert sum(said["b"][1:]) == sum(said["c"][1:]) == N
    assert all(sum(s[1:]) <= N for s in told)
    assert sum(sum(s[1:]) for s in told) >= 3 * N

    # Resume per dump: two more dumps at once, one of them killed -9 mid-way and rerun.
    d = dump(tmp_path / "RS_d.ndjson", [post(n) for n in range(N, N * 3)])
    e = dump(tmp_path / "RC_e.ndjson", [comment(n) for n in range(N, N * 2)])
    killed, other = run("d1", "replay", db, str(d)), run("e", "replay", db, str(e))
    wait_for(lambda: checkpoints(pg_cluster, pg_database).get(key(d), (0,))[0] >= 3000, 60)
    killed.proc.kill()
    killed.wait()
    held = checkpoints(pg_cluster, pg_database)[key(d)]
    assert 3000 <= held[0] < 2 * N and not held[1], held
    assert held[0] % BATCH == 0  # a batch is committed with its lines, or not at all
    again = run("d2", "replay", db, str(d))
    assert again.wait(timeout=120) == 0 and other.wait(timeout=120) == 0
    clean(again)
    clean(other)
    lines, new, _, seen = summary(again, d.name) or (0, 0, 0, 0)
    assert lines == 2 * N
    # Only the lines after the checkpoint were read again: what the killed run had in
    # its last, uncommitted batch was rolled back and is new to the rerun.
    assert new + seen == 2 * N - held[0], (new, seen, held)
    posts |= fullnames("t3", range(N, N * 3))
    comments |= fullnames("t1", range(N, N * 2))
    exact_counts(pg_cluster, pg_database, "posts", posts)
    exact_counts(pg_cluster, pg_database, "comments", comments)
    assert checkpoints(pg_cluster, pg_database)[key(d)] == (2 * N, True)
    assert checkpoints(pg_cluster, pg_database)[key(e)] == (N, True)


# -- refresh ------------------------------------------------------------------------------


def agent(name: str) -> str:
    return f"test:{name}:v1"


def asked(server: FakeReddit) -> collections.Counter[str]:
    """How many times /api/info was asked for each id."""
    return collections.Counter(
        name for r in server.info_requests() for name in r.params.get("id", "").split(",") if name
    )


def asked_by(server: FakeReddit, name: str) -> set[str]:
    """The ids the process sending User-Agent agent(name) asked /api/info for."""
    return {
        n
        for r in server.info_requests()
        if agent(name) in r.headers.get("user-agent", "")
        for n in r.params.get("id", "").split(",")
        if n
    }


def archived(
    run: Callable[..., Process], server: FakeReddit, db: str, path: Path, n: int, sub: str
) -> list[str]:
    """n posts of r/`sub` made long ago, held by the server and replayed into `db`."""
    made = server.add_posts(n, subreddit=sub, created_utc=LONG_AGO)
    loaded = run(f"load-{sub}", "replay", db, str(dump(path / f"RS_{sub}.ndjson", made)))
    assert loaded.wait(timeout=60) == 0, loaded.stderr
    return [p["name"] for p in made]


def refresh_args(db: str, server: FakeReddit, name: str) -> list[str]:
    return ["refresh", db, "--older-than", "1h", "--base-url", server.url, "--auth-url",
            server.url, "--user-agent", agent(name)]  # fmt: skip


def test_three_refreshes_at_once_split_the_due_items_and_check_each_once(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str, tmp_path: Path
) -> None:
    db = url(pg_cluster, pg_database)
    with FakeReddit(ratelimit_budget=100_000) as server:
        names = archived(run, server, db, tmp_path, 3000, "old")
        moved = names[::100]
        for name in moved:
            server.update(name, score=10_000)
        # Each /api/info answer takes 50 ms, so that one refresh cannot take it all.
        server.inject(*[Fault.slow(0.05)] * 60, endpoint="info")
        with locked(pg_cluster, pg_database, ["posts"]) as waiting:
            procs = [run(f"r{i}", *refresh_args(db, server, f"r{i}")) for i in range(3)]
            wait_for(lambda: waiting() == 3, timeout=60)  # all at once from here
        for proc in procs:
            assert proc.wait(timeout=60) == 0, proc.stderr[-3000:]
            clean(proc)
        times = asked(server)
        assert set(times) == set(names)
        assert [n for n, k in times.items() if k > 1] == []
        shares = [asked_by(server, f"r{i}") for i in range(3)]
    assert all(shares), [len(s) for s in shares]  # the work was split
    assert sum(len(s) for s in shares) == len(names)
    checked, changed = [], []
    for proc in procs:
        found = re.search(r"posts: ([\d,]+) checked, ([\d,]+) changed", proc.stderr)
        assert found, proc.stderr
        checked.append(int(found.group(1).replace(",", "")))
        changed.append(int(found.group(2).replace(",", "")))
    assert checked == [len(s) for s in shares]
    assert sum(changed) == len(moved)
    high = query(pg_cluster, pg_database, "SELECT fullname FROM posts WHERE score = 10000")
    assert sorted(r[0] for r in high) == sorted(moved)
    unchecked = "SELECT count(*) FROM posts WHERE refreshed_utc IS NULL"
    assert query(pg_cluster, pg_database, unchecked) == [[0]]
    # Nothing is left held: each check's hold goes with its new refreshed_utc.
    assert query(pg_cluster, pg_database, "SELECT count(*) FROM redpipe_checking") == [[0]]
    # The pass is over: a refresh now finds nothing due and asks nothing.
    with FakeReddit() as server:
        after = run("r3", *refresh_args(db, server, "r3"))
        assert after.wait(timeout=60) == 0, after.stderr
        assert "posts: 0 checked" in after.stderr and not server.info_requests()


# -- streams ------------------------------------------------------------------------------


@contextlib.contextmanager
def feeding(server: FakeReddit, subs: Sequence[str], per_second: float) -> Iterator[None]:
    """New posts in each of `subs` in turn, `per_second` in all, while the block runs."""
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.wait(1 / per_second):
            server.add_posts(1, subreddit=subs[n % len(subs)])
            n += 1

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def of(server: FakeReddit, sub: str) -> list[str]:
    """The fullnames of r/`sub`'s posts the server holds, oldest first."""
    return [p["name"] for p in server.posts if p["subreddit"] == sub]


def nothing_lost(names: set[str], listed: list[str]) -> None:
    """Every post of `listed` from the first stored on is stored."""
    got = [i for i, n in enumerate(listed) if n in names]
    assert got, "none stored"
    missing = [n for n in listed[got[0] :] if n not in names]
    assert not missing, f"{len(missing)} of {len(listed) - got[0]} missing"


def new_posts(proc: Process) -> int:
    """How many new posts a stopped stream says it stored."""
    found = re.search(r"stopped \(signal SIGTERM\): stored ([\d,]+) new posts", proc.stderr)
    assert found, proc.stderr[-3000:]
    return int(found.group(1).replace(",", ""))


def stream_of(server: FakeReddit, db: str, name: str, subs: str, *more: str) -> list[str]:
    return stream_args(db, server, "--subreddit", subs, "--user-agent", agent(name), *more)


def test_streams_of_different_subreddits_share_one_database_and_refuse_a_refresh(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str
) -> None:
    db = url(pg_cluster, pg_database)
    with FakeReddit(ratelimit_budget=100_000) as server:
        for sub in ("alpha", "beta", "gamma"):
            server.add_posts(20, subreddit=sub)
        b = run("b", *stream_of(server, db, "b", "beta"))
        wait_for(lambda: set(of(server, "beta")) <= set(stored(pg_cluster, pg_database)))
        with feeding(server, ["alpha", "beta", "gamma"], 30):
            a = run("a", *stream_of(server, db, "a", "alpha"))
            ab = run("ab", *stream_of(server, db, "ab", "alpha+beta"))
            for proc, what in ((a, "r/alpha"), (b, "r/beta"), (ab, "r/alpha+beta")):
                wait_for(lambda: f"redpipe: leading {what} posts" in proc.stderr)  # noqa: B023
            # A refresh beside them is refused in one line, asking Reddit nothing.
            refused = run("r", *refresh_args(db, server, "r"))
            assert refused.wait(timeout=60) == 3
            assert refused.stderr.splitlines() == [
                f"redpipe: error: {pg_cluster.url(pg_database)}: a stream is following this "
                "database, and a refresh beside it would spend the same client's budget; "
                "give the stream --refresh instead, or stop it first"
            ]
            time.sleep(3)
        newest = [of(server, "alpha")[-1], of(server, "beta")[-1]]
        wait_for(lambda: set(newest) <= set(stored(pg_cluster, pg_database)))
        for proc in (a, b, ab):
            assert proc.stop() == 0, proc.stderr[-3000:]
        clean(a)  # beside stored posts of r/beta only: no gap, its history is its own
        clean(b)
        clean(ab)
        assert not server.info_requests()
        names = stored(pg_cluster, pg_database)
        assert len(names) == len(set(names))  # the overlap of a and a+b, b and a+b: once
        # Each post was new to exactly one of the three, and seen again by the others.
        assert sum(new_posts(proc) for proc in (a, b, ab)) == len(names)
        assert not set(names) & set(of(server, "gamma"))
        for sub in ("alpha", "beta"):
            nothing_lost(set(names), of(server, sub))
        # Each stream polled its own listing, all three at the same time.
        for name, path in (
            ("a", "/r/alpha/new"),
            ("b", "/r/beta/new"),
            ("ab", "/r/alpha+beta/new"),
        ):
            polls = [r for r in server.post_requests() if agent(name) in r.headers["user-agent"]]
            assert polls and all(r.path.startswith(path) for r in polls)


def test_a_stream_new_to_a_shared_database_tells_of_no_gap(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str
) -> None:
    db = url(pg_cluster, pg_database)
    with FakeReddit(ratelimit_budget=100_000) as server:
        server.add_posts(20, subreddit="alpha")
        server.add_posts(20, subreddit="beta")
        beta = run("b", *stream_of(server, db, "b", "beta"))
        wait_for(lambda: set(of(server, "beta")) <= set(stored(pg_cluster, pg_database)))
        alpha = run("a", *stream_of(server, db, "a", "alpha"))
        wait_for(lambda: set(of(server, "alpha")) <= set(stored(pg_cluster, pg_database)))
        assert alpha.stop() == 0 and beta.stop() == 0
    # Nothing of r/alpha was ever stored before, so nothing of it can be missing.
    clean(beta)
    clean(alpha)


def test_refresh_streams_of_different_subreddits_split_the_due_items(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str, tmp_path: Path
) -> None:
    db = url(pg_cluster, pg_database)
    with FakeReddit(ratelimit_budget=100_000) as server:
        # Due: posts of a subreddit neither stream follows, stored long ago.
        names = archived(run, server, db, tmp_path, 2000, "old")
        server.add_posts(10, subreddit="alpha")
        server.add_posts(10, subreddit="beta")
        server.inject(*[Fault.slow(0.1)] * 40, endpoint="info")
        refresh = ("--refresh", "--older-than", "1h")
        with (
            feeding(server, ["alpha", "beta"], 10),
            locked(pg_cluster, pg_database, ["posts"]) as waiting,
        ):
            streams = {
                name: run(name, *stream_of(server, db, name, sub, *refresh))
                for name, sub in (("a", "alpha"), ("b", "beta"))
            }
            wait_for(lambda: waiting() == 2, timeout=60)
        unchecked = "SELECT count(*) FROM posts WHERE refreshed_utc IS NULL AND subreddit = 'old'"
        wait_for(lambda: query(pg_cluster, pg_database, unchecked) == [[0]], timeout=60)
        wait_for(lambda: set(of(server, "alpha")[-1:] + of(server, "beta")[-1:]) <= set(
            stored(pg_cluster, pg_database)))  # fmt: skip
        # Not in the middle of a check: one stopped inside its write goes uncounted (see
        # test_a_check_stopped_inside_its_write_is_counted).
        time.sleep(0.5)
        for proc in streams.values():
            assert proc.stop() == 0, proc.stderr[-3000:]
        times = asked(server)
        shares = {name: asked_by(server, name) for name in streams}
    assert [n for n, k in times.items() if k > 1] == []
    assert set(times) == set(names)  # the posts just made are not due for an hour
    assert all(shares.values()), {k: len(v) for k, v in shares.items()}
    names_now = set(stored(pg_cluster, pg_database))
    for sub in ("alpha", "beta"):
        nothing_lost(names_now, of(server, sub))
    for name, proc in streams.items():
        found = re.search(r"refreshed posts: ([\d,]+) checked", proc.stderr)
        assert found and int(found.group(1).replace(",", "")) == len(shares[name]), proc.stderr
        clean(proc)


def test_a_check_stopped_inside_its_write_is_counted(
    run: Callable[..., Process], pg_cluster: Cluster, pg_database: str, tmp_path: Path
) -> None:
    db = url(pg_cluster, pg_database)
    with FakeReddit(ratelimit_budget=100_000) as server:
        names = archived(run, server, db, tmp_path, 100, "old")  # one batch
        server.add_posts(5, subreddit="alpha")
        server.inject(Fault.slow(3), endpoint="info")
        proc = run(
            "a",
            *stream_of(
                server, db, "a", "alpha", "--refresh", "--older-than", "1h", "--timeout", "10"
            ),
        )
        wait_for(lambda: len(server.info_requests()) == 1)
        # While /api/info answers, the test takes the batch's rows: the write waits.
        conn = pg_cluster.connect(pg_database, tls=False)
        try:
            conn.run("BEGIN")
            conn.run("SELECT 1 FROM posts WHERE subreddit = 'old' FOR UPDATE")
            wait_for(lambda: query(pg_cluster, pg_database, WAITING) == [[1]])
            proc.proc.terminate()  # inside the write: the stop waits for its commit
            time.sleep(0.5)
            conn.run("COMMIT")
        finally:
            conn.close()
        assert proc.wait() == 0, proc.stderr
    done = "SELECT count(*) FROM posts WHERE refreshed_utc IS NOT NULL"
    assert query(pg_cluster, pg_database, done) == [[len(names)]]  # the batch was written
    assert "refreshed posts: 100 checked" in proc.stderr, proc.stderr
