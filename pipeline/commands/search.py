"""`search`: the stored items that match a query, newest first, from the full-text index
that --fts made."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DatabaseError
from ..sinks.base import Archive, Match
from ..transform.tables import COMMENTS, POSTS


def search(
    sink: Archive,
    query: str,
    *,
    subreddits: Sequence[str],
    comments: bool,
    limit: int,
) -> tuple[list[tuple[str, Match]], bool]:
    """(kind, match) of the newest `limit` posts matching `query`, and comments too with
    `comments`, newest first; and whether more match."""
    wanted = [POSTS, COMMENTS] if comments else [POSTS]
    held = sink.adopt(wanted)
    if not held:
        raise DatabaseError(
            f"{sink.where} holds no {' or '.join(t.name for t in wanted)} to search"
        )
    found = [
        (table.kind, match)
        for table in held.values()
        for match in sink.search(table, query, subreddits=subreddits, limit=limit + 1)
    ]
    found.sort(key=lambda item: item[1].created_utc or 0.0, reverse=True)
    return found[:limit], len(found) > limit
