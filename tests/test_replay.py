"""replay: dump files in the shape of real listing items, through the real CLI and store."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main as cli
from pipeline.commands.context import Context
from pipeline.commands.replay import BATCH, Counts, replay_file
from pipeline.sinks import open_archive
from pipeline.sources.dumps import Dump
from pipeline.transform.tables import COMMENTS, POSTS
from tests.conftest import query

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reddit"
pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real Reddit responses not found at {FIXTURES}"
)


def items(name: str) -> list[dict[str, Any]]:
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return [child["data"] for child in doc["data"]["children"]]


def posts() -> list[dict[str, Any]]:
    return items("reddit_all_new_2021-01-18_limit100.json")


def pushshift_style(post: dict[str, Any]) -> dict[str, Any]:
    """Old Pushshift records: no `name`, `created_utc` as a string, `retrieved_on`."""
    old = {k: v for k, v in post.items() if k != "name"}
    old["created_utc"] = str(int(post["created_utc"]))
    old["retrieved_on"] = 1600000000
    return old


def lines_of(records: list[Any]) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
        for r in records
    )


OPENERS = {"": open, ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def write(path: Path, records: list[Any]) -> Path:
    data = lines_of(records)
    if path.suffix == ".zst":
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        with OPENERS[path.suffix if path.suffix in OPENERS else ""](path, "wb") as f:
            f.write(data)
    return path


def replay(*args: str) -> int:
    return cli.main(["replay", *args])


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz", ".zst"])
def test_a_dump_loads_every_post_and_comment_once_and_reports_what_it_skipped(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    real = posts()
    comments = items("reddit_all_comments_2020-07-15_limit100.json")[:3]
    records: list[Any] = [*real[:50], comments[0], b"{not json", *real[50:], b"[1, 2]", b""]
    records.append(pushshift_style(real[0]) | {"id": "zzzzzz"})
    old_comment = pushshift_style(comments[1])
    del old_comment["permalink"]
    records += [old_comment, comments[0]]  # the last one again: stored once
    dump = write(tmp_path / f"RS_2021-01{suffix or '.ndjson'}", records)
    db = tmp_path / "p.sqlite"
    assert replay(str(db), str(dump)) == 0
    err = capsys.readouterr().err
    stored = dict(query(db, "SELECT fullname, title FROM posts"))
    assert len(stored) == 101
    assert all(stored[p["name"]] == p["title"] for p in real)  # exact, as the listing has it
    old = query(db, "SELECT created_utc, retrieved_utc FROM posts WHERE fullname = 't3_zzzzzz'")
    assert old == [(int(real[0]["created_utc"]), 1600000000.0)]
    got = query(db, "SELECT fullname, body, link_id, parent_id, permalink FROM comments")
    c0, c1 = comments[0], comments[1]
    assert sorted(got) == sorted(
        [
            (c0["name"], c0["body"], c0["link_id"], c0["parent_id"], c0["permalink"]),
            (
                c1["name"],
                c1["body"],
                c1["link_id"],
                c1["parent_id"],
                f"/r/{c1['subreddit']}/comments/{c1['link_id'][3:]}/_/{c1['id']}/",
            ),
        ]
    )
    assert "line 52 is not a post or comment record" in err
    assert "line 103 is not a post or comment record" in err
    assert "107 lines, 101 new posts, 2 new comments, 1 already stored, 2 malformed" in err
    assert "2 malformed (lines 52, 103)" in err
    # again: nothing twice, and a finished file is not read again
    assert replay(str(db), str(dump)) == 0
    assert "replayed to its end before; skipped" in capsys.readouterr().err
    assert query(db, "SELECT count(*) FROM posts") == [(101,)]


def test_a_posts_only_dump_makes_no_comments_table_and_fields_shape_the_columns(
    tmp_path: Path,
) -> None:
    dump = write(tmp_path / "RS_a.ndjson", posts()[:10])
    db = tmp_path / "p.sqlite"
    assert replay(str(db), str(dump), "--fields", "title,author_fullname:author_id", "--raw") == 0
    assert query(db, "SELECT name FROM sqlite_master WHERE name = 'comments'") == []
    cols = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    assert cols == ["fullname", "id", "created_utc", "title", "author_id", "raw"]
    first = posts()[0]
    got = query(
        db,
        "SELECT author_id, json_extract(raw, '$.author_fullname'), "
        "json_extract(raw, '$.subreddit') FROM posts WHERE fullname = ?",
        first["name"],
    )
    assert got == [(first["author_fullname"], first["author_fullname"], first["subreddit"])]


class Killed(Exception):
    pass


class Report:
    """Progress that can stop the replay right after a commit, as a kill -9 would land."""

    def __init__(self, *, die: bool) -> None:
        self.die = die
        self.warnings: list[str] = []

    def progress(
        self, name: str, done: int | None, total: int | None, lines: int, kept: int | None
    ) -> None:
        if self.die:
            raise Killed

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def finished(self, name: str, counts: Counts | None) -> None:
        pass


def load(dump: Path, db: Path, report: Report) -> Counts | None:
    sink = open_archive(str(db), command="replay")
    opened = Dump(str(dump))
    try:
        sink.prepare([POSTS, COMMENTS], lazy=("comments",))
        return replay_file(opened, sink, (POSTS, COMMENTS), Context(wall_clock=lambda: 0.0), report)
    finally:
        opened.close()
        sink.close()


def test_a_stopped_replay_resumes_after_its_last_committed_batch(tmp_path: Path) -> None:
    base = posts()
    records = [dict(base[i % 100], name=f"t3_{i + 1:06x}", id=f"{i + 1:06x}") for i in range(2500)]
    dump = write(tmp_path / "RS_big.gz", records)
    db = tmp_path / "p.sqlite"
    with pytest.raises(Killed):
        load(dump, db, Report(die=True))
    assert query(db, "SELECT count(*) FROM posts") == [(BATCH,)]
    counts = load(dump, db, Report(die=False))
    assert counts is not None and counts.stored == 1500 and counts.seen_again == 0
    assert counts.lines == 2500
    names = [n for (n,) in query(db, "SELECT fullname FROM posts")]
    assert sorted(names) == sorted(r["name"] for r in records)
    assert load(dump, db, Report(die=False)) is None  # finished: not read again


def test_replay_into_standard_output_is_refused_and_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = write(tmp_path / "RS_a.ndjson", posts()[:3])
    monkeypatch.chdir(tmp_path)
    assert replay("-", str(dump)) == 2
    assert capsys.readouterr().err == "redpipe: error: replay needs a database file, not -\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RS_a.ndjson"]


def test_a_truncated_dump_keeps_what_was_read_and_says_where_it_broke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = write(tmp_path / "RS_cut.xz", posts())
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    db = tmp_path / "p.sqlite"
    assert replay(str(db), str(dump)) == 2
    err = capsys.readouterr().err
    assert "RS_cut.xz: unreadable after line" in err and "Traceback" not in err
    done = int(err.split("unreadable after line ")[1].split()[0])
    assert done > 0 and query(db, "SELECT count(*) FROM posts") == [(done,)]


def test_zst_without_a_reader_is_one_line_saying_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = write(tmp_path / "RS_x.zst", posts()[:3])
    monkeypatch.setitem(sys.modules, "zstandard", None)  # not installed
    monkeypatch.setitem(sys.modules, "compression", None)  # before 3.14
    assert replay(str(tmp_path / "p.sqlite"), str(dump)) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"redpipe: error: {dump}: reading .zst needs Python 3.14 or newer, or the "
        "zstandard package (python3 -m pip install zstandard)"
    )


def test_a_missing_dump_or_a_bad_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay(str(tmp_path / "p.sqlite"), str(tmp_path / "nope.ndjson")) == 2
    assert "nope.ndjson: No such file or directory" in capsys.readouterr().err
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all" * 100)
    assert replay(str(junk), str(tmp_path / "nope.ndjson")) == 3
    assert "junk.sqlite is not a SQLite database; refusing to touch it" in capsys.readouterr().err


def test_replay_takes_quiet_and_refuses_the_streams_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from docopt import docopt

    bare = docopt(cli.__doc__, argv=["replay", "db", "dump"])
    assert {k: v for k, v in bare.items() if k.startswith("--")} == cli.defaults()
    dump = write(tmp_path / "RS_q.ndjson", posts()[:5])
    assert replay(str(tmp_path / "p.sqlite"), str(dump), "-q") == 0
    assert capsys.readouterr().err == ""
    assert replay(str(tmp_path / "p.sqlite"), str(dump), "--interval", "5") == 2
    assert capsys.readouterr().err == "redpipe: error: replay takes no --interval\n"
