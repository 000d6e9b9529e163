"""Arguments and environment, checked once at the edge and frozen, one config per command."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

from .. import __version__
from ..errors import CREDENTIALS_HINT, AuthError, UsageError
from ..transform.filters import EVERYTHING, Filter, chosen
from ..transform.tables import COMMENTS, POSTS, Table, choose

OAUTH_BASE = "https://oauth.reddit.com"
# Reddit's documented form is <platform>:<app id>:<version> (by /u/<user>); generic
# agents are throttled hard, so the default names the tool and its version.
DEFAULT_USER_AGENT = f"{sys.platform}:redpipe:v{__version__} (SQLite archiver)"
ENV_ID = "REDPIPE_CLIENT_ID"
ENV_SECRET = "REDPIPE_CLIENT_SECRET"
# systemd's LoadCredential= puts secrets in files under $CREDENTIALS_DIRECTORY, out of
# the environment (which the unit's other processes and core dumps can see).
CREDENTIAL_FILES = {ENV_ID: "client-id", ENV_SECRET: "client-secret"}
# Subreddit names are 2-21 of [A-Za-z0-9_] (3+ for new ones; old ones are shorter).
_SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Api:
    """How to reach Reddit, for the commands that do."""

    base_url: str
    auth_url: str
    user_agent: str
    timeout: float
    # Never shown: not in repr, never logged.
    credentials: tuple[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StreamConfig:
    database: str
    subreddits: str
    interval: float
    max_records: int | None
    verbosity: int  # -1 quiet, 0 normal, 1 verbose
    tables: tuple[Table, ...]  # posts, and comments with --comments
    api: Api
    refresh: Revisit | None = None  # with --refresh
    fts: bool = False  # make and keep the full-text index


@dataclass(frozen=True)
class Revisit:
    """Which stored items a refresh checks again, and whether it purges deleted ones."""

    older_than: float
    purge_deleted: bool


@dataclass(frozen=True)
class ReplayConfig:
    database: str
    dumps: tuple[str, ...]
    tables: tuple[Table, Table]  # posts, comments
    verbosity: int
    timeout: float = 20.0  # for a database server to answer
    fts: bool = False
    keep: Filter = EVERYTHING  # --subreddit, --author, --after, --before
    name: str | None = None  # --name: standard input's dump, to resume it by


@dataclass(frozen=True)
class RefreshConfig:
    database: str
    older_than: float
    purge_deleted: bool
    verbosity: int
    api: Api
    fts: bool = False


@dataclass(frozen=True)
class SearchConfig:
    database: str
    query: str
    subreddits: tuple[str, ...]  # lower case; empty for all
    comments: bool  # look in comments too
    limit: int
    json: bool
    timeout: float


Config = Union[StreamConfig, ReplayConfig, RefreshConfig, SearchConfig]


def from_args(args: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
    """The command's config from docopt's dict and the environment; UsageError if unusable."""
    verbosity = 1 if args["--verbose"] else -1 if args["--quiet"] else 0
    if args.get("replay"):
        return _replay(args, environ, verbosity)
    database = args["<database>"]
    if not database:
        raise UsageError("the database path is empty")
    server(database, environ)
    if database == "replay":
        raise UsageError("replay needs a database and at least one dump file")
    if database in ("refresh", "search"):
        raise UsageError(f"{database} needs a database")
    if args.get("search"):
        return _search(args, database)
    if args.get("refresh"):
        return RefreshConfig(
            database=database,
            older_than=age(args.get("--older-than") or "36h"),
            purge_deleted=bool(args.get("--purge-deleted")),
            verbosity=verbosity,
            api=api(args, environ),
            fts=bool(args.get("--fts")),
        )
    return _stream(args, environ, database, verbosity)


def _stream(
    args: Mapping[str, Any], environ: Mapping[str, str], database: str, verbosity: int
) -> StreamConfig:
    posts, comments = tables(args)
    max_records = args["--max-records"]
    revisit = None
    for option in ("--refresh", "--fts"):
        if args.get(option) and database == "-":
            raise UsageError(f"{option} needs a database file, not -")
    if args.get("--refresh"):
        revisit = Revisit(age(args.get("--older-than") or "36h"), bool(args.get("--purge-deleted")))
    return StreamConfig(
        database=database,
        subreddits=subreddits(args["--subreddit"]),
        interval=_positive(args["--interval"], "--interval", float),
        max_records=None if max_records is None else _positive(max_records, "--max-records", int),
        verbosity=verbosity,
        tables=(posts, comments) if args.get("--comments") else (posts,),
        api=api(args, environ),
        refresh=revisit,
        fts=bool(args.get("--fts")),
    )


def _replay(args: Mapping[str, Any], environ: Mapping[str, str], verbosity: int) -> ReplayConfig:
    database, dumps = args["<database>"], tuple(args["<dump>"])
    server(database, environ)
    timeout = _positive(args["--timeout"], "--timeout", float)
    from ..sources.dumps import standard_input

    name = standard_input(dumps, args["--name"])
    names = subreddits(args["--subreddit"])
    keep = chosen(names, args["--author"], args["--after"], args["--before"])
    fts = bool(args["--fts"])
    return ReplayConfig(database, dumps, tables(args), verbosity, timeout, fts, keep, name)


def _search(args: Mapping[str, Any], database: str) -> SearchConfig:
    if database == "-":
        raise UsageError("search needs a database file, not -")
    query = str(args["<query>"] or "")
    if not query.strip():
        raise UsageError("search needs something to find: the query is empty")
    names = subreddits(args["--subreddit"])
    return SearchConfig(
        database=database,
        query=query,
        subreddits=() if names.lower() == "all" else tuple(names.lower().split("+")),
        comments=bool(args.get("--comments")),
        limit=_positive(args["--limit"], "--limit", int),
        json=bool(args.get("--json")),
        timeout=_positive(args["--timeout"], "--timeout", float),
    )


def server(database: str, environ: Mapping[str, str]) -> None:
    """Refuse a PostgreSQL URL that is unusable as given (a password in it, say) before
    anything is started; the sink reads it again when it connects."""
    from ..sinks.postgres.target import is_url, parse

    if is_url(database):
        parse(database, environ)


def tables(args: Mapping[str, Any]) -> tuple[Table, Table]:
    """The posts and comments tables as --fields, --comment-fields and --raw shape them."""
    raw = bool(args.get("--raw"))
    return (
        choose(POSTS, args.get("--fields"), raw=raw, option="--fields"),
        choose(COMMENTS, args.get("--comment-fields"), raw=raw, option="--comment-fields"),
    )


def subreddits(value: str) -> str:
    names = value.strip()
    if not all(_SUBREDDIT.match(p) for p in names.split("+")):
        raise UsageError(
            f"--subreddit must be subreddit names joined with +, like python+rust, not {names!r}"
        )
    return names


def api(args: Mapping[str, Any], environ: Mapping[str, str]) -> Api:
    client_id = _credential(environ, ENV_ID)
    secret = _credential(environ, ENV_SECRET)
    if bool(client_id) != bool(secret):
        missing = ENV_SECRET if client_id else ENV_ID
        raise UsageError(f"{missing} is not set; set both {ENV_ID} and {ENV_SECRET}, or neither")
    credentials = (client_id, secret) if client_id else None
    user_agent = args["--user-agent"] or DEFAULT_USER_AGENT
    if len(user_agent.strip()) < 7 or any(ch in user_agent for ch in "\r\n"):
        raise UsageError("--user-agent must be a descriptive one-line string")
    config = Api(
        base_url=_url(args["--base-url"] or OAUTH_BASE, "--base-url"),
        auth_url=_url(args["--auth-url"], "--auth-url"),
        user_agent=user_agent.strip(),
        timeout=_positive(args["--timeout"], "--timeout", float),
        credentials=credentials,
    )
    if credentials is None and not args["--base-url"]:
        # Reddit has refused requests without OAuth since May 2026. Asking anyway would
        # learn it only from a 403, after the database was made, or never while the
        # network is down. A root the user names (a mirror) may serve without them.
        raise AuthError(f"Reddit's API needs credentials: {CREDENTIALS_HINT}")
    return config


def age(value: str, option: str = "--older-than") -> float:
    """'36h', '2d', '90m', '3600s' or '3600' as seconds."""
    found = _AGE.match(value.strip().lower())
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"{option} must be a time like 36h, 2d, 90m or 3600s, not {value!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise UsageError(f"{option} must be an http(s) URL like https://host[:port][/path]")
    return value.rstrip("/")


def _positive(value: str, option: str, kind: type) -> Any:
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        noun = "a whole number" if kind is int else "a number"
        raise UsageError(f"{option} must be {noun} above 0, not {value!r}")
    return number


def _credential(environ: Mapping[str, str], name: str) -> str:
    """The variable if set, else systemd's credential file of that name, if any."""
    value = environ.get(name, "").strip()
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if value or not directory:
        return value
    path = Path(directory, CREDENTIAL_FILES[name])
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the credential {path}: {exc}") from None
