"""Faults and bad input on a PostgreSQL database, for real: the built .pyz under the floor
CPython (and, where cheap, the newest) against a real PostgreSQL 15 server that is
restarted, stopped, made read-only or given a full disk while it works, that refuses the
login, or that is not there at all; and URLs redpipe must refuse before connecting.

Each problem is one line naming the server (postgresql://user@host:port/database), never
the password, with no traceback; what was committed is whole, and a run after the fault
has passed stores exactly what was left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg8000.native import identifier, literal

from tests.conftest import SUPPORTED
from tests.fakereddit import FakeReddit
from tests.pgcluster import Cluster, server_user
from tests.pgproc import Process, environment, query, stored, stream_args
from tests.pgproc import wait_for as _wait_for

pytestmark = pytest.mark.slow
FLOOR, NEWEST = SUPPORTED[0][0], SUPPORTED[-1][0]
VERSIONS = sorted({FLOOR, NEWEST})
PATIENCE = 20.0  # Session's: how long a sink reconnects before it gives the batch up
WHERE = re.compile(r"postgresql://[^@\s]+@[^:\s]+:\d+/\S+")
# A stream's first polls come --interval apart; one that finds nothing new sets the pace
# to an idle listing's, 30 s: half a second at 20 posts/s always finds some, even on a
# busy box where 0.1 s (stream_args's) may not.
STEADY = ("--interval", "0.5")
WARM: set[str] = set()  # the versions that have started the .pyz once in this process


# -- running the .pyz ----------------------------------------------------------------------


@dataclass
class Ran:
    status: int
    stderr: str
    seconds: float


@pytest.fixture
def redpipe(pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path) -> Callable[..., Ran]:
    """run(args, env, version=FLOOR, timeout=60): one run of the .pyz to its end, in an
    empty folder of its own (`tmp_path/cwd`, to see it create nothing there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def run(args: list[str], env: dict[str, str], version: str = FLOOR, timeout: float = 60) -> Ran:
        if version not in WARM:
            # A worker's first start of the .pyz compiles it into the cache, which takes
            # seconds on a busy box: not to be counted against --timeout.
            subprocess.run([str(empty_python(version)), str(pyz), "--version"], check=True,
                           capture_output=True, timeout=120, env=env)  # fmt: skip
            WARM.add(version)
        started = time.monotonic()
        result = subprocess.run(
            [str(empty_python(version)), str(pyz), *args],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        return Ran(result.returncode, result.stderr, time.monotonic() - started)

    return run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def background(
    pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Process]]:
    """start(args, env, version=FLOOR): a .pyz in the background (killed after the test)."""
    monkeypatch.chdir(tmp_path)  # whatever it might create lands here, not in the repo
    running: list[Process] = []

    def start(args: list[str], env: dict[str, str], version: str = FLOOR) -> Process:
        proc = Process(empty_python(version), pyz, args, env, tmp_path / f"{len(running)}.log")
        running.append(proc)
        return proc

    yield start
    for proc in running:
        proc.kill()


def wait_for(
    condition: Callable[[], bool], timeout: float = 30, proc: Process | None = None
) -> float:
    """pgproc's wait_for, telling on a timeout what the process said, and if it exited."""
    try:
        return _wait_for(condition, timeout)
    except AssertionError:
        if proc is None:
            raise
        exited = proc.proc.poll()
        state = "runs" if exited is None else f"exited {exited}"
        raise AssertionError(
            f"timed out after {timeout}s; the process {state}, and said:\n{proc.stderr[-3000:]}"
        ) from None


def command_args(command: str, url: str, dump: Path | None) -> list[str]:
    """The arguments of `command` on `url`; a stream's Reddit is a port nobody listens on
    (it must not get that far)."""
    if command == "replay":
        assert dump is not None
        return ["replay", url, str(dump)]
    if command == "refresh":
        return ["refresh", url]
    return [url, "--base-url", "http://127.0.0.1:9", "--auth-url", "http://127.0.0.1:9"]


def one_error_line(text: str) -> str:
    """The only line of `text`, an error naming a server: no traceback, nothing else."""
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("redpipe: error: "), text
    return lines[0]


def names_the_server(line: str, user: str, host: str, port: int, database: str) -> None:
    assert f"postgresql://{user}@{host}:{port}/{database}" in line, line


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("redpipe: error: ")]


