"""The baseline every load figure is held against: json.loads over each line of a file."""

from __future__ import annotations

import json
import time
from pathlib import Path


def load_floor(path: Path) -> float:
    """Seconds to read and json.loads every line of `path`."""
    loads = json.loads
    started = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            loads(line)
    return time.perf_counter() - started
