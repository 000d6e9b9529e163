"""`-` as the database: every new post or comment becomes one JSON line on standard output.

There is no file to ask what was seen, so the names of the most recent items written are
kept in memory: enough for a poll to find its overlap with the one before, so a burst
between polls is still caught up and nothing is written twice within a run.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Collection, Sequence
from typing import BinaryIO

from ..errors import DatabaseError, OutputClosed
from ..transform.tables import Table
from .base import Part

# Ten listings' reach: a catch-up never pages further back than one.
REMEMBER = 10_000


class JsonLines:
    """A sink whose rows go out as NDJSON, each with its table's columns as keys. Values are
    JSON's own: booleans as true/false, objects and lists nested, not as text."""

    where = "standard output"
    durable = False  # a restart starts afresh with the newest page
    shared = False

    def __init__(self, out: BinaryIO, *, remember: int = REMEMBER) -> None:
        self._out = out
        self._remember = remember
        self._columns: dict[str, tuple[str, ...]] = {}
        # One memory for every table, bounded in all: fullname -> the table it went to.
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._newest: dict[str, tuple[str, float]] = {}
        self._count: dict[str, int] = {}

    def prepare(self, tables: Sequence[Table], *, lazy: Collection[str] = ()) -> None:
        for table in tables:
            self._columns[table.name] = table.columns
            self._count.setdefault(table.name, 0)

    def write(self, parts: Sequence[Part]) -> list[int]:
        return [self._write(table, rows) for table, rows in parts]

    def _write(self, table: str, rows: Sequence[tuple[object, ...]]) -> int:
        lines = []
        columns = self._columns[table]
        at = columns.index("created_utc")
        newest = self._newest.get(table)
        for row in rows:
            name = row[0]
            if not isinstance(name, str) or name in self._seen:
                continue
            self._seen[name] = table
            lines.append(json.dumps(dict(zip(columns, row)), ensure_ascii=False))
            created = row[at]
            if isinstance(created, (int, float)) and (newest is None or created >= newest[1]):
                newest = self._newest[table] = (name, float(created))
        if not lines:
            return 0
        self._emit(lines, f"{len(lines)} {table} {rows[0][0]} .. {rows[-1][0]}")
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._count[table] += len(lines)
        return len(lines)

    def _emit(self, lines: list[str], what: str) -> None:
        try:
            self._out.write(("\n".join(lines) + "\n").encode("utf-8"))
            self._out.flush()
        except BrokenPipeError:
            # Later writes, and the interpreter's own flush at exit, go nowhere quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._out.fileno())
            raise OutputClosed("standard output was closed") from None
        except OSError as exc:
            raise DatabaseError(
                f"standard output: {exc.strerror or exc}; {what} not written"
            ) from None

    def known(self, table: str, fullnames: Sequence[str]) -> set[str]:
        seen = self._seen
        return {n for n in fullnames if seen.get(n) == table}

    def newest(self, table: str, within: Sequence[str] = ()) -> tuple[str, float] | None:
        return self._newest.get(table)  # only this run's stream writes here

    def count(self, table: str) -> int:
        return self._count.get(table, 0)

    def claim(self, role: str) -> bool:
        return True  # nothing kept: nothing any other process could refresh

    def lead(self, what: str) -> str | None:
        return None  # a pipe has no standbys

    def confirm_lead(self) -> None:
        pass  # never leads: nothing to lose

    def close(self) -> None:
        pass  # every batch was flushed when it was written
