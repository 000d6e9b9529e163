"""The baseline: the tutorial's pipeline (../shared/seeds/001), algorithm unchanged.

requests.get per poll (no session), a sleep of 0.5 s between polls, a list of the last
1000 permalinks to dedupe, the FIELDS/RENAME transform, a commit per row. Two changes
so it can run at all: `author_fullname` may be missing (it crashed there), and it stops
after N records.

    python bench/tutorial.py DB URL N [--no-sleep]
"""

from __future__ import annotations

import sqlite3
import sys
import time

import requests

FIELDS = ["title", "subreddit", "author_fullname"]
RENAME = {"author_fullname": "author"}


def stream(source: str, pause: float):  # type: ignore[no-untyped-def]
    buffer: list[str] = []
    headers = {"User-agent": "stream pipeline v.1"}
    while True:
        time.sleep(pause)
        buffer = buffer[-1000:]
        r = requests.get(source, headers=headers)
        for record in r.json()["data"]["children"]:
            record = record["data"]
            if record["permalink"] not in buffer:
                buffer.append(record["permalink"])
                yield record


def transform(record: dict) -> dict:  # type: ignore[type-arg]
    for key in list(record.keys()):
        if key not in FIELDS:
            del record[key]
    record.setdefault("author_fullname", "[deleted]")  # the tutorial crashed here
    for old_key, new_key in RENAME.items():
        record[new_key] = record.pop(old_key)
    return record


def main() -> int:
    db, url, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause = 0.0 if "--no-sleep" in sys.argv else 0.5
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS COMPANY (ID INTEGER PRIMARY KEY, SUBREDDIT CHAR(500) NOT NULL,"
        " TITLE CHAR(1000) NOT NULL, AUTHOR CHAR(500) NOT NULL)"
    )
    for count, record in enumerate(stream(url.rstrip("/") + "/r/all/new/.json", pause), 1):
        conn.execute(
            "INSERT INTO COMPANY (TITLE, AUTHOR, SUBREDDIT) VALUES (:title, :author, :subreddit)",
            transform(record),
        )
        conn.commit()
        if count >= limit:
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
