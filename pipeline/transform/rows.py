"""Pure: one listing child in, one row tuple out. Never raises, never mutates its input.

Rows hold plain Python values (bool, int, float, str, dict, list, None), never a storage
format: each sink encodes them its own way (SQLite stores a bool as 0/1 and an object as
JSON text; JSON lines write true/false and nested objects).
"""

from __future__ import annotations

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


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _named(child: Any, kind: str) -> tuple[str, Callable[[str], Any]] | None:
    """(fullname, data.get) of a child of `kind` ("t3", "t1") with a fullname of that kind."""
    if not isinstance(child, dict) or child.get("kind") != kind:
        return None
    data = child.get("data")
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith(kind + "_") or len(name) < 4:
        return None
    return name, data.get


def _by(get: Callable[[str], Any]) -> tuple[str, str | None]:
    """Who wrote it: the name ("[deleted]" once the account is gone) and its t2_ fullname."""
    author = get("author")
    return author if isinstance(author, str) else "[deleted]", _text(get("author_fullname"))


def _url(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    # Crossposts and profile posts carry a site-relative url, useless as a link.
    return REDDIT + value if value.startswith("/") else value


def post_row(child: Any, retrieved_utc: float) -> Row | None:
    """The row for a t3 child, or None for anything that is not a post with a fullname."""
    if (named := _named(child, "t3")) is None:
        return None
    name, get = named
    url = _url(get("url"))
    return (
        name,
        name[3:],  # the id is the fullname without its kind, whatever `id` says
        _number(get("created_utc")),
        _text(get("subreddit")),
        _text(get("subreddit_id")),
        *_by(get),
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
    if (named := _named(child, "t1")) is None:
        return None
    name, get = named
    where, body = _text(get("subreddit")), _text(get("body"))  # markdown, as written
    return (
        name,
        name[3:],
        _number(get("created_utc")),
        where,
        *_by(get),
        body,
        _text(get("link_id")),
        _text(get("parent_id")),
        _text(get("permalink")),
        retrieved_utc,
    )


def field_value(data: dict[str, Any], path: str) -> Any:
    """A listing field as it came: `a.b.0` walks into objects and lists; None if absent."""
    value: Any = data
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


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
