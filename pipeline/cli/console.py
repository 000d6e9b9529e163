"""How output is drawn on stderr: one live line on a terminal that every other line prints
above, or plain lines (for journald, cron, a pipe); log records and `say` lines alike."""

from __future__ import annotations

import logging
from typing import Callable, TextIO

log = logging.getLogger("pipeline")


class LiveLine:
    """One line redrawn in place on a terminal, that log messages print above."""

    def __init__(self, stream: TextIO, clock: Callable[[], float], min_gap: float = 0.2) -> None:
        self._stream = stream
        self._clock = clock
        self._min_gap = min_gap
        self._text = ""
        self._drawn_at = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        self._text = text
        now = self._clock()
        if force or now - self._drawn_at >= self._min_gap:
            self._stream.write("\r\x1b[K" + text)
            self._stream.flush()
            self._drawn_at = now

    def clear(self) -> None:
        if self._text:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._text = ""

    def above(self, message: str) -> None:
        self._stream.write("\r\x1b[K" + message + "\n")
        if self._text:
            self._stream.write(self._text)
        self._stream.flush()


class ConsoleHandler(logging.Handler):
    """Log records to stderr, printed above the live line when there is one."""

    def __init__(self, stream: TextIO, live: LiveLine | None) -> None:
        super().__init__()
        self._stream = stream
        self._live = live

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if self._live is not None:
                self._live.above(message)
            else:
                self._stream.write(message + "\n")
                self._stream.flush()
        except Exception:  # a broken stderr must not kill the archive
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "redpipe: " if record.levelno < logging.WARNING else "redpipe: warning: "
        if record.levelno >= logging.ERROR:
            prefix = "redpipe: error: "
        return prefix + record.getMessage()


class Console:
    """stderr for one command: the package's log records and `say` lines, above the live
    line when there is one. `verbosity` is -1 quiet (errors only), 0 normal, 1 verbose."""

    def __init__(
        self,
        stderr: TextIO,
        verbosity: int,
        clock: Callable[[], float],
        *,
        live: bool = True,
        min_gap: float = 0.2,
    ) -> None:
        self.stderr = stderr
        self.quiet = verbosity < 0
        terminal = live and not self.quiet and stderr.isatty()
        self.live = LiveLine(stderr, clock, min_gap) if terminal else None
        handler = ConsoleHandler(stderr, self.live)
        handler.setFormatter(_Formatter())
        log.handlers[:] = [handler]
        log.propagate = False
        log.setLevel({-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[verbosity])

    def say(self, line: str, level: str = "") -> None:
        """One `redpipe: ` line; `level` is "" (not shown when quiet), "warning: " or
        "error: "."""
        if self.quiet and not level:
            return
        if self.live is not None:
            self.live.above(f"redpipe: {level}{line}")
        else:
            self.stderr.write(f"redpipe: {level}{line}\n")

    def clear(self) -> None:
        if self.live is not None:
            self.live.clear()
