"""Shared fixtures: the built redpipe.pyz and empty interpreters to run it with."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main as cli
from tests.fakereddit import FakeReddit
from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[1]


SUPPORTED = interpreters()


def query(db: Path, sql: str, *params: object) -> list:
    """Rows of one statement on its own connection, closed after (not just committed)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReddit]:
    """A fake Reddit with the credentials it accepts set, for redpipe in-process."""
    monkeypatch.setenv("REDPIPE_CLIENT_ID", "test-client")
    monkeypatch.setenv("REDPIPE_CLIENT_SECRET", "test-secret")
    with FakeReddit() as server:
        yield server


def redpipe(fake: FakeReddit, *args: str) -> int:
    """redpipe in-process against `fake`: a stream polling fast, or a command as given
    (refresh with the fake's URLs)."""
    urls = ["--base-url", fake.url, "--auth-url", fake.url]
    if args[0] in ("replay", "search"):
        return cli.main(list(args))
    if args[0] == "refresh":
        return cli.main([*args[:2], *urls, *args[2:]])
    return cli.main([*args, *urls, "--interval", "0.05", "--timeout", "2"])


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where runs of the .pyz keep their compiled copy: never the real ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(path)
    return path


def shared(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Any]:
    """A folder the whole run shares (every xdist worker the same one), and an exclusive
    lock on it: the first to take it makes what is to be made there, the others reuse it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / name
    folder.mkdir(exist_ok=True)
    lock = open(folder / ".lock", "w")  # noqa: SIM115 - released by the caller's close()
    fcntl.flock(lock, fcntl.LOCK_EX)
    return folder, lock


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real artifact, built by build.sh exactly as a user builds it, once a run."""
    folder, lock = shared(tmp_path_factory, "build")
    with lock:
        out = folder / "redpipe.pyz"
        if not out.exists():
            build(out)
    return out


def build(out: Path) -> Path:
    """Run build.sh exactly as a user does, writing to `out`."""
    subprocess.run(
        ["bash", str(ROOT / "build.sh"), str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    return out


@pytest.fixture(scope="session")
def empty_python(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A factory: version -> the python of a `venv --without-pip`, nothing installed; made
    once a run, whichever worker asks first."""

    def make(version: str) -> Path:
        folder, lock = shared(tmp_path_factory, f"venv{version}")
        with lock:
            python = folder / "bin" / "python"
            if not python.exists():
                base = dict(SUPPORTED)[version]
                subprocess.run([str(base), "-m", "venv", "--without-pip", str(folder)], check=True)
        return python

    return make


# A real PostgreSQL 15 server (tests/pgcluster.py): one a worker, started when first asked
# for; a fresh database on it a test; or a server of a test's own, to stop or restart.


from tests.pgcluster import Cluster, start_cluster  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """This worker's PostgreSQL server (each xdist worker is a session of its own)."""
    cluster = start_cluster()
    yield cluster
    cluster.close()


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> Iterator[str]:
    """The name of a fresh, empty database on pg_cluster, dropped (WITH (FORCE)) after."""
    name = pg_cluster.create_database()
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of the test's own, to stop, restart or break; removed after."""
    cluster = start_cluster()
    yield cluster
    cluster.close()
