"""Standby pollers: a stream waits while another process leads what it follows on a
shared database, and takes over when that one stops renewing its lease."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import DatabaseGone, LeadLost
from .config import StreamConfig
from .console import log

if TYPE_CHECKING:  # pragma: no cover
    from ..sinks.base import Sink

# How often a standby asks whether the lead is free: a lease runs out 3 s after its
# holder's last renewal, so a takeover comes within about 3.5 s of a leader's death.
POLL = 0.5


def followed(config: StreamConfig) -> str:
    """What a stream follows, as its lease is named: the same command on two boxes is one
    stream; other subreddits or listings are streams of their own."""
    return f"r/{config.subreddits.lower()} {'+'.join(t.name for t in config.tables)}"


def lead(sink: Sink, config: StreamConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once this process leads the stream `config` follows, saying while it waits."""
    what, told = followed(config), None
    while True:
        try:
            holder = sink.lead(what)
            said = f"standing by: {holder} leads {what} on {sink.where}"
        except DatabaseGone as exc:
            holder = said = f"standing by for {what}: {exc}"
        if holder is None:
            break
        if holder != told:
            log.info("%s", said)
            told = holder
        sleep(POLL)
    if sink.shared:
        log.info("leading %s on %s", what, sink.where)


def follow(
    sink: Sink,
    config: StreamConfig,
    run: Callable[[int | None], None],
    *,
    stored: Callable[[], int],
) -> None:
    """`run(max_records left)` the stream while this process leads it: on a shared
    database, a lead lost or a server gone too long sends it back to standing by."""
    while True:
        lead(sink, config)
        left = None if config.max_records is None else config.max_records - stored()
        try:
            run(left)
            return
        except (LeadLost, DatabaseGone) as exc:
            if not sink.shared:
                raise
            log.warning("%s; standing by", exc)
