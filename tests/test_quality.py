"""The code stays ruff-clean, formatted and type-checked: part of the one test command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_lint() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_answer_is_parsed_once() -> None:
    # One json.loads per kind of input (reddit._json, a dump line): a body is parsed once, its
    # children flow through the transform as the parsed dicts, never re-serialised.
    calls = [
        f"{path.name}: {line.strip()}"
        for path in sorted((ROOT / "pipeline").glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "loads(" in line or "JSONDecoder" in line
    ]
    assert calls == [
        "reddit.py: return json.loads(resp.body)",
        "replay.py: record = json.loads(line)",  # a dump line, likewise once
        "store.py: recorded = json.loads(value[0]) if value else None",  # at open only
    ], calls
