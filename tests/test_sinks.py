"""The contract every sink keeps, one suite run against each of them.

A new sink joins by adding a maker below (how to open it, read back what it stored, make
a table redpipe did not make, and fingerprint it): the tests themselves stay as they are.
Sinks that keep what they store (`durable`: SQLite and PostgreSQL) are archives and
pass the second half too (checkpoints, refresh's queries, schema growth and refusals);
standard output is refused as an archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from pipeline.errors import DatabaseError, UsageError
from pipeline.sinks import open_archive, open_sink
from pipeline.sinks.base import Archive, Checkpoint, Edit, Sink
from pipeline.transform.rows import COMMENT_COLUMNS, POST_COLUMNS
from pipeline.transform.tables import BOOKKEEPING, COMMENTS, POSTS, Table, choose


class Maker(Protocol):
    durable: bool

    def open(self, tables: tuple[Table, ...], lazy: tuple[str, ...] = ()) -> Sink:
        """A new sink on the same storage, as a new run would open it."""

    def archive(self) -> Archive:
        """The storage as an archive, not yet prepared."""

    def read(self, table: Table) -> list[dict[str, Any]]:
        """What is stored in `table`, oldest first, as Python values."""

    def columns(self, name: str) -> list[str]: ...

    def foreign(self, name: str) -> None:
        """Give the storage a table `name` that redpipe did not make."""

    def fingerprint(self) -> str: ...

    def query(self, sql: str) -> list[Any]:
        """The rows of one statement, run underneath the sink."""


class SqliteMaker:
    durable = True

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "contract.sqlite"

    def open(self, tables: tuple[Table, ...], lazy: tuple[str, ...] = ()) -> Sink:
        return open_sink(str(self.path), tables, lazy=lazy, stdout=io.BytesIO())

    def archive(self) -> Archive:
        return open_archive(str(self.path), command="test")

    def query(self, sql: str) -> list[Any]:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return db.execute(sql).fetchall()

    def read(self, table: Table) -> list[dict[str, Any]]:
        names = ", ".join(table.columns)
        rows = self.query(f"SELECT {names} FROM {table.name} ORDER BY rowid")
        structured = {table.columns[i] for i in table.structured}
        return [
            {c: _decoded(v) if c in structured else v for c, v in zip(table.columns, row)}
            for row in rows
        ]

    def columns(self, name: str) -> list[str]:
        return [r[1] for r in self.query(f"PRAGMA table_info({name})")]

    def foreign(self, name: str) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(f"CREATE TABLE {name} (fullname TEXT, body TEXT)")

    def fingerprint(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _decoded(value: Any) -> Any:
    # Objects and lists are stored as their JSON text, other values as themselves.
    if isinstance(value, str) and value[:1] in ("{", "["):
        return json.loads(value)
    return value


class StdoutMaker:
    durable = False

    def __init__(self, tmp_path: Path) -> None:
        self.out = io.BytesIO()

    def open(self, tables: tuple[Table, ...], lazy: tuple[str, ...] = ()) -> Sink:
        return open_sink("-", tables, lazy=lazy, stdout=self.out)

    def archive(self) -> Archive:
        return open_archive("-", command="test")

    def read(self, table: Table) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.out.getvalue().decode("utf-8").splitlines()]
        return [r for r in lines if str(r["fullname"]).startswith(table.kind + "_")]

    def columns(self, name: str) -> list[str]:
        raise NotImplementedError

    def foreign(self, name: str) -> None:
        raise NotImplementedError

    def fingerprint(self) -> str:
        return hashlib.sha256(self.out.getvalue()).hexdigest()

    def query(self, sql: str) -> list[Any]:
        raise NotImplementedError


class PostgresMaker:
    """A fresh database on the worker's PostgreSQL server (tests/pgcluster.py), reached
    over TLS with the server's certificate checked, as a user would reach it."""

    durable = True

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.cluster = request.getfixturevalue("pg_cluster")
        self.database = request.getfixturevalue("pg_database")
        self.url = self.cluster.url(self.database) + "?sslmode=verify-full"
        self.environ = {**self.cluster.env(), "HOME": str(tmp_path)}

    def open(self, tables: tuple[Table, ...], lazy: tuple[str, ...] = ()) -> Sink:
        return open_sink(self.url, tables, lazy=lazy, stdout=io.BytesIO(), environ=self.environ)

    def archive(self) -> Archive:
        return open_archive(self.url, command="test", environ=self.environ)

    def query(self, sql: str) -> list[Any]:
        conn = self.cluster.connect(self.database)
        try:
            return conn.run(sql) or []
        finally:
            conn.close()

    def read(self, table: Table) -> list[dict[str, Any]]:
        names = ", ".join(table.columns)
        rows = self.query(f"SELECT {names} FROM {table.name} ORDER BY created_utc, fullname")
        return [dict(zip(table.columns, row)) for row in rows]

    def columns(self, name: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = 'public' AND table_name = '{name}' ORDER BY ordinal_position"
        )]  # fmt: skip

    def foreign(self, name: str) -> None:
        self.query(f"CREATE TABLE {name} (fullname text, body text)")

    def fingerprint(self) -> str:
        tables = [r[0] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "ORDER BY table_name"
        )]  # fmt: skip
        shape = self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        content = [self.query(f"SELECT row_to_json(t)::text FROM {n} t ORDER BY 1") for n in tables]
        return hashlib.sha256(json.dumps([tables, shape, content]).encode()).hexdigest()


