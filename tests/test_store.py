"""The SQLite store: real files, real locks, a really full database."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import DatabaseBusy, DatabaseError, DatabaseFull, UsageError
from pipeline.store import Store
from pipeline.tables import COMMENTS, POSTS, choose
from pipeline.transform import POST_COLUMNS
from tests.conftest import query


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
    with Store.open(str(db)) as store:
        assert store.insert(make_rows(0, 10)) == 10
    with Store.open(str(db)) as store:
        assert store.insert(make_rows(5, 10)) == 5  # 5..9 were there already
        assert store.count() == 15
        assert store.known(["t3_0000001", "t3_9999999"]) == {"t3_0000001"}
        assert store.newest() == ("t3_0000014", 1_600_000_014.0)
    with pytest.raises(sqlite3.IntegrityError), contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO posts (fullname, id) VALUES ('t3_0000001', 'x')")


def test_the_database_is_in_wal_mode_and_readable_while_written(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db)) as store:
        store.insert(make_rows(0, 3))
        assert query(db, "PRAGMA journal_mode") == [("wal",)]
        store.conn.execute("BEGIN IMMEDIATE")
        store.conn.executemany(
            f"INSERT INTO posts VALUES ({','.join('?' * len(POST_COLUMNS))})", make_rows(3, 2)
        )
        # A reader is not blocked by the open write transaction and sees committed rows.
        with contextlib.closing(sqlite3.connect(db, timeout=0)) as reader:
            assert reader.execute("SELECT count(*) FROM posts").fetchone() == (3,)
        store.conn.execute("COMMIT")
    assert query(db, "SELECT count(*) FROM posts") == [(5,)]


def test_each_batch_is_one_transaction(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "p.sqlite")) as store:
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        store.insert(make_rows(0, 100))
        store.conn.set_trace_callback(None)
    commits = [s for s in statements if s.strip().upper().startswith(("COMMIT", "END"))]
    begins = [s for s in statements if s.strip().upper().startswith("BEGIN")]
    assert (len(begins), len(commits)) == (1, 1)
    assert sum(s.startswith("INSERT") for s in statements) == 100  # executemany, one txn


def test_a_file_that_is_not_sqlite_is_refused_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    before = digest(path)
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        Store.open(str(path))
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
    with pytest.raises(DatabaseError) as err:
        Store.open(str(path))
    assert "\n" not in str(err.value)
    assert digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["other.db"]


def test_other_tables_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    with Store.open(str(path)) as store:
        store.insert(make_rows(0, 2))
    assert query(path, "SELECT body FROM notes") == [("keep me",)]


@pytest.mark.parametrize("case", ["directory", "missing-dir", "empty-file"])
def test_paths(tmp_path: Path, case: str) -> None:
    if case == "directory":
        with pytest.raises(DatabaseError, match="is a directory"):
            Store.open(str(tmp_path))
    elif case == "missing-dir":
        with pytest.raises(DatabaseError, match="does not exist"):
            Store.open(str(tmp_path / "nope" / "p.sqlite"))
    else:
        (tmp_path / "e.sqlite").touch()
        with Store.open(str(tmp_path / "e.sqlite")) as store:
            assert store.count() == 0


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
    with Store.open(str(db), busy_timeout=10) as store, write_lock_held(db, 1.0):
        started = time.monotonic()
        assert store.insert(make_rows(0, 50)) == 50
        waited = time.monotonic() - started
    assert waited >= 0.5
    assert query(db, "SELECT count(*) FROM posts") == [(50,)]


def test_a_lock_held_past_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db), busy_timeout=0.2) as store:
        with write_lock_held(db, 1.0), pytest.raises(DatabaseBusy) as err:
            store.insert(make_rows(0, 50))
        assert "50 posts t3_0000000 .. t3_0000049 not stored" in str(err.value)
        assert store.insert(make_rows(0, 50)) == 50  # nothing half-written, usable again


def test_a_full_database_keeps_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db)) as store:
        assert store.insert(make_rows(0, 100)) == 100
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(DatabaseFull) as err:
            store.insert(make_rows(100, 2000))
        assert "2000 posts t3_0000100 .. t3_0002099 not stored" in str(err.value)
        assert "\n" not in str(err.value)
    assert query(db, "SELECT count(*) FROM posts") == [(100,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_choosing_fields_later_adds_columns_and_keeps_every_row(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db)) as store:
        store.insert(make_rows(0, 5))
    chosen = choose(POSTS, "title,author_fullname:author_id,link_flair_text:flair", raw=True,
                    option="--fields")  # fmt: skip
    with Store.open(str(db), [chosen]) as store:
        assert store.insert([("t3_new", "new", 1.0, "new title", "t2_x", "News", "{}")]) == 1
    columns = [r[1] for r in query(db, "PRAGMA table_info(posts)")]
    assert columns == [*POST_COLUMNS, "author_id", "flair", "raw"]
    assert query(db, "SELECT count(*), count(subreddit), count(author_id) FROM posts") == [
        (6, 0, 1)
    ]
    assert query(db, "SELECT title FROM posts WHERE fullname = 't3_0000003'") == [
        ("title 3 & <more>",)
    ]
    # Back to the default: the added columns stay, and stay NULL for new rows.
    with Store.open(str(db)) as store:
        store.insert(make_rows(10, 1))
    assert query(db, "SELECT author_id, raw FROM posts WHERE fullname = 't3_0000010'") == [
        (None, None)
    ]


def test_a_fields_choice_that_would_mix_two_fields_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    first = choose(POSTS, "author_fullname:author_id", raw=False, option="--fields")
    with Store.open(str(db), [first]) as store:
        store.insert([("t3_a", "a", 1.0, "t2_x")])
    before = digest(db)
    cases = {
        "author:author_id": r"posts\.author_id already holds 'author_fullname', so 'author'",
        "selftext:AUTHOR_ID": r"posts\.author_id already holds 'author_fullname'",
    }
    for spec, message in cases.items():
        with pytest.raises(UsageError, match=message):
            Store.open(str(db), [choose(POSTS, spec, raw=False, option="--fields")])
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE posts ADD COLUMN note TEXT")  # someone's own column
    before = digest(db)
    with pytest.raises(UsageError, match=r"posts\.note exists but redpipe never filled it"):
        Store.open(str(db), [choose(POSTS, "selftext:note", raw=False, option="--fields")])
    assert digest(db) == before


def test_a_database_from_before_mappings_counts_its_columns_as_default(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db)) as store:
        store.insert(make_rows(0, 1))
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM redpipe_meta WHERE key LIKE 'columns:%'")
    with pytest.raises(UsageError, match=r"posts\.title already holds 'title', so 'selftext'"):
        Store.open(str(db), [choose(POSTS, "selftext:title", raw=False, option="--fields")])
    with Store.open(str(db)) as store:  # the default itself is fine, and recorded again
        assert store.count() == 1
    assert query(db, "SELECT count(*) FROM redpipe_meta WHERE key = 'columns:posts'") == [(1,)]


def test_a_lazy_table_is_checked_at_once_but_made_on_its_first_row(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with Store.open(str(db), [POSTS, COMMENTS], lazy=("comments",)) as store:
        assert store.known(["t1_a"], table="comments") == set()
        assert store.newest(table="comments") is None and store.count(table="comments") == 0
        assert query(db, "SELECT name FROM sqlite_master WHERE name = 'comments'") == []
        row = ("t1_a", "a", 5, "python", "u", None, "hi", "t3_x", "t3_x", "/r/python/", 1.0)
        assert store.insert([row], table="comments") == 1
        assert store.known(["t1_a", "t1_b"], table="comments") == {"t1_a"}
        assert store.newest(table="comments") == ("t1_a", 5.0)
    columns = [r[1] for r in query(db, "PRAGMA table_info(comments)")]
    assert columns == [
        "fullname", "id", "created_utc", "subreddit", "author", "author_fullname", "body",
        "link_id", "parent_id", "permalink", "retrieved_utc",
    ]  # fmt: skip
    # as found: a table keeps the columns it has, whatever the options say
    with Store.open(str(db), [POSTS, COMMENTS], as_found=True) as store:
        assert store.tables["comments"].columns == COMMENTS.columns
    wanted = choose(COMMENTS, "body", raw=False, option="--comment-fields")
    with Store.open(str(db), [POSTS, wanted], as_found=True) as store:
        assert store.tables["comments"].columns == COMMENTS.columns


def test_a_posts_table_without_the_key_is_refused_whatever_the_fields(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE comments (fullname TEXT, body TEXT)")
    with pytest.raises(DatabaseError, match="already has a 'comments' table that redpipe did"):
        Store.open(str(db), [POSTS, COMMENTS], lazy=("comments",))
