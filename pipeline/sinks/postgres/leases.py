"""Who does what on a shared database: rows of `redpipe_leases`, each renewed every second
by a heartbeat thread of the process that holds it, and free to take once it has run out.

A lease rather than an advisory lock: a lock lives as long as its connection, and a
leader whose box froze or whose network was cut keeps its connection open on the server
for as long as TCP takes to notice (hours by default), while a lease runs out on the
server's own clock. Every time compared is the server's, so the boxes' clocks may differ.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from ...errors import DatabaseError, LeadLost
from .connection import Connection, Session, in_transaction, rows
from .schema import SCHEMA_LOCK

TTL = 3.0  # a lease not renewed for this long is free: a standby takes over within it
BEAT = 1.0
TABLE = (
    "CREATE TABLE IF NOT EXISTS redpipe_leases (key text PRIMARY KEY, holder text NOT NULL, "
    "host text NOT NULL, pid integer NOT NULL, since timestamptz NOT NULL, "
    "until timestamptz NOT NULL)"
)
TAKE = (
    "INSERT INTO redpipe_leases AS l VALUES (:key, :me, :host, :pid, clock_timestamp(), "
    "clock_timestamp() + make_interval(secs => :ttl)) ON CONFLICT (key) DO UPDATE SET "
    "holder = excluded.holder, host = excluded.host, pid = excluded.pid, "
    "since = excluded.since, until = excluded.until "
    "WHERE l.until < clock_timestamp() OR l.holder = excluded.holder RETURNING l.key"
)
RENEW = (
    "UPDATE redpipe_leases SET until = clock_timestamp() + make_interval(secs => :ttl) "
    "WHERE holder = :me RETURNING key"
)


def make_table(conn: Connection) -> None:
    conn.run(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
    conn.run(TABLE)


def holder_id() -> str:
    """This sink's name in leases: unique, and telling an operator which box it is."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    """The leases one sink holds, on a connection of their own (`session`)."""

    def __init__(
        self,
        session: Session,
        holder: str,
        *,
        ttl: float = TTL,
        beat: float = BEAT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session, self.holder, self._ttl, self._beat = session, holder, ttl, beat
        self._clock = clock
        self._leads: set[str] = set()  # leases only one process may hold
        self._claims: set[str] = set()  # this sink's own rows, by role
        self._lost: str | None = None
        self._renewed = clock()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._use = threading.Lock()  # one connection, two threads: one statement at a time
        self._made = False

    def _run(self, work: Callable[[Connection], object], doing: str) -> object:
        def table_then(conn: Connection) -> object:
            if not self._made:
                in_transaction(conn, make_table)
                self._made = True
            return work(conn)

        with self._use:
            return self._session.run(table_then, doing)

    def lead(self, key: str) -> str | None:
        """Take `key` if it is free or has run out: None once this sink holds it, else who
        holds it ("host (pid N) since 12:00:00 UTC")."""
        params = {"key": key, "me": self.holder, "ttl": self._ttl}
        mine = {"host": socket.gethostname(), "pid": os.getpid()}

        def take(conn: Connection) -> str | None:
            sent = self._clock()
            if rows(conn, TAKE, **params, **mine):
                self._renewed = min(self._renewed, sent) if self._leads else sent
                return None
            found = rows(
                conn,
                "SELECT host, pid, to_char(since AT TIME ZONE 'UTC', 'HH24:MI:SS') "
                "FROM redpipe_leases WHERE key = :key",
                key=key,
            )
            return f"{found[0][0]} (pid {found[0][1]}) since {found[0][2]} UTC" if found else "?"

        held = self._run(take, "taking the lead")
        if held is None:
            with self._guard:
                self._leads.add(key)
                self._lost = None
            self._start()
        return held if isinstance(held, str) else None

    def claim(self, role: str, against: str) -> bool:
        """Hold a row for `role` unless a live row of `against` exists; both checked and
        written under a table lock, so two claimers cannot both see the other absent."""
        key = f"{role}:{self.holder}"

        def take(conn: Connection) -> bool:
            conn.run("LOCK TABLE redpipe_leases IN SHARE ROW EXCLUSIVE MODE")
            busy = rows(
                conn,
                "SELECT 1 FROM redpipe_leases WHERE key LIKE :other "
                "AND until > clock_timestamp() LIMIT 1",
                other=f"{against}:%",
            )
            # What crashed processes left behind, long run out.
            conn.run(
                "DELETE FROM redpipe_leases WHERE until < clock_timestamp() - interval '1 day'"
            )
            if not busy:
                rows(conn, TAKE, key=key, me=self.holder, ttl=self._ttl,
                     host=socket.gethostname(), pid=os.getpid())  # fmt: skip
            return not busy

        if not self._run(lambda conn: in_transaction(conn, take), "claiming the database"):
            return False
        with self._guard:
            self._claims.add(key)
        self._start()
        return True

    def check(self) -> None:
        """Raise LeadLost if a lead this sink held may be someone else's by now."""
        with self._guard:
            if not self._leads:
                return
            lost = self._lost
            if lost is None and self._clock() - self._renewed > self._ttl:
                lost = next(iter(self._leads))
        if lost is not None:
            # Not handed over: it has run out or been taken, and the heartbeat may be
            # stuck on a dead connection that this thread must not wait for.
            with self._guard:
                self._leads, self._lost = set(), None
            raise LeadLost(f"{self._session.target.where}: lost the lead of {lost}")

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat, name="leases", daemon=True)
            self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._beat):
            sent = self._clock()
            try:
                got = self._run(lambda c: rows(c, RENEW, ttl=self._ttl, me=self.holder), "renew")
            except DatabaseError:
                continue  # check() notices once the lease is older than its ttl
            renewed = {r[0] for r in got} if isinstance(got, list) else set()
            with self._guard:
                self._renewed = sent
                gone = [k for k in self._leads if k not in renewed]
                if gone and self._lost is None:
                    self._lost = gone[0]

    def _delete(self, keys: list[str]) -> None:
        with contextlib.suppress(DatabaseError):  # else it runs out on its own
            self._run(
                lambda c: c.run(
                    "DELETE FROM redpipe_leases WHERE key = ANY(CAST(:keys AS text[])) "
                    "AND holder = :me",
                    keys=keys,
                    me=self.holder,
                ),
                "handing over",
            )

    def close(self) -> None:
        """Stop renewing and hand everything over at once, so a standby need not wait."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._ttl)
        with self._guard:
            keys = [*self._leads, *self._claims]
            self._leads, self._claims = set(), set()
        if keys:
            self._delete(keys)
        self._session.close()
