"""Where a PostgreSQL password comes from, as libpq looks: PGPASSWORD, then systemd's
credential `database-password`, then the password file (PGPASSFILE or ~/.pgpass)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping

from ...errors import UsageError

CREDENTIAL = "database-password"  # the name LoadCredential= gives it in $CREDENTIALS_DIRECTORY
# The host, port, database and user names a password file line may match.
Wanted = tuple[set[str], set[str], set[str], set[str]]


def find_password(
    environ: Mapping[str, str], home: str, wanted: Wanted
) -> tuple[str | None, tuple[str, ...]]:
    """The password and any notes: PGPASSWORD, then systemd's credential, then the file."""
    if environ.get("PGPASSWORD"):
        return environ["PGPASSWORD"], ()
    if environ.get("CREDENTIALS_DIRECTORY"):
        secret = _credential(os.path.join(environ["CREDENTIALS_DIRECTORY"], CREDENTIAL))
        if secret:
            return secret, ()
    return _from_passfile(environ.get("PGPASSFILE") or os.path.join(home, ".pgpass"), wanted)


def _credential(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read the credential {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the credential {path} is not UTF-8 text") from None
    # `echo secret > file` and systemd-creds both leave a newline that is no part of it.
    return re.sub(r"\r?\n\Z", "", text)


def _from_passfile(path: str, wanted: Wanted) -> tuple[str | None, tuple[str, ...]]:
    """The password of the file's first line matching host, port, database and user."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None, ()  # no file is the usual case, and libpq's too
    if not stat.S_ISREG(mode):
        return None, (f"{path} is not a plain file; ignored",)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None, (f"{path} is accessible by others; ignored (chmod 0600 it)",)
    try:
        with open(path, encoding="utf-8", newline="") as file:
            lines = file.read().split("\n")
    except OSError as exc:
        return None, (f"cannot read {path} ({exc.strerror}); ignored",)
    except UnicodeDecodeError:
        return None, (f"{path} is not UTF-8 text; ignored",)
    for line in lines:
        fields = [] if line.startswith("#") else _fields(line.rstrip("\r"))
        if len(fields) >= 5 and all(
            raw == "*" or value in want for (raw, value), want in zip(fields, wanted)
        ):
            return fields[4][1] or None, ()
    return None, ()


def _fields(line: str) -> list[tuple[str, str]]:
    """A password file line split at unescaped colons: each field as written (a bare `*` is
    a wildcard, `\\*` is not) and unescaped."""
    fields: list[tuple[str, str]] = []
    raw = value = ""
    chars = iter(line)
    for char in chars:
        if char == ":":
            fields.append((raw, value))
            raw = value = ""
        elif char == "\\":
            escaped = next(chars, char)  # a trailing backslash stays, as in libpq
            raw, value = raw + char + escaped, value + escaped
        else:
            raw, value = raw + char, value + char
    fields.append((raw, value))
    return fields
