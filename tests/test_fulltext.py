"""Full-text search and edit history through the command line, against the fake server
and real SQLite files in-process, and through the built .pyz under every supported CPython,
on SQLite and on PostgreSQL; and a SQLite without FTS5, refused before anything changes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main as cli
from tests.conftest import SUPPORTED, query, redpipe
from tests.fakereddit import FakeReddit
from tests.pgcluster import Cluster
from tests.pgproc import environment

DAYS_AGO = time.time() - 3 * 86400


def search(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    capsys.readouterr()
    status = cli.main(["search", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def worded(fake: FakeReddit, posts: int, comments: int) -> tuple[list[str], list[str]]:
    """Posts and comments whose text says which they are, three days old."""
    made = fake.add_posts(posts, created_utc=DAYS_AGO)
    for i, item in enumerate(made):
        fake.update(item["name"], title=f"Kestrel number {i}" if i % 2 else f"Heron {i}",
                    selftext=f"wings and feathers {i}", created_utc=DAYS_AGO + i)  # fmt: skip
    said = fake.add_comments(comments, created_utc=DAYS_AGO)
    for i, item in enumerate(said):
        fake.update(item["name"], body=f"a kestrel hovered {i}", created_utc=DAYS_AGO + i)
    return [p["name"] for p in made], [c["name"] for c in said]


def test_search_finds_what_the_stream_stored_newest_first_with_links(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "r.sqlite")
    posts, comments = worded(fake, 20, 5)
    assert redpipe(fake, db, "--comments", "--fts", "--max-records", "25", "-q") == 0
    status, out, err = search(capsys, db, "kestrel", "--limit", "3")
    assert (
        status == 0 and err == "redpipe: more items match than the 3 shown; --limit N shows more\n"
    )
    assert out[0].startswith(time.strftime("%Y-%m-%d", time.gmtime(DAYS_AGO + 19)))
    assert "Kestrel number 19" in out[0] and out[1].strip().startswith("https://www.reddit.com/r/")
    assert [line for line in out if "Kestrel" in line][1].endswith("Kestrel number 17")
    assert len(out) == 6  # two lines a match
    status, out, err = search(capsys, db, "kestrel", "--comments", "--json", "--limit", "15")
    assert err == ""  # all 15 shown: no more
    found = [json.loads(line) for line in out]
    assert {f["fullname"] for f in found} == set(posts[1::2]) | set(comments)
    assert [f["created_utc"] for f in found] == sorted((f["created_utc"] for f in found),
                                                       reverse=True)  # fmt: skip
    kinds = {f["fullname"]: f["kind"] for f in found}
    assert kinds[comments[0]] == "comment" and kinds[posts[1]] == "post"
    assert all(f["url"].startswith("https://www.reddit.com/") for f in found)
    assert found[0].keys() >= {"subreddit", "author", "created_utc"}
    subreddit = fake.item(posts[1])["subreddit"]
    status, out, _ = search(capsys, db, '"kestrel number"', "--subreddit", subreddit, "--json")
    assert {json.loads(x)["subreddit"] for x in out} == {subreddit} and status == 0
    # A query FTS5 cannot read, or one for an index that is not there: exit 2, one line.
    status, out, err = search(capsys, db, "kestrel OR")
    assert (status, out) == (2, []) and err.count("\n") == 1 and "syntax error" in err
    assert "Traceback" not in err
    bare = str(tmp_path / "bare.sqlite")
    fake.add_posts(3)
    assert redpipe(fake, bare, "--max-records", "3", "-q") == 0
    status, _, err = search(capsys, bare, "kestrel")
    assert status == 2 and "posts has no full-text index" in err and "--fts" in err
    status, _, err = search(capsys, str(tmp_path / "none.sqlite"), "kestrel")
    assert status == 3 and "no such database" in err


def test_later_runs_keep_the_index_without_the_flag(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "r.sqlite")
    dump = tmp_path / "RS_old"
    dump.write_text(
        json.dumps(
            {
                "id": "old1",
                "title": "an osprey long ago",
                "created_utc": 1_500_000_000,
                "subreddit": "birds",
            }
        )
        + "\n"
    )
    assert redpipe(fake, "replay", db, str(dump), "-q") == 0  # no index yet
    fake.add_posts(5)
    assert redpipe(fake, db, "--fts", "--max-records", "5", "-q") == 0  # indexes what is held
    assert search(capsys, db, "osprey")[1][0].endswith("an osprey long ago")
    made = fake.add_posts(1)
    fake.update(made[0]["name"], title="an osprey today")
    assert redpipe(fake, db, "--max-records", "1", "-q") == 0  # no --fts
    assert len(search(capsys, db, "osprey")[1]) == 4
    comments = tmp_path / "RC_old"
    comments.write_text(
        json.dumps(
            {
                "id": "c1",
                "body": "ospreys everywhere",
                "link_id": "t3_x",
                "created_utc": 1_500_000_001,
                "subreddit": "birds",
            }
        )
        + "\n"
    )
    assert redpipe(fake, "replay", db, str(comments), "-q") == 0  # comments made now, indexed
    status, out, _ = search(capsys, db, "osprey*", "--comments", "--json")
    assert status == 0 and [json.loads(x)["fullname"] for x in out][-2:] == ["t1_c1", "t3_old1"]
    url = json.loads(out[-2])["url"]
    assert url == "https://www.reddit.com/r/birds/comments/x/_/c1/"  # made for old dumps


def test_refresh_keeps_what_was_edited_and_search_follows(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.sqlite"
    posts, comments = worded(fake, 6, 4)
    fake.update(posts[3], selftext="fish &amp; chips")  # as dumps made without raw_json hold it
    assert redpipe(fake, str(db), "--comments", "--max-records", "10", "-q") == 0
    original = dict(query(db, "SELECT fullname, selftext FROM posts"))
    fake.update(posts[0], selftext="EDIT: grebes, not herons", edited=DAYS_AGO + 60)
    fake.update(posts[1], title="Kestrel number 1 (retitled)")
    fake.update(comments[0], body="a grebe, in fact")
    fake.remove_by_moderator(posts[2])  # [removed]: never stored over the text
    fake.delete_by_author(comments[1])  # [deleted]: the same
    fake.update(posts[3], selftext="fish & chips")  # the same text, unescaped: no edit
    capsys.readouterr()
    assert redpipe(fake, "refresh", str(db), "--fts") == 0
    err = capsys.readouterr().err
    assert "posts: 6 checked, 1 changed, 2 edited, 0 deleted by their authors, 1 removed" in err
    assert "comments: 4 checked, 0 changed, 1 edited, 1 deleted by their authors" in err
    assert query(db, "SELECT selftext FROM posts WHERE fullname = ?", posts[0]) == [
        ("EDIT: grebes, not herons",)
    ]
    history = query(db, "SELECT fullname, column_name, old_text, replaced_utc FROM edits "
                        "ORDER BY fullname, column_name")  # fmt: skip
    assert {(n, c, o) for n, c, o, _ in history} == {
        (posts[0], "selftext", original[posts[0]]),
        (posts[1], "title", "Kestrel number 1"),
        (comments[0], "body", "a kestrel hovered 0"),
    }
    assert all(DAYS_AGO < when <= time.time() for *_, when in history)
    kept = query(db, "SELECT selftext FROM posts WHERE fullname = ?", posts[2])
    assert kept == [(original[posts[2]],)]
    assert query(db, "SELECT body FROM comments WHERE fullname = ?", comments[1]) == [
        ("a kestrel hovered 1",)
    ]
    got = [json.loads(x)["fullname"] for x in search(capsys, str(db), "grebe*", "--comments",
                                                     "--json")[1]]  # fmt: skip
    assert sorted(got) == sorted([posts[0], comments[0]])
    assert search(capsys, str(db), "retitled")[1][0].endswith("Kestrel number 1 (retitled)")
    feathers = "".join(search(capsys, str(db), "feathers", "--json", "--limit", "50")[1])
    assert posts[0] not in feathers and posts[1] in feathers  # the old text is out of the index
    # The author deletes the edited comment: --purge-deleted takes its history too.
    fake.delete_by_author(comments[0])
    time.sleep(0.2)
    assert redpipe(fake, "refresh", str(db), "--older-than", "0.1s", "--purge-deleted") == 0
    names = {n for (n,) in query(db, "SELECT fullname FROM edits")}
    assert names == {posts[0], posts[1]}
    _, out, _ = search(capsys, str(db), "grebe*", "--comments", "--json")
    assert [json.loads(x)["fullname"] for x in out] == [posts[0]]  # the comment's text is gone


# -- the built .pyz -----------------------------------------------------------------------

VERSIONS = [v for v, _ in SUPPORTED]
# Runs the .pyz on a SQLite whose FTS5 module is gone: sqlite3_drop_modules() on each new
# connection, the one way to have a real SQLite without FTS5 beside the system's.
NO_FTS5 = """
import ctypes, runpy, sqlite3, sys
import _sqlite3
try:
    lib = ctypes.CDLL(_sqlite3.__file__)
    lib.sqlite3_drop_modules