# -- what the server and the database hold ------------------------------------------------


def listed(server: FakeReddit) -> list[str]:
    return [p["name"] for p in server.posts]


def exact(cluster: Cluster, database: str, server: FakeReddit) -> list[str]:
    """Every post the server holds from the first stored one on is stored, once."""
    names = stored(cluster, database)
    (total, distinct), = query(cluster, database,
                               "SELECT count(*), count(DISTINCT fullname) FROM posts")  # fmt: skip
    assert total == distinct == len(names) > 0
    order = listed(server)
    assert set(names) <= set(order), "stored a post the server never had"
    first = min(order.index(n) for n in names)
    missing = [n for n in order[first:] if n not in set(names)]
    assert not missing, f"{len(missing)} posts missing, e.g. {missing[:3]}"
    return names


def whole(cluster: Cluster, database: str, server: FakeReddit) -> int:
    """What a stream stored is whole batches: no repeats, no gap between the first and the
    last stored, and each row as the server has it. How many rows."""
    rows = query(cluster, database, "SELECT fullname, title, created_utc, author FROM posts")
    names = [r[0] for r in rows]
    assert len(names) == len(set(names))
    order = listed(server)
    spots = sorted(order.index(n) for n in names)
    assert spots == list(range(spots[0], spots[-1] + 1)), "a gap: part of a batch is missing"
    for fullname, title, created, author in rows:
        item = server.item(fullname)
        assert item is not None
        assert (title, int(created), author) == (item["title"], int(item["created_utc"]),
                                                 item["author"])  # fmt: skip
    return len(rows)


def checkpoint(cluster: Cluster, database: str) -> tuple[int, bool] | None:
    if not query(cluster, database, "SELECT to_regclass('redpipe_replay') IS NOT NULL")[0][0]:
        return None
    got = query(cluster, database, "SELECT lines, finished FROM redpipe_replay")
    assert len(got) <= 1
    return (int(got[0][0]), bool(got[0][1])) if got else None


def tables(cluster: Cluster, database: str) -> list[str]:
    rows = query(cluster, database,
                 "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")  # fmt: skip
    return sorted(r[0] for r in rows)


def write_dump(path: Path, n: int) -> list[str]:
    """A dump of `n` posts, one a line, as Reddit listed them."""
    with FakeReddit() as server:
        posts = server.add_posts(n)
    path.write_text("".join(json.dumps(p) + "\n" for p in posts))
    return [p["name"] for p in posts]


def backends(cluster: Cluster, database: str, **where: str) -> list[int]:
    """The pids of redpipe's connections to `database` (application_name redpipe)."""
    sql = "SELECT pid FROM pg_stat_activity WHERE datname = :d AND application_name = 'redpipe'"
    for column in where:
        sql += f" AND {column} = :{column}"
    return [r[0] for r in query(cluster, "postgres", sql, d=database, **where)]


@contextlib.contextmanager
def locked_posts(cluster: Cluster, database: str) -> Iterator[None]:
    """The posts table share-locked from another connection while the block runs: the
    next batch redpipe inserts waits, in flight, until the block ends (or the lock's
    connection dies)."""
    conn = cluster.connect(database)
    try:
        conn.run("BEGIN")
        conn.run("LOCK TABLE posts IN SHARE MODE")
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def a_batch_waits(cluster: Cluster, database: str) -> None:
    wait_for(lambda: bool(backends(cluster, database, wait_event_type="Lock")), timeout=20)


# -- 1. a server restarted, or gone for longer than the sink's patience -------------------


def leading(proc: Process) -> bool:
    return "redpipe: leading r/all posts" in proc.stderr


