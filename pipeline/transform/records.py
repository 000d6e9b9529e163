"""Pure: dump records made into listing children, and what /api/info says of an item now."""

from __future__ import annotations

from typing import Any, Callable

# Fields that change after posting; refresh writes their new values when the table has
# a column for them.
COUNTERS = frozenset(
    ("score", "num_comments", "edited", "upvote_ratio", "num_crossposts", "locked",
     "archived", "stickied", "over_18", "spoiler")
)  # fmt: skip
# What a purge keeps of an item its author deleted: where and when it was, not what it said
# or who said it.
KEEP_ON_PURGE = frozenset(
    ("fullname", "id", "created_utc", "subreddit", "subreddit_id", "link_id", "parent_id",
     "retrieved_utc", "score", "num_comments", "edited", "over_18", "is_self")
)  # fmt: skip


def as_child(record: Any) -> dict[str, Any] | None:
    """A dump record as a listing child: dumps hold the `data` object alone, and old
    Pushshift records lack `name` (and comments `permalink`) and give `created_utc` as a
    string."""
    if not isinstance(record, dict):
        return None
    kind = "t3"
    if "title" not in record and ("body" in record or "link_id" in record):
        kind = "t1"
    data = record  # copied only when a field must change: most records need nothing
    if not isinstance(data.get("name"), str) and isinstance(data.get("id"), str):
        data = {**data, "name": f"{kind}_{data['id']}"}
    created = data.get("created_utc")
    if isinstance(created, str):
        try:
            value: int | None = int(float(created))
        except ValueError:
            value = None
        data = {**data, "created_utc": value}
    if kind == "t1" and not isinstance(data.get("permalink"), str):
        sub, link, ident = data.get("subreddit"), data.get("link_id"), data.get("id")
        if all(isinstance(v, str) for v in (sub, link, ident)):
            # Reddit answers any slug; "_" stands for the post title the record lacks.
            data = {**data, "permalink": f"/r/{sub}/comments/{str(link)[3:]}/_/{ident}/"}
    return {"kind": kind, "data": data}


def retrieved(child: dict[str, Any], wall_clock: Callable[[], float]) -> float:
    """When the dump's maker fetched the record, if it says; else now."""
    when = child["data"].get("retrieved_on", child["data"].get("retrieved_utc"))
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    return wall_clock()


def removal(kind: str, data: dict[str, Any]) -> str | None:
    """How an item as /api/info shows it now was taken down, or None if it was not.

    'deleted': by its author. 'removed:<who>': Reddit's removed_by_category for posts
    (moderator, reddit, anti_evil_ops, automod_filtered, copyright_takedown, ...).
    'removed': the text says [removed] but not by whom (comments never say).
    """
    category = data.get("removed_by_category")
    text = data.get("selftext" if kind == "t3" else "body")
    if category == "deleted" or (text == "[deleted]" and data.get("author") == "[deleted]"):
        return "deleted"
    if isinstance(category, str) and category:
        return "removed:" + category
    if text == "[removed]":
        return "removed"
    return None