MAKERS = {"sqlite": SqliteMaker, "stdout": StdoutMaker, "postgres": PostgresMaker}
ARCHIVES = [name for name, maker in MAKERS.items() if maker.durable]


def _made(request: pytest.FixtureRequest, tmp_path: Path) -> Maker:
    kind = MAKERS[request.param]
    made: Maker = kind(tmp_path, request) if kind is PostgresMaker else kind(tmp_path)
    return made


@pytest.fixture(params=list(MAKERS))
def maker(request: pytest.FixtureRequest, tmp_path: Path) -> Maker:
    return _made(request, tmp_path)


@pytest.fixture(params=ARCHIVES)
def archive_maker(request: pytest.FixtureRequest, tmp_path: Path) -> Maker:
    return _made(request, tmp_path)


@contextlib.contextmanager
def opened(maker: Maker, *tables: Table, lazy: tuple[str, ...] = ()) -> Iterator[Sink]:
    sink = maker.open(tables or (POSTS,), lazy)
    try:
        yield sink
    finally:
        sink.close()


@contextlib.contextmanager
def archived(maker: Maker) -> Iterator[Archive]:
    sink = maker.archive()
    try:
        yield sink
    finally:
        sink.close()


def post(n: int, created: float | None = None, **data: Any) -> dict[str, Any]:
    made = {"name": f"t3_{n:x}", "created_utc": 1_600_000_000 + n if created is None else created}
    return {"kind": "t3", "data": {**made, "title": f"post {n} & <ü>", "author": "a", **data}}


def comment(n: int, **data: Any) -> dict[str, Any]:
    made = {"name": f"t1_{n:x}", "created_utc": 1_600_000_000 + n, "body": f"said {n}"}
    return {"kind": "t1", "data": {**made, **data}}


def rows(table: Table, children: list[dict[str, Any]], when: float = 7.5) -> list[Any]:
    return table.row_builder()(children, when)


# -- every sink -------------------------------------------------------------------------


def test_each_item_is_stored_once_and_known_after(maker: Maker) -> None:
    with opened(maker) as sink:
        assert sink.known("posts", ["t3_1"]) == set() and sink.count("posts") == 0
        assert sink.write([("posts", rows(POSTS, [post(1), post(2)]))]) == [2]
        assert sink.write([("posts", rows(POSTS, [post(2), post(3)]))]) == [1]
        assert sink.write([("posts", [])]) == [0]
        assert sink.known("posts", ["t3_1", "t3_3", "t3_9"]) == {"t3_1", "t3_3"}
        assert sink.count("posts") == 3
    assert [r["fullname"] for r in maker.read(POSTS)] == ["t3_1", "t3_2", "t3_3"]


