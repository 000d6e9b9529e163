"""Filtered replay: exactly the rows an unfiltered replay followed by a DELETE of the rest
keeps, through the real CLI and store, on dumps of real listing items written every way
JSON allows (spacing, case, escapes, string dates, nesting); the raw test never drops a
line the exact test keeps; checkpoints tell filters apart; bad filters are one line."""

from __future__ import annotations

import calendar
import contextlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main as cli
from pipeline.cli.console import LiveLine
from pipeline.cli.report import DumpProgress
from pipeline.commands.context import Context
from pipeline.commands.replay import SIFTED_BATCH, Counts, replay_file
from pipeline.sinks import open_archive
from pipeline.sources.dumps import CHUNK, Dump
from pipeline.transform.filters import Filter, chosen
from pipeline.transform.records import as_child
from pipeline.transform.sieve import Sieve, between
from pipeline.transform.tables import COMMENTS, POSTS
from tests.conftest import query
from tests.test_replay import FIXTURES, items, posts

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real Reddit responses not found at {FIXTURES}"
)
DAY = calendar.timegm((2021, 1, 18, 0, 0, 0))


def comments() -> list[dict[str, Any]]:
    return items("reddit_all_comments_2020-07-15_limit100.json")


def escaped(text: str, rng: random.Random, every: bool = False) -> str:
    """`text` as a JSON string with some (or every) character written as a \\u00XX escape,
    its hex digits in either case."""
    out = []
    for ch in text:
        if every or rng.random() < 0.3:
            code = f"{ord(ch):04x}"
            out.append("\\u" + (code.upper() if rng.random() < 0.5 else code))
        else:
            out.append(json.dumps(ch)[1:-1])
    return '"' + "".join(out) + '"'


SPACES = [(",", ":"), (", ", ": "), (" ,\t", " :  "), (",\r", "\t:\r")]
FIELDS = ("subreddit", "author", "created_utc")


def render(record: dict[str, Any], rng: random.Random) -> str:
    """One line of `record` as some dump writer might have written it: any spacing, keys
    in any order, the filtered fields' keys and names sometimes escaped."""
    comma, colon = rng.choice(SPACES)
    keys = list(record)
    rng.shuffle(keys)
    parts = []
    for key in keys:
        value = record[key]
        name = escaped(key, rng) if key in FIELDS and rng.random() < 0.15 else json.dumps(key)
        text = (
            escaped(value, rng)
            if key in FIELDS and isinstance(value, str) and rng.random() < 0.2
            else json.dumps(value, ensure_ascii=rng.random() < 0.5)
        )
        parts.append(name + colon + text)
    return "{" + comma.join(parts) + "}"


def vary(record: dict[str, Any], i: int, rng: random.Random) -> dict[str, Any]:
    """A real item with a new id, and a subreddit, author and date drawn so that some match."""
    out = dict(record)
    kind = "t1" if "body" in record else "t3"
    out["id"] = f"f{i:05x}"
    out["name"] = f"{kind}_{out['id']}"
    out["retrieved_on"] = 1611000000 + i  # else retrieved_utc is the time of the run
    out["subreddit"] = rng.choice(["python", "Python", "PYTHON", "pythonic", "rust", "pyth0n"])
    out["author"] = rng.choice(["spez", "SPEZ", "Spez", "spez_", "kn0thing", "[deleted]"])
    when = DAY + rng.randrange(-3, 4) * 43200 + rng.choice([0, 1, -1, 0.5])
    out["created_utc"] = rng.choice([when, int(when), str(int(when)), f"{when}", when * 1.0])
    for field in FIELDS:
        if rng.random() < 0.05:
            out.pop(field)
        elif rng.random() < 0.03:
            out[field] = rng.choice([None, 7, [], "x"])
    return out


