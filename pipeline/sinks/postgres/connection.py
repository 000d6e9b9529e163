"""One connection to PostgreSQL through pg8000: opened as libpq would (target.py), every
failure turned into one line that names the server and never the password, and faults
that pass (a restart, a dropped connection, a deadlock) told apart from those that don't.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pg8000.native
from pg8000.exceptions import DatabaseError as ServerError
from pg8000.exceptions import InterfaceError

from ...errors import DatabaseError, DatabaseFull, DatabaseGone
from .outages import outages as _outages
from .target import Target

T = TypeVar("T")


class Connection(Protocol):
    """What redpipe uses of pg8000's native connection (which ships no types)."""

    @property
    def row_count(self) -> int: ...

    def run(self, sql: str, stream: Any = None, types: Any = None, **params: Any) -> Any: ...

    def close(self) -> None: ...


# A child of the logger the console prints (cli/console.py): "redpipe: warning: " lines,
# silenced by -q. A logger of another name has no handler, and Python's last resort prints
# its warnings bare, -q or not.
log = logging.getLogger(__name__)

# SQLSTATEs worth a reconnect and a retry: the connection broke, the server is shutting
# down or starting, too many clients, and the two a concurrent writer can cause.
TRANSIENT = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03")
# The whole of a socket's read waits this long at most: a server that neither answers nor
# closes (its network cut) counts as gone, and the batch is retried elsewhere.
READ_TIMEOUT = 60.0


def connect(target: Target, *, timeout: float, read_timeout: float = READ_TIMEOUT) -> Connection:
    """A new connection, trying TLS and plain as `sslmode` says; DatabaseError if refused,
    DatabaseGone if the server cannot be reached."""
    error: Exception | None = None
    for context in target.attempts():
        try:
            conn: Any = pg8000.native.Connection(
                target.user,
                host=target.host,
                port=target.port,
                database=target.database,
                password=target.password,
                unix_sock=target.unix_socket(),
                # pg8000 reads None as "TLS, unverified"; False is no TLS at all.
                ssl_context=False if context is None else context,
                timeout=target.connect_timeout or timeout,
                application_name=target.application_name or "redpipe",
            )
        except (ServerError, InterfaceError, OSError) as exc:
            error = exc
            if _refuses_tls(exc):
                continue  # sslmode prefer/allow: try the next way
            if target.password is None and "password" in str(exc):
                raise _no_password(target) from None
            break
        except AttributeError:
            # pg8000 answers a SCRAM request it has no password for with this.
            if target.password is None:
                raise _no_password(target) from None
            raise
        conn._usock.settimeout(read_timeout)  # pg8000 has no public knob
        if target.unix_socket() is None:
            # As libpq does: else a COPY's small closing message waits for the server's
            # delayed ACK of the data before it, some 40 ms a batch.
            conn._usock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection: Connection = conn
        return connection
    assert error is not None
    raise fail(target, error, "connecting")


def _no_password(target: Target) -> DatabaseError:
    return DatabaseError(
        f"{target.where}: the server wants a password for user {target.user} and none was "
        "found: set PGPASSWORD, or put it in ~/.pgpass (mode 0600) or the database-password "
        "credential"
    )


def _refuses_tls(exc: Exception) -> bool:
    return isinstance(exc, InterfaceError) and "refuses SSL" in str(exc)