def test_one_write_spans_tables_and_counts_each(maker: Maker) -> None:
    with opened(maker, POSTS, COMMENTS) as sink:
        parts = [
            ("posts", rows(POSTS, [post(1)])),
            ("comments", rows(COMMENTS, [comment(1), comment(2)])),
        ]
        assert sink.write(parts) == [1, 2]
        assert sink.write(parts) == [0, 0]
        assert sink.known("comments", ["t1_1", "t3_1"]) == {"t1_1"}
        assert (sink.count("posts"), sink.count("comments")) == (1, 2)
    assert [r["fullname"] for r in maker.read(COMMENTS)] == ["t1_1", "t1_2"]
    assert set(maker.read(COMMENTS)[0]) == set(COMMENT_COLUMNS)


def test_newest_is_the_latest_created_and_skips_undated_items(maker: Maker) -> None:
    with opened(maker) as sink:
        assert sink.newest("posts") is None
        sink.write([("posts", rows(POSTS, [post(1, 50.0), post(2, 90.0), post(3, 70.0)]))])
        sink.write([("posts", rows(POSTS, [post(4, created="soon")]))])  # not a date: None
        assert sink.newest("posts") == ("t3_2", 90.0)
        sink.write([("posts", rows(POSTS, [post(5, 90.0)]))])  # a tie: the later write
        assert sink.newest("posts") == ("t3_5", 90.0)


def test_newest_of_some_subreddits_ignores_what_other_streams_stored(maker: Maker) -> None:
    with opened(maker) as sink:
        sink.write([("posts", rows(POSTS, [post(1, subreddit="Python"), post(2, subreddit="rust"),
                                           post(3, subreddit="golang")]))])  # fmt: skip
        if not maker.durable:  # one run's own stream: nothing else writes there
            assert sink.newest("posts", ("python",)) == ("t3_3", 1_600_000_003.0)
            return
        assert sink.newest("posts", ("python",)) == ("t3_1", 1_600_000_001.0)
        assert sink.newest("posts", ("python", "rust")) == ("t3_2", 1_600_000_002.0)
        assert sink.newest("posts", ("java",)) is None
        assert sink.newest("posts") == ("t3_3", 1_600_000_003.0)
    bare = choose(POSTS, "title", raw=False, option="--fields")  # no subreddit column
    with opened(maker, bare) as sink:
        assert sink.newest("posts", ("java",)) == ("t3_3", 1_600_000_003.0)


def test_values_come_back_as_the_transform_made_them(maker: Maker) -> None:
    table = choose(POSTS, "title,is_self,media,gallery,score,author_fullname:author_id", raw=True,
                   option="--fields")  # fmt: skip
    child = post(1, is_self=True, media={"type": "v", "embed": {"w": 640}}, gallery=["ü", 2],
                 score=0, author_fullname=None)  # fmt: skip
    with opened(maker, table) as sink:
        made = rows(table, [child])
        sink.write([("posts", made)])
    (stored,) = maker.read(table)
    assert stored == dict(zip(table.columns, made[0]))
    assert stored["media"] == {"type": "v", "embed": {"w": 640}} and stored["raw"] == child["data"]
    assert (
        stored["is_self"] == 1 and stored["author_id"] is None and stored["title"] == "post 1 & <ü>"
    )


def test_a_lazy_table_is_empty_until_its_first_row(maker: Maker) -> None:
    with opened(maker, POSTS, COMMENTS, lazy=("comments",)) as sink:
        assert sink.known("comments", ["t1_1"]) == set()
        assert sink.newest("comments") is None and sink.count("comments") == 0
        assert sink.write([("comments", rows(COMMENTS, [comment(1)]))]) == [1]
        assert sink.known("comments", ["t1_1"]) == {"t1_1"} and sink.count("comments") == 1
        assert sink.newest("comments") == ("t1_1", 1_600_000_001.0)


def test_a_sink_that_keeps_nothing_cannot_be_an_archive(maker: Maker) -> None:
    if maker.durable:
        with archived(maker) as archive:
            archive.prepare([POSTS])
            assert archive.checkpoint("RS_x:1") is None
        return
    with pytest.raises(UsageError, match="test needs a database file, not -") as refused:
        maker.archive()
    assert refused.value.exit_code == 2


