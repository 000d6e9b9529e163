"""redpipe: stream new Reddit posts (and comments) into SQLite or PostgreSQL, exactly once, forever.

Usage:
  redpipe.pyz <database> [options]
  redpipe.pyz replay <database> <dump>... [options]
  redpipe.pyz refresh <database> [options]
  redpipe.pyz search <database> <query> [options]
  redpipe.pyz (-h | --help | --version)

Arguments:
  <database>          The SQLite file to create or continue, or a PostgreSQL
                      database as postgresql://user@host[:port]/dbname, with
                      libpq's parameters if wanted (?sslmode=verify-full) but
                      never a password (see PGPASSWORD below). - writes each
                      new item as one JSON line to standard output instead.
  replay              Load NDJSON dumps (Pushshift RS_/RC_ files, Arctic Shift
                      exports) into <database>, skipping items already there;
                      run it again to resume a stopped replay. Of the options
                      it takes --fields, --comment-fields, --raw, --fts, the
                      filters --subreddit, --author, --after and --before,
                      and --name, --timeout and -q.
  <dump>              A dump file: plain, .gz, .bz2, .xz, or .zst (Python
                      3.14+, or the zstandard package); - reads one from
                      standard input (resumable only with --name).
  refresh             Fetch stored posts and comments again once they are
                      older than --older-than, 100 a request: update scores
                      and comment counts, mark what was deleted or removed.
                      Takes --older-than, --purge-deleted, --fts and the
                      request options (--base-url to -q). Refused beside a
                      stream of the same database: give the stream --refresh
                      instead.
  search              Print the stored posts (with --comments, comments too)
                      that match <query>, newest first, with their links.
                      Needs the index --fts made. Takes --subreddit,
                      --comments, --limit, --json and --timeout.
  <query>             What to find, in SQLite FTS5's query syntax: words
                      (all must match), "a phrase", pre*, OR, NOT, ( ).

Options:
  --subreddit NAMES   Subreddits to follow, joined with + [default: all];
                      replay: only items of these; search: only in these.
  --comments          Also stream their new comments into a comments table;
                      search: look in comments too.
  --interval SECONDS  Least time between two polls; polling adapts above it
                      to how fast items arrive [default: 1].
  --max-records N     Stop cleanly once N new records are stored
                      (default: run until stopped).
  --fields LIST       The posts table's columns: listing fields joined with
                      commas, each renamed with field:column if wanted, e.g.
                      title,score,author_fullname:author_id. fullname and
                      created_utc are always kept (default: see README).
  --comment-fields LIST
                      The same for the comments table.
  --raw               Also keep each item's whole JSON in a column named raw.
  --fts               Also keep a full-text index of titles, self texts and
                      comment bodies, for search. Once made, every later run
                      keeps it up to date without the flag.
  --author NAMES      replay: only items by these authors, joined with +.
  --after DATE        replay: only items created at or after DATE, given as
                      YYYY-MM-DD (UTC midnight) or epoch seconds.
  --before DATE       replay: only items created before DATE.
  --name NAME         replay -: the name standard input's dump is resumed
                      by (a later replay - --name NAME skips the lines done).
  --limit N           search: print at most N matches [default: 20].
  --json              search: one JSON object per match instead of text.
  --refresh           Also do what refresh does, in this process, with only
                      the requests the listings do not need.
  --older-than AGE    refresh, --refresh: items created, and last checked,
                      longer ago than AGE, in s, m, h or d [default: 36h].
  --purge-deleted     refresh, --refresh: set to NULL the text and author of
                      every item its author deleted, as Reddit's terms require.
  --base-url URL      API root (default: https://oauth.reddit.com). Without
                      credentials redpipe runs only with a root given here,
                      such as a mirror that serves without them.
  --auth-url URL      Where OAuth tokens come from
                      [default: https://www.reddit.com].
  --user-agent UA     User-Agent sent with every request
                      (default: <platform>:redpipe:v<version> (SQLite archiver)).
  --timeout SECONDS   Give up on a request that has not answered for this
                      long, and retry it. Also how long a database server may
                      take to accept a connection, unless the URL's
                      connect_timeout or PGCONNECT_TIMEOUT is set [default: 20].
  -v, --verbose       Also log every request.
  -q, --quiet         Only errors: no progress, no summary.
  -h, --help          Show this text.
  --version           Show the version.

Environment:
  REDPIPE_CLIENT_ID, REDPIPE_CLIENT_SECRET
                      A Reddit app's id and secret (app-only OAuth). Never
                      passed as arguments, which other users can see in ps.
  CREDENTIALS_DIRECTORY
                      Where systemd's LoadCredential= put the files client-id
                      and client-secret, used when the variables are unset,
                      and database-password, used when PGPASSWORD is unset.
  PGPASSWORD, PGPASSFILE
                      A postgresql:// database's password: PGPASSWORD, else
                      the credential database-password, else the file that
                      PGPASSFILE names (default: ~/.pgpass; ignored, with a
                      warning, unless only its owner may use it: chmod 0600).
  PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGSSLROOTCERT,
  PGCONNECT_TIMEOUT, PGAPPNAME
                      What the URL leaves out, as libpq reads them. sslmode
                      is prefer unless set; verify-ca and verify-full need
                      PGSSLROOTCERT or ~/.postgresql/root.crt.
  XDG_CACHE_HOME, CACHE_DIRECTORY
                      Where later starts find a compiled copy of this file
                      (default: ~/.cache/redpipe).
  REDPIPE_NO_CACHE    Set to anything: keep no compiled copy.

Exit status: 0 done or stopped by SIGINT/SIGTERM, 1 unexpected failure, 2 usage
(a password in the database URL too), 3 database or output unusable (a server
unreachable at start, a login, database or write refused, a refresh beside a
stream), 4 credentials needed or refused, 5 Reddit refused the listing. A replay
exits 2 for a dump it cannot open or read to its end. Any command exits 2 when its
fields would pour another field into an existing column.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .. import __version__
from ..errors import EXIT_OK, EXIT_USAGE, RedpipeError, UsageError
from .signals import Shutdown, StopRequested

# The options only refresh (and a stream with --refresh) takes, and those that every
# command talking to Reddit takes.
REFRESH_ONLY = frozenset(("--older-than", "--purge-deleted"))
REPLAY_ONLY = frozenset(("--author", "--after", "--before", "--name"))
SEARCH_ONLY = frozenset(("--limit", "--json"))
REQUESTS = frozenset(
    ("--base-url", "--auth-url", "--user-agent", "--timeout", "--verbose", "--quiet")
)
TAKES = {
    "replay": REPLAY_ONLY
    | frozenset(
        ("--fields", "--comment-fields", "--raw", "--fts", "--subreddit", "--timeout", "--quiet")
    ),
    "refresh": REFRESH_ONLY | REQUESTS | {"--fts"},
    "search": SEARCH_ONLY | frozenset(("--subreddit", "--comments", "--timeout")),
}


def _parse(argv: Sequence[str] | None) -> Any:
    from docopt import DocoptExit, docopt

    try:
        args = None if argv is None else list(argv)
        return docopt(__doc__, argv=args, version=f"redpipe {__version__}")
    except DocoptExit as exc:
        # docopt prints nothing itself; the usage text goes to stderr, exit status 2.
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(EXIT_USAGE) from None


def defaults() -> dict[str, Any]:
    """What docopt gives for each option nobody passed, read from the usage text."""
    from docopt import parse_options

    return {str(option.name): option.value for option in parse_options(__doc__)}


def _stray(args: dict[str, Any], command: str) -> str | None:
    """The first option given that `command` does not take."""
    given = defaults()
    stream = frozenset(given) - REPLAY_ONLY - SEARCH_ONLY
    stream -= frozenset() if args.get("--refresh") else REFRESH_ONLY
    takes = TAKES.get(command, stream)
    stray = [k for k, v in args.items() if k.startswith("--") and k not in takes and v != given[k]]
    return stray[0] if stray else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run redpipe; returns the exit status."""
    args = _parse(argv)
    command = next((c for c in ("replay", "refresh", "search") if args[c]), "")
    stray = _stray(args, command)
    if stray:
        what = f"{command} takes no"
        if not command:
            owners = ((REPLAY_ONLY, "replay"), (SEARCH_ONLY, "search"))
            what = next((f"only {o} takes" for opts, o in owners if stray in opts), "")
            what = what or "only refresh and --refresh take"
        sys.stderr.write(f"redpipe: error: {what} {stray}\n")
        return EXIT_USAGE
    shutdown = Shutdown()
    shutdown.install()
    try:
        return _command(command, args, sys.stderr, shutdown)
    except StopRequested:  # stopped before the command had anything to wrap up
        return EXIT_OK
    finally:
        shutdown.restore()


def _command(command: str, args: dict[str, Any], stderr: TextIO, shutdown: Shutdown) -> int:
    from . import launch
    from .config import RefreshConfig, ReplayConfig, StreamConfig, from_args

    try:
        config = from_args(args, os.environ)
    except RedpipeError as exc:
        # The usage text helps with a mistyped stream argument, not with missing credentials.
        url = "://" in str(args.get("<database>") or "")  # a URL's fault is not the usage's
        usage = (
            __doc__.split("\n\n")[1]
            if isinstance(exc, UsageError) and not command and not url
            else ""
        )
        stderr.write(f"redpipe: error: {exc}\n" + (f"{usage}\n" if usage else ""))
        return exc.exit_code
    if isinstance(config, StreamConfig):
        return launch.stream(config, stderr, shutdown)
    if isinstance(config, ReplayConfig):
        return launch.replay(config, stderr, shutdown)
    if isinstance(config, RefreshConfig):
        return launch.refresh(config, stderr, shutdown)
    from .found import search

    return search(config, sys.stdout, stderr)
