"""How the stream's one budget is doing: the line said when it cannot hold the listings,
and the stream's own refresh (`--refresh`), its backlog and its pace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..commands.spare import Backlog
    from ..sources.scheduler import Strain

STRAIN_EVERY = 600.0  # the strain line at most this often
BEHIND_EVERY = 3600.0  # and the line saying refresh falls behind


def strain_message(strain: Strain) -> str:
    rates = " and ".join(f"{name} arrive at {rate:.1f}/s" for name, rate in strain.rates.items())
    return (
        f"the budget cannot hold these listings: {rates}, which need {strain.need:.2f} "
        f"requests/s with every page full, and the budget gives {strain.allowed:.2f}/s; "
        f"about {strain.lost:.0%} of the items will fall off the listings unfetched "
        "(follow fewer subreddits, or drop --comments)"
    )


class RefreshPace:
    """The stream's refresh as the live line and the log tell it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._started = clock()
        self.backlog: Backlog | None = None
        self._hour = (self._started, 0, 0)  # when this hour began: checked, stored then

    def per_hour(self, now: float) -> float:
        checked = self.backlog.checked if self.backlog else 0
        return checked * 3600.0 / max(now - self._started, 1.0)

    def fragment(self, now: float) -> str:
        if self.backlog is None:
            return ""
        return f" | refresh {self.backlog.due:,} due, {self.per_hour(now):,.0f}/h"

    def behind(self, now: float, stored: int) -> str | None:
        """Once an hour: a line if the last hour checked fewer items than arrived."""
        began, checked_then, stored_then = self._hour
        if self.backlog is None or now - began < BEHIND_EVERY:
            return None
        checked, arrived = self.backlog.checked - checked_then, stored - stored_then
        self._hour = (now, self.backlog.checked, stored)
        if checked >= arrived or not self.backlog.due:
            return None
        return (
            f"refresh cannot keep up: the requests the listings leave checked {checked:,} "
            f"items in the last hour while {arrived:,} arrived, and {self.backlog.due:,} are "
            "due; each is checked once the listings leave room for it"
        )

    def lines(self) -> list[str]:
        """What the refresh did, one line per table, for the end of the run."""
        if self.backlog is None:
            return []
        return [counts.line(f"refreshed {name}") for name, counts in self.backlog.counts.items()]
