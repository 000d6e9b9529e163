"""End to end: the built redpipe.pyz, run as a subprocess by supported CPythons, each in
an empty `venv --without-pip`, against the fake Reddit server.

What can differ between interpreters runs under every one: the start itself (--version,
what --help imports), the compiled copy in the cache (bytecode and its tags are per
interpreter) and one whole stream with a restart. The rest exercises redpipe's own logic
on top of the standard library and runs under the oldest and the newest only
(`@floor_and_newest`): those two also cover both HTTP transports (http.client on 3.9,
requests from 3.10 on).
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.transform.rows import POST_COLUMNS
from tests.conftest import SUPPORTED, query
from tests.fakereddit import FakeReddit, Fault

pytestmark = pytest.mark.slow
VERSIONS = [v for v, _ in SUPPORTED]
ENDS = list(dict.fromkeys([VERSIONS[0], VERSIONS[-1]]))
# For a test of behaviour that is the same on every interpreter; parametrizing `run`
# directly takes precedence over the fixture's own params.
floor_and_newest = pytest.mark.parametrize("run", ENDS, indirect=True)
SECRET = "s3cr3t-do-not-print"


def env_for(server: FakeReddit | None = None, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],  # set by conftest for the session
    }
    if server is not None:
        env["REDPIPE_CLIENT_ID"] = "test-client"
        env["REDPIPE_CLIENT_SECRET"] = SECRET
    env.update(extra)
    return env


def args_for(server: FakeReddit, db: Path, *more: str) -> list[str]:
    return [str(db), "--base-url", server.url, "--auth-url", server.url, "--interval", "0.1", *more]


@pytest.fixture
def server() -> Iterator[FakeReddit]:
    with FakeReddit(client_secret=SECRET) as fake:
        yield fake


@pytest.fixture(params=VERSIONS)
def run(
    request: pytest.FixtureRequest, pyz: Path, empty_python: Callable[[str], Path]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The .pyz under each supported CPython (only the ends with `@floor_and_newest`)."""
    python = empty_python(request.param)

    def go(
        *args: str, env: dict[str, str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), str(pyz), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    go.python = python  # type: ignore[attr-defined]
    go.pyz = pyz  # type: ignore[attr-defined]
    return go


def rows(db: Path) -> list[tuple[str, str]]:
    return query(db, "SELECT fullname, title FROM posts ORDER BY rowid")


def stored(db: Path) -> int:
    """Rows so far, while another process may still be creating the file or schema."""
    try:
        return len(rows(db))
    except sqlite3.OperationalError:
        return 0


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def test_version(run: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run("--version", env=env_for())
    assert result.returncode == 0
    assert result.stdout.strip() == "redpipe 1.0.0"


def test_streams_exact_posts_and_restarts_without_duplicates(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    db = tmp_path / "posts.sqlite"
    server.add_posts(120)
    server.start_feed(100)
    first = run(*args_for(server, db, "--max-records", "160"), env=env_for(server))
    assert first.returncode == 0, first.stderr
    no_traceback(first)
    assert len(rows(db)) == 160
    second = run(*args_for(server, db, "--max-records", "60"), env=env_for(server))
    server.stop_feed()
    assert second.returncode == 0, second.stderr
    stored = rows(db)
    assert len(stored) == 220 == len({name for name, _ in stored})
    truth = {p["name"]: p["title"] for p in server.posts}
    # titles exactly as the author wrote them; everything from the first stored post on
    assert all(truth[name] == title for name, title in stored)
    order = [p["name"] for p in server.posts]
    first_i, last_i = order.index(stored[0][0]), max(order.index(n) for n, _ in stored)
    assert set(order[first_i : last_i + 1]) == {n for n, _ in stored}
    assert SECRET not in first.stderr + first.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@floor_and_newest
def test_a_signal_during_a_hung_request_commits_and_exits_0(
    run: Callable[..., subprocess.CompletedProcess[str]],
    server: FakeReddit,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    db = tmp_path / "posts.sqlite"
    server.add_posts(30)
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [str(python), str(pyz), *args_for(server, db)],
        env=env_for(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while stored(db) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.inject(Fault.hang())
        while not any(r.hung for r in server.requests) and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert elapsed < 1.0
    assert "Traceback" not in err
    assert f"stopped (signal {signum.name}): stored 30 new posts" in err
    assert len(rows(db)) == 30
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


@floor_and_newest
def test_without_credentials_the_block_page_is_one_clear_line(
    run: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    with FakeReddit(require_auth=False, block_unauthenticated=True) as fake:
        started = time.monotonic()
        result = run(str(tmp_path / "p.sqlite"), "--base-url", fake.url, env=env_for())
    assert time.monotonic() - started < 10
    assert result.returncode == 4
    no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1
    assert "REDPIPE_CLIENT_ID" in lines[0] and "REDPIPE_CLIENT_SECRET" in lines[0]


@floor_and_newest
def test_runs_with_home_unset_or_unwritable_and_leaves_nothing_behind(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(10)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # HOME under a regular file cannot be created, not even by root.
    for n, home in enumerate([str(blocker / "home"), None]):
        environment = env_for(server, TMPDIR=str(scratch))
        del environment["XDG_CACHE_HOME"]
        if home is None:
            del environment["HOME"]
        else:
            environment["HOME"] = home
        db = tmp_path / f"p{n}.sqlite"
        result = run(*args_for(server, db, "--max-records", "10"), env=environment)
        assert result.returncode == 0, result.stderr
        assert len(rows(db)) == 10
        assert list(scratch.iterdir()) == []  # temporary files, if any, are gone at exit


@floor_and_newest
def test_bad_databases_are_refused_and_left_unchanged(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    foreign = tmp_path / "tutorial.db"
    with contextlib.closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE posts (ID INTEGER PRIMARY KEY, TITLE CHAR(1000) NOT NULL)")
        conn.execute("INSERT INTO posts (TITLE) VALUES ('hello')")
    for path in (text, foreign):
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        result = run(*args_for(server, path), env=env_for(server))
        assert result.returncode == 3, result.stderr
        no_traceback(result)
        assert len(result.stderr.strip().splitlines()) == 1
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [
            path.name
        ]


@floor_and_newest
def test_usage_errors_exit_2_with_usage(
    run: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    for argv in (["--interval"], ["db", "--max-records", "zero"], ["db", "--bogus"]):
        result = run(*argv, env=env_for())
        assert result.returncode == 2, (argv, result.stderr)
        assert "Usage:" in result.stderr
        no_traceback(result)


@floor_and_newest
def test_verbose_never_prints_the_secret_or_token(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(5)
    result = run(
        *args_for(server, tmp_path / "p.sqlite", "-v", "--max-records", "5"), env=env_for(server)
    )
    assert result.returncode == 0, result.stderr
    assert "GET " in result.stderr  # -v really logs requests
    assert SECRET not in result.stderr + result.stdout
    assert "bearer" not in (result.stderr + result.stdout).lower()


@floor_and_newest
def test_a_terminal_gets_a_live_line_and_quiet_gets_nothing(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(40)
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    argv = [
        str(python),
        str(pyz),
        *args_for(server, tmp_path / "tty.sqlite", "--max-records", "40"),
    ]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env_for(server), stdin=follower, stdout=follower,
                                stderr=follower)  # fmt: skip
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(leader)
    text = output.decode()
    assert "\r\x1b[Kstored 40 (" in text and "| seen again 0 | polls 1" in text
    assert "redpipe: stopped: stored 40 new posts" in text
    quiet = run(*args_for(server, tmp_path / "q.sqlite", "-q", "--max-records", "40"),
                env=env_for(server))  # fmt: skip
    assert quiet.returncode == 0
    assert (quiet.stdout, quiet.stderr) == ("", "")


# Runs the .pyz with the arguments it is given, then prints on stderr which modules of the
# network and database stacks were loaded, and exits with redpipe's status.
PROBE = """
import runpy, sys
sys.argv = ["redpipe.pyz", *sys.argv[1:]]
sys.path.insert(0, {pyz!r})
status = 0
try:
    runpy.run_path({pyz!r}, run_name="__main__")
except SystemExit as exc:
    status = exc.code
heavy = ("requests", "urllib3", "http", "ssl", "sqlite3", "json", "charset_normalizer", "pg8000",
         "scramp")
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in heavy)), file=sys.stderr)
sys.exit(status)
"""


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_load_no_http_or_database_stack(
    run: Callable[..., subprocess.CompletedProcess[str]], flag: str
) -> None:
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    result = subprocess.run([str(python), "-c", PROBE.format(pyz=str(pyz)), flag],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "redpipe" in result.stdout
    assert result.stderr.strip() == ""


@floor_and_newest
def test_without_credentials_reddit_is_never_asked_and_no_database_is_made(
    run: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    db = tmp_path / "p.sqlite"
    for argv in ([str(db)], [str(db), "--comments"], ["refresh", str(db)]):
        result = subprocess.run([str(python), "-c", PROBE.format(pyz=str(pyz)), *argv],
                                env=env_for(), capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        assert result.returncode == 4, result.stderr
        # The one line, then the probe's list: neither the HTTP nor the SQLite stack loaded.
        assert result.stderr.splitlines() == [
            "redpipe: error: Reddit's API needs credentials: set REDPIPE_CLIENT_ID and "
            "REDPIPE_CLIENT_SECRET to a Reddit app's id and secret (see README: 'Reddit API "
            "credentials')",
            "",
        ]
        assert list(tmp_path.iterdir()) == []


def imports_from(python: Path, pyz: Path, env: dict[str, str]) -> str:
    """Where pipeline.cli.main was loaded from: "zip", or the cached copy's directory."""
    result = subprocess.run([str(python), "-v", str(pyz), "--version"], env=env,
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    # 3.9's zipimport words it "loaded from Zip", later ones name the zipimporter.
    if re.search(r"import '?pipeline\.cli\.main'? # (<zipimporter|loaded from Zip)", result.stderr):
        return "zip"
    found = re.search(r"code object from '(.*)/pipeline/cli/__pycache__/main\.", result.stderr)
    assert found, result.stderr[-2000:]
    return found[1]


def test_later_starts_import_a_compiled_copy_from_the_cache(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(5)
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    env = env_for(server, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    result = run(*args_for(server, tmp_path / "p.sqlite", "--max-records", "5"), env=env)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "xdg" / "redpipe"
    (copy,) = root.iterdir()
    tag = subprocess.run([str(python), "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert copy.name.endswith(f"-{tag}")
    assert oct(root.stat().st_mode & 0o777) == oct(0o700)
    assert list(copy.glob(f"requests/__pycache__/sessions.{tag}.pyc"))
    assert imports_from(python, pyz, env) == str(copy)
    # The copy is named by content: another build gets its own, never the stale one.
    other = tmp_path / "other.pyz"
    other.write_bytes(pyz.read_bytes() + b"\n")
    assert imports_from(python, other, env) not in ("zip", str(copy))
    assert len(list(root.iterdir())) == 2


def test_cache_that_others_can_write_or_opted_out_is_not_used(
    run: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    root = tmp_path / "xdg" / "redpipe"
    root.mkdir(parents=True)
    root.chmod(0o777)
    env = env_for(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert imports_from(python, pyz, env) == "zip"
    assert list(root.iterdir()) == []
    root.chmod(0o700)
    assert imports_from(python, pyz, {**env, "REDPIPE_NO_CACHE": "1"}) == "zip"
    assert list(root.iterdir()) == []
    assert imports_from(python, pyz, env) != "zip"


def test_concurrent_first_starts_share_one_copy_and_old_ones_are_pruned(
    run: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    root = tmp_path / "xdg" / "redpipe"
    root.mkdir(parents=True, mode=0o700)
    now = time.time()
    ages = {"0-0-old-build": 31 * 86400, ".unpack-killed": 7200, "1-1-recent-build": 0,
            ".unpack-running": 0}  # fmt: skip
    for name, age in ages.items():
        (root / name).mkdir()
        os.utime(root / name, (now - age, now - age))
    env = env_for(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    command = [str(python), str(pyz), "--version"]
    pipe = subprocess.PIPE
    procs = [subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (0, b""), err
        assert out.startswith(b"redpipe ")
    left = sorted(p.name for p in root.iterdir())
    assert "0-0-old-build" not in left and ".unpack-killed" not in left
    assert "1-1-recent-build" in left and ".unpack-running" in left
    assert len(left) == 3  # those two and one copy of this build: no half-made ones


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def count(db: Path) -> int:
    """Posts stored so far, cheaply (this is asked several times a second)."""
    try:
        return int(query(db, "SELECT count(*) FROM posts")[0][0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_memory_stays_flat_over_a_long_stream(
    pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path
) -> None:
    # Big realistic pages as fast as they come. Unpinned, glibc's heap fragments around
    # each page's body and RSS ratchets up in steps: measured (without heap.py's fix, on
    # 3.13), the floor went 34 MB at 5,000 posts, 39 MB from 9,000 and 43 MB from 20,000
    # (51 MB by 33,000); pinned, the floor stays within 1.04 of its early value and the
    # peaks within 1.1. The floor, the least RSS over a stretch, leaves out the page or
    # two in flight at a sample.
    db = tmp_path / "m.sqlite"
    early: list[int] = []  # RSS samples between 4,000 and 6,000 posts
    late: list[int] = []  # and between 21,000 and 23,000
    with FakeReddit(firehose=100, big=True, keep=3000, client_secret=SECRET,
                    ratelimit_budget=10**9, enforce_ratelimit=False) as fake:  # fmt: skip
        fake.add_posts(100)
        proc = subprocess.Popen(
            [str(empty_python(VERSIONS[-1])), str(pyz), str(db), "--base-url", fake.url,
             "--auth-url", fake.url, "--interval", "0.001", "-q"],
            env=env_for(fake), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        n = 0
        try:
            while n < 23_000:
                time.sleep(0.05)
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                n, now = count(db), rss_kb(proc.pid)
                if 4_000 <= n < 6_000:
                    early.append(now)
                elif n >= 21_000:
                    late.append(now)
        finally:
            proc.kill()
            proc.communicate()
    assert len(early) >= 3 and len(late) >= 3, (len(early), len(late))
    assert min(late) < min(early) * 1.10, (min(early), min(late))
    assert max(late) < min(early) * 1.15, (min(early), max(late))


def lines_in(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


@floor_and_newest
def test_dash_writes_every_new_post_once_as_a_json_line_and_catches_up_bursts(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(100)
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    out = tmp_path / "out.ndjson"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [str(python), str(pyz), *args_for(server, Path("-"), "--max-records", "800")],
            env=env_for(server), stdout=sink, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while len(lines_in(out)) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            server.add_posts(700)  # more than a page between two polls: only catch-up finds them
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "{" not in err  # logs on stderr, records on stdout
    records = lines_in(out)
    assert list(records[0]) == list(POST_COLUMNS)
    truth = {p["name"]: p for p in server.posts}
    assert [r["fullname"] for r in records] == [
        p["name"] for p in server.posts
    ]  # once, oldest first
    assert all(r["title"] == truth[str(r["fullname"])]["title"] for r in records)


@floor_and_newest
def test_dash_stops_quietly_when_the_reader_goes_away(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit
) -> None:
    server.add_posts(100)
    server.start_feed(50)
    python, pyz = run.python, run.pyz  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [str(python), str(pyz), "-", "--base-url", server.url, "--auth-url", server.url,
         "--interval", "0.1"],
        env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"{")
        proc.stdout.close()  # `| head -1`
        status = proc.wait(timeout=30)
        err = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert status == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err


@floor_and_newest
def test_credentials_from_systemd_credential_files(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "client-id").write_text("test-client", encoding="utf-8")
    (creds / "client-secret").write_text(SECRET, encoding="utf-8")
    server.add_posts(10)
    db = tmp_path / "p.sqlite"
    result = run(*args_for(server, db, "--max-records", "10"),
                 env=env_for(None, CREDENTIALS_DIRECTORY=str(creds)))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(rows(db)) == 10


@floor_and_newest
def test_replay_loads_a_compressed_dump_once(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    made = server.add_posts(250)
    dump = tmp_path / "RS_test.bz2"
    with bz2.open(dump, "wt", encoding="utf-8") as out:
        out.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in made)
    db = tmp_path / "p.sqlite"
    first = run("replay", str(db), str(dump), env=env_for())
    assert first.returncode == 0, first.stderr
    assert "250 lines, 250 new posts" in first.stderr
    assert rows(db) == [(p["name"], p["title"]) for p in made]
    again = run("replay", str(db), str(dump), env=env_for())
    assert again.returncode == 0 and "replayed to its end before" in again.stderr


@floor_and_newest
def test_replayed_comments_then_a_stopped_refresh_resumes_where_it_stopped(
    run: Callable[..., subprocess.CompletedProcess[str]], server: FakeReddit, tmp_path: Path
) -> None:
    server.add_posts(20, created_utc=time.time() - 86400 * 2)
    made = server.add_comments(500, created_utc=time.time() - 86400 * 2)
    dump = tmp_path / "RC_test.ndjson"
    dump.write_text("".join(json.dumps(c) + "\n" for c in made), encoding="utf-8")
    db = tmp_path / "c.sqlite"
    loaded = run("replay", str(db), str(dump), "--comment-fields", "body,link_id", "--raw",
                 env=env_for())  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert "500 lines, 0 new posts, 500 new comments" in loaded.stderr
    bodies = query(db, "SELECT body, json_extract(raw, '$.parent_id') FROM comments ORDER BY rowid")
    assert bodies == [(c["body"], c["parent_id"]) for c in made]
    for comment in made[::7]:
        server.delete_by_author(comment["name"])
    server.inject(*[Fault.slow(0.7)] * 10, endpoint="info")
    argv = [str(run.python), str(run.pyz), "refresh", str(db),  # type: ignore[attr-defined]
            "--base-url", server.url, "--auth-url", server.url, "--purge-deleted"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env_for(server), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        done = 0
        while done < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            with contextlib.suppress(sqlite3.OperationalError):  # until refresh adds the column
                done = query(db, "SELECT count(refreshed_utc) FROM comments")[0][0]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "refresh stopped; the same command resumes it" in err and "Traceback" not in err
    first = query(db, "SELECT count(refreshed_utc) FROM comments")[0][0]
    assert 200 <= first < 500
    second = run(*argv[2:], env=env_for(server))
    assert second.returncode == 0, second.stderr
    assert f"comments: {500 - first} checked" in second.stderr
    assert query(db, "SELECT count(refreshed_utc) FROM comments") == [(500,)]
    asked = [n for r in server.info_requests() for n in r.params["id"].split(",")]
    assert len(asked) <= 500 + 100  # at most the batch in flight at the stop is asked again
    deleted = {c["name"] for c in made[::7]}
    left = query(db, "SELECT fullname, body, raw FROM comments WHERE removed_how = 'deleted'")
    assert {n for n, _, _ in left} == deleted
    assert all(body is None and raw is None for _, body, raw in left)  # purged
