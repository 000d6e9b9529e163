"""A throwaway, real PostgreSQL 15 server for the tests: initdb in a fresh folder under /tmp,
a CA and a server certificate of its own (TLS on, verify-full works against `root_cert`),
SCRAM passwords for every connection, and no durability (fsync and friends off).

The server refuses to run as root, so when the tests are root everything server-side
(initdb, pg_ctl and so the postmaster) runs as `nobody`; the folder is chowned to it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pg8000.native
from pg8000.native import identifier, literal

BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
ADMIN = "redpipe_admin"
INSTALL = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql"
INSTALL_LOCK = Path("/tmp/redpipe-pg-install.lock")
# Where the clusters live: a folder the server's user can reach (pytest's are 0700 root's).
# tmpfs first when it has room: initdb there takes 0.4 s, against 0.5-1.5 s on /tmp (ext4,
# mounted with discard, here); Docker's default /dev/shm (64 MiB) has not, so /tmp.
TMP_DIRS = ("/dev/shm", "/tmp")
TMP_NEEDS = 1 << 30  # bytes free
TIMEOUT = 60  # seconds, for any one initdb, openssl or pg_ctl, and pg_ctl's own -t

HBA = """\
# TYPE    DATABASE  USER  ADDRESS       METHOD   (written by tests/pgcluster.py)
local     all       all                 scram-sha-256
hostssl   all       all   127.0.0.1/32  scram-sha-256
hostnossl all       all   127.0.0.1/32  scram-sha-256
"""


def server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as: `nobody` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def ensure_binaries() -> None:
    """PostgreSQL 15's server binaries, installed with apt-get once a machine if root and
    missing (a lock on a fixed path keeps xdist workers from all running apt at once)."""
    initdb = BIN / "initdb"
    if os.access(initdb, os.X_OK):
        return
    if os.geteuid() != 0:
        raise RuntimeError(
            f"PostgreSQL 15 is not installed ({initdb} is missing) and the tests do not run "
            f"as root, so they cannot install it: run `sudo {INSTALL}` (as .ci/run does)"
        )
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released on close
        if os.access(initdb, os.X_OK):  # another worker installed it while we waited
            return
        result = subprocess.run(
            INSTALL, shell=True, capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0 or not os.access(initdb, os.X_OK):
            raise RuntimeError(
                f"`{INSTALL}` exited {result.returncode} and {initdb} is "
                f"{'there' if initdb.exists() else 'still missing'}:\n"
                f"{result.stdout}{result.stderr}"
            )


def tmp_dir() -> str:
    """The first of TMP_DIRS that is a world-writable, sticky folder with TMP_NEEDS free."""
    for path in TMP_DIRS:
        with contextlib.suppress(OSError):
            mode, fs = os.stat(path).st_mode, os.statvfs(path)
            if mode & 0o1777 == 0o1777 and fs.f_bavail * fs.f_frsize >= TMP_NEEDS:
                return path
    return "/tmp"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may take
    it before the server binds it: start() retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the state, after "pid (comm)"


class Cluster:
    """One PostgreSQL server of its own: made (initdb, certificates) by the constructor,
    started by start(), removed entirely by close()."""

    def __init__(self) -> None:
        self.host: str = HOST
        self.port: int = 0  # chosen by start()
        self.admin: str = ADMIN
        self.password: str = secrets.token_urlsafe(24)
        self.base: Path = Path(tempfile.mkdtemp(dir=tmp_dir(), prefix="redpipe-pg-"))
        self.data: Path = self.base / "data"
        self.root_cert: Path = self.base / "root.crt"
        self.log: Path = self.data / "log"
        self._owner = server_user()
        self._context: ssl.SSLContext | None = None
        self._closed = False
        atexit.register(self.close)  # should a session end without its teardown
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    # -- making it ---------------------------------------------------------------------

    def _server(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server-side program as the server's user, in a clean environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", HOME=str(self.base))
        extra: dict[str, Any] = {}
        if self._owner is not None:
            uid, gid = self._owner
            extra = {"user": uid, "group": gid, "extra_groups": []}  # drop root's groups too
        result = subprocess.run(
            [str(a) for a in args],
            cwd=self.base,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 10,
            check=False,
            **extra,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, *self._owner)

    def _make(self) -> None:
        self.base.chmod(0o755)  # root.crt readable by anyone; data/ is 0700, server.key 0600
        self._chown(self.base)
        pwfile = self.base / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.password + "\n")
        self._chown(pwfile)
        try:
            self._server(
                BIN / "initdb",
                "-D",
                self.data,
                "-U",
                self.admin,
                f"--pwfile={pwfile}",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            pwfile.unlink()
        self._certificates()
        (self.data / "pg_hba.conf").write_text(HBA)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# tests/pgcluster.py\n"
                "ssl = on\n"
                f"ssl_cert_file = '{self.base / 'server.crt'}'\n"
                f"ssl_key_file = '{self.base / 'server.key'}'\n"
            )

    def _certificates(self) -> None:
        """A CA (root.crt) and a server certificate it signs, for localhost and 127.0.0.1;
        EC P-256 keys, which take milliseconds where RSA takes a good part of a second."""
        ca_key, key, cert = self.base / "ca.key", self.base / "server.key", self.base / "server.crt"
        common = ["openssl", "req", "-x509", "-new", "-nodes", "-days", "7", "-newkey", "ec"]
        common += ["-pkeyopt", "ec_paramgen_curve:prime256v1"]
        ca = ["-keyout", ca_key, "-out", self.root_cert, "-subj", "/CN=redpipe test CA"]
        ca += ["-addext", "basicConstraints=critical,CA:TRUE"]
        ca += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        server = ["-keyout", key, "-out", cert, "-subj", "/CN=localhost"]
        server += ["-CA", self.root_cert, "-CAkey", ca_key]
        server += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        server += ["-addext", "basicConstraints=critical,CA:FALSE"]
        server += ["-addext", "keyUsage=critical,digitalSignature,keyEncipherment"]
        server += ["-addext", "extendedKeyUsage=serverAuth"]
        for args in (ca, server):
            result = subprocess.run(
                [*common, *map(str, args)],
                cwd=self.base,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"openssl exited {result.returncode}:\n{result.stderr}")
        ca_key.unlink()  # nothing else is ever signed
        key.chmod(0o600)
        for path in (key, cert):
            self._chown(path)
        self.root_cert.chmod(0o644)

    # -- running it --------------------------------------------------------------------

    def _options(self) -> str:
        """The postgres command line pg_ctl passes (through /bin/sh: no spaces in paths)."""
        return (
            f"-k {self.data} -p {self.port} -c listen_addresses={self.host}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=100"
        )

    def _log_tail(self, offset: int = 0) -> str:
        try:
            with open(self.log, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return f"\n--- {self.log} ---\n{text[-4000:]}" if text else ""

    def _log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (postmaster.pid's first line), None when it is not running."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _pg_ctl(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._server(
            BIN / "pg_ctl", *args, "-D", self.data, "-w", "-t", str(TIMEOUT), check=check
        )

    def start(self) -> None:
        """Start the server: on the port it had, if any and still free, else a new one."""
        if self._closed:
            raise RuntimeError("this cluster is closed")
        if self.pid is not None:
            return
        for attempt in range(8):
            if not self.port or attempt:
                self.port = free_port()
            offset = self._log_size()
            result = self._pg_ctl("start", "-l", self.log, "-o", self._options(), check=False)
            if result.returncode == 0:
                return
            log = self._log_tail(offset)
            if "already in use" not in log:  # "could not bind IPv4 address ...: Address ..."
                raise RuntimeError(
                    f"pg_ctl start exited {result.returncode}:\n{result.stdout}{result.stderr}{log}"
                )
        raise RuntimeError(f"no free port for the server after 8 tries:{log}")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m mode (smart, fast or immediate), waiting until it has exited."""
        if self.pid is None:
            return
        self._pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        """pg_ctl restart -m fast, on the same port (no retry: the port is the point)."""
        self._pg_ctl("restart", "-m", "fast", "-l", self.log, "-o", self._options())

    def close(self) -> None:
        """Stop the server (fast, else immediate, else SIGKILL) and remove the whole folder.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            for mode in ("fast", "immediate"):
                with contextlib.suppress(Exception):
                    self.stop(mode)
                if self.pid is None:
                    break
            pid = self.pid
            if pid is not None:  # the backends notice the postmaster's death and exit
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- using it ----------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this cluster's CA and checks the host name:
        what libpq calls sslmode=verify-full."""
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(self.root_cert))
        return self._context

    def connect(
        self,
        database: str = "postgres",
        user: str | None = None,
        password: str | None = None,
        *,
        tls: bool = True,
    ) -> pg8000.native.Connection:
        """A pg8000 connection over TCP: TLS verified against root_cert (verify-full), or
        with tls=False plain TCP (the hostnossl line). The admin's password by default."""
        if password is None and user in (None, self.admin):
            password = self.password
        return pg8000.native.Connection(
            user or self.admin,
            host=self.host,
            port=self.port,
            database=database,
            password=password,
            ssl_context=self.ssl_context() if tls else False,
        )

    def create_database(self, name: str | None = None, *, owner: str | None = None) -> str:
        """A fresh database (a random name if None), owned by `owner` or the admin."""
        name = name or f"db_{secrets.token_hex(6)}"
        sql = f"CREATE DATABASE {identifier(name)}"
        if owner is not None:
            sql += f" OWNER {identifier(owner)}"
        with self.connect(tls=False) as conn:  # a TLS handshake would triple the cost
            conn.run(sql)
        return name

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS ... WITH (FORCE): its connections are terminated."""
        with self.connect(tls=False) as conn:  # a TLS handshake would triple the cost
            conn.run(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE)")

    def create_role(self, name: str, password: str, *, login: bool = True) -> None:
        """A role with a (SCRAM) password, able to log in unless login=False."""
        with self.connect(tls=False) as conn:  # a TLS handshake would triple the cost
            conn.run(
                f"CREATE ROLE {identifier(name)} {'LOGIN' if login else 'NOLOGIN'}"
                f" PASSWORD {literal(password)}"  # a utility statement takes no parameters
            )

    def url(self, database: str, user: str | None = None) -> str:
        """postgresql://USER@127.0.0.1:PORT/DATABASE: never with a password in it."""
        who = quote(user or self.admin, safe="")
        return f"postgresql://{who}@{self.host}:{self.port}/{quote(database, safe='')}"

    def env(self, password: str | None = None) -> dict[str, str]:
        """What a libpq client (or redpipe) needs besides url(): the password (the admin's
        by default) and the CA for sslmode=verify-full."""
        return {
            "PGPASSWORD": self.password if password is None else password,
            "PGSSLROOTCERT": str(self.root_cert),
        }


def start_cluster(kind: type[Cluster] = Cluster) -> Cluster:
    """A new cluster of `kind`, made and started (installing PostgreSQL 15 first if root and
    missing)."""
    ensure_binaries()
    cluster = kind()
    try:
        cluster.start()
    except BaseException:
        cluster.close()
        raise
    return cluster
