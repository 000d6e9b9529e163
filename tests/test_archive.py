"""What archivists need past the posts stream, in-process against the fake server: comments,
chosen fields, and refresh (scores, deletions, removals, purging)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main as cli
from pipeline.transform.rows import COMMENT_COLUMNS
from tests.conftest import query, redpipe
from tests.fakereddit import FakeReddit, Fault

DAYS_AGO = time.time() - 3 * 86400


def names(db: Path, table: str) -> list[str]:
    return [n for (n,) in query(db, f"SELECT fullname FROM {table} ORDER BY rowid")]


# -- comments ---------------------------------------------------------------------------


def test_comments_stream_into_their_own_table_exactly_with_catch_up(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "a.sqlite"
    fake.add_posts(40)
    fake.add_comments(60)
    assert redpipe(fake, str(db), "--comments", "--max-records", "100") == 0
    # A burst of 450 comments between runs: more than four pages, all caught up.
    fake.add_posts(5)
    burst = fake.add_comments(450)
    assert redpipe(fake, str(db), "--comments", "--max-records", "455") == 0
    err = capsys.readouterr().err
    assert "caught up: 350 comments that arrived between polls" in err
    assert "stored 5 new posts and 450 new comments" in err
    assert names(db, "posts") == [p["name"] for p in fake.posts]
    assert names(db, "comments") == [c["name"] for c in fake.comments]  # oldest first
    got = query(db, f"SELECT {', '.join(COMMENT_COLUMNS)} FROM comments")
    for row, truth in zip(got, fake.comments):
        stored = dict(zip(COMMENT_COLUMNS, row))
        for key in ("body", "link_id", "parent_id", "permalink", "subreddit", "author"):
            assert stored[key] == truth[key]  # exact: raw_json=1, nothing re-escaped
        assert stored["author_fullname"] == truth.get("author_fullname")
    assert any("&" in c["body"] or "<" in c["body"] for c in burst)
    # Both listings were asked, on one budget, and only the comments paged back.
    assert fake.comment_requests() and fake.post_requests()
    assert all(not r.params.get("after") for r in fake.post_requests())


def test_without_comments_no_comments_table_is_made(fake: FakeReddit, tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    fake.add_posts(10)
    fake.add_comments(10)
    assert redpipe(fake, str(db), "--max-records", "10") == 0
    assert query(db, "SELECT name FROM sqlite_master WHERE name = 'comments'") == []
    assert fake.comment_requests() == []


def test_dash_with_comments_writes_both_kinds_as_json_lines(
    fake: FakeReddit, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_posts(3)
    fake.add_comments(4)
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", type("Out", (), {"buffer": out})())
    assert redpipe(fake, "-", "--comments", "--max-records", "7", "-q") == 0
    lines = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    posts = [x["fullname"] for x in lines if x["fullname"].startswith("t3_")]
    comments = [x for x in lines if x["fullname"].startswith("t1_")]
    assert posts == [p["name"] for p in fake.posts]
    assert [c["fullname"] for c in comments] == [c["name"] for c in fake.comments]
    assert set(comments[0]) == set(COMMENT_COLUMNS)


# -- fields -----------------------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fields_and_raw_then_more_fields_later_and_an_impossible_change(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "f.sqlite"
    fake.add_posts(5)
    spec = "title,author_fullname:author_id,subreddit_name_prefixed:sub"
    assert redpipe(fake, str(db), "--fields", spec, "--raw", "--max-records", "5") == 0
    columns = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    assert columns == ["fullname", "id", "created_utc", "title", "author_id", "sub", "raw"]
    got = query(db, "SELECT fullname, title, author_id, sub, json_extract(raw, '$.domain'), "
                    "json_extract(raw, '$.over_18') FROM posts ORDER BY rowid")  # fmt: skip
    assert got == [
        (
            p["name"],
            p["title"],
            p.get("author_fullname"),
            p["subreddit_name_prefixed"],
            p["domain"],
            int(p["over_18"]),
        )
        for p in fake.posts
    ]
    # Later, another field: a column is added, the earlier rows keep everything.
    fake.add_posts(2)
    assert redpipe(fake, str(db), "--fields", "title,score", "--max-records", "2") == 0
    assert [r[1] for r in query(db, "PRAGMA table_info(posts)")] == [*columns, "score"]
    assert query(db, "SELECT count(raw), count(score), count(title) FROM posts") == [(5, 2, 7)]
    # Pouring another field into an existing column is refused before anything is written.
    before = digest(db)
    capsys.readouterr()
    assert redpipe(fake, str(db), "--fields", "author:author_id", "--max-records", "1") == 2
    err = capsys.readouterr().err
    assert "posts.author_id already holds 'author_fullname', so 'author' cannot go there" in err
    assert "Traceback" not in err
    assert digest(db) == before


# -- refresh ----------------------------------------------------------------------------


def archive(fake: FakeReddit, db: Path, posts: int, comments: int, *args: str) -> None:
    fake.add_posts(posts, created_utc=DAYS_AGO)
    fake.add_comments(comments, created_utc=DAYS_AGO)
    total = str(min(posts, 100) + min(comments, 100))
    assert redpipe(fake, str(db), "--comments", "--max-records", total, "-q", *args) == 0


def test_refresh_updates_marks_and_purges_and_counts_every_change(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.sqlite"
    archive(fake, db, 100, 100)
    fake.add_posts(30)  # too young to refresh
    assert redpipe(fake, str(db), "--max-records", "30", "-q") == 0
    p = [x["name"] for x in fake.posts]
    c = [x["name"] for x in fake.comments]
    removed_body = fake.comments[1]["body"]
    fake.update(p[0], score=12345, num_comments=77)
    fake.update(p[1], score=fake.item(p[1])["score"])  # unchanged
    fake.delete_by_author(p[2])
    fake.delete_by_author(p[3], hide=True)  # gone from listings, /api/info still has it
    fake.remove_by_moderator(p[4])
    fake.purge(p[5])
    fake.delete_by_author(c[0])
    fake.remove_by_moderator(c[1])
    fake.purge(c[2])
    fake.delete_by_author(p[110])  # young: not checked yet
    before = {n: row for n, *row in query(db, "SELECT fullname, title, selftext, author, "
                                              "author_fullname FROM posts")}  # fmt: skip
    capsys.readouterr()
    started = time.time()
    assert redpipe(fake, "refresh", str(db)) == 0
    err = capsys.readouterr().err
    assert "posts: 100 checked, 1 changed, 0 edited, 2 deleted by their authors, 1 removed, " \
           "1 gone, 0 restored, 0 purged" in err  # fmt: skip
    assert "comments: 100 checked, 0 changed, 0 edited, 1 deleted by their authors, " \
           "1 removed, 1 gone" in err  # fmt: skip
    asked = [r.params["id"].split(",") for r in fake.info_requests()]
    assert all(len(ids) <= 100 for ids in asked)
    assert sorted(itertools.chain(*asked)) == sorted(p[:100] + c[:100])  # each once, none young
    marks = dict(query(db, "SELECT fullname, removed_how FROM posts WHERE removed_how "
                           "IS NOT NULL"))  # fmt: skip
    assert marks == {p[2]: "deleted", p[3]: "deleted", p[4]: "removed:moderator", p[5]: "gone"}
    comment_marks = dict(query(db, "SELECT fullname, removed_how FROM comments WHERE "
                                   "removed_how IS NOT NULL"))  # fmt: skip
    assert comment_marks == {c[0]: "deleted", c[1]: "removed", c[2]: "gone"}
    assert query(db, "SELECT score, num_comments FROM posts WHERE fullname = ?", p[0]) == [
        (12345, 77)
    ]
    when = query(db, "SELECT min(removed_utc), max(refreshed_utc), count(refreshed_utc) FROM posts")
    assert started <= when[0][0] <= when[0][1] <= time.time() and when[0][2] == 100
    # Without --purge-deleted the text stays as it was archived.
    assert query(db, "SELECT title, selftext, author, author_fullname FROM posts WHERE "
                     "fullname = ?", p[2]) == [tuple(before[p[2]])]  # fmt: skip

    # Again at once: nothing is due. With --purge-deleted, what was marked is purged.
    assert redpipe(fake, "refresh", str(db), "--purge-deleted") == 0
    err = capsys.readouterr().err
    assert "posts: 0 checked, 0 changed, 0 edited, 0 deleted by their authors, 0 removed, " \
           "0 gone, 0 restored, 2 purged" in err  # fmt: skip
    assert "comments: 0 checked" in err and "1 purged" in err
    purged = query(db, "SELECT title, selftext, author, author_fullname, url, permalink, "
                       "subreddit, created_utc IS NOT NULL, removed_how FROM posts "
                       "WHERE fullname = ?", p[2])  # fmt: skip
    assert purged == [(None, None, None, None, None, None, fake.item(p[2])["subreddit"], 1,
                       "deleted")]  # fmt: skip
    assert query(db, "SELECT body, author FROM comments WHERE fullname = ?", c[0]) == [(None, None)]
    kept = query(db, "SELECT body FROM comments WHERE fullname = ?", c[1])  # removed, not deleted
    assert kept == [(removed_body,)] and removed_body != "[removed]"
    assert query(db, "SELECT count(*) FROM posts") == [(130,)]  # nothing deleted as a row

    # A removal undone is noticed on the next check.
    fake.update(p[4], selftext="back", removed_by_category=None)
    time.sleep(0.2)  # the checks above are now older than the 0.1 s asked for below
    assert redpipe(fake, "refresh", str(db), "--older-than", "0.1s") == 0
    err = capsys.readouterr().err
    assert "posts: 130 checked" in err and "1 restored" in err and "1 deleted by" in err
    assert "1 edited" in err  # the restored post's new text; the old one is in edits
    assert query(db, "SELECT column_name, old_text FROM edits WHERE fullname = ?", p[4]) == [
        ("selftext", before[p[4]][1])
    ]
    assert query(db, "SELECT removed_how, removed_utc FROM posts WHERE fullname = ?", p[4]) == [
        (None, None)
    ]


def test_refresh_keeps_a_tables_chosen_columns_and_rides_out_faults(
    fake: FakeReddit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.sqlite"
    fake.add_posts(150, created_utc=DAYS_AGO)
    assert redpipe(fake, str(db), "--fields", "title,score", "--max-records", "100", "-q") == 0
    columns = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    first = fake.posts[50]["name"]
    fake.update(first, score=4242, num_comments=999)
    fake.inject(Fault.status(503), Fault.rate_limited(retry_after=0.2), Fault.truncated_json(),
                endpoint="info")  # fmt: skip
    assert redpipe(fake, "refresh", str(db)) == 0
    err = capsys.readouterr().err
    assert "posts: 100 checked, 1 changed" in err
    assert "HTTP 503" in err and "Traceback" not in err
    added = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    assert added == [*columns, "refreshed_utc", "removed_how", "removed_utc"]  # no num_comments
    assert query(db, "SELECT score FROM posts WHERE fullname = ?", first) == [(4242,)]


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["refresh", "-"], 2, "refresh needs a database file, not -"),
        (["refresh", "{tmp}/none.sqlite"], 3, "none.sqlite: no such database to refresh"),
        (["refresh", "{tmp}/x.sqlite", "--subreddit", "python"], 2, "refresh takes no --subreddit"),
        (["refresh", "{tmp}/x.sqlite", "--fields", "title"], 2, "refresh takes no --fields"),
        (
            ["refresh", "{tmp}/x.sqlite", "--older-than", "soon"],
            2,
            "--older-than must be a time like 36h",
        ),
        (
            ["{tmp}/x.sqlite", "--purge-deleted"],
            2,
            "only refresh and --refresh take --purge-deleted",
        ),
        (["replay", "{tmp}/x.sqlite", "d.ndjson", "--comments"], 2, "replay takes no --comments"),
        (["{tmp}/x.sqlite", "--fields", "title:created_utc"], 2, "always stored"),
        (["{tmp}/x.sqlite", "--author", "bob"], 2, "only replay takes --author"),
        (["{tmp}/x.sqlite", "--limit", "5"], 2, "only search takes --limit"),
        (["-", "--fts"], 2, "--fts needs a database file, not -"),
        (["refresh", "{tmp}/x.sqlite", "--json"], 2, "refresh takes no --json"),
        (["search", "{tmp}/x.sqlite", "q", "--fts"], 2, "search takes no --fts"),
        (["search", "{tmp}/x.sqlite", "q", "--raw"], 2, "search takes no --raw"),
        (["search", "{tmp}/none.sqlite", "q"], 3, "none.sqlite: no such database to search"),
        (["search", "-", "q"], 2, "search needs a database file, not -"),
        (["search", "{tmp}/x.sqlite", "  "], 2, "the query is empty"),
        (["search", "{tmp}/x.sqlite", "q", "--limit", "0"], 2, "--limit must be a whole number"),
        (["search", "{tmp}/x.sqlite", "q", "--subreddit", "a b"], 2, "--subreddit must be"),
    ],
)
def test_commands_refuse_what_they_do_not_take(
    argv: list[str], status: int, message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("REDPIPE_CLIENT_ID", "i")
    monkeypatch.setenv("REDPIPE_CLIENT_SECRET", "s")
    assert cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.sqlite").exists() and not (tmp_path / "none.sqlite").exists()


def test_every_option_parses_to_one_value() -> None:
    # An option-looking line in a description makes docopt define the option twice,
    # which turns its value into a list.
    from docopt import docopt

    args: dict[str, Any] = docopt(cli.__doc__, argv=["db"])
    options = {k: v for k, v in args.items() if k.startswith("--")}
    assert options == cli.defaults()
    assert all(v is None or isinstance(v, (str, bool)) for v in options.values()), options
    assert options["--interval"] == "1" and options["--older-than"] == "36h"
