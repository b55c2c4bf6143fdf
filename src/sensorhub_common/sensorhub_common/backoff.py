"""Exponential retry delay shared by every reconnect and restart loop (pure, clock injectable).

Serial ports that vanish, a LiDAR that drops its TCP link, a node that crashes: all retry quickly
the first time (a glitch) and back off after that, so a dead peer never eats the CPU the 800 Hz
path needs.
"""

from __future__ import annotations

import time


class ExponentialBackoff:
    """Delays lo, lo*factor, ... capped at hi; reset() after a success."""

    def __init__(self, lo: float, hi: float, factor: float = 2.0):
        if not (lo >= 0 and hi >= lo and factor >= 1):
            raise ValueError(f"backoff needs 0 <= lo <= hi, factor >= 1 ({lo}, {hi}, {factor})")
        self.lo, self.hi, self.factor = lo, hi, factor
        self.delay = lo
        self.next_try = 0.0

    def failed(self, now: float | None = None) -> float:
        """Record a failure at `now`; returns the delay before the next try (also next_try)."""
        now = time.monotonic() if now is None else now
        d = self.delay
        self.next_try = now + d
        self.delay = min(self.hi, max(d, 1e-3) * self.factor)
        return d

    def reset(self) -> None:
        self.delay = self.lo
        self.next_try = 0.0
