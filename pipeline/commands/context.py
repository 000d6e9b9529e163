"""What every command is handed besides its sink and client: time, and how to write safely."""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Context:
    """The clocks, the one sleep, and `critical()`, which brackets every write so that a
    stop signal waits for the commit instead of tearing the transaction down. Passed in,
    so that the commands are tested without patching."""

    clock: Callable[[], float] = time.monotonic  # intervals and deadlines
    wall_clock: Callable[[], float] = time.time  # dates stored with the rows
    sleep: Callable[[float], None] = time.sleep
    critical: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
