"""Unattended soak: run a consumer for N minutes against the fake Reddit with random
faults, bursts, outages, removals, restarts and kills, then compare its database with
the server's ground truth. Not part of the test suite.

    python3 tools/soak.py --minutes 10                       # redpipe.pyz (./build.sh first)
    python3 tools/soak.py --minutes 10 --peer praw --python .bench/bin/python

Prints one table: posts published, stored, missing, duplicate rows, completeness,
requests per 1,000 posts, 429s earned by overrunning the budget, crashes, integrity.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakereddit import FakeReddit  # noqa: E402


def command(args: argparse.Namespace, db: Path, url: str) -> list[str]:
    if args.peer == "praw":
        return [args.python, str(ROOT / "bench" / "peers" / "praw_stream.py"), str(db), url]
    return [args.python, str(args.pyz), str(db), "--base-url", url, "--auth-url", url,
            "--timeout", "5"]  # fmt: skip


def rows(db: Path) -> list[str]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return [n for (n,) in conn.execute("SELECT fullname FROM posts")]
        except sqlite3.OperationalError:
            return []


def announced(log: Path) -> list[tuple[int, int]]:
    """The (newest stored, oldest listed) id pairs of every gap the consumer reported."""
    text = log.read_text("utf-8", "replace")
    found = re.findall(r"gap: .*? after t3_(\w+) and before t3_(\w+)", text)
    return [(int(a, 36), int(b, 36)) for a, b in found]


def listed_when_asked(server: FakeReddit, lost: set[str], order: list[str]) -> int:
    """How many lost posts the listing still reached at the consumer's next request after
    they appeared: losses a consumer could have avoided, as opposed to posts pushed past
    the listing's reach while it was down. Removals are ignored, which can only undercount.
    """
    offset = time.time() - time.monotonic()  # request times are monotonic
    asks = sorted(r.time + offset for r in server.listing_requests())
    assert server.published is not None
    published = [server.published[n] for n in order]
    index = {n: i for i, n in enumerate(order)}
    count = 0
    for name in lost:
        i = index[name]
        k = bisect.bisect_left(asks, published[i])
        newer = bisect.bisect_right(published, asks[k]) - (i + 1) if k < len(asks) else None
        if newer is not None and newer < server.listing_depth:
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--peer", choices=["redpipe", "praw"], default="redpipe")
    parser.add_argument("--pyz", type=Path, default=ROOT / "redpipe.pyz")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rate", type=float, default=10, help="steady posts per second")
    parser.add_argument("--chaos", type=float, default=0.05, help="share of faulty answers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="redpipe-soak-"))
    db = work / "soak.sqlite"
    env = {**os.environ, "REDPIPE_CLIENT_ID": "test-client", "REDPIPE_CLIENT_SECRET": "test-secret"}
    events = {"runs": 0, "sigterm": 0, "kill -9": 0, "bursts": 0, "outages": 0, "removed": 0,
              "crashes": 0}  # fmt: skip
    server = FakeReddit(chaos=args.chaos, seed=args.seed, track_times=True).start()
    server.add_posts(100)
    server.start_feed(args.rate)
    deadline = time.monotonic() + args.minutes * 60
    log = open(work / "stderr.log", "ab")  # noqa: SIM115 - open for the whole soak
    try:
        while time.monotonic() < deadline:
            proc = subprocess.Popen(command(args, db, server.url), env=env,
                                    stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
            events["runs"] += 1
            run_until = time.monotonic() + rng.uniform(10, 60)
            while time.monotonic() < min(run_until, deadline):
                time.sleep(rng.uniform(2, 8))
                roll = rng.random()
                if roll < 0.25:
                    # One burst plus the longest downtime stays within the 1,000 posts the
                    # listing reaches back; two bursts a few seconds apart can exceed it,
                    # which a consumer must then announce as a gap.
                    server.add_posts(rng.randint(100, 600))
                    events["bursts"] += 1
                elif roll < 0.35:
                    server.pause()
                    time.sleep(rng.uniform(1, 8))
                    server.resume()
                    events["outages"] += 1
                elif roll < 0.45 and server.posts:
                    server.remove(rng.choice(server.posts[-50:])["name"])
                    events["removed"] += 1
                if proc.poll() is not None:
                    break
            if proc.poll() is not None:
                events["crashes"] += 1  # it ended on its own, which it never should
            elif rng.random() < 0.5:
                proc.send_signal(signal.SIGTERM)
                events["sigterm"] += 1
            else:
                proc.kill()
                events["kill -9"] += 1
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            time.sleep(rng.uniform(0, 20))  # downtime: posts keep arriving
        # Last run: no new posts, no faults; let it catch up, then stop it.
        server.stop_feed()
        server.chaos = 0.0
        proc = subprocess.Popen(command(args, db, server.url), env=env,
                                stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        quiet_since, last = time.monotonic(), -1
        while time.monotonic() - quiet_since < 20:
            time.sleep(1)
            count = len(rows(db))
            if count != last:
                quiet_since, last = time.monotonic(), count
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        server.stop()
        log.close()
    report(args, db, server, events, work)
    return 0


def report(args: argparse.Namespace, db: Path, server: FakeReddit, events: dict[str, int],
           work: Path) -> None:  # fmt: skip
    stored = rows(db)
    order = [p["name"] for p in server.posts]
    index = {n: i for i, n in enumerate(order)}
    first = min(index[n] for n in stored)
    removed = server._removed
    # What a perfect archiver holds: every post from its first one on that is still listed
    # (a post removed before anyone could see it is not counted against it).
    expected = {n for n in order[first:] if n not in removed} | (set(stored) & removed)
    lost = expected - set(stored)
    ranges = announced(work / "stderr.log")
    unannounced = [n for n in lost if not any(a < int(n[3:], 36) < b for a, b in ranges)]
    missing = len(lost)
    avoidable = listed_when_asked(server, lost, order)
    duplicates = len(stored) - len(set(stored))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    listing = len(server.listing_requests())
    version = subprocess.run([args.python, "-V"], capture_output=True, text=True).stdout.strip()
    table = [
        ("consumer", "redpipe.pyz" if args.peer == "redpipe" else "PRAW 8.0.3 stream"),
        ("python", version),
        ("minutes", f"{args.minutes:g}"),
        ("steady rate, chaos", f"{args.rate:g} posts/s, {args.chaos:.0%} of answers faulty"),
        ("events", ", ".join(f"{k} {v}" for k, v in events.items())),
        ("posts published from the first stored", f"{len(expected):,}"),
        ("distinct posts stored", f"{len(set(stored)):,}"),
        ("missing", f"{missing:,}"),
        ("completeness", f"{100 * (1 - missing / max(1, len(expected))):.2f}%"),
        ("duplicate rows", f"{duplicates:,}"),
        ("gaps it reported", f"{len(ranges)}"),
        ("missing without a gap reported for it", f"{len(unannounced):,}"),
        ("missing though listed at its next request", f"{avoidable:,}"),
        ("listing requests per 1,000 posts", f"{1000 * listing / max(1, len(set(stored))):.0f}"),
        ("429s for overrunning the budget", f"{server.rate_limited}"),
        ("integrity_check", integrity),
        ("work dir (db, stderr.log)", str(work)),
    ]
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
