"""`search` at the edge: its sink, and how what it found is shown: two lines a match for
people, or one JSON object a match for programs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from ..errors import EXIT_OK, RedpipeError
from ..sinks.base import Match
from ..transform.rows import REDDIT
from .config import SearchConfig
from .console import Console

SHOWN = 100  # characters of a comment's body in the text form


def link(kind: str, match: Match) -> str | None:
    """The item's address on Reddit: its permalink, or one made of its ids."""
    if match.permalink:
        return REDDIT + match.permalink if match.permalink.startswith("/") else match.permalink
    ident = match.fullname[3:]
    if kind == "t3":
        return f"{REDDIT}/comments/{ident}/"
    if match.link_id:
        return f"{REDDIT}/comments/{match.link_id[3:]}/_/{ident}/"
    return None


def _epoch(created: float | None) -> float | int | None:
    # PostgreSQL holds every time as double precision: 1700000000.0 is shown as SQLite's
    # 1700000000, so that both give the same JSON.
    if isinstance(created, float) and created.is_integer():
        return int(created)
    return created


def _when(created: float | None) -> str:
    if created is None:
        return "????-??-?? ??:??"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(created))


def _one_line(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= SHOWN else flat[: SHOWN - 3] + "..."


def shown(found: Sequence[tuple[str, Match]], *, as_json: bool) -> Iterator[str]:
    """The lines to print for `found`, newest first as given."""
    for kind, match in found:
        url = link(kind, match)
        if as_json:
            record: dict[str, Any] = {
                "fullname": match.fullname,
                "kind": "post" if kind == "t3" else "comment",
                "created_utc": _epoch(match.created_utc),
                "subreddit": match.subreddit,
                "author": match.author,
                "title" if kind == "t3" else "body": match.text,
                "url": url,
            }
            yield json.dumps(record, ensure_ascii=False) + "\n"
            continue
        where = f"r/{match.subreddit}" if match.subreddit else "r/?"
        who = f"u/{match.author}" if match.author else "u/?"
        label = "" if kind == "t3" else "comment: "
        yield f"{_when(match.created_utc)} UTC  {where}  {who}  {label}{_one_line(match.text)}\n"
        yield f"    {url or match.fullname}\n"


def search(config: SearchConfig, stdout: TextIO, stderr: TextIO) -> int:
    from ..commands.search import search as find
    from ..sinks import open_archive

    console = Console(stderr, 0, time.monotonic, live=False)  # the sink's warnings
    sink = None
    try:
        sink = open_archive(config.database, command="search", create=False, timeout=config.timeout)
        found, more = find(
            sink,
            config.query,
            subreddits=config.subreddits,
            comments=config.comments,
            limit=config.limit,
        )
    except RedpipeError as exc:
        console.say(str(exc), "error: ")
        return exc.exit_code
    finally:
        if sink is not None:
            sink.close()
    try:
        stdout.writelines(shown(found, as_json=config.json))
        stdout.flush()
        if more:
            console.say(f"more items match than the {len(found):,} shown; --limit N shows more")
    except BrokenPipeError:
        # `| head`: the reader has what it wanted. Standard output goes nowhere from
        # here, so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
    return EXIT_OK
