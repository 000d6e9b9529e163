"""Pure: one listing child in, one row tuple out. Never raises, never mutates its input."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Callable

POST_COLUMNS: tuple[str, ...] = (
    "fullname",
    "id",
    "created_utc",
    "subreddit",
    "subreddit_id",
    "author",
    "author_fullname",
    "title",
    "selftext",
    "url",
    "permalink",
    "domain",
    "is_self",
    "over_18",
    "score",
    "num_comments",
    "edited",
    "retrieved_utc",
)

COMMENT_COLUMNS: tuple[str, ...] = (
    "fullname",
    "id",
    "created_utc",
    "subreddit",
    "author",
    "author_fullname",
    "body",
    "link_id",
    "parent_id",
    "permalink",
    "retrieved_utc",
)

REDDIT = "https://www.reddit.com"
Row = tuple[Any, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    # bool is an int subclass; True is not a score.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _flag(value: Any) -> int | None:
    return int(value) if isinstance(value, bool) else None


def post_row(child: Any, retrieved_utc: float) -> Row | None:
    """The row for a t3 child, or None for anything that is not a post with a fullname."""
    if not isinstance(child, dict) or child.get("kind") != "t3":
        return None
    data = child.get("data")
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith("t3_") or len(name) < 4:
        return None
    get = data.get
    author = get("author")
    url = get("url")
    if isinstance(url, str):
        # Crossposts and profile posts carry a site-relative url, useless as a link.
        if url.startswith("/"):
            url = REDDIT + url
    else:
        url = None
    return (
        name,
        name[3:],  # the id is the fullname without its kind, whatever `id` says
        _number(get("created_utc")),
        _text(get("subreddit")),
        _text(get("subreddit_id")),
        author if isinstance(author, str) else "[deleted]",
        _text(get("author_fullname")),
        _text(get("title")),
        _text(get("selftext")),
        url,
        _text(get("permalink")),
        _text(get("domain")),
        _flag(get("is_self")),
        _flag(get("over_18")),
        _int(get("score")),
        _int(get("num_comments")),
        _number(get("edited")),  # false when never edited, else the epoch of the last edit
        retrieved_utc,
    )


def comment_row(child: Any, retrieved_utc: float) -> Row | None:
    """The row for a t1 child, or None for anything that is not a comment with a fullname."""
    if not isinstance(child, dict) or child.get("kind") != "t1":
        return None
    data = child.get("data")
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith("t1_") or len(name) < 4:
        return None
    get = data.get
    author = get("author")
    return (
        name,
        name[3:],
        _number(get("created_utc")),
        _text(get("subreddit")),
        author if isinstance(author, str) else "[deleted]",
        _text(get("author_fullname")),
        _text(get("body")),
        _text(get("link_id")),
        _text(get("parent_id")),
        _text(get("permalink")),
        retrieved_utc,
    )


def field_value(data: dict[str, Any], path: str) -> Any:
    """A listing field as an SQLite value: `a.b.0` walks into objects and lists, a bool
    becomes 0/1, and an object or list is stored as its JSON text."""
    value: Any = data
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def raw_json(child: dict[str, Any]) -> str:
    """The item's whole `data` object as JSON text, for json_extract() later."""
    return json.dumps(child["data"], ensure_ascii=False, separators=(",", ":"))


def rows_of(
    build: Callable[[Any, float], Row | None], children: Iterable[Any], retrieved_utc: float
) -> list[Row]:
    """The rows `build` makes of `children`, in the same order, skipping what it refuses."""
    rows = []
    for child in children:
        row = build(child, retrieved_utc)
        if row is not None:
            rows.append(row)
    return rows


def post_rows(children: Iterable[Any], retrieved_utc: float) -> list[Row]:
    """Rows for the posts among `children`, in the same order."""
    return rows_of(post_row, children, retrieved_utc)
