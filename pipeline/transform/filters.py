"""Pure: which dump items a filtered replay keeps (--subreddit, --author, --after,
--before), tested exactly on the record as `records.as_child` makes it, and the text that
tells one filter's checkpoints from another's.

Names compare case-insensitively and in ASCII only, as SQLite's lower() does, so that a
filtered replay stores exactly what an unfiltered one followed by a DELETE would keep.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

# Reddit user names: letters, digits, _ and -, at most 20 (3 or more for new accounts).
_AUTHOR = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# Twelve digits reach the year 33658; the raw date test relies on such small numbers.
_EPOCH = re.compile(r"^\d{1,12}(?:\.\d+)?$")


@dataclass(frozen=True)
class Filter:
    """What to keep; every part left empty (or None) keeps everything."""

    subreddits: frozenset[str] = frozenset()  # lower case
    authors: frozenset[str] = frozenset()  # lower case
    after: float | None = None  # created_utc at or after
    before: float | None = None  # created_utc before

    @property
    def active(self) -> bool:
        return bool(self.subreddits or self.authors) or self.dated

    @property
    def dated(self) -> bool:
        return self.after is not None or self.before is not None

    @property
    def key(self) -> str:
        """The filter as one canonical text ('' for none), e.g.
        'subreddit=python+rust after=1704067200'."""
        parts = []
        if self.subreddits:
            parts.append("subreddit=" + "+".join(sorted(self.subreddits)))
        if self.authors:
            parts.append("author=" + "+".join(sorted(self.authors)))
        if self.after is not None:
            parts.append("after=" + _text(self.after))
        if self.before is not None:
            parts.append("before=" + _text(self.before))
        return " ".join(parts)

    def keeps(self, data: dict[str, Any]) -> bool:
        """Whether the record's data (as_child's) matches every part of the filter."""
        if self.subreddits and not _named(data.get("subreddit"), self.subreddits):
            return False
        if self.authors and not _named(data.get("author"), self.authors):
            return False
        if not self.dated:
            return True
        when = data.get("created_utc")
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            return False
        # Written as `not x >= y` so that NaN is outside every range.
        if self.after is not None and not when >= self.after:
            return False
        return self.before is None or when < self.before


EVERYTHING = Filter()


def _named(value: Any, names: frozenset[str]) -> bool:
    return isinstance(value, str) and value.isascii() and value.lower() in names


def _text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def chosen(subreddits: str, authors: str | None, after: str | None, before: str | None) -> Filter:
    """The filter the options give; `subreddits` is checked already ("all": any)."""
    subs = frozenset(subreddits.lower().split("+"))
    if "all" in subs and len(subs) > 1:
        raise UsageError("--subreddit all means every subreddit: give it alone, or only names")
    users: frozenset[str] = frozenset()
    if authors is not None:
        if not all(_AUTHOR.match(name) for name in authors.strip().split("+")):
            raise UsageError(
                f"--author must be Reddit user names joined with +, like spez+kn0thing, "
                f"not {authors!r}"
            )
        users = frozenset(authors.strip().lower().split("+"))
    start = None if after is None else instant(after, "--after")
    end = None if before is None else instant(before, "--before")
    if start is not None and end is not None and not start < end:
        raise UsageError(f"--after ({after}) must be earlier than --before ({before})")
    return Filter(frozenset() if subs == {"all"} else subs, users, start, end)


def instant(value: str, option: str) -> float:
    """YYYY-MM-DD (UTC midnight) or epoch seconds, as epoch seconds."""
    text = value.strip()
    if _EPOCH.match(text):
        return float(text) if "." in text else int(text)
    found = _DATE.match(text)
    try:
        if found:
            return calendar.timegm(datetime.date(*map(int, found.groups())).timetuple())
    except ValueError:  # no such day, like 2024-02-30
        pass
    raise UsageError(f"{option} must be a date as YYYY-MM-DD (UTC) or epoch seconds, not {value!r}")
