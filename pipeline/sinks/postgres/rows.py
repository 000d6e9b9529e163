"""Rows as COPY's text format: one tab-separated line each, NULL as \\N.

PostgreSQL's text and jsonb cannot hold the NUL character, which JSON strings can; it is
stored as U+FFFD, the replacement character, so that one such item cannot fail a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ...transform.tables import Table
    from ..base import Checkpoint
    from .connection import Connection

Row = tuple[Any, ...]
REPLAY_SAVE = (
    "INSERT INTO redpipe_replay VALUES (:dump, :lines, :finished) "
    # Two replays of one dump may run at once: the one behind never sets it back.
    "ON CONFLICT (dump) DO UPDATE SET lines = greatest(redpipe_replay.lines, excluded.lines), "
    "finished = redpipe_replay.finished OR excluded.finished"
)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_SPECIAL = re.compile("[\\\\\t\n\r\x00]")


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    text = value if isinstance(value, str) else str(value)
    if _SPECIAL.search(text):
        return text.translate(_ESCAPES)
    return text


def text(value: Any) -> Any:
    """A value bound as a parameter: text with its NUL characters replaced."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def json_text(value: Any) -> str | None:
    """A value as jsonb's input, NUL characters replaced."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


def _json(value: Any) -> str:
    return _text(json_text(value))


def copy_lines(rows: Sequence[Row], jsonb: Sequence[bool]) -> bytes:
    """`rows` as COPY text, each column as its type (jsonb or not) wants it."""
    encoders: list[Callable[[Any], str]] = [_json if j else _text for j in jsonb]
    lines = ["\t".join([f(v) for f, v in zip(encoders, row)]) for row in rows]
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def first_of_each(rows: Sequence[Row]) -> list[Row]:
    """`rows` without later repeats of a fullname, as INSERT OR IGNORE would keep them."""
    seen: set[Any] = set()
    kept = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    return kept


def insert(
    conn: Connection,
    tables: dict[str, Table],
    data: Sequence[tuple[str, bytes]],
    checkpoint: Checkpoint | None,
) -> list[int]:
    """Copy each table's lines into its stage, insert what is new in key order (writers
    that overlap then lock rows in one order, and never deadlock), and save `checkpoint`;
    how many rows of each table were new. Inside the caller's transaction."""
    added = []
    for table, lines in data:
        if not lines:
            added.append(0)
            continue
        columns = ", ".join(tables[table].columns)
        stage = f"redpipe_stage_{table}"
        conn.run(f"COPY {stage} ({columns}) FROM STDIN", stream=[lines])
        conn.run(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} "
            "ORDER BY fullname ON CONFLICT (fullname) DO NOTHING"
        )
        added.append(max(conn.row_count, 0))
    if checkpoint is not None:
        conn.run(REPLAY_SAVE, dump=checkpoint.dump, lines=checkpoint.lines,
                 finished=checkpoint.finished)  # fmt: skip
    return added
