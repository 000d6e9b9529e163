"""The built .pyz on PostgreSQL under every supported CPython: the driver it carries
connects over TLS with the server's certificate checked and SCRAM, and the stream,
--raw, replay and refresh store real types. The password comes each way a user may give
it: PGPASSWORD, ~/.pgpass, systemd's credential; never on the command line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SUPPORTED
from tests.fakereddit import FakeReddit
from tests.pgcluster import Cluster
from tests.pgproc import environment, query

pytestmark = pytest.mark.slow
VERSIONS = [v for v, _ in SUPPORTED]


def run(
    python: Path, pyz: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), str(pyz), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_stream_replay_and_refresh_on_postgresql(
    version: str,
    pyz: Path,
    empty_python: Callable[[str], Path],
    pg_cluster: Cluster,
    pg_database: str,
    tmp_path: Path,
) -> None:
    python = empty_python(version)
    url = pg_cluster.url(pg_database) + "?sslmode=verify-full"
    env = environment(pg_cluster, tmp_path)
    with FakeReddit() as server:
        server.add_posts(120)
        reddit = ["--base-url", server.url, "--auth-url", server.url]
        got = run(
            python, pyz, [url, *reddit, "--raw", "--max-records", "100", "-q"], env
        )  # one page
        assert got.returncode == 0, got.stderr
        dump = tmp_path / "RS_2024-01"
        dump.write_text("".join(
            json.dumps({"id": f"zz{i}", "name": f"t3_zz{i}", "created_utc": 1_700_000_000 + i,
                        "title": f"old {i}", "is_self": True, "score": i}) + "\n"
            for i in range(300)
        ))  # fmt: skip
        got = run(python, pyz, ["replay", url, str(dump), "--raw", "-q"], env)
        assert got.returncode == 0, got.stderr
        got = run(python, pyz, ["refresh", url, *reddit, "--older-than", "1s", "-q"], env)
        assert got.returncode == 0, got.stderr
    assert query(pg_cluster, pg_database, "SELECT count(*) FROM posts") == [[400]]
    (row,) = query(
        pg_cluster, pg_database,
        "SELECT is_self, score, created_utc, raw, refreshed_utc IS NOT NULL FROM posts "
        "WHERE fullname = 't3_zz7'",
    )  # fmt: skip
    assert row[:3] == [True, 7, 1_700_000_007.0] and row[3]["title"] == "old 7"
    ssl = query(pg_cluster, pg_database, "SHOW ssl")
    assert ssl == [["on"]]
    types = dict(query(
        pg_cluster, pg_database,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'posts'"
    ))  # fmt: skip
    assert types["is_self"] == "boolean" and types["score"] == "bigint"
    assert types["created_utc"] == "double precision" and types["raw"] == "jsonb"


@pytest.mark.parametrize("way", ["pgpass", "credential", "none"])
def test_the_password_from_a_file_and_never_from_the_command_line(
    way: str,
    pyz: Path,
    empty_python: Callable[[str], Path],
    pg_cluster: Cluster,
    pg_database: str,
    tmp_path: Path,
) -> None:
    python = empty_python(VERSIONS[0])
    env = environment(pg_cluster, tmp_path)
    password = env.pop("PGPASSWORD")
    if way == "none":
        pass
    elif way == "pgpass":
        passfile = tmp_path / ".pgpass"
        passfile.write_text(f"127.0.0.1:{pg_cluster.port}:*:{pg_cluster.admin}:{password}\n")
        passfile.chmod(0o600)
    else:
        (tmp_path / "creds").mkdir()
        (tmp_path / "creds" / "database-password").write_text(password + "\n")
        env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "creds")
    dump = tmp_path / "RS_x"
    dump.write_text(json.dumps({"name": "t3_a1", "created_utc": 1, "title": "t"}) + "\n")
    url = pg_cluster.url(pg_database) + "?sslmode=verify-full"
    if way == "none":  # nowhere: one line saying where to put it, no traceback
        got = run(python, pyz, ["replay", url, str(dump)], env)
        assert got.returncode == 3 and "Traceback" not in got.stderr
        assert got.stderr.count("\n") == 1 and "wants a password" in got.stderr
        return
    got = run(python, pyz, ["replay", url, str(dump)], env)
    assert got.returncode == 0, got.stderr
    assert password not in got.stderr
    assert query(pg_cluster, pg_database, "SELECT fullname FROM posts") == [["t3_a1"]]
    secret_url = url.replace(f"{pg_cluster.admin}@", f"{pg_cluster.admin}:{password}@")
    got = run(python, pyz, ["replay", secret_url, str(dump)], env)
    assert got.returncode == 2 and password not in got.stderr + got.stdout
    assert len(got.stderr.strip().splitlines()) == 1 and "PGPASSWORD" in got.stderr
