"""Reading what simulators and nodes write for the tests: JSON lines and ROS stamps."""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path) -> list[dict]:
    """Every JSON line of `path` (blank lines skipped); [] while the file does not exist yet."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def stamp_s(stamp) -> float:
    """A builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
