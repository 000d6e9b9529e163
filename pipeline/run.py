"""Where the stream, the transform and the store meet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Callable, Protocol

from .progress import Reporter
from .stream import Batch
from .tables import Table


class Sink(Protocol):
    """Where rows go: the SQLite Store, or JSON lines on standard output."""

    def insert(self, rows: Sequence[tuple[Any, ...]], *, table: str = ...) -> int: ...
    def known(self, fullnames: Sequence[str], *, table: str = ...) -> set[str]: ...
    def newest(self, *, table: str = ...) -> tuple[str, float] | None: ...
    def count(self, *, table: str = ...) -> int: ...
    def close(self) -> None: ...


def pump(
    batches: Iterable[tuple[str, Batch]],
    store: Sink,
    reporter: Reporter,
    *,
    tables: Mapping[str, Table],
    wall_clock: Callable[[], float],
    max_records: int | None,
    critical: Callable[[], AbstractContextManager[object]],
) -> None:
    """Store every (table, batch) in one transaction each, until `max_records` new rows
    in all if given.

    `critical()` brackets the write so a stop signal waits for the commit instead of
    tearing the transaction down.
    """
    builders = {name: table.row_builder() for name, table in tables.items()}
    stored = 0
    for name, batch in batches:
        rows = builders[name](batch.items, wall_clock())
        if max_records is not None:
            rows = rows[: max_records - stored]
        with critical():
            added = store.insert(rows, table=name)
            stored += added
            reporter.batch(batch, len(rows), added, name)
        if max_records is not None and stored >= max_records:
            return