def outage_lines(text: str) -> tuple[list[str], list[str]]:
    """The "...; reconnecting" and "...: reconnected" lines (Session.run's wording)."""
    lines = text.splitlines()
    return ([line for line in lines if line.endswith("; reconnecting")],
            [line for line in lines if line.endswith(": reconnected")])  # fmt: skip


def recovered(cluster: Cluster, database: str, proc: Process, outages: int) -> None:
    """Wait until the stream stores again after its `outages`th outage, and says so."""
    count = len(stored(cluster, database))
    wait_for(lambda: len(stored(cluster, database)) > count + 20, timeout=20, proc=proc)
    wait_for(lambda: len(outage_lines(proc.stderr)[1]) >= outages, timeout=10, proc=proc)


def test_two_restarts_mid_stream_lose_nothing_and_each_is_one_line(
    background: Callable[..., Process], private_cluster: Cluster, home: Path
) -> None:
    cluster = private_cluster
    database = cluster.create_database()
    url = cluster.url(database) + "?sslmode=verify-full"
    with FakeReddit() as server:
        server.add_posts(30)
        server.start_feed(20)
        proc = background(stream_args(url, server, *STEADY), environment(cluster, home))
        wait_for(lambda: leading(proc) and bool(stored(cluster, database)), proc=proc)
        port = cluster.port
        # The first restart while a batch is in flight: its insert waits on a lock, so the
        # restart ends its transaction half-way, and the batch must be written again.
        with locked_posts(cluster, database):
            a_batch_waits(cluster, database)
            cluster.restart()
        assert cluster.port == port
        recovered(cluster, database, proc, 1)
        cluster.restart()  # the second, wherever the stream is
        recovered(cluster, database, proc, 2)
        server.stop_feed()
        wait_for(
            lambda: listed(server)[-1] in set(stored(cluster, database)), timeout=20, proc=proc
        )
        assert proc.proc.poll() is None
        assert proc.stop() == 0
    exact(cluster, database, server)
    err = proc.stderr
    assert "Traceback" not in err
    down, back = outage_lines(err)
    assert len(down) == 2 and len(back) == 2, err
    for line in down + back:
        assert line.startswith("redpipe: warning: "), line
        names_the_server(line, cluster.admin, cluster.host, port, database)
        assert line.count("postgresql://") == 1, line
    assert all("the server is unreachable" in line for line in down), down
    assert not error_lines(err)
    assert cluster.password not in err


def test_an_outage_longer_than_patience_stands_by_then_leads_and_catches_up(
    background: Callable[..., Process], private_cluster: Cluster, home: Path
) -> None:
    cluster = private_cluster
    database = cluster.create_database()
    with FakeReddit() as server:
        server.add_posts(30)
        server.start_feed(20)
        proc = background(
            stream_args(cluster.url(database), server, *STEADY), environment(cluster, home), NEWEST
        )
        wait_for(lambda: leading(proc) and bool(stored(cluster, database)), proc=proc)
        port = cluster.port
        cluster.stop()
        down = time.monotonic()
        # The stream gives up on the server (its lease runs out, or a batch's patience),
        # stands by and keeps asking; it must not exit, however long the server is away.
        wait_for(lambda: "; standing by" in proc.stderr, timeout=PATIENCE + 10, proc=proc)
        wait_for(
            lambda: "redpipe: standing by for r/all posts: " in proc.stderr, timeout=10, proc=proc
        )
        time.sleep(max(0.0, down + PATIENCE + 1 - time.monotonic()))
        assert proc.proc.poll() is None, proc.stderr
        last = listed(server)[-1]  # published while the server was away
        cluster.start()
        assert cluster.port == port
        wait_for(
            lambda: proc.stderr.count("redpipe: leading r/all posts") == 2, timeout=15, proc=proc
        )
        server.stop_feed()
        wait_for(
            lambda: listed(server)[-1] in set(stored(cluster, database)), timeout=20, proc=proc
        )
        assert proc.stop() == 0
    assert last in exact(cluster, database, server)
    err = proc.stderr
    assert "Traceback" not in err and not error_lines(err)
    told, back = outage_lines(err)
    assert len(told) == 1 and len(back) == 1, err  # one outage, however many retries
    assert all(line.count("postgresql://") == 1 for line in told + back), err
    assert cluster.password not in err


