"""Dumps (Pushshift RS_/RC_ files, Arctic Shift exports): NDJSON, plain or compressed, from
a file or from standard input, read line by line and parsed one record at a time; or,
for a filtered replay, read a chunk at a time with only the lines its sieve lets through
made into bytes objects at all."""

from __future__ import annotations

import json
import lzma
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from ..errors import UsageError
from ..transform.filters import EVERYTHING, Filter
from ..transform.sieve import Sieve, newlines
from .compressed import Errors, by_suffix, sniffed

# What a truncated or corrupt compressed file raises part-way through (a decoder's own
# errors are raised as OSError).
READ_ERRORS = (OSError, EOFError, lzma.LZMAError)
STDIN = "-"
CHUNK = 1 << 18  # bytes read at once by a filtered replay
_LONG_LINES = 400  # bytes a line, from which one memchr a line counts faster (sieve.newlines)
# A block: how many lines are read once it is done, and its lines that may be kept.
Block = tuple[int, list[tuple[int, bytes]]]


class Dump:
    """One dump opened for reading: a file, or standard input for "-". `key` names it for
    resuming: the file's name and size, or `name` for standard input, then the filter if
    any; None when standard input has no name, which then cannot be resumed."""

    def __init__(self, path: str, *, keep: Filter = EVERYTHING, name: str | None = None) -> None:
        self.path = path
        if path == STDIN:
            self.raw = _stdin()
            self.name = name or "standard input"
            self.size: int | None = None
            base = f"{name}:stdin" if name else None
        else:
            try:
                self.raw = open(path, "rb")  # noqa: SIM115 - closed by close(), after the reader
            except OSError as exc:
                raise UsageError(f"{path}: {exc.strerror or exc}") from None
            self.name = os.path.basename(path)
            self.size = os.fstat(self.raw.fileno()).st_size
            base = f"{self.name}:{self.size}"
        self.key = f"{base} {keep.key}" if base and keep.active else base
        self._stream: IO[bytes] | None = None
        self._errors: Errors = ()

    def _opened(self) -> IO[bytes]:
        if self._stream is None:
            opened = sniffed(self.raw) if self.path == STDIN else by_suffix(self.raw, self.path)
            self._stream, self._errors = opened
        return self._stream

    def lines(self, *, skip: int) -> Iterator[tuple[int, bytes]]:
        """(line number from 1, the line's bytes) for every line after the first `skip`."""
        stream = self._opened()
        try:
            for number, line in enumerate(stream, 1):
                if number > skip:
                    yield number, line
        except self._errors as exc:
            raise OSError(str(exc)) from None

    def blocks(self, *, skip: int, sieve: Sieve) -> Iterator[Block]:
        """The lines after the first `skip` that `sieve` lets through, numbered, a chunk
        of the dump at a time, each block with how many lines are read once it is done."""
        lines, long_lines = 0, True
        for chunk, size in self._chunks():
            start = 0
            if lines < skip:
                start, lines = _skipped(chunk, size, skip - lines, lines)
            picked, at = [], start
            for begin, end in sieve.scan(chunk, start, size):
                lines += newlines(chunk, at, begin, long_lines) + 1
                picked.append((lines, bytes(chunk[begin:end])))
                at = end
            before = lines
            lines += newlines(chunk, at, size, long_lines)
            long_lines = size - at > _LONG_LINES * max(lines - before, 1)
            yield lines, picked

    def _chunks(self) -> Iterator[tuple[bytearray, int]]:
        """The decompressed dump a buffer at a time, as (buffer, size): buffer[:size] ends
        at a line's end (the last line is given one if it lacks it). The buffer is reused:
        allocating one a chunk would map and fault in fresh pages each time."""
        stream = self._opened()
        chunk, held = bytearray(CHUNK), 0  # held: the start of a line not yet whole
        try:
            while True:
                with memoryview(chunk) as view, view[held:] as free:
                    got = stream.readinto(free)  # type: ignore[attr-defined]
                if not got:
                    break
                filled = held + got
                size = chunk.rfind(b"\n", 0, filled) + 1
                if size:
                    yield chunk, size
                    held = filled - size
                    chunk[:held] = chunk[size:filled]
                else:
                    held = filled
                    if held == len(chunk):  # a line longer than the buffer
                        chunk.extend(bytes(len(chunk)))
        except self._errors as exc:
            raise OSError(str(exc)) from None
        if held:
            yield chunk[:held] + b"\n", held + 1

    def tell(self) -> int | None:
        """How many bytes of the file as stored have been read (None for standard input)."""
        return None if self.path == STDIN else self.raw.tell()

    def close(self) -> None:
        if self.path != STDIN:
            self.raw.close()


def _skipped(chunk: bytearray, size: int, lines: int, before: int) -> tuple[int, int]:
    """Where in chunk[:size] the first of `lines` more lines to skip ends, as (offset,
    lines read once there)."""
    at, count = 0, 0
    while count < lines:
        end = chunk.find(b"\n", at, size)
        if end < 0:
            break
        at, count = end + 1, count + 1
    return at, before + count


def _stdin() -> IO[bytes]:
    stream = sys.stdin
    if stream is None or stream.isatty():
        raise UsageError("- reads a dump from standard input: pipe one in, like zstd -dc FILE |")
    return stream.buffer


def parse(line: bytes) -> Any:
    """The line's JSON value, or None when it is not JSON."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def standard_input(dumps: Sequence[str], name: str | None) -> str | None:
    """Check how `dumps` use standard input: `name`, the name it is resumed by, if given."""
    if list(dumps).count(STDIN) > 1:
        raise UsageError("- (standard input) can be given once")
    if name is not None:
        if STDIN not in dumps:
            raise UsageError("--name names the dump read from standard input: give - too")
        if not name.strip() or not name.isprintable() or len(name) > 200:
            raise UsageError(f"--name must be a short printable name, not {name!r}")
    return name
