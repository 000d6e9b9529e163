"""build.sh: one reproducible file holding only pure Python, refusing old interpreters."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, build, interpreters

pytestmark = pytest.mark.slow
OLD = interpreters(minimum=(2, 0), below=(3, 9))


def test_two_builds_are_byte_identical(pyz: Path, tmp_path: Path) -> None:
    again = build(tmp_path / "again.pyz")
    assert again.read_bytes() == pyz.read_bytes()


def test_the_pyz_holds_only_pure_python_and_the_pinned_projects(pyz: Path) -> None:
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert pyz.stat().st_mode & 0o111
    with zipfile.ZipFile(pyz) as zf:
        names = zf.namelist()
        infos = zf.infolist()
    assert "__main__.py" in names
    # Every module of the package, its subpackages included, and nothing else of it.
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "pipeline").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert [n for n in names if n.startswith("pipeline/")] == modules
    assert "pipeline/sinks/sqlite/sink.py" in modules and len(modules) > 30
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyc", ".dylib"))]
    tops = {n.split("/")[0] for n in names}
    packages = {t for t in tops if not t.endswith(".dist-info") and t != "__main__.py"}
    assert packages == {
        "asn1crypto",
        "certifi",
        "charset_normalizer",
        "dateutil",
        "docopt",
        "idna",
        "pg8000",
        "pipeline",
        "requests",
        "scramp",
        "six.py",
        "urllib3",
    }
    # scramp reads its own version through importlib.metadata: without its dist-info in
    # the zip, importing it (and so connecting to PostgreSQL) fails.
    assert "scramp-1.4.6.dist-info/METADATA" in names
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    shipped = {t.split("-")[0].lower().replace("_", "-") for t in tops if t.endswith(".dist-info")}
    assert shipped == pinned
    assert len({i.date_time for i in infos}) == 1
    assert names == sorted(names)


@pytest.mark.parametrize(("version", "python"), OLD, ids=[v for v, _ in OLD])
def test_an_old_python_gets_one_clear_line(pyz: Path, version: str, python: Path) -> None:
    result = subprocess.run(
        [str(python), str(pyz), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "redpipe needs Python 3.9 or newer" in lines[0] and version in lines[0]