# -- 2. nothing to connect to -----------------------------------------------------------------


@contextlib.contextmanager
def syn_blackhole() -> Iterator[int]:
    """A port whose connection attempts go unanswered, as behind a firewall that drops
    them: a listener that never accepts, its queue full, so the kernel drops new SYNs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            probe = socket.socket()
            fillers.append(probe)
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except socket.timeout:
                break
        else:
            pytest.fail("the listener's queue never filled")
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("command", ["stream", "replay", "refresh"])
def test_a_port_nothing_listens_on_is_one_line_exit_3(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, home: Path, tmp_path: Path,
    command: str, version: str,
) -> None:  # fmt: skip
    port = unused_port()
    url = f"postgresql://someone@127.0.0.1:{port}/archive"
    dump = tmp_path / "dump.ndjson"
    write_dump(dump, 3)
    ran = redpipe([*command_args(command, url, dump), "--timeout", "2"],
                  environment(pg_cluster, home), version)  # fmt: skip
    assert ran.status == 3, ran.stderr
    line = one_error_line(ran.stderr)
    names_the_server(line, "someone", "127.0.0.1", port, "archive")
    assert "unreachable" in line and "refused" in line, line
    assert pg_cluster.password not in ran.stderr
    assert ran.seconds < 2 + 2
    assert not list((tmp_path / "cwd").iterdir()) and not list(home.iterdir())


@pytest.mark.parametrize("where", ["dropped SYNs", "accepted, never answered", "10.255.255.1"])
def test_an_unanswering_server_is_given_up_within_timeout(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, home: Path, tmp_path: Path, where: str
) -> None:
    """10.255.255.1 is a blackhole on most networks, unreachable on some, and intercepted
    by a proxy on others (the sandbox this was written in): within the timeout, one line,
    all the same. The two local ones are the same on every machine."""
    timeout = 2
    with contextlib.ExitStack() as stack:
        if where == "10.255.255.1":
            host, port = "10.255.255.1", 5432
        else:
            host = "127.0.0.1"
            port = stack.enter_context(
                syn_blackhole() if where == "dropped SYNs" else silent_server()
            )
        url = f"postgresql://someone@{host}:{port}/archive"
        args = [*command_args("stream", url, None), "--timeout", str(timeout)]
        ran = redpipe(args, environment(pg_cluster, home))
    assert ran.status == 3, ran.stderr
    line = one_error_line(ran.stderr)
    names_the_server(line, "someone", host, port, "archive")
    assert ran.seconds < timeout + 2, f"{ran.seconds:.1f}s"
    if where != "10.255.255.1":
        assert "timed out" in line, line
    assert pg_cluster.password not in ran.stderr
    assert not list((tmp_path / "cwd").iterdir()) and not list(home.iterdir())


# -- 3. the server says no ----------------------------------------------------------------


@pytest.fixture
def role(pg_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A login role of the test's own (roles are the cluster's, not a database's) and its
    password, dropped after."""
    name, password = f"app_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    pg_cluster.create_role(name, password)
    yield name, password
    with pg_cluster.connect(tls=False) as conn:
        conn.run(f"DROP OWNED BY {identifier(name)}")
        conn.run(f"DROP ROLE {identifier(name)}")


@pytest.mark.parametrize("case", ["wrong password", "unknown role", "no such database",
                                  "no CREATE on public"])  # fmt: skip
