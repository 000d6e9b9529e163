"""`replay`: NDJSON dumps (Pushshift RS_ and RC_ files, Arctic Shift exports, or one on
standard input) into the posts and comments tables, through the same transform and
primary keys as the live stream; with a filter, only the items it keeps.

Each batch of rows is committed together with how many lines of its dump are done, so a
killed replay resumes after the last committed line and never stores a post twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..errors import UsageError
from ..sinks.base import Archive, Checkpoint, Row
from ..sources.dumps import READ_ERRORS, Dump, parse
from ..transform.filters import EVERYTHING, Filter
from ..transform.records import as_child, retrieved
from ..transform.sieve import Sieve
from ..transform.tables import Table
from .context import Context

BATCH = 1000
# A filtered replay keeps few of the lines it reads: it commits when BATCH rows are due
# or, to record how far it got, after this many lines.
SIFTED_BATCH = 20 * BATCH
MALFORMED_SHOWN = 20  # line numbers listed one by one; the rest only counted


@dataclass
class Counts:
    lines: int = 0
    stored: int = 0  # new posts
    comments: int = 0  # new comments
    seen_again: int = 0
    malformed: list[int] = field(default_factory=list)
    malformed_count: int = 0
    kept: int | None = None  # with a filter: the items it kept
    start: int = 0  # lines done by earlier runs
    resumable: bool = True

    def line(self, name: str) -> str:
        listed = ", ".join(f"{n:,}" for n in self.malformed)
        more = ", ..." if self.malformed_count > len(self.malformed) else ""
        sifted = ""
        if self.kept is not None:
            out = self.lines - self.start - self.kept - self.malformed_count
            sifted = f"{self.kept:,} kept, {out:,} filtered out, "
        return (
            f"{name}: {self.lines:,} lines, {sifted}{self.stored:,} new posts, "
            f"{self.comments:,} new comments, {self.seen_again:,} already stored, "
            f"{self.malformed_count:,} malformed"
            + (f" (lines {listed}{more})" if self.malformed else "")
            + ("" if self.resumable else "; not resumable (give --name to resume)")
        )


class Report(Protocol):
    """What a replay tells as it goes."""

    def progress(
        self, name: str, done: int | None, total: int | None, lines: int, kept: int | None
    ) -> None:
        """After each batch: bytes of the file read of its total (None for standard
        input), lines read, and with a filter the items kept."""

    def warn(self, text: str) -> None: ...

    def finished(self, name: str, counts: Counts | None) -> None:
        """A dump is done; None when it had been replayed to its end before."""


def replay(
    sink: Archive,
    dumps: Sequence[str],
    tables: tuple[Table, Table],
    context: Context,
    report: Report,
    *,
    keep: Filter = EVERYTHING,
    name: str | None = None,
) -> None:
    """Load each dump in turn (`name`: standard input's, to resume it by)."""
    for path in dumps:
        dump = Dump(path, keep=keep, name=name)
        try:
            counts = replay_file(dump, sink, tables, context, report, keep)
        finally:
            dump.close()
        report.finished(dump.name, counts)


def replay_file(
    dump: Dump,
    sink: Archive,
    tables: tuple[Table, Table],
    context: Context,
    report: Report,
    keep: Filter = EVERYTHING,
) -> Counts | None:
    """Load one dump into `sink`, resuming where an earlier replay of it stopped; None if
    it was replayed to its end before."""
    done = sink.checkpoint(dump.key) if dump.key else None
    if done is not None and done.finished:
        return None
    counts = Counts(lines=done.lines if done else 0, resumable=dump.key is not None)
    counts.start = counts.lines
    batch = _Batch(sink, tables, dump.key, counts, context)
    try:
        if keep.active:
            _sifted(dump, batch, keep, report)
        else:
            _every(dump, batch, report)
    except READ_ERRORS as exc:
        # A truncated or corrupt compressed file: keep every line read before it.
        batch.commit(finished=False)
        raise UsageError(
            f"{dump.path}: unreadable after line {counts.lines:,} ({exc}); "
            "the lines before it are stored"
        ) from None
    batch.commit(finished=True)
    report.progress(dump.name, dump.size, dump.size, counts.lines, counts.kept)
    return counts


def _every(dump: Dump, batch: _Batch, report: Report) -> None:
    counts = batch.counts
    for number, line in dump.lines(skip=counts.lines):
        counts.lines = number
        child = as_child(parse(line))
        if (child is None or not batch.add(child)) and line.strip():
            _malformed(counts, number, dump.name, report)
        if number % BATCH == 0:
            batch.commit(finished=False)
            report.progress(dump.name, dump.tell(), dump.size, number, None)


def _sifted(dump: Dump, batch: _Batch, keep: Filter, report: Report) -> None:
    """Only the lines the raw test lets through are parsed, and only the items the exact
    test keeps are stored."""
    counts, committed = batch.counts, batch.counts.lines
    counts.kept = 0
    for lines, picked in dump.blocks(skip=counts.lines, sieve=Sieve(keep)):
        for number, line in picked:
            child = as_child(parse(line))
            if child is not None and not keep.keeps(child["data"]):
                continue
            if child is not None and batch.add(child):
                counts.kept += 1
            elif line.strip():
                _malformed(counts, number, dump.name, report)
        counts.lines = lines
        if batch.pending >= BATCH or lines - committed >= SIFTED_BATCH:
            batch.commit(finished=False)
            committed = lines
        report.progress(dump.name, dump.tell(), dump.size, lines, counts.kept)


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
        key: str | None,
        counts: Counts,
        context: Context,
    ) -> None:
        self._sink, self._key, self.counts, self._critical = sink, key, counts, context.critical
        self._wall_clock: Callable[[], float] = context.wall_clock
        self._names = {table.kind: table.name for table in tables}
        self._builders = {table.kind: table.row_builder() for table in tables}
        self._rows: dict[str, list[Row]] = {kind: [] for kind in self._names}
        self.pending = 0

    def add(self, child: dict[str, Any]) -> bool:
        """Take a listing child; False if it makes no row (not a post or comment)."""
        kind = child["kind"]
        built = self._builders[kind]([child], retrieved(child, self._wall_clock))
        self._rows[kind] += built
        self.pending += len(built)
        return bool(built)

    def commit(self, *, finished: bool) -> None:
        """Every table's rows and the dump's progress in one transaction (no progress for
        a dump that cannot be resumed)."""
        counts = self.counts
        parts = [(self._names[kind], rows) for kind, rows in self._rows.items()]
        checkpoint = None if self._key is None else Checkpoint(self._key, counts.lines, finished)
        with self._critical():
            added = self._sink.write(parts, checkpoint=checkpoint)
        posts, comments = added
        counts.stored += posts
        counts.comments += comments
        counts.seen_again += sum(len(rows) for _, rows in parts) - posts - comments
        self._rows = {kind: [] for kind in self._names}
        self.pending = 0
