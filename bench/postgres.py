"""Section 9 of bench/run.py: a PostgreSQL database against a SQLite file.

    .bench/bin/python bench/run.py --only postgres [--runs 5]

- replay: one NDJSON dump replayed by the built .pyz into a fresh SQLite file and into a
  fresh PostgreSQL database over TCP on 127.0.0.1, with TLS (sslmode=require) and
  without (sslmode=disable), alternated round by round; rates are medians, ratios are
  taken round by round (PostgreSQL's time against SQLite's in the same round).
- latency: a stream of each at a steady feed, the two at once (threads, as in section 3);
  a thread of this process reads each database every POLL seconds on a connection of its
  own, so "committed" means readable by another client.
- takeover: two streams of one PostgreSQL database; the leader is killed (-9) again and
  again while the feed runs, and the standby's takeover is timed from the kill.

The server is tests/pgcluster.py's throwaway PostgreSQL 15 with its test settings undone:
fsync, full_page_writes and synchronous_commit on (the server's defaults), its data on
the same filesystem as the SQLite files. tests/pgcluster.py needs pg8000: when the bench
environment lacks it, the copy inside the build under test is used (pure Python).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.fakereddit import FakeReddit

FEED = 20  # posts a second, for the latency and takeover runs
POLL = 0.02  # seconds between two reads of the watching connection
MARGIN = 5.0  # seconds: a batch commits this soon after its rows are built (retrieved_utc)
KILLS = 5  # takeovers timed (each a kill -9 of the leader)
SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[int(share * (len(ordered) - 1))]


def pgcluster(pyz: Path) -> ModuleType:
    """tests/pgcluster.py, with pg8000 from the bench environment or else from `pyz`; its
    clusters made under the system's temporary folder, where the SQLite files go (its
    default, /dev/shm first, is a tmpfs, on which fsync costs nothing)."""
    try:
        import pg8000  # noqa: F401
    except ImportError:
        sys.path.append(str(pyz))  # after the bench's own packages and the source tree
    from tests import pgcluster as module

    module.TMP_DIRS = (tempfile.gettempdir(),)  # type: ignore[attr-defined]
    return module


def durable(module: ModuleType) -> Any:
    """A started cluster whose server runs with PostgreSQL's own durability settings."""

    class Durable(module.Cluster):  # type: ignore[name-defined,misc]
        def _options(self) -> str:
            options = str(super()._options())
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                options = options.replace(f"{name}=off", f"{name}=on")
            return options

    return module.start_cluster(Durable)


def filesystem(path: str) -> str:
    """The type and device of the filesystem `path` is on, from /proc/mounts."""
    best = ("", "?", "?")
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, kind = line.split()[:3]
            if (path + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best[0]):
                best = (point, kind, device)
    return f"{best[1]} on {best[2]}"


def section(
    pyz: Path, posts: int, seconds: float, warm_up: float, kills: int, runs: int
) -> list[tuple[str, str]]:
    module = pgcluster(pyz)
    cluster = durable(module)
    try:
        with cluster.connect(tls=False) as conn:
            version = conn.run("SHOW server_version")[0][0].split()[0]
            shown = [f"{name}={conn.run(f'SHOW {name}')[0][0]}" for name in SETTINGS]
        where = tempfile.gettempdir()
        rows = [
            (
                "server; settings; where both databases are",
                f"PostgreSQL {version} on 127.0.0.1 (TCP), {', '.join(shown)}, other settings "
                f"its defaults; SQLite {sqlite3.sqlite_version} as redpipe opens it "
                f"(journal_mode=WAL, synchronous=NORMAL); both in {where} "
                f"({filesystem(where)})",
            )
        ]
        rows += replay(pyz, cluster, posts, runs)
        rows += latency(pyz, cluster, seconds, warm_up)
        rows += takeover(pyz, cluster, seconds / 2, warm_up, kills)
        return rows
    finally:
        cluster.close()


# Replay ------------------------------------------------------------------------------------

