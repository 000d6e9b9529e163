"""Pure: a filter's cheap test of a dump's raw bytes, before any line is parsed.

It may let through lines the filter does not keep (the exact test after parsing drops
them) but never drops one it keeps. Each part of the filter is one regular expression
with a literal key in front, `"subreddit"`, `"author"` or `"created_utc"`, run over a
whole chunk of lines at once, so that Python looks only at the lines it finds:

- spacing: any JSON whitespace around the colon;
- case: the names' letters match in either case (JSON keys are exact);
- nesting: any occurrence of the key counts (a crosspost's own subreddit may come first);
- dates: a plain number, or a plain number in a string (old Pushshift), is compared by
  its integer part; any other value (an exponent, a sign, null) lets the line through;
- escapes: a line with a \\u00XX escape of a character that names are made of (letters,
  digits, _ and -) may spell a key or a name that the literal test cannot see, so it is
  let through whole. Encoders never write those (they escape quotes, control and
  non-ASCII characters), so real dumps have almost none.
"""

from __future__ import annotations

import math
import re
from typing import Union

from .filters import Filter

Buffer = Union[bytes, bytearray]

_WS = rb"[ \t\r]*"  # JSON's whitespace but the newline, which ends the line
_NUMBER = rb"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_NAME_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# What follows \u in an escape of a name character: 00 and its two hex digits, either case.
_ESCAPES = frozenset(b"00" + pair for c in _NAME_BYTES for pair in (b"%02x" % c, b"%02X" % c))
_ESCAPE = re.compile(rb"\\u00(?:%s)" % b"|".join(sorted({e[2:] for e in _ESCAPES})))
# Lines holding this many backslashes per byte cost the loop in `_suspects` more than one
# regular-expression pass over the chunk.
_BYTES_PER_BACKSLASH = 512


class Sieve:
    """The raw test of one filter (which must be active)."""

    def __init__(self, keep: Filter) -> None:
        tests = []
        if keep.subreddits:
            tests.append(_names(b"subreddit", keep.subreddits))
        if keep.authors:
            tests.append(_names(b"author", keep.authors))
        if keep.dated:
            tests.append(_dates(keep.after, keep.before))
        self._first, self._rest = tests[0], tests[1:]

    def scan(self, chunk: Buffer, start: int, size: int) -> list[tuple[int, int]]:
        """(start, end) of each line of chunk[start:size] that may be kept, in order.
        `start` is where a line begins, `size` where one ends."""
        spans: dict[int, int] = {}
        search, rest = self._first.search, self._rest
        found = search(chunk, start, size)
        while found:
            begin = chunk.rfind(b"\n", 0, found.start()) + 1
            end = chunk.find(b"\n", found.start(), size) + 1
            if all(test.search(chunk, begin, end) for test in rest):
                spans[begin] = end
            found = search(chunk, end, size)
        for at in _suspects(chunk, start, size):
            begin = chunk.rfind(b"\n", 0, at) + 1
            spans[begin] = chunk.find(b"\n", at, size) + 1
        return sorted(spans.items())


def _suspects(chunk: Buffer, start: int, size: int) -> list[int]:
    """Where chunk[start:size] has an escape that may spell a name character. One memchr
    per backslash while they are few; the rest by regular expression if not."""
    found: list[int] = []
    find = chunk.find
    at = find(b"\\", start, size)
    for _ in range((size - start) // _BYTES_PER_BACKSLASH):
        if at < 0:
            return found
        if chunk[at + 1] == 0x75 and bytes(chunk[at + 2 : at + 6]) in _ESCAPES:  # \u
            found.append(at)
        at = find(b"\\", at + 2, size)  # past the escaped character, which may be a backslash
    if at >= 0:
        found += [m.start() for m in _ESCAPE.finditer(chunk, at, size)]
    return found


def _key(name: bytes) -> bytes:
    return b'"' + name + b'"' + _WS + b":" + _WS


def _names(key: bytes, names: frozenset[str]) -> re.Pattern[bytes]:
    """The key with a string value that is one of `names` in any case."""
    either = b"|".join(re.escape(name.encode("ascii")) for name in sorted(names))
    return re.compile(_key(key) + b'"(?i:' + either + b')"')


def _dates(after: float | None, before: float | None) -> re.Pattern[bytes]:
    """created_utc with a value whose integer part is in range, or an unusual value."""
    low = 0 if after is None else max(0, math.floor(after))
    high = None if before is None else math.ceil(before) - 1
    whole = between(low, high)
    inside = b'"%s(?:\\.[0-9]+)?"|%s(?:\\.[0-9]+)?(?![0-9.eE])' % (whole, whole)
    # Unusual: neither whitespace (else backtracking the spaces before a plain number
    # would make it one) nor a plain number.
    unusual = b'(?![ \t\r]|"%s"|%s(?![0-9.eE]))' % (_NUMBER, _NUMBER)
    return re.compile(_key(b"created_utc") + b"(?:" + inside + b"|" + unusual + b")")


def between(low: int, high: int | None) -> bytes:
    """A regular expression for the whole numbers from `low` to `high` (None: no end)
    written without leading zeros, as JSON writes them."""
    if high is not None and high < low:
        return b"(?!)"
    widths = len(str(low)), len(str(high)) if high is not None else len(str(low))
    alternatives = []
    for width in range(widths[0], widths[1] + 1):
        first = max(low, 10 ** (width - 1) if width > 1 else 0)
        last = 10**width - 1 if high is None else min(high, 10**width - 1)
        if first <= last:
            alternatives += _same_width(str(first), str(last))
    if high is None:
        alternatives.append(f"[1-9][0-9]{{{widths[0]},}}")
    return ("(?:" + "|".join(alternatives) + ")").encode("ascii")


def _same_width(a: str, b: str) -> list[str]:
    """Alternatives for the digit strings from a to b, both as long, a <= b."""
    if a == b:
        return [a]
    common = 0
    while a[common] == b[common]:
        common += 1
    head, a, b = a[:common], a[common:], b[common:]
    tail = len(a) - 1
    low_full, high_full = a[1:] == "0" * tail, b[1:] == "9" * tail
    out = []
    if not low_full:
        out += [head + a[0] + alt for alt in _same_width(a[1:], "9" * tail)]
    middle = (int(a[0]) + (0 if low_full else 1), int(b[0]) - (0 if high_full else 1))
    if middle[0] <= middle[1]:
        digit = str(middle[0]) if middle[0] == middle[1] else f"[{middle[0]}-{middle[1]}]"
        out.append(head + digit + (f"[0-9]{{{tail}}}" if tail else ""))
    if not high_full:
        out += [head + b[0] + alt for alt in _same_width("0" * tail, b[1:])]
    return out


def newlines(chunk: Buffer, start: int, end: int, long_lines: bool) -> int:
    """How many lines end in chunk[start:end]. bytes.count checks every byte; for long
    lines one memchr a line is several times faster."""
    if not long_lines:
        return chunk.count(b"\n", start, end)
    count = 0
    find = chunk.find
    at = find(b"\n", start, end)
    while at >= 0:
        count += 1
        at = find(b"\n", at + 1, end)
    return count
