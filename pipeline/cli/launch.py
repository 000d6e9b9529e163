"""Each command wired to the world: its console, its sink, its Reddit client, the signals,
and what the user reads at the end. The commands themselves never print."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

from ..errors import EXIT_OK, DatabaseBusy, OutputClosed, RedpipeError
from . import standby
from .config import Api, RefreshConfig, ReplayConfig, StreamConfig
from .console import Console, log
from .report import DumpProgress, Reporter, Stats
from .signals import Shutdown, StopRequested

if TYPE_CHECKING:  # pragma: no cover
    from ..commands.context import Context
    from ..commands.refresh import Counts as RefreshCounts
    from ..commands.replay import Counts as ReplayCounts
    from ..sinks.base import Archive, Sink
    from ..sources.listing import Sleep
    from ..sources.pacing import Budget
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


def _sink(config: StreamConfig) -> tuple[Sink, Archive | None]:
    """The stream's sink, prepared and claimed, and the same as an archive for --refresh.
    A refresh of the same database running already is waited for: both would spend the
    one client's budget."""
    from ..sinks import open_archive, open_sink

    archive = None
    timeout = config.api.timeout
    if config.refresh is None and not config.fts:
        sink = open_sink(config.database, config.tables, stdout=sys.stdout.buffer, timeout=timeout)
    else:
        from ..transform.tables import revisited

        sink = held = open_archive(config.database, command="stream", timeout=timeout)
        archive = held if config.refresh else None
        try:
            if config.fts:  # first: a SQLite without FTS5 is refused before any write
                held.full_text(config.tables)
            held.prepare([revisited(t) if archive else t for t in config.tables])
        except BaseException:
            held.close()
            raise
    waited = False
    while not sink.claim("stream"):
        if not waited:
            log.warning("%s: waiting for the refresh running on it to end", sink.where)
            waited = True
        time.sleep(1.0)
    return sink, archive


def stream(config: StreamConfig, stderr: TextIO, shutdown: Shutdown) -> int:
    from ..runtime.heap import return_large_blocks

    return_large_blocks()
    clock = time.monotonic
    console = Console(stderr, config.verbosity, clock)
    period = LOG_PERIOD if console.live is None and not console.quiet else None
    reporter = Reporter(Stats(started=clock()), log, clock, live=console.live, period=period)
    sink = client = None
    try:
        sink, archive = _sink(config)
        client = _client(config.api)
        log.info("%s", _start(sink, config))
        run = _runner(config, sink, archive, client, _context(shutdown), reporter)
        standby.follow(sink, config, run, stored=lambda: reporter.stats.stored)
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
        stderr.write(_summary(reporter, shutdown.why, clock()))
    return status


def _runner(
    config: StreamConfig,
    sink: Sink,
    archive: Archive | None,
    client: RedditClient,
    context: Context,
    reporter: Reporter,
) -> Callable[[int | None], None]:
    """The stream itself, to run (again, after a standby spell) for up to N records."""
    from ..commands.stream import stream as follow

    def run(left: int | None) -> None:
        follow(
            sink,
            client,
            config.tables,
            subreddits=config.subreddits,
            interval=config.interval,
            max_records=left,
            context=context,
            on_batch=reporter.batch,
            on_problem=reporter.problem,
            on_strain=reporter.strain,
            spare=_spare(config, archive, client, context, reporter),
        )

    return run


def _summary(reporter: Reporter, why: str, now: float) -> str:
    """What a stream says as it ends: what it stored and, with --refresh, checked."""
    lines = [f"stopped{why}: {reporter.stats.summary(now)}", *reporter.pace.lines()]
    return "".join(f"redpipe: {line}\n" for line in lines)


def _spare(
    config: StreamConfig,
    archive: Archive | None,
    client: RedditClient,
    context: Context,
    reporter: Reporter,
) -> Callable[[Budget], Iterator[Sleep | None]] | None:
    """With --refresh, the refresh the stream does on the requests its listings leave."""
    if config.refresh is None or archive is None:
        return None
    from ..commands.spare import refreshing

    return refreshing(
        archive,
        client,
        config.tables,
        older_than=config.refresh.older_than,
        purge=config.refresh.purge_deleted,
        context=context,
        on_problem=reporter.problem,
        on_progress=reporter.refreshed,
    )


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

    def progress(
        self, name: str, done: int | None, total: int | None, lines: int, kept: int | None
    ) -> None:
        if name not in self._progress:
            self._progress[name] = DumpProgress(self._console.live, name, time.monotonic)
        self._progress[name](done, total, lines, kept)

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
        sink = open_archive(config.database, command="replay", timeout=config.timeout)
        # The comments table is made only when a dump holds comments.
        if config.fts:  # first: a SQLite without FTS5 is refused before any write
            sink.full_text(config.tables)
        sink.prepare(config.tables, lazy=("comments",))
        report = _ReplayReport(console)
        context = _context(shutdown)
        load(sink, config.dumps, config.tables, context, report, keep=config.keep, name=config.name)
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("replay", exc, console)
    finally:
        _close(shutdown, None, sink)


def _claimed(archive: Archive) -> Archive:
    """`archive`, unless a stream follows it: a refresh beside it would spend the same
    client's budget and push the stream into losses."""
    if not archive.claim("refresh"):
        archive.close()
        raise DatabaseBusy(
            f"{archive.where}: a stream is following this database, and a refresh beside "
            "it would spend the same client's budget; give the stream --refresh instead, "
            "or stop it first"
        )
    return archive


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
        archive = open_archive(
            config.database, command="refresh", create=False, timeout=config.api.timeout
        )
        sink = _claimed(archive)
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
            fts=config.fts,
        )
        return EXIT_OK
    except (StopRequested, RedpipeError) as exc:
        return _stopped("refresh", exc, console)
    finally:
        _close(shutdown, client, sink)