# -- every archive ----------------------------------------------------------------------


def test_what_is_stored_outlasts_the_sink(archive_maker: Maker) -> None:
    with opened(archive_maker, POSTS, COMMENTS, lazy=("comments",)) as sink:
        sink.write([("posts", rows(POSTS, [post(1), post(2)]))])
    with opened(archive_maker, POSTS, COMMENTS, lazy=("comments",)) as sink:
        assert sink.known("posts", ["t3_1", "t3_2", "t3_3"]) == {"t3_1", "t3_2"}
        assert sink.count("posts") == 2 and sink.newest("posts") == ("t3_2", 1_600_000_002.0)
        assert sink.write([("posts", rows(POSTS, [post(2), post(3)]))]) == [1]
        assert sink.count("comments") == 0  # never made: no comments were written
    assert archive_maker.columns("comments") == []


def test_a_checkpoint_is_written_with_its_rows(archive_maker: Maker) -> None:
    with archived(archive_maker) as archive:
        archive.prepare([POSTS, COMMENTS], lazy=("comments",))
        assert archive.checkpoint("RS_a:10") is None
        parts = [("posts", rows(POSTS, [post(1)])), ("comments", rows(COMMENTS, [comment(1)]))]
        assert archive.write(parts, checkpoint=Checkpoint("RS_a:10", 1000, False)) == [1, 1]
        assert archive.write([("posts", []), ("comments", [])],
                             checkpoint=Checkpoint("RS_a:10", 1500, True)) == [0, 0]  # fmt: skip
        archive.write([("posts", [])], checkpoint=Checkpoint("RC_b:20", 7, False))
    with archived(archive_maker) as archive:
        archive.prepare([POSTS, COMMENTS], lazy=("comments",))
        assert archive.checkpoint("RS_a:10") == Checkpoint("RS_a:10", 1500, True)
        assert archive.checkpoint("RC_b:20") == Checkpoint("RC_b:20", 7, False)
        assert archive.count("comments") == 1


def test_later_fields_add_columns_and_every_row_keeps_its_values(archive_maker: Maker) -> None:
    with opened(archive_maker) as sink:
        sink.write([("posts", rows(POSTS, [post(1, score=3)]))])
    chosen = choose(POSTS, "title,link_flair_text:flair", raw=True, option="--fields")
    with opened(archive_maker, chosen) as sink:
        sink.write([("posts", rows(chosen, [post(2, link_flair_text="News")]))])
    assert archive_maker.columns("posts") == [*POST_COLUMNS, "flair", "raw"]
    with opened(archive_maker) as sink:  # back to the default: nothing is dropped
        sink.write([("posts", rows(POSTS, [post(3)]))])
        assert sink.count("posts") == 3
    assert archive_maker.columns("posts") == [*POST_COLUMNS, "flair", "raw"]
    wide = choose(POSTS, "title,score,link_flair_text:flair", raw=True, option="--fields")
    stored = {r["fullname"]: r for r in archive_maker.read(wide)}
    assert stored["t3_1"]["score"] == 3 and stored["t3_1"]["flair"] is None
    assert stored["t3_2"]["flair"] == "News" and stored["t3_2"]["raw"]["link_flair_text"] == "News"
    assert stored["t3_3"]["title"] == "post 3 & <ü>" and stored["t3_3"]["raw"] is None


def test_a_choice_that_would_mix_two_fields_is_refused_untouched(archive_maker: Maker) -> None:
    first = choose(POSTS, "author_fullname:author_id", raw=False, option="--fields")
    with opened(archive_maker, first) as sink:
        sink.write([("posts", rows(first, [post(1, author_fullname="t2_x")]))])
    before = archive_maker.fingerprint()
    for spec, held in (
        ("author:author_id", "'author_fullname'"),
        ("title:author_id", "'author_fullname'"),
    ):
        mixed = choose(POSTS, spec, raw=False, option="--fields")
        with pytest.raises(UsageError, match=f"posts.author_id already holds {held}"):
            archive_maker.open((mixed,))
        assert archive_maker.fingerprint() == before
    raw_into = choose(POSTS, "author_fullname:raw", raw=False, option="--fields")
    with opened(archive_maker, raw_into) as sink:  # another column name is fine
        sink.write([("posts", rows(raw_into, [post(2, author_fullname="t2_y")]))])
    with pytest.raises(UsageError, match=r"posts\.raw already holds 'author_fullname', so --raw"):
        archive_maker.open((choose(POSTS, None, raw=True, option="--fields"),))


