"""How the sessions of one sink share what they have said of the server's outages."""

from __future__ import annotations

import threading
import weakref

from .target import Target


class Outages:
    """What the sessions of one target (a sink has two: its writes and its leases) have
    told of the server's outages, so that one restart is one "reconnecting" line and one
    "reconnected", however many sessions and calls run into it: the first to fail tells,
    the first back tells, and a session whose connection dates from before an outage told
    of reconnects without a word."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.told = 0  # outages told of so far
        self._down = False  # one told of, and no session back since

    def down(self, since: int) -> bool:
        """A session failed on a connection opened after `since` outages were told of:
        whether to tell of it (as a new outage)."""
        with self._guard:
            if self._down or since < self.told:
                return False
            self.told += 1
            self._down = True
            return True

    def back(self) -> bool:
        """A session whose last call failed works again: whether to say so (the first)."""
        with self._guard:
            was, self._down = self._down, False
            return was


# By Target object, not by value: each sink's pair of sessions shares one, and a sink
# opened later (a test's, say) starts afresh even on an equal target.
_OUTAGES: dict[int, Outages] = {}
_OUTAGES_GUARD = threading.Lock()


def outages(target: Target) -> Outages:
    with _OUTAGES_GUARD:
        found = _OUTAGES.get(id(target))
        if found is None:
            found = _OUTAGES[id(target)] = Outages()
            weakref.finalize(target, _OUTAGES.pop, id(target), None)
        return found