def tricky() -> list[str]:
    """Hand-written lines at the edges, each next to a real item's fields."""
    post, comment = posts()[0], comments()[0]
    base = {k: v for k, v in post.items() if k not in (*FIELDS, "name", "id")}
    base["retrieved_on"] = 1611000000  # else retrieved_utc is the time of the run
    lines = []

    def add(ident: str, text: str, of: dict[str, Any] = base) -> None:
        body = json.dumps({**of, "id": ident})[1:-1]
        lines.append("{" + text + ", " + body + "}")

    add("e1", f'"subreddit": "\\u0070ython", "author": "spez", "created_utc": {DAY}')
    add("e2", f'"\\u0073ubreddit":"Python","author":"spez","created_utc":{DAY}')
    add("e3", f'"subreddit" :"PyThOn" , "author" : "\\u0053PEZ", "created_utc" :"{DAY}"')
    add("e4", f'"subreddit":"python","author":"spez","\\u0063reated_utc":{DAY}')
    add("e5", f'"subreddit":"python","author":"spez","created_utc":"{DAY}.9"')
    add("e6", f'"subreddit":"python","author":"spez","created_utc":{DAY}e0')
    add("e7", f'"subreddit":"python","author":"spez","created_utc":{DAY + 1}.25')
    add("e8", f'"subreddit":"\\u212Aotlin","author":"spez","created_utc":{DAY}')
    add("e9", '"subreddit":"python","author":"spez","created_utc":NaN')
    add("e10", '"subreddit":"python","author":"spez","created_utc":-1')
    add("e11", f'"subreddit":"python","author":"spez","created_utc":"0{DAY}"')
    # A crosspost: the nested post's subreddit matches, the item's own does not.
    nested = json.dumps([{"subreddit": "python", "author": "spez", "created_utc": DAY}])
    add("e12", f'"crosspost_parent_list": {nested}, "subreddit": "news", "author": "x"')
    own = f'"subreddit":"python","author":"spez","created_utc":{DAY}'
    add("e13", f'{own},"crosspost_parent_list":{nested}')
    add("e14", f'"subreddit":"python","subreddit":"rust","author":"spez","created_utc":{DAY}')
    add("e15", f'"subreddit":"rust","subreddit":"python","author":"spez","created_utc":{DAY}')
    cbase = {k: v for k, v in comment.items() if k not in (*FIELDS, "name", "id")}
    cbase["retrieved_on"] = 1611000000
    add("c1", f'"subreddit":"Python","author":"spez","created_utc":{DAY}', cbase)
    add("c2", f'"subreddit":"python","author":"Spez","created_utc":"{DAY}"', cbase)
    lines += ['{"subreddit": "python", "author": "spez", "created_utc": 1', "{not json", "[1, 2]"]
    lines.append("")
    lines.append(f'{{"subreddit": "python", "author": "spez", "created_utc": {DAY}}}')  # no id
    return lines


def dump_of(path: Path, seed: int = 15, count: int = 600) -> Path:
    rng = random.Random(seed)
    real = posts() + comments()
    lines = [render(vary(real[i % len(real)], i, rng), rng) for i in range(count)]
    lines += tricky()
    rng.shuffle(lines)
    path.write_text("\n".join(lines), encoding="utf-8")  # the last line has no newline
    return path


FILTERS = [
    ("--subreddit", "python"),
    ("--author", "SPEZ+kn0thing"),
    ("--after", "2021-01-18", "--before", str(DAY + 86400)),
    ("--subreddit", "python+RUST", "--author", "spez", "--after", str(DAY + 0.5)),
    ("--before", "2021-01-18"),
]


def condition(keep: Filter) -> tuple[str, list[Any]]:
    """The SQL that keeps what `keep` keeps (SQLite's lower() folds ASCII only, as the
    filter does); NULLs count as not kept."""
    where, params = [], []
    for column, names in (("subreddit", keep.subreddits), ("author", keep.authors)):
        if names:
            where.append(f"coalesce(lower({column}) IN ({','.join('?' * len(names))}), 0)")
            params += sorted(names)
    if keep.after is not None:
        where.append("coalesce(created_utc >= ?, 0)")
        params.append(keep.after)
    if keep.before is not None:
        where.append("coalesce(created_utc < ?, 0)")
        params.append(keep.before)
    return " AND ".join(where), params


def everything(db: Path, table: str) -> list[tuple[Any, ...]]:
    return query(db, f"SELECT * FROM {table} ORDER BY fullname")


