"""Comments and chosen fields: the transform for t1 items, --fields parsing, and what each
table's rows hold, against real listings (../shared/fixtures)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import UsageError
from pipeline.transform.rows import COMMENT_COLUMNS, comment_row, field_value
from pipeline.transform.tables import COMMENTS, POSTS, choose

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reddit"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real Reddit responses not found at {FIXTURES}"
)
NOW = 1_700_000_000.5


def children(name: str) -> list[Any]:
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return list(doc["data"]["children"])


@needs_fixtures
def test_a_real_comment_listing_becomes_comment_rows_exactly() -> None:
    items = children("reddit_all_comments_2020-07-15_limit100.json")
    before = copy.deepcopy(items)
    rows = COMMENTS.row_builder()(items, NOW)
    assert items == before  # pure
    assert len(rows) == len(items) == 100
    for row, child in zip(rows, items):
        data, got = child["data"], dict(zip(COMMENT_COLUMNS, row))
        assert got["fullname"] == data["name"] and got["id"] == data["name"][3:]
        for key in ("body", "link_id", "parent_id", "permalink", "subreddit", "author"):
            assert got[key] == data[key]
        assert got["author_fullname"] == data.get("author_fullname")
        assert got["created_utc"] == data["created_utc"] and got["retrieved_utc"] == NOW


@needs_fixtures
def test_a_mixed_listing_splits_by_kind() -> None:
    items = children("reddit_user_overview_new_2026-06-08_mixed_t1_t3.json")
    kinds = [c["kind"] for c in items]
    assert "t1" in kinds and "t3" in kinds
    posts = POSTS.row_builder()(items, NOW)
    comments = COMMENTS.row_builder()(items, NOW)
    assert [r[0][:3] for r in posts] == ["t3_"] * kinds.count("t3")
    assert [r[0][:3] for r in comments] == ["t1_"] * kinds.count("t1")


def test_comment_row_refuses_what_is_not_a_comment() -> None:
    assert comment_row({"kind": "t3", "data": {"name": "t3_abc"}}, NOW) is None
    assert comment_row({"kind": "t1", "data": {"name": "t3_abc"}}, NOW) is None
    assert comment_row({"kind": "t1", "data": {"name": "t1_"}}, NOW) is None
    assert comment_row({"kind": "t1", "data": []}, NOW) is None
    assert comment_row("t1_abc", NOW) is None
    row = comment_row({"kind": "t1", "data": {"name": "t1_abc", "body": 5}}, NOW)
    assert row is not None and dict(zip(COMMENT_COLUMNS, row))["author"] == "[deleted]"
    assert dict(zip(COMMENT_COLUMNS, row))["body"] is None


def test_field_value_walks_paths_and_keeps_the_values_as_they_came() -> None:
    data = {
        "a": {"b": [{"c": "deep"}]},
        "flag": True,
        "n": 3,
        "x": 1.5,
        "obj": {"k": "ü"},
        "none": None,
    }
    assert field_value(data, "a.b.0.c") == "deep"
    assert field_value(data, "a.b.1.c") is None
    assert field_value(data, "a.x") is None
    assert field_value(data, "flag") is True  # each sink encodes it its own way
    assert field_value(data, "n") == 3 and field_value(data, "x") == 1.5
    assert field_value(data, "obj") == {"k": "ü"} and field_value(data, "a.b") == [{"c": "deep"}]
    assert field_value(data, "missing") is None and field_value(data, "none") is None


def test_fields_keep_the_key_and_rename() -> None:
    table = choose(POSTS, "title, author_fullname:author_id,media.type", raw=True,
                   option="--fields")  # fmt: skip
    assert table.columns == (
        "fullname", "id", "created_utc", "title", "author_id", "media_type", "raw"
    )  # fmt: skip
    assert table.fields == ("fullname", "id", "created_utc", "title", "author_fullname",
                            "media.type", "*")  # fmt: skip
    assert choose(POSTS, None, raw=False, option="--fields") == POSTS
    assert choose(POSTS, "fullname,created_utc,name,id", raw=False, option="--fields").columns == (
        "fullname",
        "id",
        "created_utc",
    )


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        ("title:created_utc", False, "always stored, under those names"),
        ("id:ident", False, "always stored, under those names"),
        ("created_utc:made", False, "always stored, under those names"),
        ("title,selftext:title", False, "two fields would go into the column 'title'"),
        ("title,selftext:TITLE", False, "two fields would go into the column 'TITLE'"),
        ("title:1st", False, "'1st' cannot be a column name"),
        ("title:sqlite_x", False, "cannot be a column name"),
        ("score:removed_how", False, "cannot be a column name"),
        ("title;drop", False, "is not a listing field name"),
        ("selftext:raw", True, "taken by --raw"),
    ],
)
def test_impossible_fields_are_usage_errors(spec: str, raw: bool, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        choose(POSTS, spec, raw=raw, option="--fields")


def test_chosen_columns_are_cleaned_like_the_default_ones() -> None:
    child = {
        "kind": "t3",
        "data": {
            "name": "t3_abc",
            "created_utc": 1.0,
            "url": "/r/x/comments/abc/",
            "is_self": True,
            "link_flair_text": "News",
            "author": None,
        },
    }
    table = choose(POSTS, "url,is_self,author,link_flair_text:flair", raw=False,
                   option="--fields")  # fmt: skip
    rows = table.row_builder()([child, {"kind": "t1", "data": {"name": "t1_x"}}], NOW)
    assert rows == [
        (
            "t3_abc",
            "abc",
            1.0,
            "https://www.reddit.com/r/x/comments/abc/",
            True,
            "[deleted]",
            "News",
        )
    ]
    assert rows[0][4] is True


def test_raw_and_uncleaned_fields_are_the_structured_columns() -> None:
    table = choose(POSTS, "title,media,score", raw=True, option="--fields")
    assert [table.columns[i] for i in table.structured] == ["media", "raw"]
    assert POSTS.structured == () and COMMENTS.structured == ()
    child = {"kind": "t3", "data": {"name": "t3_abc", "media": {"type": "x"}, "score": 2}}
    ((*_, media, score, raw),) = table.row_builder()([child], NOW)
    assert media == {"type": "x"} and score == 2 and raw is child["data"]
