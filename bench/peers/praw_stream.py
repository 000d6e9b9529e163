"""The peer: PRAW 8's submission stream, as its docs suggest running it unattended
(an exception_handler that swallows errors), storing each yielded post with a commit.

    python bench/peers/praw_stream.py DB URL

The table has no unique key, so a post PRAW yields twice is counted twice.
"""

from __future__ import annotations

import signal
import sqlite3
import sys

import praw


def connect(url: str) -> praw.Reddit:
    """PRAW pointed at the fake Reddit at `url`, stopping cleanly on SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return praw.Reddit(
        client_id="test-client",
        client_secret="test-secret",
        user_agent="linux:praw-peer:v1 (redpipe soak)",
        oauth_url=url,
        reddit_url=url,
        check_for_updates=False,
    )


def main() -> int:
    db, url = sys.argv[1], sys.argv[2]
    reddit = connect(url)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS posts (fullname TEXT, title TEXT)")
    for post in reddit.subreddit("all").stream.submissions(exception_handler=lambda exc: None):
        conn.execute("INSERT INTO posts VALUES (?, ?)", (post.fullname, post.title))
        conn.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
