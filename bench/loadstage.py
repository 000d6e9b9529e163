"""The load stage alone (parse, transform, store 100 posts a transaction), timed inside one
process, with whichever redpipe is importable: the source tree, or a built .pyz given first.

    python bench/loadstage.py [--pyz REDPIPE.pyz] [--parts] DATA.ndjson DB.sqlite

prints the seconds the loop took (with --parts: the transform's and the store's share,
parsing done outside the timers). It speaks both the sink API and the Store of redpipe 1.0
(commit eff56c2), so two builds can be measured against each other in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
Write = Callable[[list[Any]], None]


def opened(db: Path) -> tuple[Callable[[Any, float], Any], Write, Callable[[], None]]:
    """(post_row, write 100 rows, close) from the redpipe on sys.path."""
    try:
        from pipeline.sinks import open_archive
        from pipeline.transform.rows import post_row
        from pipeline.transform.tables import POSTS
    except ImportError:  # redpipe 1.0: one Store class, the transform at the top
        from pipeline.store import Store  # type: ignore[import-not-found]

        from pipeline.transform import post_row  # type: ignore[import-not-found,no-redef]

        store = Store.open(str(db))
        return post_row, store.insert, store.close
    sink = open_archive(str(db), command="bench")
    sink.prepare([POSTS])
    return post_row, lambda rows: sink.write([("posts", rows)]) and None, sink.close


def load(data: Path, db: Path) -> float:
    loads = json.loads
    post_row, write, close = opened(db)
    started = time.perf_counter()
    batch = []
    with open(data, "rb") as f:
        for line in f:
            row = post_row({"kind": "t3", "data": loads(line)}, 0.0)
            if row is not None:
                batch.append(row)
            if len(batch) == 100:  # one transaction per 100, as one listing page
                write(batch)
                batch = []
    write(batch)
    took = time.perf_counter() - started
    close()
    return took


def parts(data: Path, db: Path) -> tuple[float, float]:
    """Seconds in the transform alone and in the store alone, for the same file (parsing
    is done 1,000 lines at a time, outside the timers): the profile of the stage."""
    loads = json.loads
    post_row, write, close = opened(db)
    transform = insert = 0.0
    with open(data, "rb") as f:
        while chunk := [loads(line) for _, line in zip(range(1000), f)]:
            started = time.perf_counter()
            rows = [post_row({"kind": "t3", "data": d}, 0.0) for d in chunk]
            middle = time.perf_counter()
            for i in range(0, len(rows), 100):
                write([r for r in rows[i : i + 100] if r is not None])
            transform += middle - started
            insert += time.perf_counter() - middle
    close()
    return transform, insert


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pyz", type=Path)
    parser.add_argument("--parts", action="store_true")
    parser.add_argument("data", type=Path)
    parser.add_argument("db", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.pyz) if args.pyz else str(ROOT))
    if args.parts:
        print(*parts(args.data, args.db))
    else:
        print(load(args.data, args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
