"""SIGINT, SIGTERM and SIGHUP: stop at once, except inside a write."""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any


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

    @property
    def why(self) -> str:
        """ " (signal SIGTERM)" once a signal came, else ""."""
        return "" if self.signum is None else f" (signal {signal.Signals(self.signum).name})"

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
