"""`-` as the database: every new post or comment becomes one JSON line on standard output.

There is no file to ask what was seen, so the names of the most recent posts written are
kept in memory: enough for a poll to find its overlap with the one before, so a burst
between polls is still caught up and nothing is written twice within a run.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, BinaryIO

from .errors import DatabaseError, OutputClosed
from .tables import POSTS, Table

# Ten listings' reach: a catch-up never pages further back than one.
REMEMBER = 10_000


class JsonLines:
    """A store whose rows go out as NDJSON; same methods the stream and pump use."""

    def __init__(
        self, out: BinaryIO, tables: Sequence[Table] = (POSTS,), *, remember: int = REMEMBER
    ) -> None:
        self._out = out
        self._remember = remember
        self._columns = {t.name: t.columns for t in tables}
        # Fullnames carry their kind (t3_, t1_), so one memory serves every table.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._newest: dict[str, tuple[str, float]] = {}
        self._count = {t.name: 0 for t in tables}

    def insert(self, rows: Sequence[tuple[Any, ...]], *, table: str = "posts") -> int:
        lines = []
        columns = self._columns[table]
        at = columns.index("created_utc")
        newest = self._newest.get(table)
        for row in rows:
            name = row[0]
            if name in self._seen:
                continue
            self._seen[name] = None
            lines.append(json.dumps(dict(zip(columns, row)), ensure_ascii=False))
            created = row[at]
            if created is not None and (newest is None or created >= newest[1]):
                newest = self._newest[table] = (name, float(created))
        if not lines:
            return 0
        try:
            self._out.write(("\n".join(lines) + "\n").encode("utf-8"))
            self._out.flush()
        except BrokenPipeError:
            # Later writes, and the interpreter's own flush at exit, go nowhere quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._out.fileno())
            raise OutputClosed("standard output was closed") from None
        except OSError as exc:
            raise DatabaseError(
                f"standard output: {exc.strerror or exc}; "
                f"{len(lines)} {table} {rows[0][0]} .. {rows[-1][0]} not written"
            ) from None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._count[table] += len(lines)
        return len(lines)

    def known(self, fullnames: Sequence[str], *, table: str = "posts") -> set[str]:
        return {n for n in fullnames if n in self._seen}

    def newest(self, *, table: str = "posts") -> tuple[str, float] | None:
        return self._newest.get(table)

    def count(self, *, table: str = "posts") -> int:
        return self._count[table]

    def close(self) -> None:
        pass  # every batch was flushed when it was written
