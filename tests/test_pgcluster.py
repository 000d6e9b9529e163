"""The test suite's PostgreSQL server (tests/pgcluster.py) is what the tests of the
PostgreSQL sink rely on: TLS they can verify, passwords it checks, data kept over a
restart, a server that is not root, and nothing left behind."""

from __future__ import annotations

import contextlib
import getpass
import os
import ssl
import subprocess
from pathlib import Path

import pg8000.native
import pytest

from tests.pgcluster import BIN, Cluster, alive


def ssl_of_this_session(conn: pg8000.native.Connection) -> list[list[object]]:
    return conn.run("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_verify_full_with_root_cert(pg_cluster: Cluster, host: str) -> None:
    context = ssl.create_default_context(cafile=str(pg_cluster.root_cert))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    conn = pg8000.native.Connection(
        pg_cluster.admin,
        host=host,  # pg8000 checks the certificate against this name: both are in its SAN
        port=pg_cluster.port,
        database="postgres",
        password=pg_cluster.password,
        ssl_context=context,
    )
    try:
        [[on, version]] = ssl_of_this_session(conn)
    finally:
        conn.close()
    assert on is True and version == "TLSv1.3"


def test_tls_against_other_cas_is_refused(pg_cluster: Cluster) -> None:
    # The system's CAs do not know this cluster's: verification really happens.
    with pytest.raises(ssl.SSLCertVerificationError):
        pg8000.native.Connection(
            pg_cluster.admin,
            host=pg_cluster.host,
            port=pg_cluster.port,
            password=pg_cluster.password,
            ssl_context=ssl.create_default_context(),
        )


def test_plain_tcp_is_allowed_too(pg_cluster: Cluster) -> None:
    with pg_cluster.connect(tls=False) as conn:
        assert ssl_of_this_session(conn) == [[False, None]]
    with pg_cluster.connect() as conn:  # the default: verify-full
        assert ssl_of_this_session(conn) == [[True, "TLSv1.3"]]


@pytest.mark.parametrize("tls", [True, False])
def test_a_wrong_password_is_refused(pg_cluster: Cluster, tls: bool) -> None:
    with pytest.raises(pg8000.native.DatabaseError) as refused:
        pg_cluster.connect(password=pg_cluster.password + "x", tls=tls)
    assert refused.value.args[0]["C"] == "28P01", refused.value.args  # invalid_password


def test_a_role_logs_in_to_its_own_database(pg_cluster: Cluster) -> None:
    pg_cluster.create_role("pgcluster_app", "s3cret 'quoted'")
    name = pg_cluster.create_database(owner="pgcluster_app")
    try:
        with pg_cluster.connect(name, "pgcluster_app", "s3cret 'quoted'") as conn:
            conn.run("CREATE TABLE t (x int)")
            assert conn.run("SELECT current_user, current_database()") == [["pgcluster_app", name]]
        with pytest.raises(pg8000.native.DatabaseError) as refused:
            pg_cluster.connect(name, "pgcluster_app", "s3cret")
        assert refused.value.args[0]["C"] == "28P01"
    finally:
        pg_cluster.drop_database(name)
        with pg_cluster.connect() as conn:
            conn.run("DROP ROLE pgcluster_app")


def test_pg_database_is_fresh_and_empty(pg_cluster: Cluster, pg_database: str) -> None:
    with pg_cluster.connect(pg_database) as conn:
        assert conn.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [[0]]
    with pg_cluster.connect() as conn:
        assert conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=pg_database) == [[1]]


def test_url_and_env_serve_libpq_with_verify_full(pg_cluster: Cluster, pg_database: str) -> None:
    url = pg_cluster.url(pg_database)
    assert url == f"postgresql://redpipe_admin@127.0.0.1:{pg_cluster.port}/{pg_database}"
    assert pg_cluster.password not in url
    assert pg_cluster.env() == {
        "PGPASSWORD": pg_cluster.password,
        "PGSSLROOTCERT": str(pg_cluster.root_cert),
    }
    sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    env = {"PATH": os.environ["PATH"], **pg_cluster.env()}
    psql = [str(BIN / "psql"), "-XAtc", sql, f"{url}?sslmode=verify-full"]
    done = subprocess.run(psql, env=env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "t\n", "")
    env = {"PATH": os.environ["PATH"], **pg_cluster.env(password="wrong")}
    done = subprocess.run(psql, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "password authentication failed" in done.stderr


def ps_user(pid: int) -> str:
    return subprocess.run(
        ["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True, check=True
    ).stdout.strip()


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def test_the_server_does_not_run_as_root(pg_cluster: Cluster) -> None:
    pid = int((pg_cluster.data / "postmaster.pid").read_text().splitlines()[0])
    assert pid == pg_cluster.pid
    expected = "nobody" if os.geteuid() == 0 else getpass.getuser()
    backends = children(pid)
    assert backends  # checkpointer, walwriter, ...
    assert {ps_user(p) for p in [pid, *backends]} == {expected}
    assert os.stat(pg_cluster.data).st_uid != 0 or os.geteuid() != 0


def test_restart_keeps_the_port_and_the_data(private_cluster: Cluster) -> None:
    name = private_cluster.create_database()
    with private_cluster.connect(name) as conn:
        conn.run("CREATE TABLE kept (x int)")
        conn.run("INSERT INTO kept VALUES (1), (2)")
    port, pid = private_cluster.port, private_cluster.pid
    private_cluster.restart()
    assert private_cluster.port == port
    assert private_cluster.pid not in (None, pid)
    assert pid is not None and not alive(pid)
    with private_cluster.connect(name) as conn:
        assert conn.run("SELECT x FROM kept ORDER BY x") == [[1], [2]]


def test_stop_refuses_connections_and_start_comes_back(private_cluster: Cluster) -> None:
    port = private_cluster.port
    private_cluster.stop("immediate")
    assert private_cluster.pid is None
    with pytest.raises(pg8000.native.InterfaceError):
        private_cluster.connect()
    private_cluster.start()
    assert private_cluster.port == port  # the same port while it is free
    with private_cluster.connect() as conn:
        assert conn.run("SELECT 1") == [[1]]


def test_close_leaves_nothing_behind(private_cluster: Cluster) -> None:
    pid = private_cluster.pid
    assert pid is not None
    processes = [pid, *children(pid)]
    conn = private_cluster.connect()  # an open session does not keep it alive
    private_cluster.close()
    with contextlib.suppress(pg8000.native.InterfaceError, OSError):
        conn.close()  # its Terminate may or may not reach a closed socket
    assert [p for p in processes if alive(p)] == []
    assert not Path(private_cluster.base).exists()
    private_cluster.close()  # idempotent
