"""`replay`: NDJSON dump files (Pushshift RS_ and RC_ files, Arctic Shift exports) into the
posts and comments tables, through the same transform and primary keys as the live stream.

Each batch of rows is committed together with how many lines of its file are done, so a
killed replay resumes after the last committed line and never stores a post twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..errors import UsageError
from ..sinks.base import Archive, Checkpoint, Row
from ..sources.dumps import READ_ERRORS, Dump, parse
from ..transform.records import as_child, retrieved
from ..transform.tables import Table
from .context import Context

BATCH = 1000
MALFORMED_SHOWN = 20  # line numbers listed one by one; the rest only counted


@dataclass
class Counts:
    lines: int = 0
    stored: int = 0  # new posts
    comments: int = 0  # new comments
    seen_again: int = 0
    malformed: list[int] = field(default_factory=list)
    malformed_count: int = 0

    def line(self, name: str) -> str:
        listed = ", ".join(f"{n:,}" for n in self.malformed)
        more = ", ..." if self.malformed_count > len(self.malformed) else ""
        return (
            f"{name}: {self.lines:,} lines, {self.stored:,} new posts, "
            f"{self.comments:,} new comments, {self.seen_again:,} already stored, "
            f"{self.malformed_count:,} malformed"
            + (f" (lines {listed}{more})" if self.malformed else "")
        )


class Report(Protocol):
    """What a replay tells as it goes."""

    def progress(self, name: str, done: int, total: int, lines: int) -> None:
        """After each batch: bytes of the file read of its total, lines read."""

    def warn(self, text: str) -> None: ...

    def finished(self, name: str, counts: Counts | None) -> None:
        """A dump is done; None when it had been replayed to its end before."""


def replay(
    sink: Archive,
    dumps: Sequence[str],
    tables: tuple[Table, Table],
    context: Context,
    report: Report,
) -> None:
    """Load each dump in turn."""
    for path in dumps:
        dump = Dump(path)
        try:
            counts = replay_file(dump, sink, tables, context, report)
        finally:
            dump.close()
        report.finished(dump.name, counts)


def replay_file(
    dump: Dump, sink: Archive, tables: tuple[Table, Table], context: Context, report: Report
) -> Counts | None:
    """Load one dump into `sink`, resuming where an earlier replay of it stopped; None if
    it was replayed to its end before."""
    done = sink.checkpoint(dump.key)
    if done is not None and done.finished:
        return None
    counts = Counts(lines=done.lines if done else 0)
    batch = _Batch(sink, tables, dump.key, counts, context)
    try:
        for number, line in dump.lines(skip=counts.lines):
            counts.lines = number
            if not batch.add(parse(line), context.wall_clock) and line.strip():
                _malformed(counts, number, dump.name, report)
            if number % BATCH == 0:
                batch.commit(finished=False)
                report.progress(dump.name, dump.tell(), dump.size, number)
    except READ_ERRORS as exc:
        # A truncated or corrupt compressed file: keep every line read before it.
        batch.commit(finished=False)
        raise UsageError(
            f"{dump.path}: unreadable after line {counts.lines:,} ({exc}); "
            "the lines before it are stored"
        ) from None
    batch.commit(finished=True)
    report.progress(dump.name, dump.size, dump.size, counts.lines)
    return counts


def _malformed(counts: Counts, number: int, name: str, report: Report) -> None:
    counts.malformed_count += 1
    if len(counts.malformed) < MALFORMED_SHOWN:
        counts.malformed.append(number)
        report.warn(f"{name}: line {number:,} is not a post or comment record")


class _Batch:
    """The rows read since the last commit, by table, and how to commit them."""

    def __init__(
        self,
        sink: Archive,
        tables: tuple[Table, Table],
        key: str,
        counts: Counts,
        context: Context,
    ) -> None:
        self._sink, self._key, self._counts, self._critical = sink, key, counts, context.critical
        self._names = {table.kind: table.name for table in tables}
        self._builders = {table.kind: table.row_builder() for table in tables}
        self._rows: dict[str, list[Row]] = {kind: [] for kind in self._names}

    def add(self, record: Any, wall_clock: Callable[[], float]) -> bool:
        """Take a record; False if it is not a post or comment."""
        child = as_child(record)
        if child is None:
            return False
        kind = child["kind"]
        built = self._builders[kind]([child], retrieved(child, wall_clock))
        self._rows[kind] += built
        return bool(built)

    def commit(self, *, finished: bool) -> None:
        """Every table's rows and the file's progress in one transaction."""
        counts = self._counts
        parts = [(self._names[kind], rows) for kind, rows in self._rows.items()]
        checkpoint = Checkpoint(self._key, counts.lines, finished)
        with self._critical():
            added = self._sink.write(parts, checkpoint=checkpoint)
        posts, comments = added
        counts.stored += posts
        counts.comments += comments
        counts.seen_again += sum(len(rows) for _, rows in parts) - posts - comments
        self._rows = {kind: [] for kind in self._names}