# (label, database, extra arguments): "sqlite", or the sslmode of a PostgreSQL URL, with
# "+async" for a database whose commits do not wait for the disk (synchronous_commit=off).
REPLAYS = (
    ("SQLite", "sqlite", ()),
    ("PostgreSQL, TLS (sslmode=require)", "require", ()),
    ("PostgreSQL, no TLS (sslmode=disable)", "disable", ()),
    ("PostgreSQL, no TLS, synchronous_commit=off", "disable+async", ()),
    ("SQLite --raw", "sqlite", ("--raw",)),
    ("PostgreSQL, TLS, --raw (jsonb)", "require", ("--raw",)),
)


def replay(pyz: Path, cluster: Any, posts: int, runs: int) -> list[tuple[str, str]]:
    from bench.run import env, make_ndjson, scratch  # here: bench/run.py imports this module

    times: dict[str, list[float]] = {label: [] for label, _, _ in REPLAYS}
    stored: dict[str, set[int]] = {label: set() for label, _, _ in REPLAYS}
    with scratch() as tmp:
        data = tmp / "RS_pg.ndjson"
        make_ndjson(data, posts)
        size = data.stat().st_size
        environ = {**env(), **cluster.env()}
        for i in range(runs):
            for label, kind, more in REPLAYS:
                name = None
                if kind == "sqlite":
                    target = str(tmp / f"r{i}{len(more)}.sqlite")
                else:
                    name = cluster.create_database()
                    if kind.endswith("+async"):
                        with cluster.connect(tls=False) as conn:
                            conn.run(f"ALTER DATABASE {name} SET synchronous_commit = off")
                    target = f"{cluster.url(name)}?sslmode={kind.split('+')[0]}"
                started = time.perf_counter()
                subprocess.run([sys.executable, str(pyz), "replay", target, str(data), "-q",
                                *more], env=environ, check=True)  # fmt: skip
                times[label].append(time.perf_counter() - started)
                if name is None:
                    with contextlib.closing(sqlite3.connect(target)) as db:
                        stored[label].add(db.execute("SELECT count(*) FROM posts").fetchone()[0])
                    Path(target).unlink()
                else:
                    with cluster.connect(name, tls=False) as conn:
                        stored[label].add(conn.run("SELECT count(*) FROM posts")[0][0])
                    cluster.drop_database(name)
    rows = [("replay: dump", f"{posts:,} posts, NDJSON, {size:,} bytes; {runs} rounds")]
    for label, _, more in REPLAYS:
        base = "SQLite --raw" if more else "SQLite"
        took = times[label]
        cell = f"{posts / median(took):,.0f} posts/s"
        if label != base:
            ratio = median([b / t for b, t in zip(times[base], took)])
            cell += f", {ratio:.2f}x SQLite's rate"
        counts = stored[label]
        if counts != {posts}:
            cell += f" (rows stored: {', '.join(map(str, sorted(counts)))})"
        rows.append((f"replay (whole process), {label}", cell))
    return rows


# Stream latency ----------------------------------------------------------------------------


class Watch:
    """A thread that reads a database every POLL seconds on a connection of its own and
    notes when each post first became readable (the start of the first read that saw
    it: the commit came before) and its retrieved_utc (when redpipe built the row)."""

    def __init__(self, read: Callable[[float], list[tuple[str, float]]]) -> None:
        self._read = read
        self.seen: dict[str, float] = {}
        self.built: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        mark = 0.0
        while not self._stop.wait(POLL):
            began = time.time()
            try:
                got = self._read(mark - MARGIN)
            except Exception:  # not made yet, or the server restarting: read again
                continue
            for name, built in got:
                if name not in self.seen:
                    self.seen[name] = began
                    self.built[name] = built
                    mark = max(mark, built)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def sqlite_reader(db: Path) -> Callable[[float], list[tuple[str, float]]]:
    conn: list[sqlite3.Connection] = []

    def read(since: float) -> list[tuple[str, float]]:
        if not conn:
            if not db.exists():  # connecting would make it
                return []
            conn.append(sqlite3.connect(db, check_same_thread=False, timeout=30))
        query = "SELECT fullname, retrieved_utc FROM posts WHERE retrieved_utc >= ?"
        return list(conn[0].execute(query, (since,)))

    return read