def test_a_refused_login_or_schema_is_one_line_exit_3_without_the_password(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, pg_database: str, home: Path,
    role: tuple[str, str], case: str,
) -> None:  # fmt: skip
    name, password = role
    user, database, given = {
        "wrong password": (pg_cluster.admin, pg_database, pg_cluster.password + "x"),
        "unknown role": ("nobody_here", pg_database, password),
        "no such database": (pg_cluster.admin, "no_such_db", pg_cluster.password),
        # PostgreSQL 15: public is its owner's (the admin's) alone to create in.
        "no CREATE on public": (name, pg_database, password),
    }[case]
    url = pg_cluster.url(database, user) + "?sslmode=verify-full"
    with FakeReddit() as server:
        ran = redpipe([*stream_args(url, server)], environment(pg_cluster, home, PGPASSWORD=given))
        asked = len(server.requests)
    assert ran.status == 3, ran.stderr
    line = one_error_line(ran.stderr)
    names_the_server(line, user, pg_cluster.host, pg_cluster.port, database)
    expected = {"wrong password": "refused user", "unknown role": "refused user",
                "no such database": "does not exist",
                "no CREATE on public": "permission denied"}[case]  # fmt: skip
    assert expected in line, line
    for secret in (given, password, pg_cluster.password):
        assert secret not in ran.stderr
    assert ran.seconds < 2 + 2  # within stream_args's --timeout 2
    assert asked == 0  # Reddit is not asked for anything the database cannot keep
    assert tables(pg_cluster, pg_database) == []


# -- 4. a read-only server ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["stream", "replay"])
def test_a_read_only_database_is_one_line_exit_3(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, pg_database: str, home: Path,
    tmp_path: Path, command: str,
) -> None:  # fmt: skip
    with pg_cluster.connect(tls=False) as conn:
        conn.run(f"ALTER DATABASE {identifier(pg_database)} SET default_transaction_read_only = on")
    url = pg_cluster.url(pg_database)
    dump = tmp_path / "dump.ndjson"
    write_dump(dump, 10)
    with FakeReddit() as server:
        server.add_posts(10)
        args = stream_args(url, server) if command == "stream" else ["replay", url, str(dump)]
        ran = redpipe(args, environment(pg_cluster, home))
    assert ran.status == 3, ran.stderr
    line = one_error_line(ran.stderr)
    names_the_server(line, pg_cluster.admin, pg_cluster.host, pg_cluster.port, pg_database)
    assert "read-only" in line, line
    assert tables(pg_cluster, pg_database) == []


def test_a_replay_whose_database_turns_read_only_mid_batch_keeps_whole_batches_and_resumes(
    redpipe: Callable[..., Ran], background: Callable[..., Process], pg_cluster: Cluster,
    pg_database: str, home: Path, tmp_path: Path,
) -> None:  # fmt: skip
    dump = tmp_path / "RS_big.ndjson"
    names = write_dump(dump, 20_000)
    url = pg_cluster.url(pg_database)
    env = environment(pg_cluster, home)
    proc = background(["replay", url, str(dump)], env)
    db = identifier(pg_database)
    wait_for(lambda: (checkpoint(pg_cluster, pg_database) or (0, False))[0] >= 1000, 20, proc)
    with locked_posts(pg_cluster, pg_database):
        a_batch_waits(pg_cluster, pg_database)
        with pg_cluster.connect(tls=False) as conn:
            conn.run(f"ALTER DATABASE {db} SET default_transaction_read_only = on")
            # Its connections end mid-batch; the new ones it makes are read-only.
            for pid in backends(pg_cluster, pg_database):
                conn.run("SELECT pg_terminate_backend(:p)", p=pid)
    assert proc.wait(timeout=30) == 3, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    (line,) = error_lines(err)
    names_the_server(line, pg_cluster.admin, pg_cluster.host, pg_cluster.port, pg_database)
    assert "read-only" in line, line
    lines, finished = checkpoint(pg_cluster, pg_database) or (0, False)
    count = len(stored(pg_cluster, pg_database))
    assert not finished and 1000 <= lines < len(names) and lines % 1000 == 0
    assert count == lines  # every line a post: the rows are the batches the checkpoint has
    with pg_cluster.connect(tls=False) as conn:
        conn.run(f"ALTER DATABASE {db} RESET default_transaction_read_only")
    again = redpipe(["replay", url, str(dump)], env)
    assert again.status == 0, again.stderr
    assert f"{len(names):,} lines, {len(names) - lines:,} new posts" in again.stderr
    assert checkpoint(pg_cluster, pg_database) == (len(names), True)
    assert sorted(stored(pg_cluster, pg_database)) == sorted(names)