def test_a_table_redpipe_did_not_make_is_refused_untouched(archive_maker: Maker) -> None:
    archive_maker.foreign("comments")
    before = archive_maker.fingerprint()
    with pytest.raises(DatabaseError, match="already has a 'comments' table that redpipe did not"):
        archive_maker.open((POSTS, COMMENTS), ("comments",))
    with archived(archive_maker) as archive, pytest.raises(DatabaseError, match="did not create"):
        archive.adopt([POSTS, COMMENTS])
    assert archive_maker.fingerprint() == before


def refreshable(maker: Maker) -> None:
    """Ten posts, 1..10 (created at 1,600,000,001 ..), under chosen columns."""
    chosen = choose(POSTS, "title,selftext,author,score", raw=True, option="--fields")
    with opened(maker, chosen) as sink:
        sink.write([("posts", rows(chosen, [post(n, score=n) for n in range(1, 11)]))])


def test_an_adopted_table_is_as_stored_with_refreshs_columns(archive_maker: Maker) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as archive:
        adopted = archive.adopt([POSTS, COMMENTS])
        assert list(adopted) == ["posts"]  # no comments table: nothing to adopt
        table = adopted["posts"]
        assert table.columns == ("fullname", "id", "created_utc", "title", "selftext", "author",
                                 "score", "raw")  # fmt: skip
        assert table.bookkeeping == BOOKKEEPING
        archive.prepare([table])
    assert archive_maker.columns("posts")[-3:] == list(BOOKKEEPING)
    with archived(archive_maker) as archive:  # again: nothing more to add
        archive.prepare([archive.adopt([POSTS])["posts"]])
    assert archive_maker.columns("posts")[-4:] == ["raw", *BOOKKEEPING]


def test_due_items_come_oldest_first_until_checked(archive_maker: Maker) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as archive:
        table = archive.adopt([POSTS])["posts"]
        archive.prepare([table])
        cutoff = 1_600_000_007.0
        assert archive.count_due("posts", cutoff=cutoff) == 7
        assert archive.due("posts", cutoff=cutoff, limit=3) == ["t3_1", "t3_2", "t3_3"]
        current = archive.current("posts", ["t3_2", "t3_3", "t3_ff"], ["score", "removed_how"])
        assert current == {"t3_2": (2, None), "t3_3": (3, None)}
        archive.update("posts", [("t3_1", {"refreshed_utc": 1_700_000_000.0, "score": 40}),
                                 ("t3_2", {"refreshed_utc": 1_700_000_000.0})])  # fmt: skip
        assert archive.due("posts", cutoff=cutoff, limit=3) == ["t3_3", "t3_4", "t3_5"]
        assert archive.count_due("posts", cutoff=cutoff) == 5
        assert archive.count_due("posts", cutoff=1_800_000_000.0) == 10
        assert archive.current("posts", ["t3_1"], ["score"]) == {"t3_1": (40,)}


def test_a_purge_empties_what_authors_deleted_and_nothing_else(archive_maker: Maker) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as archive:
        table = archive.adopt([POSTS])["posts"]
        archive.prepare([table])
        marks = {"t3_1": "deleted", "t3_2": "removed:moderator", "t3_3": "gone", "t3_4": "deleted"}
        archive.update(
            "posts", [(n, {"removed_how": how, "removed_utc": 5.0}) for n, how in marks.items()]
        )
        assert archive.purge_deleted("posts", ["title", "selftext", "author", "raw"]) == 2
        assert archive.purge_deleted("posts", ["title", "selftext", "author", "raw"]) == 0
        assert archive.purge_deleted("posts", []) == 0
        assert archive.count("posts") == 10  # rows stay, so nothing stores them again
    stored = {r["fullname"]: r for r in archive_maker.read(table)}
    for name in ("t3_1", "t3_4"):
        assert (stored[name]["title"], stored[name]["author"], stored[name]["raw"]) == (
            None,
            None,
            None,
        )
        assert stored[name]["score"] is not None and stored[name]["created_utc"] is not None
    assert stored["t3_2"]["title"] == "post 2 & <ü>" and stored["t3_2"]["raw"] is not None