except AttributeError:
    maps = open("/proc/self/maps").read().split()
    lib = ctypes.CDLL(next(p for p in maps if "libsqlite3" in p))
real = sqlite3.connect
def connect(*args, **kwargs):
    conn = real(*args, **kwargs)
    db = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    lib.sqlite3_drop_modules(ctypes.c_void_p(db), None)
    return conn
sqlite3.connect = connect
sys.argv = ["redpipe.pyz", *sys.argv[2:]]
runpy.run_path({pyz!r}, run_name="__main__")
"""


def run(python: Path, args: list[str], env: dict[str, str] | None = None,
        script: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = [str(python), "-c", script, "-"] if script else [str(python)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_the_pyz_indexes_and_searches_sqlite(
    version: str, pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path
) -> None:
    python = empty_python(version)
    db = str(tmp_path / "r.sqlite")
    with FakeReddit() as server:
        worded(server, 10, 0)
        reddit = ["--base-url", server.url, "--auth-url", server.url, "--interval", "0.05"]
        env = {
            "REDPIPE_CLIENT_ID": "test-client",
            "REDPIPE_CLIENT_SECRET": "test-secret",
            "REDPIPE_NO_CACHE": "1",
        }
        got = run(python, [str(pyz), db, *reddit, "--fts", "--max-records", "10", "-q"], env)
        assert got.returncode == 0, got.stderr
    got = run(python, [str(pyz), "search", db, "heron", "--json", "--limit", "2"])
    assert got.returncode == 0, got.stderr
    assert [json.loads(x)["title"] for x in got.stdout.splitlines()] == ["Heron 8", "Heron 6"]
    got = run(python, [str(pyz), "search", db, '"heron'])
    assert got.returncode == 2 and got.stderr.count("\n") == 1 and "Traceback" not in got.stderr


@pytest.mark.slow
@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_a_sqlite_without_fts5_is_refused_before_anything_changes(
    version: str, pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path
) -> None:
    python = empty_python(version)
    script = NO_FTS5.format(pyz=str(pyz))
    dump = tmp_path / "RS_x"
    dump.write_text(json.dumps({"id": "a1", "title": "t", "created_utc": 1_600_000_000}) + "\n")
    db = tmp_path / "r.sqlite"
    assert run(python, [str(pyz), "replay", str(db), str(dump), "-q"]).returncode == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    got = run(python, ["replay", str(db), str(dump), "--fts"], script=script)
    assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
    assert "has no FTS5" in got.stderr and "unchanged" in got.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    # The same file indexed by a SQLite that has FTS5: the one without it refuses to write.
    assert run(python, [str(pyz), "replay", str(db), str(dump), "--fts", "-q"]).returncode == 0
    indexed = hashlib.sha256(db.read_bytes()).hexdigest()
    other = tmp_path / "RS_y"
    other.write_text(json.dumps({"id": "b1", "title": "u", "created_utc": 1_600_000_001}) + "\n")
    got = run(python, ["replay", str(db), str(other)], script=script)
    assert got.returncode == 2 and "keeps a full-text index" in got.stderr, got.stderr
    assert got.stderr.count("\n") == 1
    assert hashlib.sha256(db.read_bytes()).hexdigest() == indexed
    got = run(python, [str(pyz), "replay", str(db), str(other), "-q"])  # control: it can write
    assert got.returncode == 0 and hashlib.sha256(db.read_bytes()).hexdigest() != indexed


@pytest.mark.slow
@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_the_pyz_searches_what_a_stream_stored_in_postgresql(
    version: str,
    pyz: Path,
    empty_python: Callable[[str], Path],
    pg_cluster: Cluster,
    pg_database: str,
    tmp_path: Path,
) -> None:
    python = empty_python(version)
    url = pg_cluster.url(pg_database) + "?sslmode=verify-full"
    env = {**environment(pg_cluster, tmp_path), "REDPIPE_CLIENT_ID": "test-client",
           "REDPIPE_CLIENT_SECRET": "test-secret"}  # fmt: skip
    with FakeReddit() as server:
        posts, comments = worded(server, 10, 4)
        reddit = ["--base-url", server.url, "--auth-url", server.url, "--interval", "0.05"]
        got = run(python, [str(pyz), url, *reddit, "--fts", "--comments", "--max-records", "14",
                           "-q"], env)  # fmt: skip
        assert got.returncode == 0, got.stderr
        server.update(posts[0], selftext="EDIT: it was a grebe")
        got = run(python, [str(pyz), "refresh", url, *reddit[:4], "--older-than", "1s", "-q"],
                  env)  # fmt: skip
        assert got.returncode == 0, got.stderr
    got = run(python, [str(pyz), "search", url, "kestrel", "--comments", "--json",
                       "--limit", "50"], env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    found = [json.loads(x) for x in got.stdout.splitlines()]
    assert {f["fullname"] for f in found} == set(posts[1::2]) | set(comments)
    got = run(python, [str(pyz), "search", url, "grebe", "--json"], env)
    assert [json.loads(x)["fullname"] for x in got.stdout.splitlines()] == [posts[0]]
    got = run(python, [str(pyz), "search", url, "title:kestrel"], env)
    assert got.returncode == 2 and "not supported on PostgreSQL" in got.stderr


@pytest.mark.slow
def test_a_stream_with_refresh_keeps_edits_too(
    pyz: Path, empty_python: Callable[[str], Path], tmp_path: Path
) -> None:
    python = empty_python(VERSIONS[-1])
    db = tmp_path / "r.sqlite"
    env = {"REDPIPE_CLIENT_ID": "test-client", "REDPIPE_CLIENT_SECRET": "test-secret",
           "REDPIPE_NO_CACHE": "1"}  # fmt: skip
    with FakeReddit() as server:
        posts, _ = worded(server, 5, 0)
        reddit = ["--base-url", server.url, "--auth-url", server.url, "--interval", "0.2"]
        got = run(python, [str(pyz), str(db), *reddit, "--fts", "--max-records", "5", "-q"], env)
        assert got.returncode == 0, got.stderr
        server.update(posts[2], selftext="rewritten about a merlin")
        proc = subprocess.Popen([str(python), str(pyz), str(db), *reddit, "--refresh",
                                 "--older-than", "1s"], env=env, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                held = query(db, "SELECT name FROM sqlite_master WHERE name = 'edits'")
                if held and query(db, "SELECT count(*) FROM edits") == [(1,)]:
                    break
                time.sleep(0.2)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "refreshed posts: 5 checked, 0 changed, 1 edited" in err
    assert query(db, "SELECT fullname, column_name FROM edits") == [(posts[2], "selftext")]
    got = run(python, [str(pyz), "search", str(db), "merlin", "--json"])
    assert [json.loads(x)["fullname"] for x in got.stdout.splitlines()] == [posts[2]]
