"""Dump files (Pushshift RS_/RC_ files, Arctic Shift exports): NDJSON, plain or compressed,
read line by line and parsed one record at a time."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
from collections.abc import Iterator
from typing import IO, Any, cast

from ..errors import UsageError

# What a truncated or corrupt compressed file raises part-way through.
READ_ERRORS = (OSError, EOFError, lzma.LZMAError)


class Dump:
    """One dump file opened for reading; `key` names it for resuming (name and size)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        try:
            self.raw = open(path, "rb")  # noqa: SIM115 - closed by close(), after the reader
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror or exc}") from None
        self.size = os.fstat(self.raw.fileno()).st_size
        self.key = f"{self.name}:{self.size}"

    def lines(self, *, skip: int) -> Iterator[tuple[int, bytes]]:
        """(line number from 1, the line's bytes) for every line after the first `skip`."""
        for number, line in enumerate(open_dump(self.raw, self.path), 1):
            if number > skip:
                yield number, line

    def tell(self) -> int:
        """How many bytes of the file as stored have been read."""
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()


def parse(line: bytes) -> Any:
    """The line's JSON value, or None when it is not JSON."""
    try:
        return json.loads(line)
    except ValueError:
        return None


def open_dump(raw: IO[bytes], name: str) -> IO[bytes]:
    """The decompressed bytes of `raw`, chosen by the file name's suffix."""
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if name.endswith(".bz2"):
        return cast(IO[bytes], bz2.BZ2File(raw))
    if name.endswith(".xz"):
        return cast(IO[bytes], lzma.LZMAFile(raw))
    if name.endswith(".zst"):
        return _zstd(raw, name)
    return raw


def _zstd(raw: IO[bytes], name: str) -> IO[bytes]:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd.ZstdFile(raw)  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise UsageError(
            f"{name}: reading .zst needs Python 3.14 or newer, or the zstandard package "
            "(python3 -m pip install zstandard)"
        ) from None
    # Pushshift's files were written with a 2 GiB window, above the default limit.
    reader = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw)
    return cast(IO[bytes], io.BufferedReader(reader))
