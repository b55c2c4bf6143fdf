"""Which topics the lab page gets at page rates, and the throttle that keeps them there.

Pure (no rclpy). A class of 50 phones each receiving every scan (15 Hz), every health tree
(1 Hz, ~17 kB) and every marker array costs the web host ~130 kB/s per page; the page needs
far less to look live. The feed relays each configured topic's newest message (raw CDR bytes,
nothing decoded) at most at its rate, so the WebSocket server sends that much and no more.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from sensorhub_common.topic_filter import RateLimiter, without_placeholder

MAX_HZ = 100.0
_NAME = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")


class FeedError(ValueError):
    """A feed entry that is not ``/absolute/topic=HZ`` with 0 < HZ <= MAX_HZ."""


def parse_feeds(items: Sequence[str]) -> dict[str, float]:
    """``["/tim240/scan_filtered=2", "/diagnostics_agg=0.33"]`` -> {topic: max Hz}."""
    out: dict[str, float] = {}
    for item in without_placeholder(items):
        topic, sep, hz = item.strip().rpartition("=")
        if not sep or not _NAME.fullmatch(topic):
            raise FeedError(f"bad feed {item!r}: expected '/absolute/topic=HZ'")
        try:
            rate = float(hz)
        except ValueError:
            raise FeedError(f"bad feed {item!r}: {hz!r} is not a number") from None
        if not (math.isfinite(rate) and 0.0 < rate <= MAX_HZ):
            raise FeedError(f"bad feed {item!r}: the rate must be in (0, {MAX_HZ:g}] Hz")
        if topic in out:
            raise FeedError(f"bad feed {item!r}: {topic} is listed twice")
        out[topic] = rate
    return out


def check_feeds(items: Sequence[str]) -> str | None:
    try:
        parse_feeds(items)
    except FeedError as e:
        return str(e)
    return None


class Throttle:
    """The newest message of a stream, passed on at most ``max_hz`` (token bucket): what arrives
    between two tokens waits as the one pending message, so the last state always goes out
    (within one period) instead of being dropped with the ones it replaced."""

    def __init__(self, max_hz: float):
        self.limiter = RateLimiter(max_hz)
        self.pending: bytes | None = None
        self.received = 0
        self.sent = 0

    def offer(self, data: bytes, now: float) -> bytes | None:
        """A new message: returns what to send now (or None: it waits as pending)."""
        self.received += 1
        self.pending = data
        return self.due(now)

    def due(self, now: float) -> bytes | None:
        """The pending message when a token is free (call periodically), else None."""
        if self.pending is None or not self.limiter.allow(now):
            return None
        data, self.pending = self.pending, None
        self.sent += 1
        return data
