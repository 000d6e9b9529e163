"""The PostgreSQL sink: the same archive as a SQLite file, on a server that several
redpipes on several boxes share.

Each batch is copied into a temporary table and inserted from there in key order with
ON CONFLICT DO NOTHING, in one transaction: COPY is some twenty times faster than one
INSERT per row, and writers whose batches overlap take their row locks in the same order,
so they wait for each other instead of deadlocking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from ...transform.tables import Table, as_stored, check_stored
from ...transform.text import unindexed
from ..base import Checkpoint, Edit, Match, Part, Row
from . import changes as changes_
from . import checking, fulltext, leases, schema
from .connection import Connection, Session, in_transaction, rows
from .leases import Leases, holder_id
from .rows import copy_lines, first_of_each, insert
from .target import Target

T = TypeVar("T")


class PostgresSink:
    """A redpipe database on a PostgreSQL server: tables keyed by fullname, real types,
    one transaction per batch, and leases for what must run once (see leases.py)."""

    durable = True
    shared = True

    def __init__(
        self,
        target: Target,
        *,
        timeout: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target, self.where = target, target.where
        self._staged: set[str] = set()
        self._session = Session(
            target, timeout=timeout, clock=clock, sleep=sleep, on_connect=self._connected
        )
        # The leases' own connection gives up on a silent server well inside a lease's
        # life, so that a cut network is noticed while the lease is still this sink's.
        self._side = Session(
            target,
            timeout=min(timeout, leases.TTL),
            patience=2.0,
            read_timeout=leases.TTL - leases.BEAT,
            clock=clock,
            sleep=sleep,
        )
        self._leases = Leases(self._side, holder_id(), clock=clock)
        self.tables: dict[str, Table] = {}
        self._jsonb: dict[str, list[bool]] = {}
        self._made: set[str] = set()
        self._replay_made = self._checking_made = self._edits_made = False
        self._indexed: set[str] = set()  # tables given the index newest(within=) reads
        # The first call connects: an unreachable server or a refused login ends the run
        # before anything else is done.
        self._session.connection()

    def _connected(self, conn: Connection) -> None:
        self._staged = set()  # temporary tables die with their connection
        schema.version(conn, self.where)

    # -- transactions -----------------------------------------------------------------

    def _transaction(self, work: Callable[[Connection], T], doing: str) -> T:
        """`work` inside one transaction, retried whole on a new connection if the server
        goes away before the commit is known."""
        return self._session.run(lambda conn: in_transaction(conn, work), doing)

    def _read(self, sql: str, **params: Any) -> list[list[Any]]:
        return self._session.run(lambda conn: rows(conn, sql, **params), "reading")

    # -- schema -----------------------------------------------------------------------

    def prepare(self, tables: Sequence[Table], *, lazy: Collection[str] = ()) -> None:
        def work(conn: Connection) -> list[str]:
            found = schema.read_schema(conn, self.where, tables)
            check_stored(self.where, tables, found, fields=True)
            now = [t for t in tables if t.name not in lazy or t.name in found]
            if now:
                schema.make(conn, self.where, now)
            return [t.name for t in now]

        made = self._transaction(work, "creating the schema")
        for table in tables:
            self._hold(table)
        self._made.update(made)

    def adopt(self, tables: Sequence[Table]) -> dict[str, Table]:
        found = self._session.run(
            lambda conn: schema.read_schema(conn, self.where, tables), "reading its schema"
        )
        check_stored(self.where, tables, found, fields=False)
        adopted = {}
        for table in tables:
            if table.name in found:
                adopted[table.name] = self._hold(as_stored(table, found[table.name]))
                self._made.add(table.name)
        return adopted

    def _hold(self, table: Table) -> Table:
        self.tables[table.name] = table
        self._jsonb[table.name] = [kind == "jsonb" for _, kind in schema.types(table)]
        return table

    def _make(self, tables: Sequence[Table]) -> None:
        self._transaction(lambda conn: schema.make(conn, self.where, tables), "creating the schema")
        self._made.update(t.name for t in tables)

    def _once(self, statement: str) -> None:
        """A table of redpipe's own, made under the schema lock (CREATE IF NOT EXISTS
        alone races with another redpipe making it)."""

        def make(conn: Connection) -> None:
            conn.run(f"SELECT pg_advisory_xact_lock({schema.SCHEMA_LOCK})")
            conn.run(statement)

        self._transaction(make, "creating the schema")

    # -- writing ----------------------------------------------------------------------

    def write(self, parts: Sequence[Part], *, checkpoint: Checkpoint | None = None) -> list[int]:
        self._leases.check()
        if not any(rows for _, rows in parts) and checkpoint is None:
            return [0] * len(parts)
        unmade = [self.tables[t] for t, rows in parts if rows and t not in self._made]
        if unmade:
            self._make(unmade)
        if checkpoint is not None and not self._replay_made:
            self._once(schema.REPLAY_TABLE)
            self._replay_made = True
        data = [
            (table, copy_lines(first_of_each(rows), self._jsonb[table]) if rows else b"")
            for table, rows in parts
        ]

        def staged_then_insert(conn: Connection) -> list[int]:
            self._stage(conn, [t for t, lines in data if lines])
            return in_transaction(conn, lambda c: insert(c, self.tables, data, checkpoint))

        lost = "; ".join(
            f"{len(rows)} {table} {rows[0][0]} .. {rows[-1][0]} not stored"
            for table, rows in parts
            if rows
        )
        return self._session.run(staged_then_insert, f"writing a batch ({lost or 'progress'})")

    def _stage(self, conn: Connection, tables: Sequence[str]) -> None:
        """The temporary tables batches are copied into, once a connection; outside any
        transaction, so that a rolled-back batch does not take them along."""
        for name in tables:
            if name in self._staged:
                continue
            declared = ", ".join(f"{c} {t}" for c, t in schema.types(self.tables[name]))
            conn.run(
                f"CREATE TEMP TABLE IF NOT EXISTS redpipe_stage_{name} ({declared}) "
                "ON COMMIT DELETE ROWS"
            )
            self._staged.add(name)

    def update(
        self,
        table: str,
        changes: Sequence[tuple[str, Mapping[str, Any]]],
        edits: Sequence[Edit] = (),
    ) -> None:
        jsonb = dict(zip(self._columns(table), self._jsonb[table]))
        if edits and not self._edits_made:
            self._once(schema.EDITS_TABLE)
            self._edits_made = True

        checked = self._checking_made
        self._transaction(
            lambda conn: changes_.apply(conn, table, changes, edits, jsonb, checked=checked),
            f"updating {table}",
        )

    def _columns(self, table: str) -> list[str]:
        held = self.tables[table]
        return [*held.columns, *held.bookkeeping]

    def purge_deleted(
        self, table: str, columns: Sequence[str], fullnames: Sequence[str] | None = None
    ) -> int:
        if fullnames is not None and not fullnames:
            return 0
        return self._transaction(
            lambda conn: changes_.purge(conn, table, columns, fullnames), f"updating {table}"
        )

    def full_text(self, tables: Sequence[Table]) -> None:
        made = [(t.name, t.kind) for t in tables if t.name in self._made]
        self._transaction(lambda c: schema.index(c, self.where, made), "indexing")

    def search(
        self, table: Table, query: str, *, subreddits: Sequence[str], limit: int
    ) -> list[Match]:
        if not self._session.run(lambda c: fulltext.indexed(c, table.name), "reading"):
            raise unindexed(self.where, table.name)
        held = (table.columns, table.fields)
        found = self._session.run(
            lambda c: fulltext.search(
                c, table.name, table.kind, held, query, subreddits=subreddits, limit=limit
            ),
            "searching",
        )
        return [Match(*row) for row in found]

    # -- sharing ----------------------------------------------------------------------

    def claim(self, role: str) -> bool:
        # Streams share a database, refreshes share it, but a refresh beside a stream would
        # spend the one client's budget that the stream's polls need.
        return self._leases.claim(role, "refresh" if role == "stream" else "stream")

    def lead(self, what: str) -> str | None:
        return self._leases.lead(f"stream:{what}")

    def confirm_lead(self) -> None:
        self._leases.check()

    # -- reading ----------------------------------------------------------------------

    def known(self, table: str, fullnames: Sequence[str]) -> set[str]:
        self._leases.check()
        if table not in self._made or not fullnames:
            return set()
        got = self._read(
            f"SELECT fullname FROM {table} WHERE fullname = ANY(CAST(:names AS text[]))",
            names=list(fullnames),
        )
        return {r[0] for r in got}

    def newest(self, table: str, within: Sequence[str] = ()) -> tuple[str, float] | None:
        self._leases.check()
        if table not in self._made:
            return None
        within = within if "subreddit" in self.tables[table].columns else ()
        if within and table not in self._indexed:
            self._once(schema.by_subreddit(table))
            self._indexed.add(table)
        params = {"within": list(within)} if within else {}
        got = self._read(schema.newest_sql(table, bool(within)), **params)
        return (got[0][0], float(got[0][1])) if got else None

    def count(self, table: str) -> int:
        if table not in self._made:
            return 0
        return int(self._read(f"SELECT count(*) FROM {table}")[0][0])

    def checkpoint(self, dump: str) -> Checkpoint | None:
        if not self._read("SELECT to_regclass('redpipe_replay') IS NOT NULL")[0][0]:
            return None
        self._replay_made = True
        got = self._read("SELECT lines, finished FROM redpipe_replay WHERE dump = :d", d=dump)
        return Checkpoint(dump, int(got[0][0]), bool(got[0][1])) if got else None

    def due(self, table: str, *, cutoff: float, limit: int) -> list[str]:
        """As SQLite's, but each item is handed to one sink at a time: several refreshes
        of one database split what is due instead of each fetching all of it."""
        if not self._checking_made:
            self._once(checking.TABLE)
            self._checking_made = True
        return checking.due(
            self._session, table, cutoff=cutoff, limit=limit, holder=self._leases.holder
        )

    def count_due(self, table: str, *, cutoff: float) -> int:
        query = f"SELECT count(*) FROM {table} WHERE coalesce(refreshed_utc, created_utc) <= :c"
        return int(self._read(query, c=cutoff)[0][0])

    def current(
        self, table: str, fullnames: Sequence[str], columns: Sequence[str]
    ) -> dict[str, Row]:
        got = self._read(
            f"SELECT fullname, {', '.join(columns)} FROM {table} "
            "WHERE fullname = ANY(CAST(:names AS text[]))",
            names=list(fullnames),
        )
        return {r[0]: tuple(r[1:]) for r in got}

    def close(self) -> None:
        self._leases.close()
        self._session.close()