def test_a_stream_whose_server_turns_read_only_exits_3_with_whole_batches(
    background: Callable[..., Process], private_cluster: Cluster, home: Path
) -> None:
    cluster = private_cluster
    database = cluster.create_database()
    with FakeReddit() as server:
        server.add_posts(30)
        server.start_feed(20)
        args = stream_args(cluster.url(database), server, *STEADY)
        proc = background(args, environment(cluster, home))
        wait_for(lambda: len(stored(cluster, database)) > 60, proc=proc)
        with cluster.connect(tls=False) as conn:  # as a primary demoted to a standby says
            conn.run("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.run("SELECT pg_reload_conf()")
        assert proc.wait(timeout=20) == 3, proc.stderr
        server.stop_feed()
    err = proc.stderr
    assert "Traceback" not in err
    (line,) = error_lines(err)
    names_the_server(line, cluster.admin, cluster.host, cluster.port, database)
    assert "read-only" in line, line
    assert whole(cluster, database, server) > 60


# -- 5. a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Callable[[str], None]]:
    """A 4 MiB tmpfs for a tablespace, owned by the server's user; yields grow(size),
    which remounts it bigger. Needs root (as CI runs the tests), for mount(8)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path = Path(tempfile.mkdtemp(prefix="redpipe-full-", dir="/tmp"))
    owner = server_user() or (os.geteuid(), os.getegid())
    options = f"size=4m,mode=0700,uid={owner[0]},gid={owner[1]}"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    def grow(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)

    grow.path = path  # type: ignore[attr-defined]
    try:
        yield grow
    finally:
        if subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


def test_a_full_disk_mid_replay_is_one_line_exit_3_and_a_rerun_completes_exact(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, home: Path, tmp_path: Path,
    small_disk: Callable[[str], None],
) -> None:  # fmt: skip
    space = f"small_{secrets.token_hex(4)}"
    database = pg_cluster.create_database()
    location = small_disk.path  # type: ignore[attr-defined]
    try:
        with pg_cluster.connect(tls=False) as conn:
            conn.run(f"CREATE TABLESPACE {space} LOCATION {literal(str(location))}")
            conn.run(f"ALTER DATABASE {identifier(database)} SET default_tablespace = {space}")
        dump = tmp_path / "RS_full.ndjson"
        names = write_dump(dump, 10_000)  # about 0.9 MB a thousand with --raw: 4 MiB holds 4
        url = pg_cluster.url(database)
        env = environment(pg_cluster, home)
        ran = redpipe(["replay", url, str(dump), "--raw"], env)
        assert ran.status == 3, ran.stderr
        line = one_error_line(ran.stderr)
        names_the_server(line, pg_cluster.admin, pg_cluster.host, pg_cluster.port, database)
        assert "No space left on device" in line, line
        # Where the rows went, to be sure the disk that filled was the small one.
        (spot,) = query(pg_cluster, database,
                        "SELECT coalesce(t.spcname, '') FROM pg_class c LEFT JOIN pg_tablespace t "
                        "ON t.oid = c.reltablespace WHERE c.relname = 'posts'")  # fmt: skip
        assert spot == [space]
        lines, finished = checkpoint(pg_cluster, database) or (0, False)
        assert not finished and 1000 <= lines < len(names) and lines % 1000 == 0
        assert len(stored(pg_cluster, database)) == lines
        (raw_ok,) = query(pg_cluster, database,
                          "SELECT bool_and(raw->>'name' = fullname) FROM posts")  # fmt: skip
        assert raw_ok == [True]
        small_disk("64m")
        again = redpipe(["replay", url, str(dump), "--raw"], env)
        assert again.status == 0, again.stderr
        assert f"{len(names) - lines:,} new posts" in again.stderr
        assert checkpoint(pg_cluster, database) == (len(names), True)
        assert sorted(stored(pg_cluster, database)) == sorted(names)
    finally:
        pg_cluster.drop_database(database)
        with pg_cluster.connect(tls=False) as conn:
            conn.run(f"DROP TABLESPACE IF EXISTS {space}")


# -- 6. refused before connecting, and nothing of PostgreSQL loaded when not needed -------


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, Callable[[], bool]]]:
    """A port to point URLs at, and whether anything connected to it."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=16)
    sock.settimeout(0.05)

    def connected() -> bool:
        try:
            sock.accept()[0].close()
        except socket.timeout:
            return False
        return True

    try:
        yield sock.getsockname()[1], connected
    finally:
        sock.close()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("command", ["stream", "replay", "refresh"])
@pytest.mark.parametrize("shape", ["user:pass@", "?password=", "user:pa/ss@"])
def test_a_password_in_the_url_is_exit_2_unechoed_and_nothing_is_connected(
    redpipe: Callable[..., Ran], pg_cluster: Cluster, home: Path, tmp_path: Path,
    command: str, shape: str, version: str,
) -> None:  # fmt: skip
    secret = f"Zq{secrets.token_hex(6)}"
    dump = tmp_path / "dump.ndjson"
    write_dump(dump, 3)
    with listener() as (port, connected):
        url = {
            "user:pass@": f"postgresql://someone:{secret}@127.0.0.1:{port}/archive",
            "?password=": f"postgresql://someone@127.0.0.1:{port}/archive?password={secret}",
            "user:pa/ss@": f"postgresql://someone:{secret[:5]}/{secret[5:]}@127.0.0.1:{port}/db",
        }[shape]
        ran = redpipe(command_args(command, url, dump), environment(pg_cluster, home), version)
        assert not connected()
    assert ran.status == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    for part in (secret, secret[:5], secret[5:]):
        assert part not in ran.stderr
    first, _, rest = ran.stderr.partition("\n")
    assert first.startswith("redpipe: error: the database password must not be in the URL")
    assert rest == ""  # one line: the URL's fault, so no usage text after it
    assert not list((tmp_path / "cwd").iterdir()) and not list(home.iterdir())


def imported(stderr: str) -> list[str]:
    """The modules `python -X importtime` says were imported."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line]  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_help_and_sqlite_runs_never_import_pg8000(
    pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path, home: Path, version: str
) -> None:
    python = empty_python(version)
    dump = tmp_path / "dump.ndjson"
    write_dump(dump, 5)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
           "REDPIPE_CLIENT_ID": "test-client", "REDPIPE_CLIENT_SECRET": "test-secret"}  # fmt: skip

    def run(*args: str) -> list[str]:
        result = subprocess.run([str(python), "-X", "importtime", str(pyz), *args], env=env,
                                cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        return imported(result.stderr)

    with FakeReddit() as server:
        server.add_posts(20)
        runs = {
            "--help": run("--help"),
            "replay": run("replay", str(tmp_path / "a.sqlite"), str(dump)),
            "stream": run(str(tmp_path / "b.sqlite"), "--max-records", "10", "--base-url",
                          server.url, "--auth-url", server.url, "--interval", "0.1"),
        }  # fmt: skip
    for what, modules in runs.items():
        assert "pipeline.cli.main" in modules, what  # the probe itself works
        assert not [m for m in modules if m.split(".")[0] in ("pg8000", "scramp")], what
        assert "pipeline.sinks.postgres.sink" not in modules, what
    assert "pipeline.sinks.sqlite.sink" in runs["replay"] and "sqlite3" in runs["stream"]
    # and the same probe does see pg8000 when a URL is given
    with listener() as (port, _):
        result = subprocess.run([str(python), "-X", "importtime", str(pyz), "replay",
                                 f"postgresql://someone@127.0.0.1:{port}/db", str(dump),
                                 "--timeout", "1"],
                                env={**env, "PGPASSWORD": "x"}, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 3
    assert "pg8000" in {m.split(".")[0] for m in imported(result.stderr)}
