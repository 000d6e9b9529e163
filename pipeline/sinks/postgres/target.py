"""Where a postgresql:// URL points, completed as libpq would: the PG* environment, the
password from PGPASSWORD, systemd's credentials or ~/.pgpass, and the TLS to try.

Pure: nothing here opens a connection or imports the driver. No message and no repr ever
holds a password, and URL text that might be one (a port, a stray key) is never echoed.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ...errors import UsageError
from .passwords import CREDENTIAL, find_password

if TYPE_CHECKING:  # ssl is imported only to connect: config reads URLs at every start
    import ssl

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_PARAMS = ("sslmode", "sslrootcert", "connect_timeout", "application_name", "host", "port",
           "user", "dbname")  # fmt: skip
_SCHEME = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

PASSWORD_IN_URL = (
    "the database password must not be in the URL (it would show in ps and in logs): "
    "set PGPASSWORD, put it in ~/.pgpass (or the file PGPASSFILE names), "
    f"or give it with systemd's LoadCredential= as {CREDENTIAL}"
)
# What a password file line must match: the host (or hosts), port, database and user.
SEVERAL_HOSTS = "several hosts or ports in the database URL are not supported: name one"


@dataclass(frozen=True)
class Target:
    """One PostgreSQL server, database and role, and how to authenticate and encrypt."""

    host: str  # a hostname or IP address, or (starting with "/") a Unix socket's directory
    port: int
    user: str
    database: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    connect_timeout: float | None = None
    application_name: str | None = None
    # One-line warnings for the caller to log, such as a password file ignored for its mode.
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def where(self) -> str:
        """The target for messages: postgresql://user@host:port/database, no password."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("/") else self.host
        return f"postgresql://{self.user}@{host}:{self.port}/{self.database}"

    def unix_socket(self) -> str | None:
        """The socket file's path when the host is a directory, else None."""
        return os.path.join(self.host, f".s.PGSQL.{self.port}") if self.host[:1] == "/" else None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS to use when TLS is tried; None for sslmode=disable."""
        if self.sslmode == "disable":
            return None
        verify = self.sslmode.startswith("verify-")
        cafile = self.sslrootcert
        if cafile is None and verify:
            raise UsageError(
                f"sslmode={self.sslmode} needs the server's root certificate: set PGSSLROOTCERT "
                "(or sslrootcert= in the URL) to its file, or put it in ~/.postgresql/root.crt"
            )
        # libpq verifies the chain whenever a root certificate is at hand, in every mode: a
        # named file that is missing fails only the modes that promise verification.
        if cafile is not None and not verify and not os.path.isfile(cafile):
            cafile = None
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # libpq's ssl_min_protocol_version
        ctx.check_hostname = self.sslmode == "verify-full"
        if cafile is None:
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            ctx.load_verify_locations(cafile=cafile)
        except ssl.SSLError:
            raise UsageError(f"the root certificate {cafile} is not a PEM certificate") from None
        except OSError as exc:
            raise UsageError(f"cannot read the root certificate {cafile}: {exc.strerror}") from None
        return ctx

    def attempts(self) -> list[ssl.SSLContext | None]:
        """The TLS contexts to connect with, in order, None meaning without TLS (libpq's)."""
        # libpq ignores sslmode over a Unix socket: the kernel is the only party in between.
        if self.unix_socket() is not None or self.sslmode == "disable":
            return [None]
        ctx = self.ssl_context()
        return {"allow": [None, ctx], "prefer": [ctx, None]}.get(self.sslmode, [ctx])


def is_url(database: str) -> bool:
    """Whether `<database>` names a PostgreSQL server rather than a SQLite file."""
    return _SCHEME.match(database) is not None


def parse(url: str, environ: Mapping[str, str], *, home: str | None = None) -> Target:
    """The target `url` names, its gaps filled from `environ` and files under `home`."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise UsageError("not a PostgreSQL URL: expected postgresql://[user@][host][:port][/db]")
    given = _components(url[scheme.end() :])
    home = os.path.expanduser("~") if home is None else home

    def pick(key: str, variable: str) -> str | None:
        # An empty value counts as unset, so that `PGHOST= redpipe ...` means the default.
        return given.get(key) or environ.get(variable) or None

    host = pick("host", "PGHOST") or "localhost"
    if "," in host:
        raise UsageError(SEVERAL_HOSTS)
    port = _port(given.get("port"), environ.get("PGPORT") or None)
    user = pick("user", "PGUSER") or _os_user()
    database = pick("dbname", "PGDATABASE") or user
    sslmode = pick("sslmode", "PGSSLMODE") or "prefer"
    if sslmode not in SSLMODES:
        raise UsageError(f"unknown sslmode {sslmode!r}: use one of {', '.join(SSLMODES)}")
    root = os.path.join(home, ".postgresql", "root.crt")
    sslrootcert = pick("sslrootcert", "PGSSLROOTCERT") or (root if os.path.isfile(root) else None)
    # libpq's rule: the "localhost" entry also serves a Unix socket; so does one naming the
    # socket's directory, which is how its documentation says to single one out.
    hosts = {host, "localhost"} if host.startswith("/") else {host}
    password, notes = find_password(environ, home, (hosts, {str(port)}, {database}, {user}))
    timeout = _timeout(pick("connect_timeout", "PGCONNECT_TIMEOUT"))
    return Target(
        host=host, port=port, user=user, database=database, password=password, sslmode=sslmode,
        sslrootcert=sslrootcert, connect_timeout=timeout,
        application_name=pick("application_name", "PGAPPNAME"), notes=notes,
    )  # fmt: skip


def _components(rest: str) -> dict[str, str]:
    """The parts of a URL after its scheme by libpq's keywords, percent-decoded, the query's
    overriding the rest (as in libpq). Refuses a password before looking at anything else."""
    rest, _, query = rest.partition("?")
    netloc, _, dbname = rest.partition("/")
    # The last "@": a password holding an unescaped "@" then still counts as userinfo.
    userinfo, at, hostport = netloc.rpartition("@")
    # `user:pass/word@host` splits at the "/", leaving half the password in the database
    # name, which messages show: refuse that shape too (an "@" in a name can be %40).
    if ":" in userinfo or (not at and ":" in netloc and "@" in dbname):
        raise UsageError(PASSWORD_IN_URL)
    pairs = [_pair(item) for item in query.split("&") if item]
    if any(key == "password" for key, _ in pairs):
        raise UsageError(PASSWORD_IN_URL)
    for key, _ in pairs:
        if key not in _PARAMS:
            shown = repr(key) if re.fullmatch(r"\w{1,40}", key) else "in the query"
            raise UsageError(
                f"unknown database URL parameter {shown}: use only {', '.join(_PARAMS)}"
            )
    if "," in hostport:
        raise UsageError(SEVERAL_HOSTS)
    host, port = _host_port(hostport)
    parts = {"user": userinfo if at else "", "host": host, "port": port, "dbname": dbname}
    found = {key: _decode(value) for key, value in parts.items() if value}
    found.update(pairs)
    return found


def _pair(item: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals:
        raise UsageError("a database URL query parameter lacks its '=': write key=value")
    return _decode(key), _decode(value)


def _host_port(hostport: str) -> tuple[str, str]:
    if not hostport.startswith("["):
        host, _, port = hostport.partition(":")
        return host, port
    host, closed, after = hostport[1:].partition("]")
    if not host or not closed or (after and not after.startswith(":")):
        raise UsageError("malformed [IPv6 address] in the database URL")
    return host, after[1:]


def _decode(text: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise UsageError("malformed %-escape in the database URL: write % as %25")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise UsageError("the database URL's %-escapes are not UTF-8") from None


def _port(from_url: str | None, from_env: str | None) -> int:
    text = from_url or from_env
    if text is None:
        return 5432
    if "," in text:
        raise UsageError(SEVERAL_HOSTS)
    if re.fullmatch(r"[0-9]{1,5}", text) and 1 <= int(text) <= 65535:
        return int(text)
    # Only the environment's value is shown: the URL's may be half a mistyped password.
    shown = "the database URL's port" if from_url else f"PGPORT {text!r}"
    raise UsageError(f"{shown} is not a port number (1 to 65535)")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        raise UsageError(
            "cannot tell the OS user name: name the database user in the URL "
            "(postgresql://USER@host/db) or in PGUSER"
        ) from None


def _timeout(text: str | None) -> float | None:
    if text is None:
        return None
    if not re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", text):
        raise UsageError(f"connect_timeout {text!r} is not a number of seconds")
    return float(text) if float(text) > 0 else None  # libpq: zero or less waits for ever
