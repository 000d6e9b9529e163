"""Rewrite a requirements file so every `name==version` line carries all of its hashes.

    python3 tools/pin.py requirements-dev.txt

Hashes of every file the index holds for that release (all platforms), so
`pip install --require-hashes` works on any machine that gets the same versions. Reads
PyPI's JSON simple API; run it by hand when a pin changes, never in CI.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request

INDEX = "https://pypi.org/simple/{}/"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def hashes(name: str, version: str) -> list[str]:
    req = urllib.request.Request(
        INDEX.format(re.sub(r"[-_.]+", "-", name).lower()),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        files = json.load(resp)["files"]
    norm = re.sub(r"[-_.]+", "_", name).lower()
    found = []
    for f in files:
        fname = f["filename"].lower()
        stem = re.sub(r"[-_.]+", "_", fname)
        if stem.startswith(f"{norm}_{version.lower().replace('.', '_')}_") or fname in (
            f"{norm}-{version}.tar.gz".lower(),
        ):
            found.append(f["hashes"]["sha256"])
    if not found:
        raise SystemExit(f"no files for {name}=={version}")
    return sorted(found)


def main(path: str) -> None:
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        continuation = line.rstrip().endswith("\\") and not PIN.match(line)
        if line.strip().startswith("--hash") or continuation:
            continue  # old hash continuation lines are regenerated below
        m = PIN.match(line.strip())
        if not m:
            out.append(line)
            continue
        name, version = m.groups()
        digests = hashes(name, version)
        out.append(f"{name}=={version} \\")
        out += [
            f"    --hash=sha256:{d}" + (" \\" if i < len(digests) - 1 else "")
            for i, d in enumerate(digests)
        ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
