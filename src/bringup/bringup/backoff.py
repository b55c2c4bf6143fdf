"""Restart policy: exponential backoff and crash-loop detection (pure, clock injected).

A node that crashes is restarted quickly the first time (a glitch), later ones wait longer so a
broken node does not eat the CPU the PBT path needs, and a crash loop ends in a reported give-up
instead of restarting forever. A node that ran long enough is considered healthy again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sensorhub_common.backoff import ExponentialBackoff


@dataclass(frozen=True)
class RestartPolicy:
    enabled: bool = True
    delay: float = 0.5  # first restart delay: a crashed node is back well within 3 s
    max_delay: float = 30.0
    factor: float = 2.0
    max_restarts: int = 5  # more than this many crashes within `window` = crash loop
    window: float = 60.0
    stable_after: float = 30.0  # running this long resets the delay to `delay`

    @classmethod
    def from_graph(cls, value) -> RestartPolicy:
        """`respawn: true|false` or a mapping of the fields above."""
        if value is None:
            return cls()
        if isinstance(value, bool):
            return cls(enabled=value)
        return cls(**value)


class Backoff:
    """Decides, per exit, whether to restart and after how long; None means give up."""

    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        hi = max(policy.max_delay, policy.delay)  # a first delay above the cap is the cap
        self._delays = ExponentialBackoff(policy.delay, hi, policy.factor)
        self._crashes: deque[float] = deque()
        self.restarts = 0

    def on_exit(self, now: float, ran_for: float) -> float | None:
        p = self.policy
        if not p.enabled:
            return None
        if ran_for >= p.stable_after:
            self._delays.reset()
            self._crashes.clear()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > p.window:
            self._crashes.popleft()
        if len(self._crashes) > p.max_restarts:
            return None
        self.restarts += 1
        return self._delays.failed(now)

    @property
    def crashes_in_window(self) -> int:
        return len(self._crashes)
