"""The code stays ruff-clean, formatted and type-checked: part of the one test command."""

from __future__ import annotations

import ast
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
    # One json.loads per kind of input (an API answer, a dump line): a body is parsed once,
    # its children flow through the transform as the parsed dicts, never re-serialised.
    calls = [
        f"{path.relative_to(ROOT / 'pipeline').as_posix()}: {line.strip()}"
        for path in sorted((ROOT / "pipeline").rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "loads(" in line or "JSONDecoder" in line
    ]
    assert calls == [
        "sinks/postgres/schema.py: return dict(json.loads(got[0][0]))",  # at open
        "sinks/sqlite/schema.py: return dict(json.loads(row[0])) if row else None",  # at open
        "sources/dumps.py: return json.loads(line)",  # a dump line, once
        "sources/reddit.py: return json.loads(resp.body)",  # an answer, once
    ], calls


def test_only_the_database_sinks_import_drivers_and_only_the_transport_http() -> None:
    # The stages stay visible: storage drivers in their sink, HTTP in the one transport.
    # ../shared/tools/structure.py checks the same, and more, where ../shared is at hand.
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in ("sqlite3", "pg8000", "requests", "urllib3", "http"):
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    assert found["sqlite3"] <= {
        f"pipeline/sinks/sqlite/{name}.py" for name in ("schema", "sink", "fulltext", "changes")
    }
    assert found["pg8000"] <= {"pipeline/sinks/postgres/connection.py"}
    network = found["http"] | found["requests"] | found.get("urllib3", set())
    assert network == {"pipeline/sources/transport.py"}
