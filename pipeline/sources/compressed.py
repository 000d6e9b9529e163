"""A dump's decompressed bytes: a file's chosen by its name's suffix, standard input's by
its first bytes. Zstandard comes from Python 3.14's compression.zstd or else the
zstandard package, in both with the window Pushshift's and Arctic Shift's files need."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from typing import IO, Any, cast

from ..errors import UsageError

# Their files are written with zstd --long=31: a 2 GiB window, where libzstd's decoders
# refuse anything above 128 MiB (a window_log of 27) unless told otherwise.
WINDOW_LOG = 31
# How each format's data begins (gzip, bzip2, xz, a Zstandard frame).
MAGIC = (
    (b"\x1f\x8b", ".gz"),
    (b"BZh", ".bz2"),
    (b"\xfd7zXZ\x00", ".xz"),
    (b"\x28\xb5\x2f\xfd", ".zst"),
)
_INPUT = 1 << 17  # compressed bytes handed to the zstandard decoder at once
Errors = tuple[type[Exception], ...]


def by_suffix(raw: IO[bytes], name: str, label: str = "") -> tuple[IO[bytes], Errors]:
    """The decompressed bytes of `raw`, and what its decoder raises on corrupt data besides
    OSError and EOFError; `label` names it in a message when no decoder is at hand."""
    if name.endswith(".gz"):
        import zlib

        return cast(IO[bytes], gzip.GzipFile(fileobj=raw)), (zlib.error,)
    if name.endswith(".bz2"):
        return cast(IO[bytes], bz2.BZ2File(raw)), ()
    if name.endswith(".xz"):
        return cast(IO[bytes], lzma.LZMAFile(raw)), (lzma.LZMAError,)
    if name.endswith(".zst"):
        return _zstd(raw, label or f"{name}: reading .zst")
    return raw, ()


def sniffed(raw: IO[bytes]) -> tuple[IO[bytes], Errors]:
    """Standard input's decompressed bytes, whichever of the formats it is in."""
    head = raw.read(6)  # the longest magic; fewer only at the end of the input
    whole = io.BufferedReader(_Joined(head, raw), buffer_size=1 << 18)
    for magic, suffix in MAGIC:
        if head.startswith(magic):
            label = (
                "standard input is Zstandard-compressed: pipe it through zstd -dc --long=31, "
                "or reading it"
            )
            return by_suffix(cast(IO[bytes], whole), suffix, label)
    return cast(IO[bytes], whole), ()


def _zstd(raw: IO[bytes], label: str) -> tuple[IO[bytes], Errors]:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        pass
    else:
        window = zstd.DecompressionParameter.window_log_max
        options = {window: min(WINDOW_LOG, window.bounds()[1])}  # 30 on 32-bit builds
        return zstd.ZstdFile(raw, options=options), (zstd.ZstdError,)
    try:
        import zstandard
    except ImportError:
        raise UsageError(
            f"{label} needs Python 3.14 or newer, or the zstandard package "
            "(python3 -m pip install zstandard)"
        ) from None
    reader = io.BufferedReader(_Zstandard(raw, zstandard), buffer_size=1 << 18)
    return cast(IO[bytes], reader), ()


class _Joined(io.RawIOBase):
    """`head`, then the rest of `raw`: what was read to tell the format, put back."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head, self._raw = head, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        return cast(int, self._raw.readinto(buffer))  # type: ignore[attr-defined]


class _Zstandard(io.RawIOBase):
    """The zstandard package's decoder over `raw`, frame after frame. Its stream_reader
    stops after the first frame and says nothing when the input ends inside one; this
    reads every frame and raises EOFError for a truncated file, as the other formats do."""

    def __init__(self, raw: IO[bytes], module: Any) -> None:
        self._raw, self._error = raw, module.ZstdError
        self._decoders = module.ZstdDecompressor(max_window_size=2**WINDOW_LOG).decompressobj
        self._decoder = self._decoders()
        self._fed = False  # whether the current frame has begun
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            data = self._raw.read(_INPUT)
            if not data:
                if self._fed and not self._decoder.eof:
                    raise EOFError("the input ended inside a Zstandard frame (truncated?)")
                return 0
            self._out = memoryview(self._decode(data))
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def _decode(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._decoder.eof:  # the next frame
                self._decoder, self._fed = self._decoders(), False
            try:
                out.append(self._decoder.decompress(data))
            except self._error as exc:
                raise OSError(f"not valid Zstandard data: {exc}") from None
            self._fed = True
            data = self._decoder.unused_data if self._decoder.eof else b""
        return b"".join(out)
