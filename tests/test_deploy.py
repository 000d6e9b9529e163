"""The systemd unit in deploy/ is valid, hardened, and agrees with the program."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.config import CREDENTIAL_FILES

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "redpipe.service"
TEXT = UNIT.read_text(encoding="utf-8")
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_systemd
def test_unit_passes_systemd_analyze_verify() -> None:
    result = subprocess.run(["systemd-analyze", "verify", UNIT.name], cwd=UNIT.parent,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr


@needs_systemd
def test_unit_exposure_is_at_most_2_of_10() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", UNIT.name],
        cwd=UNIT.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-1500:]


def test_unit_loads_the_credential_files_redpipe_reads() -> None:
    loaded = set(re.findall(r"^LoadCredential=([\w-]+):", TEXT, flags=re.M))
    assert loaded == set(CREDENTIAL_FILES.values())
    assert "REDPIPE_CLIENT_SECRET" not in TEXT  # never through the environment
    for line in ("DynamicUser=yes", "StateDirectory=redpipe", "CacheDirectory=redpipe",
                 "ProtectSystem=strict", "NoNewPrivileges=yes"):  # fmt: skip
        assert re.search(rf"^{re.escape(line)}$", TEXT, flags=re.M), line
