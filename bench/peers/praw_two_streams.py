"""The peer for posts and comments together: PRAW 8's idiom for following two streams
from one client, each stream paused with `pause_after=0` and read in turn.

    python bench/peers/praw_two_streams.py DB URL

Both streams skip what was listed before they started, and swallow errors as
praw_stream.py does. Each table has fullname as its key; an item PRAW yields again is
not stored twice but counted in the `offered_again` table, so its duplicates show.
Rows are committed at least once a second (and when a stream pauses, and at exit), so
`stored_utc` is at most about a second ahead of the commit.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from typing import Any

from praw_stream import connect  # beside this file


def main() -> int:
    db, url = sys.argv[1], sys.argv[2]
    reddit = connect(url)
    conn = sqlite3.connect(db)
    for table in ("posts", "comments"):
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(fullname TEXT PRIMARY KEY, created_utc REAL, stored_utc REAL)"
        )
    conn.execute("CREATE TABLE IF NOT EXISTS offered_again (tbl TEXT PRIMARY KEY, n INTEGER)")
    again = {"posts": 0, "comments": 0}

    def flush() -> None:
        conn.executemany("INSERT OR REPLACE INTO offered_again VALUES (?, ?)", again.items())
        conn.commit()

    def ignore(exc: Exception) -> None:
        pass  # as praw_stream.py: keep streaming through 429s and faults

    sub = reddit.subreddit("all")
    streams: list[tuple[str, Iterator[Any]]] = [
        ("posts", sub.stream.submissions(pause_after=0, skip_existing=True,
                                         exception_handler=ignore)),
        ("comments", sub.stream.comments(pause_after=0, skip_existing=True,
                                         exception_handler=ignore)),
    ]  # fmt: skip
    last_commit = time.monotonic()
    try:
        while True:
            for table, stream in streams:
                for item in stream:
                    if item is None:
                        break  # no new items in the last response: over to the other stream
                    cur = conn.execute(
                        f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?)",
                        (item.fullname, item.created_utc, time.time()),
                    )
                    if cur.rowcount == 0:
                        again[table] += 1
                    if time.monotonic() - last_commit >= 1:
                        flush()
                        last_commit = time.monotonic()
                flush()
                last_commit = time.monotonic()
    finally:
        flush()
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
