"""Each command wired to the world: its console, its sink, its Reddit client, the signals,
and what the user reads at the end. The commands themselves never print."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from ..errors import EXIT_OK, OutputClosed, RedpipeError
from .config import Api, RefreshConfig, ReplayConfig, StreamConfig
from .console import Console, log
from .report import DumpProgress, Reporter, Stats
from .signals import Shutdown, StopRequested

if TYPE_CHECKING:  # pragma: no cover
    from ..commands.context import Context
    from ..commands.refresh import Counts as RefreshCounts
    from ..commands.replay import Counts as ReplayCounts
    from ..sinks.base import Sink
    from ..sources.reddit import RedditClient

# Problems and progress are reported this often when stderr is not a terminal.
LOG_PERIOD = 60.0


def _context(shutdown: Shutdown) -> Context:
    from ..commands.context import Context

    return Context(critical=shutdown.critical)


def _client(api: Api) -> RedditClient:
    from ..sources.reddit import open_client

    return open_client(
        base_url=api.base_url,
        auth_url=api.auth_url,
        user_agent=api.user_agent,
        credentials=api.credentials,
        timeout=api.timeout,
        clock=time.monotonic,
    )


def _close(shutdown: Shutdown, client: RedditClient | None, sink: Sink | None) -> None:
    """From here on a signal is only noted: the connection and the database close."""
    shutdown.finishing()
    if client is not None:
        client.close()
    if sink is not None:
        sink.close()


def _start(sink: Sink, config: StreamConfig) -> str:
    """The line a stream starts with: what it follows, and where it goes."""
    what = f"new {' and '.join(t.name for t in config.tables)} of r/{config.subreddits}"
    if not sink.durable:
        return f"writing {what} to {sink.where}, one JSON line each"
    held = ", ".join(f"{sink.count(t.name):,} {t.name}" for t in config.tables)
    return f"archiving {what} into {sink.where} ({held} stored already)"


def stream(config: StreamConfig, stderr: TextIO, shutdown: Shutdown) -> int:
    from ..commands.stream import stream as follow
    from ..runtime.heap import return_large_blocks
    from ..sinks import open_sink

    return_large_blocks()
    clock = time.monotonic
    console = Console(stderr, config.verbosity, clock)
    stats = Stats(started=clock())
    period = LOG_PERIOD if console.live is None and not console.quiet else None
    reporter = Reporter(stats, log, clock, live=console.live, period=period)
    sink = client = None
    try:
        sink = open_sink(config.database, config.tables, stdout=sys.stdout.buffer)
        client = _client(config.api)
        log.info("%s", _start(sink, config))
        follow(
            sink,
            client,
            config.tables,
            subreddits=config.subreddits,
            interval=config.interval,
            max_records=config.max_records,
            context=_context(shutdown),
            on_batch=reporter.batch,
            on_problem=reporter.problem,
        )
        status = EXIT_OK
    except (StopRequested, OutputClosed):
        status = EXIT_OK
    except RedpipeError as exc:
        reporter.close()
        log.error("%s", exc)
        status = exc.exit_code
    finally:
        _close(shutdown, client, sink)
    reporter.close()
    if not console.quiet and sink is not None:
        stderr.write(f"redpipe: stopped{shutdown.why}: {stats.summary(clock())}\n")
    return status


def _stopped(command: str, exc: BaseException, console: Console) -> int:
    """The exit status of a replay or refresh that ended early, said in one line."""
    console.clear()
    if isinstance(exc, RedpipeError):
        console.say(str(exc), "error: ")
        return exc.exit_code
    console.say(f"{command} stopped; the same command resumes it")
    return EXIT_OK


class _ReplayReport:
    """A replay's lines: its live progress per dump, warnings, one summary per dump."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: dict[str, DumpProgress] = {}

    def progress(self, name: str, done: int, total: int, lines: int) -> None:
        if name not in self._progress:
            self._progress[name] = DumpProgress(self._console.live, name, time.monotonic)
        self._progress[name](done, total, lines)

    def warn(self, text: str) -> None:
        self._console.say(text, "warning: ")

    def finished(self, name: str, counts: ReplayCounts | None) -> None:
        self._console.clear()
        if counts is None:
            self._console.say(f"{name}: replayed to its end before; skipped")
        else:
            self._console.say(counts.line(name))


def replay(config: ReplayConfig, stderr: TextIO, shutdown: Shutdown) -> int:
    from ..commands.replay import replay as load
    from ..sinks import open_archive

    console = Console(stderr, config.verbosity, time.monotonic, min_gap=0.5)
    sink = None
    try:
        sink = open_archive(config.database, command="replay")
        # The comments table is made only when a dump holds comments.
        sink.prepare(config.tables, lazy=("comments",))
        load(sink, config.dumps, config.tables, _context(shutdown), _ReplayReport(console))
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("replay", exc, console)
    finally:
        _close(shutdown, None, sink)


def refresh(config: RefreshConfig, stderr: TextIO, shutdown: Shutdown) -> int:
    from ..commands.refresh import refresh as revisit
    from ..sinks import open_archive

    clock = time.monotonic
    console = Console(stderr, config.verbosity, clock)
    reporter = Reporter(Stats(started=clock()), log, clock, live=None, period=None)

    def progress(name: str, counts: RefreshCounts) -> None:
        if console.live is not None:
            console.live.show(f"refresh {name}: {counts.checked:,} of {counts.due:,} checked")

    def finished(name: str, counts: RefreshCounts) -> None:
        console.clear()
        console.say(counts.line(name))

    sink = client = None
    try:
        sink = open_archive(config.database, command="refresh", create=False)
        client = _client(config.api)
        revisit(
            sink,
            client,
            older_than=config.older_than,
            purge=config.purge_deleted,
            context=_context(shutdown),
            on_problem=reporter.problem,
            progress=progress,
            finished=finished,
        )
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("refresh", exc, console)
    finally:
        _close(shutdown, client, sink)