def pg_reader(cluster: Any, name: str) -> Callable[[float], list[tuple[str, float]]]:
    conn = cluster.connect(name, tls=False)
    query = "SELECT fullname, retrieved_utc FROM posts WHERE retrieved_utc >= :since"
    return lambda since: [(n, float(r)) for n, r in conn.run(query, since=since)]


def stream_latency(
    pyz: Path,
    target: str,
    read: Callable[[float], list[tuple[str, float]]],
    environ: dict[str, str],
    seconds: float,
    warm_up: float,
    out: dict[str, Any],
) -> None:
    server = FakeReddit(track_times=True).start()
    server.add_posts(100)
    watch = Watch(read)
    cmd = [sys.executable, str(pyz), target, "--base-url", server.url, "--auth-url", server.url]
    proc = subprocess.Popen(
        [*cmd, "-q"], env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        server.start_feed(FEED)
        time.sleep(warm_up)  # the first page, and the climb of the poll rate
        first = len(server.posts)
        time.sleep(seconds)
        server.stop_feed()
        published = [p["name"] for p in server.posts[first:]]
        time.sleep(12)  # time to fetch what was published last
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        watch.stop()
        server.stop()
    times = server.published or {}
    captured = [n for n in published if n in watch.seen]
    out["captured"] = (len(captured), len(published))
    out["visible"] = sorted(watch.seen[n] - times[n] for n in captured)
    out["commit"] = sorted(watch.seen[n] - watch.built[n] for n in captured)
    out["built"] = sorted(watch.built[n] - times[n] for n in captured)


def latency(pyz: Path, cluster: Any, seconds: float, warm_up: float) -> list[tuple[str, str]]:
    from bench.run import env, scratch  # here: bench/run.py imports this module

    results: dict[str, dict[str, Any]] = {"SQLite": {}, "PostgreSQL, TLS": {}}
    with scratch() as tmp:
        db = tmp / "latency.sqlite"
        name = cluster.create_database()
        environ = {**env(), **cluster.env()}
        runs = [
            (str(db), sqlite_reader(db), results["SQLite"]),
            (f"{cluster.url(name)}?sslmode=require", pg_reader(cluster, name),
             results["PostgreSQL, TLS"]),
        ]  # fmt: skip
        threads = [
            threading.Thread(
                target=stream_latency, args=(pyz, target, read, environ, seconds, warm_up, out)
            )
            for target, read, out in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rows = []
    for label, r in results.items():
        got, published = r["captured"]
        rows.append(
            (
                f"stream at {FEED} posts/s for {seconds:.0f} s (after {warm_up:.0f} s), {label}: "
                "posts captured; published -> committed (readable by another connection), "
                "p50 / p99; of which rows built -> committed",
                f"{got:,}/{published:,}; {spread(r['visible'], 1, 's', 2)}; "
                f"{spread(r['commit'], 1000, 'ms', 0)}",
            )
        )
    return rows


def spread(ordered: list[float], scale: float, unit: str, digits: int) -> str:
    """ "p50 / p99" of sorted values, in `unit` (`scale` of them a second)."""
    if not ordered:
        return "-"
    p50, p99 = (scale * percentile(ordered, share) for share in (0.5, 0.99))
    return f"{p50:.{digits}f} {unit} / {p99:.{digits}f} {unit}"


# Takeover ----------------------------------------------------------------------------------


def agent(name: str) -> str:
    return f"bench:redpipe-{name}:v1"


def requests_by(server: FakeReddit, since: float, until: float) -> dict[str, int]:
    """Listing requests in [since, until) (monotonic), by User-Agent."""
    counts: dict[str, int] = {}
    for r in server.listing_requests():
        if since <= r.time < until:
            who = r.headers.get("user-agent", "")
            counts[who] = counts.get(who, 0) + 1
    return counts


def logged(proc: Any, text: str) -> Callable[[], bool]:
    return lambda: text in proc.stderr


def kill(
    leader: Any, standby: Any, server: FakeReddit, watch: Watch, until: Callable[..., float]
) -> tuple[float, float]:
    """kill -9 `leader`: seconds until `standby` logs that it leads, and until the first
    post published after the kill (only the new leader can have stored it) is committed."""
    held, killed = len(server.posts), time.time()
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    led = until(logged(standby, "leading "))

    def later() -> list[str]:
        return [p["name"] for p in server.posts[held:] if p["name"] in watch.seen]

    until(lambda: bool(later()))
    return led - killed, min(watch.seen[n] for n in later()) - killed


def takeover(
    pyz: Path, cluster: Any, span: float, warm_up: float, kills: int
) -> list[tuple[str, str]]:
    from bench.run import env, scratch  # here: bench/run.py imports this module
    from tests.pgproc import Process

    name = cluster.create_database()
    url = f"{cluster.url(name)}?sslmode=require"
    environ = {**env(), **cluster.env()}
    server = FakeReddit(track_times=True).start()
    server.add_posts(30)
    watch = Watch(pg_reader(cluster, name))
    procs: list[Process] = []
    with scratch() as tmp:

        def start(n: int) -> Process:
            args = [url, "--base-url", server.url, "--auth-url", server.url,
                    "--user-agent", agent(str(n))]  # fmt: skip
            proc = Process(Path(sys.executable), pyz, args, environ, tmp / f"{n}.log")
            procs.append(proc)
            return proc

        def until(condition: Callable[[], bool], timeout: float = 60) -> float:
            """time.time() once `condition` holds."""
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out; logs: {[p.stderr[-500:] for p in procs]}")
                time.sleep(0.01)
            return time.time()

        try:
            leader = start(0)
            until(logged(leader, "leading "))
            server.start_feed(FEED)
            time.sleep(warm_up)
            t0 = time.monotonic()
            time.sleep(span)
            t1 = time.monotonic()
            standby = start(1)
            until(logged(standby, "standing by: "))
            t2 = time.monotonic()
            time.sleep(span)
            t3 = time.monotonic()
            alone, both = requests_by(server, t0, t1), requests_by(server, t2, t3)
            lead, follow = [], []
            for k in range(kills):
                led, stored = kill(leader, standby, server, watch, until)
                lead.append(led)
                follow.append(stored)
                leader, standby = standby, start(k + 2)
                until(logged(standby, "standing by: "))
                time.sleep(3)  # the new leader polls at its pace before the next kill
            server.stop_feed()
            newest = server.posts[-1]["name"]
            until(lambda: newest in watch.seen)
        finally:
            for proc in procs:
                proc.kill()
            watch.stop()
            server.stop()
    with cluster.connect(name, tls=False) as conn:
        names = [r[0] for r in conn.run("SELECT fullname FROM posts")]
    listed = [p["name"] for p in server.posts]
    first = min(listed.index(n) for n in names)
    missing = len(set(listed[first:]) - set(names))
    a_ours = alone.get(agent("0"), 0)
    b_all = sum(both.values())
    return [
        (
            f"standby pair, one database (TLS), {FEED} posts/s: listing requests in "
            f"{span:.0f} s, the leader alone / leader and standby (of which the standby's)",
            f"{a_ours} / {b_all} ({both.get(agent('1'), 0)}); {b_all / max(1, a_ours):.2f}x",
        ),
        (
            f"takeover after kill -9 of the leader, {kills} times: kill -> standby logs "
            '"leading", median / max (issue: within 5 s)',
            f"{median(lead):.2f} s / {max(lead):.2f} s",
        ),
        (
            "takeover: kill -> first post published after the kill committed by the new "
            "leader, median / max",
            f"{median(follow):.2f} s / {max(follow):.2f} s",
        ),
        (
            "takeover: posts the server holds from the first stored one, stored; missing; "
            "duplicates",
            f"{len(listed) - first:,}; {missing}; {len(names) - len(set(names))}",
        ),
    ]
