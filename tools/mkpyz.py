"""Build redpipe.pyz: a deterministic zipapp of `pipeline/`, `__main__.py` and the
hash-pinned pure-Python wheels in requirements.txt. Called by build.sh.

Deterministic means: entries sorted, one fixed timestamp (SOURCE_DATE_EPOCH, else the
commit time of HEAD, else 1980-01-01), fixed permissions, no directory entries, no
bytecode. Two builds of one commit with one Python are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHEBANG = b"#!/usr/bin/env python3\n"
DOS_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry
# The wheels are fetched for the newest line they all support; on 3.9 redpipe never
# imports requests/urllib3 (see pipeline/sources/transport.py), so their Requires-Python is moot.
TARGET_PYTHON = "3.10"
FORBIDDEN = re.compile(r"\.(so|pyd|dylib|dll|pyc|pyo|exe)$|(^|/)__pycache__/")


class BuildError(Exception):
    pass


def pinned_hashes(requirements: Path) -> dict[str, set[str]]:
    """{normalised project name: {sha256, ...}} from a --require-hashes file."""
    text = requirements.read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, set[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"([A-Za-z0-9._-]+)==\S+", line)
        hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        if not m or not hashes:
            raise BuildError(f"{requirements.name}: not an exact, hashed pin: {line!r}")
        pins[normalise(m[1])] = hashes
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def fetch_wheels(requirements: Path, into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--implementation",
            "py",
            "--abi",
            "none",
            "--platform",
            "any",
            "--python-version",
            TARGET_PYTHON,
            "-r",
            str(requirements),
            "-d",
            str(into),
        ],
        check=True,
    )
    pins = pinned_hashes(requirements)
    wheels = []
    for project, hashes in sorted(pins.items()):
        found = [w for w in into.glob("*.whl") if normalise(w.name.split("-")[0]) == project]
        good = [w for w in found if hashlib.sha256(w.read_bytes()).hexdigest() in hashes]
        if len(good) != 1:
            raise BuildError(
                f"expected one wheel of {project} matching its pinned hash in "
                f"{into}, found {[w.name for w in good]}"
            )
        if not good[0].name.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")):
            raise BuildError(f"{good[0].name} is not a pure-Python wheel")
        wheels.append(good[0])
    return wheels


def build_epoch() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return max(int(env), DOS_EPOCH)
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return max(int(out), DOS_EPOCH)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return DOS_EPOCH


def collect(wheels: list[Path]) -> dict[str, bytes]:
    """Archive name -> bytes for everything that goes into the .pyz."""
    files: dict[str, bytes] = {}

    def add(name: str, data: bytes, origin: str) -> None:
        if FORBIDDEN.search(name):
            raise BuildError(f"{origin}: {name} is compiled code; only pure Python may ship")
        if name in files:
            raise BuildError(f"{origin}: {name} is also in another input")
        files[name] = data

    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                name = info.filename
                top = name.split("/", 1)[0]
                if top.endswith(".data"):
                    # Only purelib may ride along (it installs into site-packages).
                    parts = name.split("/", 2)
                    if len(parts) < 3 or parts[1] != "purelib":
                        raise BuildError(f"{wheel.name}: {name} installs outside site-packages")
                    name = parts[2]
                add(name, zf.read(info), wheel.name)
    for path in package_modules():
        add(path.relative_to(ROOT).as_posix(), path.read_bytes(), "pipeline")
    add("__main__.py", (ROOT / "__main__.py").read_bytes(), "__main__.py")
    return files


def package_modules() -> list[Path]:
    """Every module of the package, its subpackages included, in a stable order."""
    return sorted(p for p in (ROOT / "pipeline").rglob("*.py") if "__pycache__" not in p.parts)


def write_pyz(files: dict[str, bytes], output: Path, epoch: int) -> None:
    stamp = time.gmtime(epoch)[:6]
    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured
            info.external_attr = 0o100644 << 16
            zf.writestr(info, files[name], compresslevel=9)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".redpipe-", suffix=".pyz", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "redpipe.pyz")
    parser.add_argument(
        "--wheels",
        type=Path,
        default=ROOT / "build" / "wheels",
        help="download cache for the pinned wheels",
    )
    args = parser.parse_args()
    try:
        wheels = fetch_wheels(ROOT / "requirements.txt", args.wheels)
        files = collect(wheels)
        write_pyz(files, args.output, build_epoch())
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build.sh: error: {exc}", file=sys.stderr)
        return 1
    data = args.output.read_bytes()
    print(
        f"{args.output}: {len(data):,} bytes, {len(files)} files, "
        f"sha256 {hashlib.sha256(data).hexdigest()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
