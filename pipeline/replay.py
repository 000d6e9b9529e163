"""`replay`: NDJSON dump files (Pushshift RS_ and RC_ files, Arctic Shift exports) into the
posts and comments tables, through the same transform and primary keys as the live stream.

Each batch of rows is committed together with how many lines of its file are done, so a
killed replay resumes after the last committed line and never stores a post twice.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import IO, Any, Callable, cast

from .errors import UsageError
from .store import Store
from .tables import Table

BATCH = 1000
MALFORMED_SHOWN = 20  # line numbers listed one by one; the rest only counted


def open_dump(raw: IO[bytes], name: str) -> IO[bytes]:
    """The decompressed bytes of `raw`, chosen by the file name's suffix."""
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if name.endswith(".bz2"):
        return cast(IO[bytes], bz2.BZ2File(raw))
    if name.endswith(".xz"):
        return cast(IO[bytes], lzma.LZMAFile(raw))
    if name.endswith(".zst"):
        return _zstd(raw, name)
    return raw


def _zstd(raw: IO[bytes], name: str) -> IO[bytes]:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.ZstdFile(raw)  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise UsageError(
            f"{name}: reading .zst needs Python 3.14 or newer, or the zstandard package "
            "(python3 -m pip install zstandard)"
        ) from None
    # Pushshift's files were written with a 2 GiB window, above the default limit.
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw)
    return cast(IO[bytes], io.BufferedReader(reader))


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


@dataclass
class Counts:
    lines: int = 0
    stored: int = 0  # new posts
    comments: int = 0  # new comments
    seen_again: int = 0
    malformed: list[int] = field(default_factory=list)
    malformed_count: int = 0


def replay_file(
    path: str,
    store: Store,
    tables: tuple[Table, Table],
    *,
    wall_clock: Callable[[], float],
    critical: Callable[[], AbstractContextManager[object]],
    progress: Callable[[int, int, int], None],
    warn: Callable[[str], None],
) -> Counts | None:
    """Load one dump into `store`, resuming where an earlier replay of it stopped.

    Returns None if the file was replayed to its end before. `progress(bytes_read,
    total_bytes, lines)` is called after each batch.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the decompressor
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    with raw:
        total = os.fstat(raw.fileno()).st_size
        key = f"{os.path.basename(path)}:{total}"
        done_lines, finished = store.replay_position(key)
        if finished:
            return None
        counts = Counts(lines=done_lines)
        posts, comments = tables
        builders = {"t3": posts.row_builder(), "t1": comments.row_builder()}
        rows: dict[str, list[tuple[Any, ...]]] = {"t3": [], "t1": []}
        stream = open_dump(raw, path)
        try:
            for number, line in _numbered(stream, skip=done_lines):
                counts.lines = number
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None  # counted below, like any line that is not a record
                child = as_child(record)
                if child is not None:
                    built = builders[child["kind"]]([child], _retrieved(child, wall_clock))
                if child is not None and built:
                    rows[child["kind"]] += built
                elif line.strip():
                    counts.malformed_count += 1
                    if len(counts.malformed) < MALFORMED_SHOWN:
                        counts.malformed.append(number)
                        warn(f"{os.path.basename(path)}: line {number:,} is not a post "
                             "or comment record")  # fmt: skip
                if number % BATCH == 0:
                    _commit(store, rows, key, number, False, counts, critical)
                    progress(raw.tell(), total, number)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            # A truncated or corrupt compressed file: keep every line read before it.
            _commit(store, rows, key, counts.lines, False, counts, critical)
            raise UsageError(
                f"{path}: unreadable after line {counts.lines:,} ({exc}); "
                "the lines before it are stored"
            ) from None
        _commit(store, rows, key, counts.lines, True, counts, critical)
        progress(total, total, counts.lines)
    return counts


def _retrieved(child: dict[str, Any], wall_clock: Callable[[], float]) -> float:
    """When the dump's maker fetched the record, if it says; else now."""
    when = child["data"].get("retrieved_on", child["data"].get("retrieved_utc"))
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    return wall_clock()


def _numbered(stream: IO[bytes], skip: int) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, 1):
        if number > skip:
            yield number, line


def _commit(
    store: Store,
    rows: dict[str, list[tuple[Any, ...]]],
    key: str,
    lines: int,
    finished: bool,
    counts: Counts,
    critical: Callable[[], AbstractContextManager[object]],
) -> None:
    """Both tables' rows and the file's progress in one transaction; `rows` emptied."""
    with critical():
        posts, comments = store.insert_parts(
            [("posts", rows["t3"]), ("comments", rows["t1"])], replay=(key, lines, finished)
        )
    counts.stored += posts
    counts.comments += comments
    counts.seen_again += len(rows["t3"]) + len(rows["t1"]) - posts - comments
    rows["t3"], rows["t1"] = [], []
