"""The SQLite sink beyond the shared contract (test_sinks.py): real files, real locks, a
really full database, and exactly the storage that redpipe 1.0 wrote."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import DatabaseBusy, DatabaseError, DatabaseFull, UsageError
from pipeline.sinks import open_archive
from pipeline.sinks.base import Checkpoint
from pipeline.sinks.sqlite.sink import SqliteSink
from pipeline.transform.records import KEEP_ON_PURGE
from pipeline.transform.rows import POST_COLUMNS
from pipeline.transform.tables import COMMENTS, POSTS, RAW_FIELD, Table, choose
from tests.conftest import query

DATA = Path(__file__).resolve().parent / "data"


@contextlib.contextmanager
def opened(
    db: Path, tables: tuple[Table, ...] = (POSTS,), *, lazy: tuple[str, ...] = (),
    busy_timeout: float = 30.0,
) -> Iterator[SqliteSink]:  # fmt: skip
    sink = SqliteSink(str(db), busy_timeout=busy_timeout)
    try:
        sink.prepare(tables, lazy=lazy)
        yield sink
    finally:
        sink.close()


def insert(sink: SqliteSink, rows: list[tuple[Any, ...]], table: str = "posts") -> int:
    return sink.write([(table, rows)])[0]


def conn(sink: SqliteSink) -> sqlite3.Connection:
    assert sink.connection is not None
    return sink.connection


def make_rows(start: int, n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(start, start + n):
        values = dict.fromkeys(POST_COLUMNS)
        values.update(
            fullname=f"t3_{i:07d}",
            id=f"{i:07d}",
            created_utc=1_600_000_000 + i,
            author="[deleted]",
            title=f"title {i} & <more>",
            retrieved_utc=1.5,
        )
        rows.append(tuple(values[c] for c in POST_COLUMNS))
    return rows


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_schema_is_idempotent_and_duplicates_are_impossible(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db) as store:
        assert insert(store, make_rows(0, 10)) == 10
    with opened(db) as store:
        assert insert(store, make_rows(5, 10)) == 5  # 5..9 were there already
        assert store.count("posts") == 15
        assert store.known("posts", ["t3_0000001", "t3_9999999"]) == {"t3_0000001"}
        assert store.newest("posts") == ("t3_0000014", 1_600_000_014.0)
    with pytest.raises(sqlite3.IntegrityError), contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO posts (fullname, id) VALUES ('t3_0000001', 'x')")


def test_the_database_is_in_wal_mode_and_readable_while_written(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db) as store:
        insert(store, make_rows(0, 3))
        assert query(db, "PRAGMA journal_mode") == [("wal",)]
        conn(store).execute("BEGIN IMMEDIATE")
        conn(store).executemany(
            f"INSERT INTO posts VALUES ({','.join('?' * len(POST_COLUMNS))})", make_rows(3, 2)
        )
        # A reader is not blocked by the open write transaction and sees committed rows.
        with contextlib.closing(sqlite3.connect(db, timeout=0)) as reader:
            assert reader.execute("SELECT count(*) FROM posts").fetchone() == (3,)
        conn(store).execute("COMMIT")
    assert query(db, "SELECT count(*) FROM posts") == [(5,)]


def test_each_batch_is_one_transaction(tmp_path: Path) -> None:
    with opened(tmp_path / "p.sqlite") as store:
        statements: list[str] = []
        conn(store).set_trace_callback(statements.append)
        insert(store, make_rows(0, 100))
        conn(store).set_trace_callback(None)
    commits = [s for s in statements if s.strip().upper().startswith(("COMMIT", "END"))]
    begins = [s for s in statements if s.strip().upper().startswith("BEGIN")]
    assert (len(begins), len(commits)) == (1, 1)
    assert sum(s.startswith("INSERT") for s in statements) == 100  # executemany, one txn


def test_a_file_that_is_not_sqlite_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(DatabaseError, match="not a SQLite database"), opened(path):
        pass
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE posts (ID INTEGER PRIMARY KEY, TITLE CHAR(1000) NOT NULL)",
        # every column redpipe wants, but no unique key on fullname
        "CREATE TABLE posts (" + ", ".join(f"{c} TEXT" for c in POST_COLUMNS) + ")",
        "CREATE TABLE redpipe_meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO redpipe_meta VALUES ('schema_version', '99')",
    ],
    ids=["tutorial-table", "no-unique-key", "future-schema"],
)
def test_foreign_schemas_are_refused_and_unchanged(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(ddl)
    before = digest(path)
    with pytest.raises(DatabaseError) as err, opened(path):
        pass
    assert "\n" not in str(err.value)
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["other.db"]


def test_other_tables_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    with opened(path) as store:
        insert(store, make_rows(0, 2))
    assert query(path, "SELECT body FROM notes") == [("keep me",)]


@pytest.mark.parametrize("case", ["directory", "missing-dir", "empty-file"])
def test_paths(tmp_path: Path, case: str) -> None:
    if case == "directory":
        with pytest.raises(DatabaseError, match="is a directory"):
            SqliteSink(str(tmp_path))
    elif case == "missing-dir":
        with pytest.raises(DatabaseError, match="does not exist"):
            SqliteSink(str(tmp_path / "nope" / "p.sqlite"))
    else:
        (tmp_path / "e.sqlite").touch()
        with opened(tmp_path / "e.sqlite") as store:
            assert store.count("posts") == 0


@contextlib.contextmanager
def write_lock_held(db: Path, seconds: float) -> Iterator[None]:
    """Another connection holds BEGIN IMMEDIATE on `db` for `seconds` from entry."""
    ready = threading.Event()

    def hold() -> None:
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            ready.set()
            time.sleep(seconds)
            conn.execute("COMMIT")

    other = threading.Thread(target=hold)
    other.start()
    ready.wait()
    try:
        yield
    finally:
        other.join()


def test_a_held_write_lock_is_waited_out(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db, busy_timeout=10) as store, write_lock_held(db, 1.0):
        started = time.monotonic()
        assert insert(store, make_rows(0, 50)) == 50
        waited = time.monotonic() - started
    assert waited >= 0.5
    assert query(db, "SELECT count(*) FROM posts") == [(50,)]


def test_a_lock_held_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db, busy_timeout=0.2) as store:
        with write_lock_held(db, 1.0), pytest.raises(DatabaseBusy) as err:
            insert(store, make_rows(0, 50))
        assert "50 posts t3_0000000 .. t3_0000049 not stored" in str(err.value)
        assert insert(store, make_rows(0, 50)) == 50  # nothing half-written, usable again


def test_a_full_database_keeps_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db) as store:
        assert insert(store, make_rows(0, 100)) == 100
        pages = conn(store).execute("PRAGMA page_count").fetchone()[0]
        conn(store).execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(DatabaseFull) as err:
            insert(store, make_rows(100, 2000))
        assert "2000 posts t3_0000100 .. t3_0002099 not stored" in str(err.value)
        assert "\n" not in str(err.value)
    assert query(db, "SELECT count(*) FROM posts") == [(100,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_choosing_fields_later_adds_columns_and_keeps_every_row(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db) as store:
        insert(store, make_rows(0, 5))
    chosen = choose(POSTS, "title,author_fullname:author_id,link_flair_text:flair", raw=True,
                    option="--fields")  # fmt: skip
    with opened(db, (chosen,)) as store:
        assert insert(store, [("t3_new", "new", 1.0, "new title", "t2_x", "News", {})]) == 1
    columns = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    assert columns == [*POST_COLUMNS, "author_id", "flair", "raw"]
    assert query(db, "SELECT count(*), count(subreddit), count(author_id) FROM posts") == [
        (6, 0, 1)
    ]
    assert query(db, "SELECT title FROM posts WHERE fullname = 't3_0000003'") == [
        ("title 3 & <more>",)
    ]
    # Back to the default: the added columns stay, and stay NULL for new rows.
    with opened(db) as store:
        insert(store, make_rows(10, 1))
    assert query(db, "SELECT author_id, raw FROM posts WHERE fullname = 't3_0000010'") == [
        (None, None)
    ]


def choose_posts(spec: str) -> Table:
    return choose(POSTS, spec, raw=False, option="--fields")


def test_a_fields_choice_that_would_mix_two_fields_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    first = choose(POSTS, "author_fullname:author_id", raw=False, option="--fields")
    with opened(db, (first,)) as store:
        insert(store, [("t3_a", "a", 1.0, "t2_x")])
    before = digest(db)
    cases = {
        "author:author_id": r"posts\.author_id already holds 'author_fullname', so 'author'",
        "selftext:AUTHOR_ID": r"posts\.author_id already holds 'author_fullname'",
    }
    for spec, message in cases.items():
        with pytest.raises(UsageError, match=message), opened(db, (choose_posts(spec),)):
            pass
        assert digest(db) == before
    with contextlib.closing(sqlite3.connect(db)) as other, other:
        other.execute("ALTER TABLE posts ADD COLUMN note TEXT")  # someone's own column
    before = digest(db)
    with (
        pytest.raises(UsageError, match=r"posts\.note exists but redpipe never filled it"),
        opened(db, (choose_posts("selftext:note"),)),
    ):
        pass
    assert digest(db) == before


def test_a_database_from_before_mappings_counts_its_columns_as_default(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db) as store:
        insert(store, make_rows(0, 1))
    with contextlib.closing(sqlite3.connect(db)) as other, other:
        other.execute("DELETE FROM redpipe_meta WHERE key LIKE 'columns:%'")
    with (
        pytest.raises(UsageError, match=r"posts\.title already holds 'title', so 'selftext'"),
        opened(db, (choose_posts("selftext:title"),)),
    ):
        pass
    with opened(db) as store:  # the default itself is fine, and recorded again
        assert store.count("posts") == 1
    assert query(db, "SELECT count(*) FROM redpipe_meta WHERE key = 'columns:posts'") == [(1,)]


def test_a_lazy_table_is_checked_at_once_but_made_on_its_first_row(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with opened(db, (POSTS, COMMENTS), lazy=("comments",)) as store:
        assert store.known("comments", ["t1_a"]) == set()
        assert store.newest("comments") is None and store.count("comments") == 0
        assert query(db, "SELECT name FROM sqlite_master WHERE name = 'comments'") == []
        row = ("t1_a", "a", 5, "python", "u", None, "hi", "t3_x", "t3_x", "/r/python/", 1.0)
        assert insert(store, [row], table="comments") == 1
        assert store.known("comments", ["t1_a", "t1_b"]) == {"t1_a"}
        assert store.newest("comments") == ("t1_a", 5.0)
    columns = [r[1] for r in query(db, "PRAGMA table_info(comments)")]
    assert columns == [
        "fullname", "id", "created_utc", "subreddit", "author", "author_fullname", "body",
        "link_id", "parent_id", "permalink", "retrieved_utc",
    ]  # fmt: skip
    # adopted: a table keeps the columns it has, whatever the options say
    wanted = choose(COMMENTS, "body", raw=False, option="--comment-fields")
    for asked in (COMMENTS, wanted):
        store = SqliteSink(str(db))
        try:
            assert store.adopt([POSTS, asked])["comments"].columns == COMMENTS.columns
        finally:
            store.close()


def test_a_posts_table_without_the_key_is_refused_whatever_the_fields(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE comments (fullname TEXT, body TEXT)")
    before = digest(db)
    with (
        pytest.raises(DatabaseError, match="already has a 'comments' table that redpipe did"),
        opened(db, (POSTS, COMMENTS), lazy=("comments",)),
    ):
        pass
    assert digest(db) == before


# -- what 1.0 wrote ---------------------------------------------------------------------
# tests/data/sqlite-1.0.json is what redpipe 1.0 (commit eff56c2, before the transform
# returned plain values and the sinks encoded them) wrote for the steps below, through its
# own Store: the schema, the column mappings, and every value with its SQLite type.

P1 = {"kind": "t3", "data": {
    "name": "t3_a1", "id": "a1", "created_utc": 1700000000, "subreddit": "python",
    "subreddit_id": "t5_2qh0y", "author": "ann", "author_fullname": "t2_x", "title": "Q&A <b> ü",
    "selftext": "hi", "url": "/r/python/comments/a1/", "permalink": "/r/python/comments/a1/q/",
    "domain": "self.python", "is_self": True, "over_18": False, "score": 5, "num_comments": 2,
    "edited": False, "media": {"type": "youtube.com", "oembed": {"w": 1}},
    "gallery": [1, "ü"], "upvote_ratio": 0.97,
}}  # fmt: skip
P2 = {"kind": "t3", "data": {
    "name": "t3_a2", "id": "a2", "created_utc": 1700000001.5, "subreddit": "python",
    "author": None, "title": "two", "selftext": "", "url": "https://x.org/",
    "permalink": "/r/python/comments/a2/t/", "domain": "x.org", "is_self": False,
    "over_18": True, "score": 0, "num_comments": 0, "edited": 1700000100.5, "media": None,
    "upvote_ratio": 1,
}}  # fmt: skip
C1 = {"kind": "t1", "data": {
    "name": "t1_c1", "id": "c1", "created_utc": 1700000050, "subreddit": "python",
    "author": "bob", "author_fullname": "t2_y", "body": "yes & no", "link_id": "t3_a1",
    "parent_id": "t3_a1", "permalink": "/r/python/comments/a1/q/c1/", "score": 3,
}}  # fmt: skip
NOW, LATER = 1700000200.0, 1700100000.0
CHOSEN = "title,media,media.oembed.w:width,gallery,is_self,upvote_ratio,author_fullname:author_id"


def snapshot(path: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        out: dict[str, Any] = {
            "schema": db.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
            ).fetchall(),
            "meta": db.execute("SELECT key, value FROM redpipe_meta ORDER BY key").fetchall(),
        }
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        for (name,) in names.fetchall():
            columns = [r[1] for r in db.execute(f"PRAGMA table_info({name})")]
            values = ", ".join(f"typeof({c}), {c}" for c in columns)
            out[name] = [
                columns,
                db.execute(f"SELECT {values} FROM {name} ORDER BY rowid").fetchall(),
            ]
    return json.loads(json.dumps(out))  # tuples as lists, as the file has them


def refreshed(
    path: Path, changes: dict[str, list[tuple[str, dict[str, Any]]]], *tables: str
) -> None:
    """What refresh does to `tables`: adopt, add its columns, update, purge."""
    sink = open_archive(str(path), command="refresh", create=False)
    try:
        for name, table in sink.adopt([POSTS, COMMENTS]).items():
            if name not in tables:
                continue
            sink.prepare([table])
            sink.update(name, changes.get(name, []))
            if name == "posts" and not table.structured:
                wiped = [c for c, f in zip(table.columns, table.fields)
                         if f not in KEEP_ON_PURGE or f == RAW_FIELD]  # fmt: skip
                assert sink.purge_deleted(name, wiped) == 1
    finally:
        sink.close()


def test_what_is_stored_is_exactly_what_1_0_stored(tmp_path: Path) -> None:
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    with opened(one, (POSTS, COMMENTS), lazy=("comments",)) as sink:
        insert(sink, POSTS.row_builder()([P1, P2], NOW))
        insert(sink, COMMENTS.row_builder()([C1], NOW), "comments")
        sink.write(
            [("posts", []), ("comments", [])], checkpoint=Checkpoint("RS_x.ndjson:123", 2, True)
        )
    refreshed(one, {"posts": [
        ("t3_a1", {"refreshed_utc": LATER, "score": 9}),
        ("t3_a2", {"refreshed_utc": LATER, "removed_how": "deleted", "removed_utc": LATER}),
    ]}, "posts")  # fmt: skip
    posts = choose(POSTS, CHOSEN, raw=True, option="--fields")
    comments = choose(COMMENTS, "body,score", raw=False, option="--comment-fields")
    with opened(two, (posts, comments)) as sink:
        insert(sink, posts.row_builder()([P1, P2], NOW))
        insert(sink, comments.row_builder()([C1], NOW), "comments")
    with opened(two) as sink:  # back to the default columns: the table widens
        insert(
            sink,
            POSTS.row_builder()([{"kind": "t3", "data": {**P1["data"], "name": "t3_a3"}}], NOW),
        )
    later = {"refreshed_utc": LATER, "upvote_ratio": 0.5, "is_self": False}
    refreshed(two, {"posts": [("t3_a1", later)]}, "posts", "comments")
    expected = json.loads((DATA / "sqlite-1.0.json").read_text(encoding="utf-8"))
    assert [snapshot(one), snapshot(two)] == expected
