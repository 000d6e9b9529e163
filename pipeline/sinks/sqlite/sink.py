"""The SQLite sink: checks a file before touching it, then writes one transaction per batch."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from ...errors import DatabaseError
from ...transform.tables import Table, as_stored, check_stored
from ...transform.text import unindexed
from ..base import Checkpoint, Edit, Match, Part, Row
from . import changes as changes_
from . import fulltext, schema
from .encoding import encoder

T = TypeVar("T")
CHUNK = 500  # old SQLite allows 999 variables in one statement


class SqliteSink:
    """A redpipe database: tables keyed by fullname, WAL, one transaction per batch."""

    durable = True
    shared = False

    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self.where = self.path = path
        self._busy_timeout = busy_timeout
        self._had_content = schema.check_path(path)
        self._conn: sqlite3.Connection | None = None
        self.tables: dict[str, Table] = {}
        self._writes: dict[str, tuple[str, Callable[[Sequence[Row]], Sequence[Row]]]] = {}
        self._made: set[str] = set()
        self._claim: int | None = None  # the descriptor claim() locks
        self._indexed: set[str] = set()  # tables given the index newest(within=) reads

    @property
    def connection(self) -> sqlite3.Connection | None:
        """The open connection, if any: for tools and tests that look underneath."""
        return self._conn

    # -- opening ----------------------------------------------------------------------

    def _connection(self, tables: Sequence[Table], *, fields: bool) -> sqlite3.Connection:
        """The open connection; the first time, only after a read-only look at the file has
        found nothing to refuse, so a refused file is left byte-for-byte as it was."""
        if self._conn is not None:
            return self._conn
        if self._had_content:
            schema.inspect(self.path, tables, fields=fields)
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise schema.fail(self.path, exc, "opening it") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(
                    f"{self.path}: cannot use WAL mode here (got {mode}); use a local filesystem"
                )
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise schema.fail(self.path, exc, "opening it") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def prepare(self, tables: Sequence[Table], *, lazy: Collection[str] = ()) -> None:
        conn = self._connection(tables, fields=True)
        names = self._run(lambda: conn.execute("SELECT name FROM sqlite_master").fetchall())
        present = {r[0] for r in names}
        for table in tables:
            self._hold(table)
        self._make([t for t in tables if t.name not in lazy or t.name in present])

    def adopt(self, tables: Sequence[Table]) -> dict[str, Table]:
        conn = self._connection(tables, fields=False)
        found = self._run(lambda: schema.read_schema(conn, self.path, tables))
        check_stored(self.path, tables, found, fields=False)
        adopted = {}
        for table in tables:
            if table.name in found:
                adopted[table.name] = self._hold(as_stored(table, found[table.name]))
                self._made.add(table.name)
        return adopted

    def _hold(self, table: Table) -> Table:
        self.tables[table.name] = table
        self._writes[table.name] = (schema.insert_sql(table), encoder(table))
        return table

    def _make(self, tables: Sequence[Table]) -> None:
        """Create or widen `tables` in one transaction."""
        self._transaction(lambda conn: schema.make(conn, self.path, tables), "creating the schema")
        self._made.update(t.name for t in tables)

    # -- writing ----------------------------------------------------------------------

    def write(self, parts: Sequence[Part], *, checkpoint: Checkpoint | None = None) -> list[int]:
        if not any(rows for _, rows in parts) and checkpoint is None:
            return [0] * len(parts)
        unmade = [self.tables[t] for t, rows in parts if rows and t not in self._made]
        if unmade:
            self._make(unmade)
        writes = self._writes

        def insert(conn: sqlite3.Connection) -> list[int]:
            added = []
            for table, rows in parts:
                if not rows:
                    added.append(0)
                    continue
                sql, encode = writes[table]
                # rowcount, not total_changes: the full-text index's triggers change rows too.
                added.append(max(conn.executemany(sql, encode(rows)).rowcount, 0))
            if checkpoint is not None:
                conn.execute(schema.REPLAY_TABLE)
                saved = (checkpoint.dump, checkpoint.lines, int(checkpoint.finished))
                conn.execute(schema.REPLAY_SAVE, saved)
            return added

        lost = "; ".join(
            f"{len(rows)} {table} {rows[0][0]} .. {rows[-1][0]} not stored"
            for table, rows in parts
            if rows
        )
        return self._transaction(insert, f"writing a batch ({lost or 'progress'})")

    def update(
        self,
        table: str,
        changes: Sequence[tuple[str, Mapping[str, Any]]],
        edits: Sequence[Edit] = (),
    ) -> None:
        self._transaction(
            lambda conn: changes_.apply(conn, table, changes, edits), f"updating {table}"
        )

    def purge_deleted(
        self, table: str, columns: Sequence[str], fullnames: Sequence[str] | None = None
    ) -> int:
        return self._transaction(
            lambda conn: changes_.purge(conn, table, columns, fullnames), f"updating {table}"
        )

    def full_text(self, tables: Sequence[Table]) -> None:
        def index(conn: sqlite3.Connection) -> None:
            fulltext.require(conn, self.path)  # before the first write
            for statement in schema.META:
                conn.execute(statement)
            fulltext.enable(conn)
            for table in tables:
                if table.name in self._made:
                    fields = schema.recorded_fields(conn, table.name)
                    fulltext.keep(conn, table.name, table.kind, fields)

        self._transaction(index, "making the full-text index")

    def search(
        self, table: Table, query: str, *, subreddits: Sequence[str], limit: int
    ) -> list[Match]:
        conn = self._connection([table], fields=False)
        if not self._run(lambda: fulltext.indexed(conn, table.name)):
            raise unindexed(self.path, table.name)
        try:
            return fulltext.search(conn, table, query, subreddits=subreddits, limit=limit)
        except sqlite3.Error as exc:
            raise schema.fail(self.path, exc, "searching") from exc

    def claim(self, role: str) -> bool:
        # flock, not fcntl: SQLite's own locks are fcntl ones, which closing any other
        # descriptor of the file would drop; flock locks are apart from them on Linux.
        # The descriptor stays open until close(), after the connection is closed.
        if self._claim is None:
            self._claim = os.open(self.path, os.O_RDONLY)
        mode = fcntl.LOCK_SH if role == "stream" else fcntl.LOCK_EX
        try:
            fcntl.flock(self._claim, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def lead(self, what: str) -> str | None:
        return None  # one box: nothing to stand by for

    def confirm_lead(self) -> None:
        pass  # never leads: nothing to lose

    def _transaction(self, work: Callable[[sqlite3.Connection], T], doing: str) -> T:
        """`work` inside one BEGIN IMMEDIATE .. COMMIT; rolled back whole if anything fails."""
        conn = self._connection(list(self.tables.values()), fields=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise schema.fail(self.path, exc, doing) from exc
            raise DatabaseError(f"{self.path}: {doing}: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    # -- reading ----------------------------------------------------------------------

    def _run(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except sqlite3.Error as exc:
            raise schema.fail(self.path, exc, "reading") from exc

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        conn = self._connection(list(self.tables.values()), fields=True)
        return self._run(lambda: conn.execute(query, params).fetchall())

    def known(self, table: str, fullnames: Sequence[str]) -> set[str]:
        found: set[str] = set()
        if table not in self._made:
            return found
        for i in range(0, len(fullnames), CHUNK):
            chunk = fullnames[i : i + CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT fullname FROM {table} WHERE fullname IN ({marks})"
            found.update(row[0] for row in self._rows(query, chunk))
        return found

    def newest(self, table: str, within: Sequence[str] = ()) -> tuple[str, float] | None:
        if table not in self._made:
            return None
        within = within if "subreddit" in self.tables[table].columns else ()
        if within and table not in self._indexed:
            self._transaction(lambda conn: conn.execute(schema.by_subreddit(table)), "indexing")
            self._indexed.add(table)
        rows = self._rows(schema.newest_sql(table, len(within)), list(within))
        return (rows[0][0], float(rows[0][1])) if rows else None

    def count(self, table: str) -> int:
        if table not in self._made:
            return 0
        return int(self._rows(f"SELECT count(*) FROM {table}")[0][0])

    def checkpoint(self, dump: str) -> Checkpoint | None:
        present = self._rows("SELECT 1 FROM sqlite_master WHERE name = 'redpipe_replay'")
        if not present:
            return None
        rows = self._rows("SELECT lines, finished FROM redpipe_replay WHERE dump = ?", (dump,))
        return Checkpoint(dump, int(rows[0][0]), bool(rows[0][1])) if rows else None

    def due(self, table: str, *, cutoff: float, limit: int) -> list[str]:
        query = (
            f"SELECT fullname FROM {table} WHERE coalesce(refreshed_utc, created_utc) <= ? "
            "ORDER BY created_utc LIMIT ?"
        )
        return [r[0] for r in self._rows(query, (cutoff, limit))]

    def count_due(self, table: str, *, cutoff: float) -> int:
        query = f"SELECT count(*) FROM {table} WHERE coalesce(refreshed_utc, created_utc) <= ?"
        return int(self._rows(query, (cutoff,))[0][0])

    def current(
        self, table: str, fullnames: Sequence[str], columns: Sequence[str]
    ) -> dict[str, Row]:
        marks = ",".join("?" * len(fullnames))
        query = f"SELECT fullname, {', '.join(columns)} FROM {table} WHERE fullname IN ({marks})"
        return {r[0]: tuple(r[1:]) for r in self._rows(query, list(fullnames))}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None