def code_of(exc: BaseException) -> str:
    """The SQLSTATE of a server's error, or "" for anything else."""
    if isinstance(exc, ServerError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("C", ""))
    return ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, ServerError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("M", "")).rstrip(".")
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    if isinstance(cause, socket.timeout) or isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return str(exc).rstrip(".") or type(exc).__name__


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a fault that a new connection may not have."""
    code = code_of(exc)
    if code:
        return code.startswith(TRANSIENT)
    return isinstance(exc, (InterfaceError, OSError)) and not isinstance(exc, ssl.SSLError)


def fail(target: Target, exc: BaseException, doing: str) -> DatabaseError:
    """The one-line error for a failed call; DatabaseGone for the faults that pass."""
    where, code, text = target.where, code_of(exc), _message(exc)
    if code in ("28P01", "28000"):
        return DatabaseError(
            f"{where}: the server refused user {target.user} ({text}); check the role and "
            "its password (PGPASSWORD, ~/.pgpass or the database-password credential)"
        )
    if code == "3D000":
        return DatabaseError(f"{where}: the database {target.database} does not exist ({text})")
    if code == "42501":
        return DatabaseError(f"{where}: {doing}: permission denied ({text})")
    if code == "25006":
        return DatabaseError(f"{where}: {doing}: the server is read-only ({text})")
    if code.startswith("53") and code != "53300":
        return DatabaseFull(f"{where}: {doing}: {text}")
    if code.startswith("40"):
        return DatabaseGone(f"{where}: {doing}: a concurrent writer got in the way ({text})")
    if transient(exc):
        return DatabaseGone(f"{where}: {doing}: the server is unreachable ({text})")
    return DatabaseError(f"{where}: {doing}: {text}")


class Session:
    """A connection that comes back: `run(work)` gives `work` a live connection, and when
    the server goes away mid-way it reconnects with backoff and runs `work` again whole,
    for up to `patience` seconds. `work` must be safe to repeat (a transaction that either
    committed or was rolled back)."""

    def __init__(
        self,
        target: Target,
        *,
        timeout: float,
        patience: float = 20.0,
        read_timeout: float = READ_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_connect: Callable[[Connection], None] = lambda conn: None,
    ) -> None:
        self.target, self._timeout, self._patience = target, timeout, patience
        self._read_timeout = max(read_timeout, 1.0)
        self._clock, self._sleep, self._on_connect = clock, sleep, on_connect
        self._conn: Connection | None = None
        self._since = 0  # how many outages had been told of when the connection was opened
        self._dropped = False  # the last call failed, and the connection was dropped

    def connection(self) -> Connection:
        if self._conn is None:
            self._since = _outages(self.target).told
            conn = connect(self.target, timeout=self._timeout, read_timeout=self._read_timeout)
            try:
                self._on_connect(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def run(self, work: Callable[[Connection], T], doing: str) -> T:
        started, delay = self._clock(), 0.25
        while True:
            try:
                result = work(self.connection())
            except DatabaseGone as exc:
                error: BaseException = exc
            except (ServerError, InterfaceError, OSError) as exc:
                self._rollback()
                if not transient(exc):
                    raise fail(self.target, exc, doing) from None
                error = exc
            else:
                if self._dropped:
                    self._dropped = False
                    if _outages(self.target).back():
                        log.warning("%s: reconnected", self.target.where)
                return result
            self.drop()
            self._dropped = True
            if self._clock() - started + delay > self._patience:
                if isinstance(error, DatabaseGone):
                    raise error
                raise fail(self.target, error, doing) from None
            if _outages(self.target).down(self._since):
                # A DatabaseGone (from connecting) says where and what already.
                gone = error if isinstance(error, DatabaseGone) else fail(self.target, error, doing)
                log.warning("%s; reconnecting", gone)
            self._sleep(delay)
            delay = min(delay * 2, 5.0)

    def _rollback(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            if getattr(conn, "_transaction_status", None) not in (None, b"I"):
                conn.run("ROLLBACK")
        except (ServerError, InterfaceError, OSError):
            self.drop()

    def drop(self) -> None:
        """Forget the connection (closing it if it still answers)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(ServerError, InterfaceError, OSError):
                conn.close()

    def close(self) -> None:
        self.drop()


def in_transaction(conn: Connection, work: Callable[[Connection], T]) -> T:
    """`work` between BEGIN and COMMIT, rolled back if it fails."""
    conn.run("BEGIN")
    try:
        result = work(conn)
        conn.run("COMMIT")
    except BaseException:
        with contextlib.suppress(ServerError, InterfaceError, OSError):
            conn.run("ROLLBACK")
        raise
    return result


def rows(conn: Connection, sql: str, **params: Any) -> list[list[Any]]:
    """The rows of one statement (an empty list for one that returns none)."""
    got: list[list[Any]] | None = conn.run(sql, **params)
    return got or []
