"""The one seam between the commands and storage: what every sink does, and what an
archive (a sink that keeps what it stores) does besides.

Rows arrive as the transform makes them: tuples of plain Python values in the table's
column order, oldest first. Each sink encodes them its own way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..transform.tables import Table

Row = tuple[Any, ...]
# One table's rows in a write: (table name, rows).
Part = tuple[str, Sequence[Row]]


@dataclass(frozen=True)
class Checkpoint:
    """How far a replay of one dump got: committed with the rows it stored."""

    dump: str  # the dump's key: its name and size
    lines: int
    finished: bool


@dataclass(frozen=True)
class Edit:
    """Text refresh found replaced: what `column` of `fullname` held until `replaced_utc`."""

    fullname: str
    column: str
    old: str
    replaced_utc: float


@dataclass(frozen=True)
class Match:
    """One item a search found, as stored; None where the table keeps no such column."""

    fullname: str
    created_utc: float | None
    subreddit: str | None
    author: str | None
    text: str | None  # a post's title, a comment's body
    permalink: str | None  # site-relative, as Reddit gives it
    link_id: str | None  # a comment's post


class Sink(Protocol):
    """Where the stream's rows go. `where` names it in messages (never a secret);
    `durable` says whether what it stores outlasts the run, `shared` whether processes on
    other boxes may use it at once (standby streams, parallel replays and refreshes)."""

    where: str
    durable: bool
    shared: bool

    def prepare(self, tables: Sequence[Table], *, lazy: Collection[str] = ()) -> None:
        """Get ready to hold `tables`, refusing what cannot be held (UsageError,
        DatabaseError) before anything is written. A table named in `lazy` is checked
        now but made only with its first row."""

    def write(self, parts: Sequence[Part]) -> list[int]:
        """Store every part in one transaction; how many rows of each were new."""

    def known(self, table: str, fullnames: Sequence[str]) -> set[str]:
        """Which of `fullnames` are stored already."""

    def newest(self, table: str, within: Sequence[str] = ()) -> tuple[str, float] | None:
        """The newest stored item's (fullname, created_utc), if any; of the subreddits
        `within` names (lower case) only, if given and the table keeps the subreddit, so
        that a stream of some subreddits is not misled by what another stream stored."""

    def count(self, table: str) -> int: ...

    def claim(self, role: str) -> bool:
        """Mark what this sink holds as followed by a running "stream", or as being checked
        by a "refresh" that must not run beside one (both would spend one client's
        budget). False if the other holds it; held until close."""

    def lead(self, what: str) -> str | None:
        """Lead the stream `what` names ("all posts+comments") among the processes that
        share this storage: None once this one leads it, else who does, for a standby to
        say while it waits. A lead lost later (this process could not renew it in time,
        and another took over) makes the next known, newest or write raise LeadLost.
        Storage only one box reaches has no standbys: always None."""

    def confirm_lead(self) -> None:
        """Raise LeadLost if this process led a stream and may no longer: asked before
        every request to Reddit, so that a leader replaced while it slept asks nothing."""

    def close(self) -> None: ...


class Archive(Sink, Protocol):
    """A sink that keeps what it stores: replay resumes into it, refresh revisits it."""

    def write(self, parts: Sequence[Part], *, checkpoint: Checkpoint | None = None) -> list[int]:
        """As Sink.write; `checkpoint` is recorded in the same transaction."""

    def checkpoint(self, dump: str) -> Checkpoint | None:
        """The last checkpoint written for `dump`, if any."""

    def adopt(self, tables: Sequence[Table]) -> dict[str, Table]:
        """Those of `tables` held here, by name, each as stored (the columns it has and the
        fields recorded for them, with refresh's bookkeeping). Refuses as prepare does."""

    def due(self, table: str, *, cutoff: float, limit: int) -> list[str]:
        """Up to `limit` fullnames, oldest first, created and last checked before `cutoff`."""

    def count_due(self, table: str, *, cutoff: float) -> int: ...

    def current(
        self, table: str, fullnames: Sequence[str], columns: Sequence[str]
    ) -> dict[str, Row]:
        """The stored values of `columns` for those of `fullnames` still stored."""

    def update(
        self,
        table: str,
        changes: Sequence[tuple[str, Mapping[str, Any]]],
        edits: Sequence[Edit] = (),
    ) -> None:
        """Set {column: value} per fullname and record `edits` in the `edits` table, all
        in one transaction."""

    def purge_deleted(
        self, table: str, columns: Sequence[str], fullnames: Sequence[str] | None = None
    ) -> int:
        """Set `columns` to NULL for every item marked deleted by its author (of
        `fullnames` only, if given), and drop the edits recorded of it; how many items
        had text to purge."""

    def full_text(self, tables: Sequence[Table]) -> None:
        """Index the text of `tables` (titles, self texts, bodies) for `search`, over the
        rows held, and remember it: tables made later (by prepare, or a lazy table's first
        row) are indexed too, and every later write keeps the index, with or without this
        call. Called before prepare, it indexes each table as prepare makes or widens it.
        UsageError, before anything changes, where the index cannot be made or kept (a
        SQLite without FTS5)."""

    def search(
        self, table: Table, query: str, *, subreddits: Sequence[str], limit: int
    ) -> list[Match]:
        """The newest `limit` items of `table` (as adopted) that match `query`, in SQLite
        FTS5's syntax, of `subreddits` (lower case) only if given. UsageError for a
        query that cannot be read, or a table without an index."""
