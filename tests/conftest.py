"""Shared fixtures: the built redpipe.pyz and empty interpreters to run it with."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.pythons import interpreters

ROOT = Path(__file__).resolve().parents[1]


SUPPORTED = interpreters()


def query(db: Path, sql: str, *params: object) -> list:
    """Rows of one statement on its own connection, closed after (not just committed)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where runs of the .pyz keep their compiled copy: never the real ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real artifact, built by build.sh exactly as a user builds it."""
    return build(tmp_path_factory.mktemp("build") / "redpipe.pyz")


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
    """A factory: version -> the python of a `venv --without-pip`, nothing installed."""
    made: dict[str, Path] = {}

    def make(version: str) -> Path:
        if version not in made:
            base = dict(SUPPORTED)[version]
            target = tmp_path_factory.mktemp(f"venv{version}")
            subprocess.run([str(base), "-m", "venv", "--without-pip", str(target)], check=True)
            made[version] = target / "bin" / "python"
        return made[version]

    return make