@pytest.mark.parametrize("options", FILTERS, ids=lambda o: " ".join(o))
def test_a_filtered_replay_keeps_what_an_unfiltered_one_and_a_delete_keep(
    tmp_path: Path, options: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    dump = dump_of(tmp_path / "RS_mixed.ndjson")
    whole, sifted = tmp_path / "whole.sqlite", tmp_path / "sifted.sqlite"
    assert cli.main(["replay", str(whole), str(dump), "--raw"]) == 0
    assert cli.main(["replay", str(sifted), str(dump), "--raw", *options]) == 0
    err = capsys.readouterr().err
    values = dict(zip(options[::2], options[1::2]))
    keep = chosen(
        values.get("--subreddit", "all"),
        values.get("--author"),
        values.get("--after"),
        values.get("--before"),
    )
    where, params = condition(keep)
    with contextlib.closing(sqlite3.connect(whole)) as conn, conn:
        for table in ("posts", "comments"):
            conn.execute(f"DELETE FROM {table} WHERE NOT ({where})", params)
    for table in ("posts", "comments"):
        kept = everything(sifted, table)
        assert kept == everything(whole, table)
        assert len(kept) > 0  # the filter keeps some of each, and drops some
    lines = len(dump.read_bytes().split(b"\n"))
    assert query(whole, "SELECT count(*) FROM posts")[0][0] < lines
    summary = next(line for line in err.splitlines() if "kept" in line)
    stored = sum(query(sifted, f"SELECT count(*) FROM {t}")[0][0] for t in ("posts", "comments"))
    assert f"RS_mixed.ndjson: {lines:,} lines, {stored:,} kept, " in summary


def test_the_raw_test_lets_through_every_line_the_exact_test_keeps(tmp_path: Path) -> None:
    rng = random.Random(7)
    real = posts() + comments()
    # Every line escaped or spaced somehow, and bodies dense with backslashes, so that the
    # sieve's regular-expression fallback for escapes runs too.
    lines = []
    for i in range(3000):
        record = vary(real[i % len(real)], i, rng)
        if i % 3 == 0:
            record["body"] = 'line\n\t"quoted" \\ ' * rng.randrange(1, 60)
        lines.append(render(record, rng))
    key, name = escaped("subreddit", rng, every=True), escaped("python", rng, every=True)
    lines.append("{" + key + ":" + name + ', "id": "zz1", "title": "every letter escaped"}')
    dump = tmp_path / "RC_all.ndjson"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for keep in [chosen(*f) for f in (
        ("python", None, None, None),
        ("all", "spez", None, None),
        ("all", None, "2021-01-18", None),
        ("all", None, None, str(DAY + 43200.5)),
        ("rust+pyth0n", "kn0thing+spez_", str(DAY - 86400), str(DAY + 1)),
    )]:  # fmt: skip
        opened = Dump(str(dump), keep=keep)
        try:
            passed = {
                n for _, picked in opened.blocks(skip=0, sieve=Sieve(keep)) for n, _ in picked
            }
        finally:
            opened.close()
        wanted = set()
        for number, line in enumerate(lines, 1):
            try:
                child = as_child(json.loads(line))
            except ValueError:
                continue
            if child is not None and keep.keeps(child["data"]):
                wanted.add(number)
        assert wanted and wanted <= passed, sorted(wanted - passed)[:5]
        # And it does filter: of the lines with no escape that it need not keep, it lets
        # few through (those with null or odd values, or a crosspost's own that matches).
        plain = {n for n, line in enumerate(lines, 1) if "\\u00" not in line} - wanted
        assert len(passed & plain) <= len(plain) / 5


def test_the_range_of_whole_numbers_is_exact() -> None:
    import re

    rng = random.Random(3)
    for _ in range(400):
        low = rng.randrange(0, 10 ** rng.randrange(1, 11))
        high = None if rng.random() < 0.2 else low + rng.randrange(-3, 10 ** rng.randrange(1, 9))
        pattern = re.compile(between(low, high) + b"$")
        near = [low, high or low, 0, 10 ** len(str(low)), rng.randrange(10**12)]
        for value in {max(0, v + d) for v in near for d in range(-12, 13)}:
            expected = value >= low and (high is None or value <= high)
            assert bool(pattern.match(str(value).encode())) == expected, (low, high, value)
        assert not pattern.match(b"0" + str(low).encode()) or low == 0


def test_lines_longer_than_a_chunk_and_a_last_line_without_newline_are_read(
    tmp_path: Path,
) -> None:
    post = dict(posts()[1], subreddit="Python", selftext="x" * (CHUNK * 2 + 17))
    other = dict(posts()[2], subreddit="rust")
    dump = tmp_path / "RS_long.ndjson"
    text = "\n".join(json.dumps(dict(post, id=f"l{i}", name=f"t3_l{i}")) for i in range(3))
    dump.write_text(json.dumps(other) + "\n" + text, encoding="utf-8")
    db = tmp_path / "p.sqlite"
    assert cli.main(["replay", str(db), str(dump), "--subreddit", "python"]) == 0
    assert query(db, "SELECT fullname, length(selftext) FROM posts ORDER BY fullname") == [
        (f"t3_l{i}", CHUNK * 2 + 17) for i in range(3)
    ]


class Killed(Exception):
    pass


class Report:
    """Stops the replay (as a kill would) once a commit of `lines` or more is behind it."""

    def __init__(self, lines: int | None) -> None:
        self.lines = lines

    def progress(
        self, name: str, done: int | None, total: int | None, lines: int, kept: int | None
    ) -> None:
        if self.lines is not None and lines >= self.lines:
            raise Killed

    def warn(self, text: str) -> None:
        pass

    def finished(self, name: str, counts: Counts | None) -> None:
        pass


def load(dump: Path, db: Path, keep: Filter, report: Report) -> Counts | None:
    sink = open_archive(str(db), command="replay")
    opened = Dump(str(dump), keep=keep)
    try:
        sink.prepare([POSTS, COMMENTS], lazy=("comments",))
        context = Context(wall_clock=lambda: 0.0)
        return replay_file(opened, sink, (POSTS, COMMENTS), context, report, keep)
    finally:
        opened.close()
        sink.close()


def test_a_stopped_filtered_replay_resumes_and_its_checkpoint_names_the_filter(
    tmp_path: Path,
) -> None:
    small = [{k: p[k] for k in ("title", "subreddit", "author", "created_utc")} for p in posts()]
    records = [
        dict(small[i % 100], id=f"{i:06x}", subreddit="python" if i % 100 == 0 else "news")
        for i in range(SIFTED_BATCH * 2 + 500)
    ]
    dump = tmp_path / "RS_small.ndjson"
    dump.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    db = tmp_path / "p.sqlite"
    keep = chosen("python", None, None, None)
    with pytest.raises(Killed):
        load(dump, db, keep, Report(SIFTED_BATCH))
    key = f"RS_small.ndjson:{dump.stat().st_size} subreddit=python"
    ((stopped_at,),) = query(db, "SELECT lines FROM redpipe_replay WHERE dump = ?", key)
    assert SIFTED_BATCH <= stopped_at < len(records)
    assert query(db, "SELECT count(*) FROM posts")[0][0] == (stopped_at + 99) // 100
    counts = load(dump, db, keep, Report(None))
    assert counts is not None and counts.lines == len(records) and counts.seen_again == 0
    assert counts.kept == counts.stored == (len(records) + 99) // 100 - (stopped_at + 99) // 100
    ids = [n for (n,) in query(db, "SELECT id FROM posts ORDER BY id")]
    assert ids == sorted(r["id"] for r in records if r["subreddit"] == "python")
    assert load(dump, db, keep, Report(None)) is None  # done: skipped
    # Another filter, or none, reads the dump again; the unfiltered key is the old one.
    assert load(dump, db, chosen("news", None, None, None), Report(None)) is not None
    assert load(dump, db, Filter(), Report(None)) is not None
    assert sorted(d for (d,) in query(db, "SELECT dump FROM redpipe_replay")) == [
        f"RS_small.ndjson:{dump.stat().st_size}",
        f"RS_small.ndjson:{dump.stat().st_size} subreddit=news",
        key,
    ]
    assert query(db, "SELECT count(*) FROM posts")[0][0] == len(records)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--after", "2024-13-01"], "--after must be a date as YYYY-MM-DD (UTC) or epoch"),
        (["--before", "yesterday"], "--before must be a date as YYYY-MM-DD (UTC) or epoch"),
        (["--after", "2024-02-30"], "--after must be a date"),
        (["--after", "2024-02-01", "--before", "2024-01-01"], "--after (2024-02-01) must be"),
        (["--after", "1704067200", "--before", "1704067200"], "--after (1704067200) must be"),
        (["--subreddit", "py thon"], "--subreddit must be subreddit names joined with +"),
        (["--subreddit", "all+python"], "--subreddit all means every subreddit"),
        (["--author", "spez+a b"], "--author must be Reddit user names joined with +"),
        (["--author", "[deleted]"], "--author must be Reddit user names joined with +"),
        (["--name", "RC_2024-01"], "--name names the dump read from standard input"),
        (["-", "-"], "- (standard input) can be given once"),
    ],
)
def test_a_bad_filter_is_one_line_and_exit_2(
    tmp_path: Path, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "RS_a.ndjson"
    dump.write_text(json.dumps(posts()[0]) + "\n", encoding="utf-8")
    db = tmp_path / "p.sqlite"
    assert cli.main(["replay", str(db), str(dump), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"redpipe: error: {message}") and err.count("\n") == 1, err
    assert not db.exists()


def test_the_live_line_shows_items_kept_and_makes_sense_without_a_size() -> None:
    import io

    out, now = io.StringIO(), [0.0]
    live = LiveLine(out, lambda: now[0], min_gap=0.5)
    sized = DumpProgress(live, "RC_x.zst", lambda: now[0])
    sized(0, 4_000_000, 0, 0)
    now[0] = 1.0
    sized(1_000_000, 4_000_000, 5_000, 52)
    assert out.getvalue().endswith(
        "RC_x.zst: 1.0 of 4.0 MB, 5,000 lines, 52 kept, 1.0 MB/s, 3s left"
    )
    piped = DumpProgress(live, "standard input", lambda: now[0])
    piped(None, None, 1_000, None)
    now[0] = 3.0
    piped(None, None, 251_000, None)
    assert out.getvalue().endswith("standard input: 251,000 lines, 125,000 lines/s")
    now[0] = 4.0
    piped(None, None, 301_000, 70)
    assert out.getvalue().endswith("standard input: 301,000 lines, 70 kept, 100,000 lines/s")
