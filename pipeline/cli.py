"""redpipe: stream new Reddit posts (and comments) into a SQLite database, exactly once, forever.

Usage:
  redpipe.pyz <database> [options]
  redpipe.pyz replay <database> <dump>... [options]
  redpipe.pyz refresh <database> [options]
  redpipe.pyz (-h | --help | --version)

Arguments:
  <database>          The SQLite file to create or continue. - writes each
                      new item as one JSON line to standard output instead.
  replay              Load NDJSON dumps (Pushshift RS_/RC_ files, Arctic Shift
                      exports) into <database>, skipping items already there;
                      run it again to resume a stopped replay. Of the options
                      it takes --fields, --comment-fields, --raw and -q.
  <dump>              A dump file: plain, .gz, .bz2, .xz, or .zst (Python
                      3.14+, or the zstandard package).
  refresh             Fetch stored posts and comments again once they are
                      older than --older-than, 100 a request: update scores
                      and comment counts, mark what was deleted or removed.
                      Takes --older-than, --purge-deleted and the request
                      options (--base-url to -q).

Options:
  --subreddit NAMES   Subreddits to follow, joined with + [default: all].
  --comments          Also stream their new comments into a comments table.
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
  --older-than AGE    refresh: items created, and last checked, longer ago
                      than AGE, in s, m, h or d [default: 36h].
  --purge-deleted     refresh: set to NULL the text and author of every item
                      its author deleted, as Reddit's terms require.
  --base-url URL      API root. Default: https://oauth.reddit.com with
                      credentials, https://www.reddit.com without them.
  --auth-url URL      Where OAuth tokens come from
                      [default: https://www.reddit.com].
  --user-agent UA     User-Agent sent with every request
                      (default: <platform>:redpipe:v<version> (SQLite archiver)).
  --timeout SECONDS   Give up on a request that has not answered for this
                      long, and retry it [default: 20].
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
                      and client-secret, used when the variables are unset.
  XDG_CACHE_HOME, CACHE_DIRECTORY
                      Where later starts find a compiled copy of this file
                      (default: ~/.cache/redpipe).
  REDPIPE_NO_CACHE    Set to anything: keep no compiled copy.

Exit status: 0 done or stopped by SIGINT/SIGTERM, 1 unexpected failure, 2 usage,
3 database or output unusable, 4 credentials needed or refused, 5 Reddit refused
the listing. A replay exits 2 for a dump it cannot open or read to its end. Any
command exits 2 when its fields would pour another field into an existing column.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any, TextIO

from . import __version__
from .errors import EXIT_OK, EXIT_USAGE, DatabaseError, OutputClosed, RedpipeError

log = logging.getLogger("pipeline")

# Problems and progress are reported this often when stderr is not a terminal.
LOG_PERIOD = 60.0
# A TCP connect that takes longer than this is not going to succeed.
CONNECT_TIMEOUT = 10.0
# What docopt gives for options nobody passed, and which options each command takes.
DEFAULTS: dict[str, Any] = {
    "--subreddit": "all",
    "--comments": False,
    "--interval": "1",
    "--max-records": None,
    "--fields": None,
    "--comment-fields": None,
    "--raw": False,
    "--older-than": "36h",
    "--purge-deleted": False,
    "--base-url": None,
    "--auth-url": "https://www.reddit.com",
    "--user-agent": None,
    "--timeout": "20",
    "--verbose": False,
    "--quiet": False,
    "--help": False,
    "--version": False,
}
_REQUESTS = ("--base-url", "--auth-url", "--user-agent", "--timeout", "--verbose", "--quiet")
TAKES = {
    "replay": {"--fields", "--comment-fields", "--raw", "--quiet"},
    "refresh": {"--older-than", "--purge-deleted", *_REQUESTS},
    "": set(DEFAULTS) - {"--older-than", "--purge-deleted"},
}


class StopRequested(BaseException):
    """Raised by the signal handler; a BaseException so no `except Exception` eats it."""


class Shutdown:
    """SIGINT/SIGTERM/SIGHUP stop the run at once, except inside a database write.

    Raising from the handler interrupts a hung request or a sleep immediately; inside
    `critical()` the stop waits for the commit so nothing fetched is torn down.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def finishing(self) -> None:
        """From here on signals are only noted: the wrap-up must run to its end."""
        self._depth += 1

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return  # already stopping; a second Ctrl-C must not break the final commit
        self.signum = signum
        if self._depth == 0:
            raise StopRequested

    def critical(self) -> Shutdown:
        return self

    def __enter__(self) -> Shutdown:
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self.signum is not None and exc_type is None:
            raise StopRequested


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "redpipe: " if record.levelno < logging.WARNING else "redpipe: warning: "
        if record.levelno >= logging.ERROR:
            prefix = "redpipe: error: "
        return prefix + record.getMessage()


