"""The systemd unit in deploy/ is valid, hardened, and agrees with the program."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pipeline.cli.config import CREDENTIAL_FILES
from pipeline.sinks.postgres.passwords import CREDENTIAL
from pipeline.sinks.postgres.target import is_url, parse
from tests.conftest import query
from tests.fakereddit import FakeReddit

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "redpipe.service"
TEXT = UNIT.read_text(encoding="utf-8")
REFRESH = UNIT.with_name("redpipe-refresh.service")
POSTGRES = UNIT.with_name("redpipe-postgres.service")
SERVICES = [UNIT, REFRESH, POSTGRES]
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_systemd
def test_units_pass_systemd_analyze_verify() -> None:
    names = [UNIT.name, REFRESH.name, "redpipe-refresh.timer", POSTGRES.name]
    result = subprocess.run(["systemd-analyze", "verify", *names], cwd=UNIT.parent,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr


@needs_systemd
@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_unit_exposure_is_at_most_2_of_10(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit.name],
        cwd=unit.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-1500:]


def settings(unit: Path) -> list[str]:
    lines = unit.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if re.match(r"^[A-Z]\w+=", line)]


def test_the_refresh_unit_shares_the_streams_user_files_and_hardening() -> None:
    # systemd has no include: the two units repeat their sandbox, and this keeps it equal.
    stream, refresh = settings(UNIT), settings(REFRESH)
    start = stream.index("DynamicUser=yes")
    assert (
        refresh[refresh.index("DynamicUser=yes") :]
        == stream[start : stream.index("MemoryMax=256M") + 2]
    )
    assert "User=redpipe" in refresh and "User=redpipe" in stream  # one uid owns the files
    command = next(line for line in refresh if line.startswith("ExecStart="))
    database = next(line for line in stream if line.startswith("ExecStart=")).split()[-1]
    assert command.split()[2:] == ["refresh", database, "--purge-deleted"]
    assert [x for x in refresh if x.startswith("LoadCredential=")] == [
        x for x in stream if x.startswith("LoadCredential=")
    ]


def test_unit_loads_the_credential_files_redpipe_reads() -> None:
    loaded = set(re.findall(r"^LoadCredential=([\w-]+):", TEXT, flags=re.M))
    assert loaded == set(CREDENTIAL_FILES.values())
    assert "REDPIPE_CLIENT_SECRET" not in TEXT  # never through the environment
    for line in ("DynamicUser=yes", "StateDirectory=redpipe", "CacheDirectory=redpipe",
                 "ProtectSystem=strict", "NoNewPrivileges=yes"):  # fmt: skip
        assert re.search(rf"^{re.escape(line)}$", TEXT, flags=re.M), line


def test_the_postgres_unit_has_the_streams_sandbox_and_user() -> None:
    stream, postgres = settings(UNIT), settings(POSTGRES)
    sandbox = stream[stream.index("NoNewPrivileges=yes") : stream.index("TasksMax=16") + 1]
    start = postgres.index("NoNewPrivileges=yes")
    assert postgres[start : start + len(sandbox)] == sandbox
    for line in ("DynamicUser=yes", "User=redpipe", "CacheDirectory=redpipe", "UMask=0077"):
        assert line in postgres, line


def test_the_postgres_unit_loads_every_secret_and_verifies_the_server(tmp_path: Path) -> None:
    lines = settings(POSTGRES)
    credentials = [x.split("=", 1)[1] for x in lines if x.startswith("LoadCredential=")]
    loaded = {name: path for name, _, path in (x.partition(":") for x in credentials)}
    assert set(CREDENTIAL_FILES.values()) | {CREDENTIAL} <= set(loaded)
    assert not [x for x in lines if "PASSWORD" in x or "SECRET" in x]  # files, not variables
    # The dynamic user cannot read /etc/redpipe: the CA comes as a credential too.
    root = next(x for x in lines if x.startswith("Environment=PGSSLROOTCERT="))
    assert root.split("=", 2)[2] in {f"%d/{name}" for name in loaded}
    database = next(x for x in lines if x.startswith("ExecStart=")).split()[2]
    target = parse(database, {}, home=str(tmp_path))
    assert target.sslmode == "verify-full" and target.password is None
    # A box that boots while the server is down gets exit 3, and must keep trying.
    assert "Restart=always" in lines
    prevented = next(x for x in lines if x.startswith("RestartPreventExitStatus="))
    assert "3" not in prevented.split("=", 1)[1].split()


def test_no_unit_holds_a_database_password(tmp_path: Path) -> None:
    urls = [
        (unit.name, url)
        for unit in sorted(UNIT.parent.iterdir())
        for url in re.findall(r"postgres(?:ql)?://\S+", unit.read_text(encoding="utf-8"))
    ]
    assert urls
    for name, url in urls:
        assert is_url(url), (name, url)
        # parse() refuses a URL with a password in any of its forms (user:pw@, ?password=).
        parse(url, {}, home=str(tmp_path))


DOCKERFILE = UNIT.parents[1] / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_runs_the_pyz_as_a_non_root_user_with_the_database_on_a_volume() -> None:
    steps = instructions()
    kinds = [k for k, _ in steps]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", dict(steps)["FROM"])  # official, slim
    assert kinds.count("FROM") == 1 and kinds[0] == "FROM"
    copied = [a for k, a in steps if k in ("COPY", "ADD")]
    assert copied == ["redpipe.pyz /usr/local/bin/redpipe"]  # only the built file goes in
    user = [a for k, a in steps if k == "USER"]
    assert len(user) == 1 and user[0].split(":")[0] not in ("0", "root")
    after_user = kinds[kinds.index("USER") :]
    assert "RUN" in after_user and "COPY" not in after_user  # smoke-run as that user
    assert dict(steps)["VOLUME"] in ("/data", '["/data"]')
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["python3", "/usr/local/bin/redpipe"]
    assert json.loads(dict(steps)["CMD"])[0].startswith("/data/")
    ignore = (DOCKERFILE.parent / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignore == ["*", "!redpipe.pyz"]  # no credentials or databases in the context


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not Path("/usr/bin/python3").exists(),
    reason="needs root, setpriv and a system python3 to act as the image's user",
)
def test_the_pyz_runs_as_the_images_user_does(pyz: Path) -> None:
    # No Docker engine runs here: this is the image's run step by step. A user that owns
    # nothing but its home and /data, a python3 outside any venv, the entrypoint's command.
    root = Path(tempfile.mkdtemp(prefix="redpipe-image-"))
    try:
        root.chmod(0o755)
        home, data = root / "home", root / "data"
        for path in (home, data):
            path.mkdir()
            os.chown(path, 10001, 10001)
        image_pyz = root / "redpipe"
        shutil.copy(pyz, image_pyz)
        image_pyz.chmod(0o755)
        as_user = ["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups",
                   "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "/usr/bin/python3",
                   str(image_pyz)]  # fmt: skip
        smoke = subprocess.run([*as_user, "--version"], capture_output=True, text=True,
                               timeout=60, check=False)  # fmt: skip
        assert smoke.returncode == 0 and "redpipe" in smoke.stdout, smoke.stderr
        assert any((home / ".cache" / "redpipe").iterdir())  # compiled at "build" time
        with FakeReddit() as fake:
            fake.add_posts(20)
            run = subprocess.run(
                [*as_user[:-2], "REDPIPE_CLIENT_ID=test-client",
                 "REDPIPE_CLIENT_SECRET=test-secret", *as_user[-2:], str(data / "posts.sqlite"),
                 "--base-url", fake.url, "--auth-url", fake.url, "--max-records", "20"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert query(data / "posts.sqlite", "SELECT count(*) FROM posts") == [(20,)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
