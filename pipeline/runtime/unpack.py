"""Import from a compiled copy of redpipe.pyz kept in the user's cache, not from the zip.

zipimport never stores bytecode, so every start of the .pyz would compile each module it
imports (requests and urllib3 above all: about 0.3 s on this machine's CPUs). The first
start of a build under a given interpreter unpacks the archive into the cache directory
and compiles it there; later starts import the compiled copy. Whenever that cannot be done
safely (no cache directory, one that others could write to, a full or read-only disk,
REDPIPE_NO_CACHE set) the caller keeps importing from the zip, which always works.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Mapping

KEEP_UNUSED_DAYS = 30
STALE_PARTIAL_HOURS = 1


def cache_root(environ: Mapping[str, str] = os.environ) -> str | None:
    """Where unpacked builds live: systemd's CacheDirectory=, XDG, else ~/.cache."""
    base = environ.get("CACHE_DIRECTORY", "").split(":")[0] or environ.get("XDG_CACHE_HOME")
    if not base:
        home = environ.get("HOME")
        if not home:  # a service without a home: do not guess one
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(os.path.abspath(base), "redpipe")


def unpacked(archive: str, root: str | None = None) -> str | None:
    """The directory holding `archive`'s compiled contents, creating it if needed; None to
    keep importing from the archive itself."""
    tag = sys.implementation.cache_tag
    if os.environ.get("REDPIPE_NO_CACHE") or tag is None or not os.path.isfile(archive):
        return None
    root = root or cache_root()
    if root is None:
        return None
    try:
        with open(archive, "rb") as f:
            data = f.read()
        # Named by content, so a rebuilt or edited .pyz never runs stale code.
        target = os.path.join(root, f"{len(data):x}-{zlib.crc32(data):08x}-{tag}")
        if os.path.isdir(target) and _private(root):
            _mark_used(target)
            return target
        return _unpack(archive, root, target)
    except (OSError, ValueError, RuntimeError):
        return None


def _private(path: str) -> bool:
    """Only this user may write here; otherwise someone else could plant code to import."""
    st = os.stat(path)
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _unpack(archive: str, root: str, target: str) -> str | None:
    import compileall
    import py_compile
    import shutil
    import tempfile
    import zipfile

    os.makedirs(root, mode=0o700, exist_ok=True)
    if not _private(root):
        return None
    partial = tempfile.mkdtemp(prefix=".unpack-", dir=root)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(partial)
        # Modules this interpreter cannot compile (urllib3's 3.10+ syntax on 3.9) are never
        # imported by it, so failures here are ignored. The copy never changes once in
        # place, so the bytecode need not be checked against the source on each import.
        compileall.compile_dir(
            partial,
            quiet=2,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        # A rename is atomic: a concurrent or killed start never sees half a copy.
        os.rename(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if os.path.isdir(target):  # another start got there first
            return target
        raise
    _prune(root, target)
    return target


def _mark_used(target: str) -> None:
    """Refresh the directory's time at most daily, so pruning can tell what is in use."""
    now = time.time()
    if now - os.stat(target).st_mtime > 86400:
        os.utime(target, (now, now))


def _prune(root: str, keep: str) -> None:
    """Drop builds unused for a month and copies abandoned by a killed start."""
    import shutil

    now = time.time()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if path == keep or not os.path.isdir(path):
            continue
        age = now - os.stat(path).st_mtime
        partial = name.startswith(".unpack-")
        if age > (STALE_PARTIAL_HOURS * 3600 if partial else KEEP_UNUSED_DAYS * 86400):
            shutil.rmtree(path, ignore_errors=True)