def _parse(argv: Sequence[str] | None) -> Any:
    from docopt import DocoptExit, docopt

    try:
        args = None if argv is None else list(argv)
        return docopt(__doc__, argv=args, version=f"redpipe {__version__}")
    except DocoptExit as exc:
        # docopt prints nothing itself; the usage text goes to stderr, exit status 2.
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(EXIT_USAGE) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run redpipe; returns the exit status."""
    args = _parse(argv)
    stderr = sys.stderr
    command = "replay" if args["replay"] else "refresh" if args["refresh"] else ""
    takes = TAKES[command]
    stray = [k for k, v in args.items() if k.startswith("--") and k not in takes
             and v != DEFAULTS.get(k)]  # fmt: skip
    if stray:
        what = f"{command} takes no" if command else "only refresh takes"
        stderr.write(f"redpipe: error: {what} {stray[0]}\n")
        return EXIT_USAGE
    shutdown = Shutdown()
    shutdown.install()
    try:
        return _command(command, args, stderr, shutdown)
    except StopRequested:  # stopped before the command had anything to wrap up
        return EXIT_OK
    finally:
        shutdown.restore()


def _command(command: str, args: Any, stderr: TextIO, shutdown: Shutdown) -> int:
    from .config import from_args, tables

    try:
        if command == "replay":
            posts, comments = tables(args)
            return _replay(args["<database>"], args["<dump>"], (posts, comments),
                           args["--quiet"], stderr, shutdown)  # fmt: skip
        config = from_args(args, os.environ)
    except RedpipeError as exc:
        usage = __doc__.split("\n\n")[1]
        stderr.write(f"redpipe: error: {exc}\n" + ("" if command else f"{usage}\n"))
        return exc.exit_code
    if command == "refresh":
        return _refresh(config, stderr, shutdown)
    return _run(config, stderr, shutdown)


def _logging(verbosity: int, stderr: TextIO, live: Any) -> None:
    from .progress import ConsoleHandler

    handler = ConsoleHandler(stderr, live)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel({-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[verbosity])


def _client(config: Any, clock: Any) -> Any:
    from .reddit import RedditClient
    from .transport import make_transport

    transport = make_transport(
        connect_timeout=min(CONNECT_TIMEOUT, config.timeout), read_timeout=config.timeout
    )
    client = RedditClient(
        transport,
        base_url=config.base_url,
        auth_url=config.auth_url,
        user_agent=config.user_agent,
        credentials=config.credentials,
        clock=clock,
    )
    return transport, client


def _run(config: Any, stderr: TextIO, shutdown: Shutdown) -> int:
    from .config import Config
    from .heap import return_large_blocks
    from .pacing import Backoff, Budget, PollSchedule
    from .progress import LiveLine, Reporter, Stats
    from .run import Sink, pump
    from .store import Store
    from .stream import Listing, interleave

    assert isinstance(config, Config)
    return_large_blocks()
    clock = time.monotonic
    live = LiveLine(stderr, clock) if config.verbosity >= 0 and stderr.isatty() else None
    _logging(config.verbosity, stderr, live)

    stats = Stats(started=clock())
    reporter = Reporter(
        stats,
        log,
        clock,
        live=live,
        period=LOG_PERIOD if config.verbosity >= 0 and live is None else None,
    )
    tables = [config.posts] + ([config.comments] if config.stream_comments else [])
    paths = {"posts": config.listing_path, "comments": config.comments_path}
    store: Sink | None = None
    transport = None
    try:
        if config.database == "-":
            from .ndjson import JsonLines

            store = JsonLines(sys.stdout.buffer, tables)
        else:
            store = Store.open(config.database, tables)
        transport, client = _client(config, clock)
        what = " and ".join(t.name for t in tables)
        if config.database == "-":
            log.info("writing new %s of r/%s to standard output, one JSON line each",
                     what, config.subreddits)  # fmt: skip
        else:
            held = ", ".join(f"{store.count(table=t.name):,} {t.name}" for t in tables)
            log.info("archiving new %s of r/%s into %s (%s stored already)",
                     what, config.subreddits, config.database, held)  # fmt: skip
        budget = Budget(clock)  # one budget: every listing spends the same app's requests
        sink = store

        def follow(name: str) -> Listing:
            return Listing(
                lambda after: client.listing(paths[name], after=after),
                lambda names: sink.known(names, table=name),
                newest_stored=lambda: sink.newest(table=name),
                clock=clock,
                schedule=PollSchedule(min_interval=config.interval, max_interval=30.0),
                budget=budget,
                backoff=Backoff(),
                on_problem=reporter.problem,
                name=name,
            )

        listings = [follow(t.name) for t in tables]
        pump(
            ((listing.name, batch) for listing, batch in
             interleave(listings, clock=clock, sleep=time.sleep)),
            store,
            reporter,
            tables={t.name: t for t in tables},
            wall_clock=time.time,  # retrieved_utc is a date, not a monotonic reading
            max_records=config.max_records,
            critical=shutdown.critical,
        )  # fmt: skip
        status = EXIT_OK
    except (StopRequested, OutputClosed):
        status = EXIT_OK
    except RedpipeError as exc:
        reporter.close()
        log.error("%s", exc)
        status = exc.exit_code
    finally:
        _close(shutdown, transport, store)
    reporter.close()
    if config.verbosity >= 0 and store is not None:
        why = "" if shutdown.signum is None else f" (signal {signal.Signals(shutdown.signum).name})"
        stderr.write(f"redpipe: stopped{why}: {stats.summary(clock())}\n")
    return status


def _close(shutdown: Shutdown, transport: Any, store: Any) -> None:
    """From here on a signal is only noted: the connection and the database close."""
    shutdown.finishing()
    if transport is not None:
        transport.close()
    if store is not None:
        store.close()


def _say(stderr: TextIO, quiet: bool, live: Any) -> Any:
    """A function printing one `redpipe: ` line, above the live line if there is one."""

    def say(line: str, level: str = "") -> None:
        if quiet and not level:
            return
        if live is not None:
            live.above(f"redpipe: {level}{line}")
        else:
            stderr.write(f"redpipe: {level}{line}\n")

    return say


def _stopped(command: str, exc: BaseException, say: Any) -> int:
    """The exit status of a replay or refresh that ended early, said in one line."""
    if isinstance(exc, RedpipeError):
        say(str(exc), "error: ")
        return exc.exit_code
    say(f"{command} stopped; the same command resumes it")
    return EXIT_OK


def _replay(
    database: str,
    dumps: list[str],
    tables: Any,
    quiet: bool,
    stderr: TextIO,
    shutdown: Shutdown,
) -> int:
    from .progress import DumpProgress, LiveLine
    from .replay import replay_file
    from .store import Store

    live = LiveLine(stderr, time.monotonic, min_gap=0.5) if stderr.isatty() and not quiet else None
    say = _say(stderr, quiet, live)
    store = None
    try:
        # The comments table is made only when a dump holds comments.
        store = Store.open(database, tables, lazy=("comments",))
        for path in dumps:
            name = os.path.basename(path)
            try:
                counts = replay_file(path, store, tables, wall_clock=time.time,
                                     critical=shutdown.critical,
                                     progress=DumpProgress(live, name, time.monotonic),
                                     warn=lambda text: say(text, "warning: "))  # fmt: skip
            finally:
                if live is not None:
                    live.clear()
            if counts is None:
                say(f"{name}: replayed to its end before; skipped")
                continue
            listed = ", ".join(f"{n:,}" for n in counts.malformed)
            more = ", ..." if counts.malformed_count > len(counts.malformed) else ""
            say(
                f"{name}: {counts.lines:,} lines, {counts.stored:,} new posts, "
                f"{counts.comments:,} new comments, {counts.seen_again:,} already stored, "
                f"{counts.malformed_count:,} malformed"
                + (f" (lines {listed}{more})" if counts.malformed else "")
            )
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("replay", exc, say)
    finally:
        if store is not None:
            store.close()


def _refresh(config: Any, stderr: TextIO, shutdown: Shutdown) -> int:
    from .pacing import Backoff, Budget
    from .progress import LiveLine, Reporter, Stats
    from .refresh import Counts, refresh_table
    from .store import Store
    from .stream import fetch_retrying, slept

    clock = time.monotonic
    quiet = config.verbosity < 0
    live = LiveLine(stderr, clock) if not quiet and stderr.isatty() else None
    _logging(config.verbosity, stderr, live)
    say = _say(stderr, quiet, live)
    reporter = Reporter(Stats(started=clock()), log, clock, live=None, period=None)
    store = transport = None
    try:
        if not os.path.isfile(config.database):
            raise DatabaseError(f"{config.database}: no such database to refresh")
        # Each table as it is in the file: refresh adds no chosen fields of its own.
        store = Store.open(config.database, [config.posts, config.comments],
                           lazy=("posts", "comments"), as_found=True)  # fmt: skip
        transport, client = _client(config, clock)
        budget, backoff = Budget(clock), Backoff()

        def info(names: list[str]) -> Any:
            steps = fetch_retrying(lambda: client.info(names), budget=budget,
                                   backoff=backoff, on_problem=reporter.problem)  # fmt: skip
            return slept(steps, time.sleep)

        cutoff = time.time() - config.older_than
        for table in store.tables.values():
            if not store.count(table=table.name):
                continue  # never made, or empty: nothing to check

            def progress(counts: Counts, name: str = table.name) -> None:
                if live is not None:
                    live.show(f"refresh {name}: {counts.checked:,} of {counts.due:,} checked")

            try:
                counts = refresh_table(store, table, info, cutoff=cutoff, wall_clock=time.time,
                                       purge=config.purge_deleted,
                                       critical=shutdown.critical,
                                       progress=progress)  # fmt: skip
            finally:
                if live is not None:
                    live.clear()
            say(counts.line(table.name))
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("refresh", exc, say)
    finally:
        _close(shutdown, transport, store)
