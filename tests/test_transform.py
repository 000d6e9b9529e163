"""The transform against real Reddit listings (../shared/fixtures) and against odd input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.sinks.sqlite.schema import insert_sql
from pipeline.transform.rows import POST_COLUMNS, post_row, rows_of
from pipeline.transform.tables import POSTS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reddit"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"real Reddit responses not found at {FIXTURES} (the ../shared checkout)",
)
NOW = 1_700_000_000.5


def listing(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def post_rows(children: list[Any], retrieved_utc: float) -> list[tuple[Any, ...]]:
    return rows_of(post_row, children, retrieved_utc)


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(POST_COLUMNS, row))


@needs_fixtures
def test_a_real_new_listing_keeps_every_field_exact() -> None:
    doc = listing("reddit_all_new_2021-01-18_limit100.json")
    children = doc["data"]["children"]
    before = copy.deepcopy(children)
    rows = [as_dict(r) for r in post_rows(children, NOW)]
    assert children == before  # pure: the input is untouched
    assert len(rows) == 100
    for row, child in zip(rows, children):
        data = child["data"]
        assert row["fullname"] == data["name"] and row["id"] == data["id"]
        assert row["title"] == data["title"]  # exactly as written: no entity decoding
        assert row["author"] == data["author"]
        assert row["author_fullname"] == data["author_fullname"]
        assert row["created_utc"] == data["created_utc"]
        assert row["permalink"] == data["permalink"] and row["url"] == data["url"]
        assert row["over_18"] is data["over_18"] and row["is_self"] is data["is_self"]
        assert row["retrieved_utc"] == NOW
    titles = [r["title"] for r in rows]
    assert sum("&" in t for t in titles) == 3
    assert not any("&amp;" in t for t in titles)
    assert any(any(ord(ch) > 0xFFFF for ch in t) for t in titles)  # emoji beyond the BMP


@needs_fixtures
def test_deleted_authors_and_edited_floats() -> None:
    children = listing("reddit_front_controversial_2020-07-04_deleted_authors.json")["data"][
        "children"
    ]
    rows = {r[0]: as_dict(r) for r in post_rows(children, NOW)}
    assert len(rows) == 100
    gone = [r for r in rows.values() if r["author_fullname"] is None]
    assert len(gone) == 13
    assert {r["author"] for r in gone} == {"[deleted]"}
    assert rows["t3_30xn63"]["author_fullname"] is None
    edited = {c["data"]["name"]: c["data"]["edited"] for c in children}
    floats = [n for n, e in edited.items() if e is not False]
    assert len(floats) == 6
    for name, value in edited.items():
        assert rows[name]["edited"] == (None if value is False else value)


@needs_fixtures
def test_mixed_kinds_keep_only_posts_and_absolute_urls() -> None:
    children = listing("reddit_user_overview_new_2026-06-08_mixed_t1_t3.json")["data"]["children"]
    rows = [as_dict(r) for r in post_rows(children, NOW)]
    posts = [c["data"] for c in children if c["kind"] == "t3"]
    assert [r["fullname"] for r in rows] == [p["name"] for p in posts]
    relative = [p for p in posts if p["url"].startswith("/")]
    assert len(relative) == 6
    for row, post in zip(rows, posts):
        expected = post["url"]
        if expected.startswith("/"):
            expected = "https://www.reddit.com" + expected
        assert row["url"] == expected
        assert row["url"].startswith("http")


@needs_fixtures
def test_comments_and_empty_listings_give_no_post_rows() -> None:
    comments = listing("reddit_all_comments_2020-07-15_limit100.json")["data"]["children"]
    assert post_rows(comments, NOW) == []
    empty = listing("reddit_listing_empty_before_2021-01-18.json")["data"]["children"]
    assert post_rows(empty, NOW) == []


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, float("inf")]


def test_never_crashes_on_any_missing_or_odd_field() -> None:
    base = {
        "name": "t3_abc123", "id": "abc123", "created_utc": 1.0, "subreddit": "s",
        "subreddit_id": "t5_1", "author": "a", "author_fullname": "t2_1", "title": "t",
        "selftext": "", "url": "/r/s/comments/abc123/", "permalink": "/r/s/comments/abc123/",
        "domain": "self.s", "is_self": True, "over_18": False, "score": 3,
        "num_comments": 0, "edited": False,
    }  # fmt: skip
    for key in base:
        if key == "name":
            continue
        cases = [{k: v for k, v in base.items() if k != key}]
        cases += [{**base, key: odd} for odd in ODD_VALUES]
        for data in cases:
            frozen = copy.deepcopy(data)
            row = post_row({"kind": "t3", "data": data}, NOW)
            assert data == frozen
            assert row is not None and row[0] == "t3_abc123" and len(row) == len(POST_COLUMNS)
            values = as_dict(row)
            assert isinstance(values["author"], str)
            assert values["id"] == "abc123"
            for column in ("score", "num_comments"):
                assert values[column] is None or type(values[column]) is int
            for column in ("is_self", "over_18"):
                assert values[column] is None or type(values[column]) is bool


@pytest.mark.parametrize(
    "child",
    [None, 1, "t3_x", [], {}, {"kind": "t3"}, {"kind": "t3", "data": None},
     {"kind": "t3", "data": {"name": None}}, {"kind": "t3", "data": {"name": "t1_abc"}},
     {"kind": "t1", "data": {"name": "t1_abc"}}, {"kind": "more", "data": {"children": []}}],
)  # fmt: skip
def test_anything_that_is_not_a_post_is_skipped(child: Any) -> None:
    assert post_row(child, NOW) is None


def test_rows_are_positional_tuples_for_one_executemany_per_page() -> None:
    # The load-stage figures in BENCHMARKS.md depend on this: named (dict) parameters
    # cost SQLite about a microsecond more per row.
    row = post_row({"kind": "t3", "data": {"name": "t3_abc", "title": "x"}}, NOW)
    assert type(row) is tuple and len(row) == len(POST_COLUMNS)
    insert = insert_sql(POSTS)
    assert insert.count("?") == len(POST_COLUMNS) and ":" not in insert
