"""The CPython interpreters pyenv provides; no pytest, so bench/ can use it too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

FLOOR = (3, 9)


def _pyenv_root() -> Path:
    env = os.environ.get("PYENV_ROOT")
    if env:
        return Path(env)
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / ".pyenv"


def interpreters(minimum: tuple[int, int] = FLOOR, below: tuple[int, int] = (99, 0)) -> list:
    """(version, path) of every CPython pyenv has in [minimum, below); else this one."""
    found = {}
    for exe in sorted((_pyenv_root() / "versions").glob("*/bin/python")):
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", exe.parent.parent.name)
        if m and minimum <= (int(m[1]), int(m[2])) < below:
            found[(int(m[1]), int(m[2]))] = exe
    if not found and minimum <= sys.version_info[:2] < below:
        found[sys.version_info[:2]] = Path(sys.executable)
    return [(f"{v[0]}.{v[1]}", found[v]) for v in sorted(found)]
