"""`-` as the database, beyond the shared contract (test_sinks.py): JSON's own values,
what was written remembered in bounded memory, and an output that fails."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pipeline.errors import DatabaseError
from pipeline.sinks.jsonlines import JsonLines
from pipeline.transform.rows import POST_COLUMNS
from pipeline.transform.tables import POSTS, choose


def row(n: int, created: float | None = 1000.0) -> tuple[Any, ...]:
    values = dict.fromkeys(POST_COLUMNS)
    values.update(fullname=f"t3_{n:x}", id=f"{n:x}", created_utc=created, title="Ünïcode & <b>")
    return tuple(values[c] for c in POST_COLUMNS)


def sink(out: io.BytesIO, **options: Any) -> JsonLines:
    made = JsonLines(out, **options)
    made.prepare([POSTS])
    return made


def test_each_row_is_one_line_written_as_is() -> None:
    out = io.BytesIO()
    lines = sink(out)
    assert lines.write([("posts", [row(1), row(2)])]) == [2]
    text = out.getvalue().decode("utf-8").splitlines()
    assert json.loads(text[0])["title"] == "Ünïcode & <b>"  # written as is, not \u-escaped
    assert "Ü" in text[0] and list(json.loads(text[0])) == list(POST_COLUMNS)


def test_booleans_and_objects_are_json_values_not_encodings() -> None:
    table = choose(POSTS, "is_self,media,gallery", raw=True, option="--fields")
    child = {"kind": "t3", "data": {
        "name": "t3_a", "created_utc": 5, "is_self": True, "media": {"type": "v", "w": [1, 2]},
        "gallery": ["x"],
    }}  # fmt: skip
    out = io.BytesIO()
    lines = JsonLines(out)
    lines.prepare([table])
    lines.write([("posts", table.row_builder()([child], 7.0))])
    text = out.getvalue().decode("utf-8")
    assert '"is_self": true' in text and '"media": {"type": "v", "w": [1, 2]}' in text
    record = json.loads(text)
    assert record["is_self"] is True and record["gallery"] == ["x"]
    assert record["raw"] == child["data"]  # the whole item, nested, not a string


def test_memory_of_written_names_is_bounded_and_newest_skips_undated_rows() -> None:
    lines = sink(io.BytesIO(), remember=3)
    assert lines.newest("posts") is None
    lines.write([("posts", [row(n, created=float(n)) for n in range(1, 6)] + [row(6, None)])])
    assert lines.known("posts", [f"t3_{n:x}" for n in range(1, 7)]) == {"t3_4", "t3_5", "t3_6"}
    assert lines.newest("posts") == ("t3_5", 5.0)


class Full(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(28, "No space left on device")


def test_an_unwritable_output_is_a_fatal_error_naming_the_posts_lost() -> None:
    with pytest.raises(DatabaseError, match=r"No space left.*2 posts t3_1 \.\. t3_2 not written"):
        sink(Full()).write([("posts", [row(1), row(2)])])
