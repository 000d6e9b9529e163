"""redpipe: stream new Reddit posts into a SQLite database, exactly once, forever.

Usage:
  redpipe.pyz <database> [options]
  redpipe.pyz replay <database> <dump>... [options]
  redpipe.pyz (-h | --help | --version)

Arguments:
  <database>          The SQLite file to create or continue. - writes each
                      new post as one JSON line to standard output instead.
  replay              Load NDJSON dumps of posts (Pushshift RS_ files, Arctic
                      Shift exports) into <database>, skipping posts already
                      there; run it again to resume a stopped replay. Of the
                      options, it takes -q only.
  <dump>              A dump file: plain, .gz, .bz2, .xz, or .zst (Python
                      3.14+, or the zstandard package).

Options:
  --subreddit NAMES   Subreddits to follow, joined with + [default: all].
  --interval SECONDS  Least time between two polls; polling adapts above it
                      to how fast posts arrive [default: 1].
  --max-records N     Stop cleanly once N new records are stored
                      (default: run until stopped).
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
the listing. A replay exits 2 for a dump it cannot open or read to its end.
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
from .errors import EXIT_OK, EXIT_USAGE, OutputClosed, RedpipeError

log = logging.getLogger("pipeline")

# Problems and progress are reported this often when stderr is not a terminal.
LOG_PERIOD = 60.0
# A TCP connect that takes longer than this is not going to succeed.
CONNECT_TIMEOUT = 10.0
# What docopt gives for options nobody passed; a replay takes only --quiet besides.
REPLAY_DEFAULTS: dict[str, Any] = {
    "--subreddit": "all",
    "--interval": "1",
    "--timeout": "20",
    "--auth-url": "https://www.reddit.com",
    "--max-records": None,
    "--base-url": None,
    "--user-agent": None,
    "--verbose": False,
    "--help": False,
    "--version": False,
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
    shutdown = Shutdown()
    shutdown.install()
    if args["replay"]:
        given = [k for k, v in args.items() if k.startswith("--") and k != "--quiet"]
        stray = [k for k in given if args[k] != REPLAY_DEFAULTS.get(k)]
        if stray:
            shutdown.restore()
            stderr.write(f"redpipe: error: replay takes no {stray[0]}\n")
            return EXIT_USAGE
        try:
            return _replay(args["<database>"], args["<dump>"], args["--quiet"], stderr, shutdown)
        finally:
            shutdown.restore()
    try:
        from .config import from_args

        config = from_args(args, os.environ)
    except RedpipeError as exc:
        shutdown.restore()
        usage = __doc__.split("\n\n")[1]
        stderr.write(f"redpipe: error: {exc}\n{usage}\n")
        return exc.exit_code
    except StopRequested:
        shutdown.restore()
        return EXIT_OK
    try:
        return _run(config, stderr, shutdown)
    except StopRequested:  # stopped before the run had anything to wrap up
        return EXIT_OK
    finally:
        shutdown.restore()


def _run(config: Any, stderr: TextIO, shutdown: Shutdown) -> int:
    from .config import Config
    from .heap import return_large_blocks
    from .pacing import Backoff, Budget, PollSchedule
    from .progress import ConsoleHandler, LiveLine, Reporter, Stats
    from .reddit import RedditClient
    from .run import Sink, pump
    from .store import Store
    from .stream import posts
    from .transport import make_transport

    assert isinstance(config, Config)
    return_large_blocks()
    clock = time.monotonic
    live = LiveLine(stderr, clock) if config.verbosity >= 0 and stderr.isatty() else None
    handler = ConsoleHandler(stderr, live)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.propagate = False
    levels = {-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}
    log.setLevel(levels[config.verbosity])

    stats = Stats(started=clock())
    reporter = Reporter(
        stats,
        log,
        clock,
        live=live,
        period=LOG_PERIOD if config.verbosity >= 0 and live is None else None,
    )
    store: Sink | None = None
    transport = None
    try:
        if config.database == "-":
            from .ndjson import JsonLines

            store = JsonLines(sys.stdout.buffer)
        else:
            store = Store.open(config.database)
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
        if config.database == "-":
            log.info("writing new posts of r/%s to standard output, one JSON line each",
                     config.subreddits)  # fmt: skip
        else:
            log.info(
                "archiving new posts of r/%s into %s (%s stored already)",
                config.subreddits,
                config.database,
                f"{store.count():,}",
            )
        batches = posts(
            lambda after: client.listing(config.listing_path, after=after),
            store.known,
            newest_stored=store.newest,
            clock=clock,
            sleep=time.sleep,
            schedule=PollSchedule(min_interval=config.interval, max_interval=30.0),
            budget=Budget(clock),
            backoff=Backoff(),
            on_problem=reporter.problem,
        )
        pump(
            batches,
            store,
            reporter,
            wall_clock=time.time,  # retrieved_utc is a date, not a monotonic reading
            max_records=config.max_records,
            critical=shutdown.critical,
        )
        status = EXIT_OK
    except (StopRequested, OutputClosed):
        status = EXIT_OK
    except RedpipeError as exc:
        reporter.close()
        log.error("%s", exc)
        status = exc.exit_code
    finally:
        shutdown.finishing()
        if transport is not None:
            transport.close()
        if store is not None:
            store.close()
    reporter.close()
    if config.verbosity >= 0 and store is not None:
        why = "" if shutdown.signum is None else f" (signal {signal.Signals(shutdown.signum).name})"
        stderr.write(f"redpipe: stopped{why}: {stats.summary(clock())}\n")
    return status


def _replay(
    database: str, dumps: list[str], quiet: bool, stderr: TextIO, shutdown: Shutdown
) -> int:
    from .progress import DumpProgress, LiveLine
    from .replay import replay_file
    from .store import Store

    live = LiveLine(stderr, time.monotonic, min_gap=0.5) if stderr.isatty() and not quiet else None

    def say(line: str, level: str = "") -> None:
        if quiet and not level:
            return
        if live is not None:
            live.above(f"redpipe: {level}{line}")
        else:
            stderr.write(f"redpipe: {level}{line}\n")

    store = None
    try:
        store = Store.open(database)
        for path in dumps:
            name = os.path.basename(path)
            try:
                counts = replay_file(path, store, wall_clock=time.time,
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
                f"{counts.seen_again:,} already stored, "
                f"{counts.comments:,} comments skipped (not stored yet), "
                f"{counts.malformed_count:,} malformed"
                + (f" (lines {listed}{more})" if counts.malformed else "")
            )
        return EXIT_OK
    except StopRequested:
        say("replay stopped; the same command resumes it")
        return EXIT_OK
    except RedpipeError as exc:
        say(str(exc), "error: ")
        return exc.exit_code
    finally:
        if store is not None:
            store.close()
