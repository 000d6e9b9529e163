"""`-` as the database: JSON lines out, what was written remembered in bounded memory."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pipeline.errors import DatabaseError
from pipeline.ndjson import JsonLines
from pipeline.transform import POST_COLUMNS


def row(n: int, created: float | None = 1000.0) -> tuple[Any, ...]:
    values = dict.fromkeys(POST_COLUMNS)
    values.update(fullname=f"t3_{n:x}", id=f"{n:x}", created_utc=created, title="Ünïcode & <b>")
    return tuple(values[c] for c in POST_COLUMNS)


def test_each_row_is_one_line_written_once() -> None:
    out = io.BytesIO()
    sink = JsonLines(out)
    assert sink.insert([row(1), row(2)]) == 2
    assert sink.insert([row(2), row(3)]) == 1
    lines = out.getvalue().decode("utf-8").splitlines()
    assert [json.loads(line)["fullname"] for line in lines] == ["t3_1", "t3_2", "t3_3"]
    assert json.loads(lines[0])["title"] == "Ünïcode & <b>"  # written as is, not \u-escaped
    assert "Ü" in lines[0]
    assert sink.count() == 3
    assert sink.known(["t3_1", "t3_3", "t3_9"]) == {"t3_1", "t3_3"}


def test_memory_of_written_names_is_bounded_and_newest_skips_undated_rows() -> None:
    sink = JsonLines(io.BytesIO(), remember=3)
    assert sink.newest() is None
    sink.insert([row(n, created=float(n)) for n in range(1, 6)] + [row(6, created=None)])
    assert sink.known([f"t3_{n:x}" for n in range(1, 7)]) == {"t3_4", "t3_5", "t3_6"}
    assert sink.newest() == ("t3_5", 5.0)


class Full(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(28, "No space left on device")


def test_an_unwritable_output_is_a_fatal_error_naming_the_posts_lost() -> None:
    with pytest.raises(DatabaseError, match=r"No space left.*2 posts t3_1 \.\. t3_2 not written"):
        JsonLines(Full()).insert([row(1), row(2)])
