"""Load: the sinks, and the one place that reads `<database>`: `-` is JSON lines on
standard output, anything else a SQLite file (next: a postgresql:// URL)."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import BinaryIO

from ..errors import DatabaseError, UsageError
from ..transform.tables import Table
from .base import Archive, Sink


def open_sink(
    database: str, tables: Sequence[Table], *, lazy: Collection[str] = (), stdout: BinaryIO
) -> Sink:
    """The stream's sink for `database`, prepared for `tables`."""
    if database == "-":
        from .jsonlines import JsonLines

        sink: Sink = JsonLines(stdout)
    else:
        sink = open_archive(database, command="stream")
    try:
        sink.prepare(tables, lazy=lazy)
    except BaseException:
        sink.close()
        raise
    return sink


def open_archive(database: str, *, command: str, create: bool = True) -> Archive:
    """The archive `database` names, not yet touched: `prepare` or `adopt` comes first.
    `-` is refused, since standard output keeps nothing to resume or refresh. Without
    `create` it must exist already."""
    if database == "-":
        raise UsageError(f"{command} needs a database file, not -")
    if not create and not os.path.isfile(database):
        raise DatabaseError(f"{database}: no such database to {command}")
    from .sqlite.sink import SqliteSink

    return SqliteSink(database)
