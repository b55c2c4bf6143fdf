"""Which topics to forward or record, and at what rate: pure logic, no rclpy.

Patterns are Python regular expressions matched against the whole topic name (as
foxglove_bridge's ``topic_whitelist``): ``/pbt/.*`` matches ``/pbt/samples``, ``/pbt`` does not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def compile_patterns(patterns: Iterable[str], what: str = "pattern") -> list[re.Pattern]:
    """Empty strings are skipped: a ROS parameter file cannot hold an empty string array."""
    out = []
    for p in patterns:
        if not p:
            continue
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise ValueError(f"bad {what} {p!r}: {e}") from None
    return out


def check_patterns(patterns: Sequence[str]) -> str | None:
    """Param check: None when every pattern compiles, else the reason."""
    try:
        compile_patterns(patterns)
    except ValueError as e:
        return str(e)
    return None


class TopicFilter:
    """A topic passes when it fully matches an allow pattern and no deny pattern."""

    def __init__(self, allow: Sequence[str] = (".*",), deny: Sequence[str] = ()):
        self._allow = compile_patterns(allow, "allow pattern")
        self._deny = compile_patterns(deny, "deny pattern")

    def __call__(self, topic: str) -> bool:
        return any(p.fullmatch(topic) for p in self._allow) and not any(
            p.fullmatch(topic) for p in self._deny
        )


@dataclass(frozen=True)
class RateRule:
    pattern: re.Pattern
    max_hz: float  # 0 = unlimited


def parse_rate_rules(items: Sequence[str]) -> list[RateRule]:
    """``["/pbt/samples=10", "/scan.*=5"]`` -> rules; the first matching rule wins."""
    rules = []
    for item in items:
        if not item:
            continue
        pat, sep, hz = item.rpartition("=")
        if not sep or not pat:
            raise ValueError(f"bad rate rule {item!r}: expected 'TOPIC_REGEX=HZ'")
        try:
            value = float(hz)
        except ValueError:
            raise ValueError(f"bad rate rule {item!r}: {hz!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"bad rate rule {item!r}: rate must be >= 0 (0 = unlimited)")
        rules.append(RateRule(compile_patterns([pat], "rate pattern")[0], value))
    return rules


def check_rate_rules(items: Sequence[str]) -> str | None:
    try:
        parse_rate_rules(items)
    except ValueError as e:
        return str(e)
    return None


def max_rate_for(rules: Sequence[RateRule], topic: str) -> float:
    """The cap of the first matching rule, 0.0 (unlimited) when none matches."""
    for r in rules:
        if r.pattern.fullmatch(topic):
            return r.max_hz
    return 0.0


class RateLimiter:
    """Token bucket: on average at most ``max_hz``, and never more than one extra message.

    Unlike "drop if younger than 1/max_hz", it keeps the average at the cap when the input rate
    is not a multiple of it (20 Hz in, 7 Hz cap -> 7 Hz out, not 6.7) and when arrivals jitter
    (the bucket holds 1.5 tokens, so a slightly early message does not lose a period). In any
    window of T seconds it passes at most ``max_hz * T + 1.5`` messages.
    """

    CAPACITY = 1.5
    _EPS = 1e-9  # float sums of 1/N periods must still reach one token

    def __init__(self, max_hz: float):
        if not max_hz > 0:
            raise ValueError(f"max_hz must be > 0, got {max_hz!r}")
        self.max_hz = float(max_hz)
        self._tokens = 1.0
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.CAPACITY, self._tokens + (now - self._last) * self.max_hz)
        self._last = now
        if self._tokens >= 1.0 - self._EPS:
            self._tokens -= 1.0
            return True
        return False
