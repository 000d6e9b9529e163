"""Section 2d of bench/run.py: a filtered replay against the json.loads floor.

    .bench/bin/python bench/run.py --only filter [--runs 5]
    .bench/bin/python bench/filtered.py --pyz /tmp/rp.pyz [--lines 600000] [--runs 3]

Two synthetic dumps shaped like Arctic Shift's monthly files (one JSON object a line,
keys sorted, no spaces, `body_html` and `selftext_html` dropped, `retrieved_on` added),
made from the real r/all comments and posts in ../shared/fixtures/reddit: an RC_ file of
comments and an RS_ file of posts. Across the file, subreddits follow a Zipf law over
20,000 names and authors over 50,000, and created_utc climbs through one 31-day month as
in a dump sorted by date; one subreddit and one author each hold
exactly 1% of the lines, and the 1% of the month from its middle (7.4 hours) about as many.

Each round times, on the same file: json.loads of every line (the floor: reading and
parsing, nothing else), then the built .pyz's `replay` into a fresh SQLite file with each
filter that keeps 1% (a whole process, start-up included), and checks what it stored.
Rates are medians; each ratio is taken within its round (floor time over replay time).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import itertools
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run alone too: the source tree's packages

from bench.floor import load_floor  # noqa: E402
from tests.fakereddit import base36  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "reddit"
MONTH = calendar.timegm((2024, 1, 1, 0, 0, 0)), calendar.timegm((2024, 2, 1, 0, 0, 0))
SHARE = 100  # one line in SHARE matches each filter
# Lines of comments (half as many posts): about 1.1 GB and 1.2 GB, so that the start of
# the process (about 0.1 s) is a few percent of a replay.
LINES = 600_000
SUBREDDIT, AUTHOR = "AskHistorians", "Plenty-Of-Questions"
# The 1% of the month from its middle: about 7.4 hours.
WINDOW = (MONTH[0] + (MONTH[1] - MONTH[0]) // 2, MONTH[0] + (MONTH[1] - MONTH[0]) * 51 // 100)
# What Arctic Shift's files lack (body_html, selftext_html) or a dump has no use for.
DROPPED = frozenset(("body_html", "selftext_html", "created", "replies"))


def _children(name: str) -> list[dict[str, Any]]:
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return [child["data"] for child in doc["data"]["children"]]


def _zipf(names: list[str], rng: random.Random) -> Iterator[str]:
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(names))))
    while True:
        yield from rng.choices(names, cum_weights=weights, k=10_000)


def make(path: Path, kind: str, lines: int, seed: int = 15) -> dict[str, int]:
    """Write `lines` records of `kind` ("comments" or "posts"); how many each filter keeps."""
    rng = random.Random(seed)
    real = _children(
        "reddit_all_comments_2020-07-15_limit100.json"
        if kind == "comments"
        else "reddit_all_new_2021-01-18_limit100.json"
    )
    seen = sorted({str(r["subreddit"]) for r in real} - {SUBREDDIT})
    others = [f"{w}{n}" for n in range(300) for w in ("news", "Gaming")]
    subs = _zipf(seen + others + [f"sub_{n:05d}" for n in range(20_000 - len(seen) - 600)], rng)
    users = _zipf([f"{rng.choice(('Throwaway', 'the', 'Mr'))}_{n}x" for n in range(50_000)], rng)
    span, prefix = MONTH[1] - MONTH[0], "t1" if kind == "comments" else "t3"
    kept = dict.fromkeys(FILTERS, 0)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(lines):
            record = {k: v for k, v in real[i % len(real)].items() if k not in DROPPED}
            sub = SUBREDDIT if i % SHARE == 37 else next(subs)
            author = AUTHOR if i % SHARE == 71 else next(users)
            ident, created = base36(10**9 + i), MONTH[0] + span * i // lines
            record.update(
                id=ident,
                name=f"{prefix}_{ident}",
                subreddit=sub,
                subreddit_name_prefixed=f"r/{sub}",
                subreddit_id=f"t5_{base36(zlib.crc32(sub.encode()))}",
                author=author,
                created_utc=created,
                retrieved_on=created + 36 * 3600,
                permalink=f"/r/{sub}/comments/{base36(i)}/_/{ident}/",
            )
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
            out.write("\n")
            kept["subreddit"] += sub == SUBREDDIT
            kept["author"] += author == AUTHOR
            kept["date"] += WINDOW[0] <= created < WINDOW[1]
    return kept


FILTERS = {
    "subreddit": ("--subreddit", SUBREDDIT.lower()),
    "author": ("--author", AUTHOR.upper()),
    "date": ("--after", str(WINDOW[0]), "--before", str(WINDOW[1])),
}


def replayed(pyz: Path, path: Path, db: Path, options: tuple[str, ...]) -> tuple[float, int]:
    """(seconds, rows stored) of the whole `redpipe.pyz replay` process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(pyz), "replay", str(db), str(path), "-q", *options], check=True
    )
    took = time.perf_counter() - started
    table = "comments" if path.name.startswith("RC_") else "posts"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return took, int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def section(pyz: Path, lines: int, runs: int) -> list[tuple[str, str]]:
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="redpipe-filter-"))
    try:
        # The first start of a build unpacks and compiles it (section 5): not timed here.
        warm = '{"id": "a", "title": "t", "created_utc": 1}\n'
        (folder / "RS_warm.ndjson").write_text(warm, encoding="utf-8")
        replayed(pyz, folder / "RS_warm.ndjson", folder / "warm.sqlite", ())
        for kind, name in (("comments", "RC_2024-01.ndjson"), ("posts", "RS_2024-01.ndjson")):
            path, count = folder / name, lines if kind == "comments" else lines // 2
            expect = make(path, kind, count)
            rows += _measure(pyz, path, kind, count, expect, runs)
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _measure(
    pyz: Path, path: Path, kind: str, lines: int, expect: dict[str, int], runs: int
) -> list[tuple[str, str]]:
    size = path.stat().st_size
    floors: list[float] = []
    took: dict[str, list[float]] = {f: [] for f in FILTERS}
    ratios: dict[str, list[float]] = {f: [] for f in FILTERS}
    for run in range(runs):
        floors.append(load_floor(path))
        for which, options in FILTERS.items():
            seconds, stored = replayed(pyz, path, path.with_name(f"{which}{run}.sqlite"), options)
            assert stored == expect[which], (which, stored, expect)
            took[which].append(seconds)
            ratios[which].append(floors[-1] / seconds)
    base = statistics.median(floors)
    rows = [
        (f"{kind}: dump", f"{path.name}, {lines:,} lines, {size / lines:,.0f} bytes a line"),
        (
            f"{kind}: floor, json.loads of every line, lines/s",
            f"{lines / base:,.0f} ({1e6 * base / lines:.1f} µs a line)",
        ),
    ]
    for which, options in FILTERS.items():
        rate = lines / statistics.median(took[which])
        rows.append((
            f"{kind}: replay {' '.join(options)} (keeps {expect[which]:,}), lines/s",
            f"{rate:,.0f}, {statistics.median(ratios[which]):.1f}x the floor (target >= 5x)",
        ))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyz", type=Path, default=ROOT / "redpipe.pyz")
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| measure | value |\n|---|---|")
    for name, value in section(args.pyz, args.lines, args.runs):
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
