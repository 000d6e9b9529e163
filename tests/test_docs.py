"""The README stays true: its usage block is the program's, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.cli import main as cli
from pipeline.sinks.postgres.target import parse

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks, paired open/close as Markdown pairs them."""
    blocks, current = [], None
    for line in text.splitlines(keepends=True):
        if re.match(r"```", line):
            if current is None:
                current = []
            else:
                blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_readme_usage_block_is_the_programs_usage_text() -> None:
    usage = [b for b in code_blocks(README) if "Usage:" in b]
    assert usage == [cli.__doc__.strip() + "\n"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = [
        line
        for line in README.splitlines()
        if line.startswith("python3 -m venv") and "pytest" in line
    ]
    assert len(commands) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in ci


def test_readme_build_command_is_build_sh() -> None:
    assert "./build.sh && ./redpipe.pyz posts.sqlite" in README


def test_every_database_url_in_the_readmes_blocks_is_accepted(tmp_path: Path) -> None:
    # Examples and log lines alike: no password in any, and only parameters redpipe takes.
    # The usage text's postgresql://user@host[:port]/dbname is a pattern, not a URL.
    found = re.findall(r"postgres(?:ql)?://[^\s'\"]+", "".join(code_blocks(README)))
    urls = {url.rstrip(":;,.)") for url in found if "[" not in url and "..." not in url}
    assert any("sslmode=verify-full" in url for url in urls)
    for url in sorted(urls):
        parse(url, {}, home=str(tmp_path))  # UsageError if not