def test_a_purge_of_given_items_leaves_the_others(archive_maker: Maker) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as archive:
        table = archive.adopt([POSTS])["posts"]
        archive.prepare([table])
        marks = [(n, {"removed_how": "deleted", "removed_utc": 5.0}) for n in ("t3_1", "t3_4")]
        archive.update("posts", marks)
        assert archive.purge_deleted("posts", ["title"], ["t3_4", "t3_5"]) == 1  # t3_5 lives
        assert archive.purge_deleted("posts", ["title"], []) == 0
    titles = {r["fullname"]: r["title"] for r in archive_maker.read(table)}
    assert titles["t3_4"] is None and titles["t3_1"] is not None and titles["t3_5"] is not None


def test_a_refresh_cannot_claim_what_a_stream_follows_nor_a_stream_what_a_refresh_checks(
    archive_maker: Maker,
) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as stream, archived(archive_maker) as refresh:
        assert stream.claim("stream")
        assert not refresh.claim("refresh")  # both would spend one client's budget
        with archived(archive_maker) as other:
            assert other.claim("stream")  # streams of other listings may share it
    with archived(archive_maker) as refresh, archived(archive_maker) as stream:
        assert refresh.claim("refresh")  # the stream that held it has closed
        assert not stream.claim("stream")
    with archived(archive_maker) as stream:
        assert stream.claim("stream")


def test_standard_output_claims_freely(tmp_path: Path) -> None:
    sink = open_sink("-", (POSTS,), stdout=io.BytesIO())
    assert sink.claim("stream") and sink.claim("stream")


# -- the full-text index and edits (archives) ---------------------------------------------


def found(archive: Archive, table: Table, query: str, **options: Any) -> list[str]:
    held = archive.adopt([table])[table.name]
    got = archive.search(held, query, subreddits=options.get("subreddits", ()),
                         limit=options.get("limit", 50))  # fmt: skip
    return [m.fullname for m in got]


def texts(n: int, title: str, selftext: str = "", sub: str = "python") -> dict[str, Any]:
    return post(n, title=title, selftext=selftext, subreddit=sub)


def test_the_index_covers_held_rows_later_rows_and_later_tables(archive_maker: Maker) -> None:
    with opened(archive_maker, POSTS, COMMENTS, lazy=("comments",)) as sink:
        sink.write(
            [
                (
                    "posts",
                    rows(
                        POSTS,
                        [
                            texts(1, "Snakes in Python"),
                            texts(2, "rust only", "no snakes here", "rust"),
                        ],
                    ),
                )
            ]
        )
    with archived(archive_maker) as archive:
        with pytest.raises(UsageError, match=r"posts has no full-text index; .* --fts once"):
            found(archive, POSTS, "snakes")
        archive.prepare([POSTS, COMMENTS], lazy=("comments",))
        archive.full_text([POSTS, COMMENTS])
        assert found(archive, POSTS, "snakes") == ["t3_2", "t3_1"]  # newest first
    # A later writer that never asks for the index keeps it, and makes comments' too.
    with opened(archive_maker, POSTS, COMMENTS, lazy=("comments",)) as sink:
        sink.write(
            [
                ("posts", rows(POSTS, [texts(3, "more SNAKES")])),
                ("comments", rows(COMMENTS, [comment(4, body="a snake, singular")])),
            ]
        )
    with archived(archive_maker) as archive:
        assert found(archive, POSTS, "snakes") == ["t3_3", "t3_2", "t3_1"]
        assert found(archive, COMMENTS, "snake") == ["t1_4"]
        assert found(archive, POSTS, "snakes", subreddits=["rust"]) == ["t3_2"]
        assert found(archive, POSTS, "snakes", limit=1) == ["t3_3"]


