"""Load: the sinks, and the one place that reads `<database>`: `-` is JSON lines on
standard output, a postgresql:// URL a PostgreSQL database, anything else a SQLite file.

The PostgreSQL driver is imported only for a URL, so that a SQLite run starts as fast."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import BinaryIO

from ..errors import DatabaseError, UsageError
from ..transform.tables import Table
from .base import Archive, Sink


def open_sink(
    database: str,
    tables: Sequence[Table],
    *,
    lazy: Collection[str] = (),
    stdout: BinaryIO,
    environ: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Sink:
    """The stream's sink for `database`, prepared for `tables`."""
    if database == "-":
        from .jsonlines import JsonLines

        sink: Sink = JsonLines(stdout)
    else:
        sink = open_archive(database, command="stream", environ=environ, timeout=timeout)
    try:
        sink.prepare(tables, lazy=lazy)
    except BaseException:
        sink.close()
        raise
    return sink


def open_archive(
    database: str,
    *,
    command: str,
    create: bool = True,
    environ: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Archive:
    """The archive `database` names, not yet touched: `prepare` or `adopt` comes first.
    `-` is refused, since standard output keeps nothing to resume or refresh. Without
    `create` a SQLite file must exist already (a server's database always must). A URL is
    read with libpq's conventions from `environ` (the process's own if None), and the
    server must answer within `timeout` seconds."""
    if database == "-":
        raise UsageError(f"{command} needs a database file, not -")
    from .postgres.target import is_url

    if is_url(database):
        return _postgres(database, os.environ if environ is None else environ, timeout)
    if not create and not os.path.isfile(database):
        raise DatabaseError(f"{database}: no such database to {command}")
    from .sqlite.sink import SqliteSink

    return SqliteSink(database)


def _postgres(url: str, environ: Mapping[str, str], timeout: float) -> Archive:
    import logging

    from .postgres.sink import PostgresSink
    from .postgres.target import parse

    target = parse(url, environ)
    for note in target.notes:
        logging.getLogger(__name__).warning("%s", note)
    return PostgresSink(target, timeout=timeout)
