"""The built redpipe.pyz as a process against a real PostgreSQL server (tests/pgcluster.py)
and the fake Reddit: what the PostgreSQL end-to-end tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.fakereddit import FakeReddit
from tests.pgcluster import Cluster


def environment(cluster: Cluster, home: Path, **extra: str) -> dict[str, str]:
    """What a user's shell would hold: the password and root certificate in PG* variables
    (never on the command line), Reddit credentials, the session's compiled-copy cache."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(home / ".cache")),
        "REDPIPE_CLIENT_ID": "test-client",
        "REDPIPE_CLIENT_SECRET": "test-secret",
        **cluster.env(),
        **extra,
    }


class Process:
    """One redpipe.pyz run in the background, its stderr in a file."""

    def __init__(
        self,
        python: Path,
        pyz: Path,
        args: Sequence[str],
        env: dict[str, str],
        log: Path,
        stdin: Any = subprocess.DEVNULL,
    ) -> None:
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [str(python), str(pyz), *args],
                env=env,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)


def stream_args(url: str, server: FakeReddit, *more: str) -> list[str]:
    """A stream of `url` from the fake Reddit, polling fast."""
    args = [url, "--base-url", server.url, "--auth-url", server.url, *more]
    for option, value in (("--interval", "0.1"), ("--timeout", "2")):
        if option not in more:
            args += [option, value]
    return args


def query(cluster: Cluster, database: str, sql: str, **params: Any) -> list[Any]:
    """Rows of one statement on a connection of its own."""
    conn = cluster.connect(database)
    try:
        return conn.run(sql, **params) or []
    finally:
        conn.close()


def stored(cluster: Cluster, database: str, table: str = "posts") -> list[str]:
    """The fullnames in `table`, none if it is not made yet."""
    if not query(cluster, database, f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]:
        return []
    return [r[0] for r in query(cluster, database, f"SELECT fullname FROM {table}")]


def wait_for(condition: Callable[[], bool], timeout: float = 30, step: float = 0.05) -> float:
    """Seconds it took `condition` to hold; AssertionError after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(step)
    return time.monotonic() - started