def test_queries_read_fts5_syntax_alike_everywhere(archive_maker: Maker) -> None:
    with opened(archive_maker, POSTS) as sink:
        sink.write([("posts", rows(POSTS, [
            texts(1, "the quick brown fox", "jumps over"),
            texts(2, "quick thinking", "brown bread"),
            texts(3, "slow brown dog", "Fox-trot"),
            texts(4, "Cafe au lait", "unrelated"),
        ]))])  # fmt: skip
    with archived(archive_maker) as archive:
        archive.prepare([POSTS])
        archive.full_text([POSTS])
        assert found(archive, POSTS, "quick brown") == ["t3_2", "t3_1"]  # both words, anywhere
        assert found(archive, POSTS, '"quick brown"') == ["t3_1"]  # a phrase
        assert found(archive, POSTS, "quick + brown") == ["t3_1"]
        assert found(archive, POSTS, "thi*") == ["t3_2"]
        assert found(archive, POSTS, "fox OR bread") == ["t3_3", "t3_2", "t3_1"]
        assert found(archive, POSTS, "brown NOT fox") == ["t3_2"]
        assert found(archive, POSTS, "(dog OR bread) AND brown") == ["t3_3", "t3_2"]
        assert found(archive, POSTS, '"brown dog" OR "quick thinking"') == ["t3_3", "t3_2"]
        assert found(archive, POSTS, "CAFE") == ["t3_4"]
        assert found(archive, POSTS, "trot") == ["t3_3"]
        assert found(archive, POSTS, "over jumps") == ["t3_1"]  # title and selftext alike
        assert found(archive, POSTS, "nowhere") == []
        for bad in ("quick OR", "(quick", '"quick', "(quick OR fox) brown", "NOT fox"):
            with pytest.raises(UsageError, match=r"^search: "):
                found(archive, POSTS, bad)


def test_edits_are_kept_and_the_index_follows_the_text(archive_maker: Maker) -> None:
    refreshable(archive_maker)
    with archived(archive_maker) as archive:
        table = archive.adopt([POSTS])["posts"]
        archive.prepare([table])
        archive.full_text([table])
        assert found(archive, POSTS, "post") == [f"t3_{n:x}" for n in range(10, 0, -1)]
        edits = [Edit("t3_1", "title", "post 1 & <ü>", 1_700_000_000.0),
                 Edit("t3_2", "selftext", "", 1_700_000_001.0)]  # fmt: skip
        archive.update("posts", [("t3_1", {"title": "rewritten entirely"}),
                                 ("t3_2", {"selftext": "an addendum"})], edits)  # fmt: skip
        archive.update("posts", [], edits)  # the same again: recorded once
        assert found(archive, POSTS, "rewritten") == ["t3_1"]
        assert "t3_1" not in found(archive, POSTS, "post")  # the old title is out of the index
        assert found(archive, POSTS, "addendum") == ["t3_2"]
        kept = archive_maker.query(
            "SELECT fullname, column_name, old_text, replaced_utc FROM edits ORDER BY 1"
        )
        assert [tuple(r) for r in kept] == [("t3_1", "title", "post 1 & <ü>", 1_700_000_000.0),
                                            ("t3_2", "selftext", "", 1_700_000_001.0)]  # fmt: skip
        # Deleted by its author: the purge takes the text, its edits, and the index's entry.
        archive.update("posts", [("t3_1", {"removed_how": "deleted", "removed_utc": 5.0})])
        assert archive.purge_deleted("posts", ["title", "selftext"]) == 1
        assert found(archive, POSTS, "rewritten") == []
        assert [r[0] for r in archive_maker.query("SELECT fullname FROM edits")] == ["t3_2"]
        # Only what an author deleted: given items that are not deleted keep their edits.
        assert archive.purge_deleted("posts", [], ["t3_2"]) == 0
        assert len(archive_maker.query("SELECT fullname FROM edits")) == 1
