"""Where the stream, the transform and the store meet."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Callable, Protocol

from .progress import Reporter
from .stream import Batch
from .transform import post_rows


class Sink(Protocol):
    """Where rows go: the SQLite Store, or JSON lines on standard output."""

    def insert(self, rows: Sequence[tuple[Any, ...]]) -> int: ...
    def known(self, fullnames: Sequence[str]) -> set[str]: ...
    def newest(self) -> tuple[str, float] | None: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


def pump(
    batches: Iterable[Batch],
    store: Sink,
    reporter: Reporter,
    *,
    wall_clock: Callable[[], float],
    max_records: int | None,
    critical: Callable[[], AbstractContextManager[object]],
) -> None:
    """Store every batch in one transaction each, until `max_records` new rows if given.

    `critical()` brackets the write so a stop signal waits for the commit instead of
    tearing the transaction down.
    """
    stored = 0
    for batch in batches:
        rows = post_rows(batch.items, wall_clock())
        if max_records is not None:
            rows = rows[: max_records - stored]
        with critical():
            added = store.insert(rows)
            stored += added
            reporter.batch(batch, len(rows), added)
        if max_records is not None and stored >= max_records:
            return
