"""A rolling oscilloscope window over PbtSamples batches, decimated for web viewers (no rclpy).

The driver publishes 40-sample batches at 20 Hz; a browser wants a few hundred points per
redraw. :class:`Scope` keeps the last ``window`` seconds of samples in preallocated rings indexed
by the stream's own sample counter (``first_index``), so gaps, late batches and driver restarts
need no bookkeeping: a slot is valid only when the index stored in it is the one the window
expects there. :meth:`Scope.render` cuts the window into buckets aligned to absolute sample
indices (a bucket's content does not change as the window rolls on, so the trace does not
shimmer) and keeps each bucket's minimum and maximum in the order they occurred: two points per
bucket, so every peak survives decimation and the points still form one time-ordered trace.

:class:`EventHistory` keeps the latest events, newest first, and their rate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

NAN = float("nan")
MAX_WINDOW_S = 60.0
MAX_BUCKETS = 5000
MAX_SLOTS = 1_000_000  # memory bound of the rings (window * sample_rate)


class ScopeError(ValueError):
    """A configuration or a batch the scope cannot represent."""


@dataclass(frozen=True)
class ScopeConfig:
    window: float = 5.0  # s shown
    buckets: int = 250  # min/max pairs per window (two points each)

    def check(self) -> None:
        if not (0.0 < self.window <= MAX_WINDOW_S) or not math.isfinite(self.window):
            raise ScopeError(f"window must be in (0, {MAX_WINDOW_S:g}] s, got {self.window}")
        if not (1 <= self.buckets <= MAX_BUCKETS):
            raise ScopeError(f"buckets must be in [1, {MAX_BUCKETS}], got {self.buckets}")


@dataclass
class Frame:
    """One rendered window; every array has 2 * buckets points (see PbtScope.msg)."""

    stamp: float  # acquisition time of the newest sample [s since the epoch]
    t: np.ndarray  # s relative to stamp (<= 0)
    value: np.ndarray
    envelope: np.ndarray
    baseline: np.ndarray
    threshold: np.ndarray
    events: np.ndarray
    window: float  # s actually covered: buckets * bucket_samples / sample_rate
    bucket_samples: int
    sample_rate: float
    first_index: int  # first slot of the first bucket
    last_index: int  # newest sample (t = 0)
    missing: int  # slots of the window (up to last_index) without a sample
    event_count: int


class Scope:
    def __init__(self, config: ScopeConfig | None = None):
        self.config = config or ScopeConfig()
        self.config.check()
        self.rate = 0.0
        self.bucket = 0  # samples per bucket
        self.slots = 0  # ring length = buckets * bucket
        self.head = 0  # one past the newest index written
        self.stamp_head = 0.0  # acquisition time of index head - 1
        self.batches = 0
        self.resets = 0  # stream restarts and rate changes seen
        self.late = 0  # batches entirely older than the window
        self._events: dict[int, float] = {}  # peak index -> peak value
        self._alloc(0)

    # -- configuration ----------------------------------------------------------------------
    def _alloc(self, n: int) -> None:
        self.idx = np.full(n, -1, dtype=np.int64)
        self.val = np.zeros(n, dtype=np.float32)
        self.env = np.zeros(n, dtype=np.float32)
        self.base = np.zeros(n, dtype=np.float32)
        self.thr = np.zeros(n, dtype=np.float32)

    def _setup(self, rate: float) -> None:
        if not (rate > 0.0) or not math.isfinite(rate):
            raise ScopeError(f"sample_rate must be > 0, got {rate}")
        c = self.config
        self.bucket = max(1, round(c.window * rate / c.buckets))
        self.slots = self.bucket * c.buckets
        if self.slots > MAX_SLOTS:
            raise ScopeError(
                f"window {c.window:g} s at {rate:g} Hz needs {self.slots} slots (max {MAX_SLOTS})"
            )
        self.rate = rate
        self.head = 0
        self._events.clear()
        self._alloc(self.slots)

    def reconfigure(self, config: ScopeConfig) -> None:
        """New window or bucket count: the window starts empty again."""
        config.check()
        self.config = config
        if self.rate:
            self._setup(self.rate)

    # -- input ------------------------------------------------------------------------------
    def add_batch(
        self,
        first_index: int,
        values,
        envelope,
        baseline: float,
        threshold: float,
        sample_rate: float,
        stamp: float,
    ) -> None:
        """One PbtSamples batch; ``stamp`` is the acquisition time of values[0] [s]."""
        v = np.asarray(values, dtype=np.float32)
        e = np.asarray(envelope, dtype=np.float32)
        n = len(v)
        if len(e) != n:
            raise ScopeError(f"batch has {n} values but {len(e)} envelope samples")
        if first_index < 0:
            raise ScopeError(f"first_index must be >= 0, got {first_index}")
        if not (sample_rate > 0.0) or not math.isfinite(sample_rate):
            raise ScopeError(f"sample_rate must be > 0, got {sample_rate}")
        if sample_rate != self.rate:
            if self.rate:
                self.resets += 1
            self._setup(float(sample_rate))
        self.batches += 1
        if n == 0:
            return
        end = first_index + n
        if self.head and end <= self.head - self.slots:
            if self.head - end > 2 * self.slots:
                # far behind the window: the driver restarted its counter
                self.resets += 1
                self.head = 0
                self._events.clear()
            else:
                self.late += 1
                return
        lo = max(first_index, end - self.slots, self.head - self.slots)
        if lo < end:
            k = np.arange(lo, end, dtype=np.int64)
            pos = k % self.slots
            off = lo - first_index
            self.idx[pos] = k
            self.val[pos] = v[off:]
            self.env[pos] = e[off:]
            self.base[pos] = baseline
            self.thr[pos] = baseline + threshold
        if end >= self.head:
            self.head = end
            self.stamp_head = stamp + (n - 1) / self.rate
        floor = self.head - 2 * self.slots  # keep events a little beyond the window
        if self._events and min(self._events) < floor:
            self._events = {k: p for k, p in self._events.items() if k >= floor}

    def add_event(self, peak_index: int, peak: float) -> None:
        self._events[int(peak_index)] = float(peak)

    # -- output -----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.head > 0

    def render(self) -> Frame:
        """The window ending at the newest sample, as 2 * buckets time-ordered points."""
        if not self.ready:
            raise ScopeError("no samples yet")
        b, nb = self.bucket, self.config.buckets
        last = self.head - 1
        k_end = last // b
        first = (k_end - nb + 1) * b
        k = np.arange(first, first + nb * b, dtype=np.int64)
        pos = k % self.slots
        ok = (self.idx[pos] == k) & (k >= 0) & (k <= last)
        val = self.val[pos]
        hi = np.where(ok, val, -np.inf).reshape(nb, b)
        lo = np.where(ok, val, np.inf).reshape(nb, b)
        imax = hi.argmax(axis=1)
        imin = lo.argmin(axis=1)
        has = ok.reshape(nb, b).any(axis=1)
        # per bucket: (earlier, later) of the min and max positions
        a = np.minimum(imin, imax)
        z = np.maximum(imin, imax)
        row = np.arange(nb) * b
        # empty buckets: their two points at the bucket's start and end, values NaN
        a = np.where(has, a, 0)
        z = np.where(has, z, b - 1)
        sel = np.empty(2 * nb, dtype=np.int64)
        sel[0::2] = row + a
        sel[1::2] = row + z
        good = np.repeat(has, 2)
        p = pos[sel]

        def pick(arr: np.ndarray) -> np.ndarray:
            out = arr[p].astype(np.float32)
            out[~good] = np.nan
            return out

        value = pick(self.val)
        t = ((k[sel] - last) / self.rate).astype(np.float32)
        events = np.full(2 * nb, np.nan, dtype=np.float32)
        n_ev = 0
        for ki, peak in self._events.items():
            if first <= ki <= last:
                n_ev += 1
                j = (ki - first) // b
                if not has[j]:
                    continue
                # mark at the bucket's maximum point (the peak sample when it was received)
                jj = 2 * j + (0 if imax[j] <= imin[j] else 1)
                if math.isnan(events[jj]) or peak > events[jj]:
                    events[jj] = peak
        return Frame(
            stamp=self.stamp_head,
            t=t,
            value=value,
            envelope=pick(self.env),
            baseline=pick(self.base),
            threshold=pick(self.thr),
            events=events,
            window=nb * b / self.rate,
            bucket_samples=b,
            sample_rate=self.rate,
            first_index=int(first),
            last_index=int(last),
            missing=int((~ok[: last - first + 1]).sum()),
            event_count=n_ev,
        )


class EventHistory:
    """The last ``size`` events newest first (by peak index) and the rate over ``rate_window``."""

    def __init__(self, size: int = 20, rate_window: float = 10.0):
        if size < 1:
            raise ScopeError(f"history size must be >= 1, got {size}")
        if not rate_window > 0:
            raise ScopeError(f"rate_window must be > 0, got {rate_window}")
        self.size = size
        self.rate_window = rate_window
        self.total = 0
        self._recent: deque = deque(maxlen=size)  # (peak_index, stamp, payload), ascending
        self._times: deque[float] = deque()  # stamps inside the rate window
        self._seen: deque[int] = deque(maxlen=4 * size)
        self._first_time: float | None = None

    def add(self, peak_index: int, stamp: float, payload=None) -> bool:
        """False for a duplicate (transient-local replay after a reconnect)."""
        if peak_index in self._seen:
            return False
        self._seen.append(peak_index)
        self.total += 1
        if self._first_time is None:
            self._first_time = stamp
        self._recent.append((peak_index, stamp, payload))
        if len(self._recent) > 1 and self._recent[-2][0] > peak_index:
            self._recent = deque(sorted(self._recent, key=lambda r: r[0]), maxlen=self.size)
        self._times.append(stamp)
        return True

    def newest_first(self) -> list:
        return [r[2] for r in reversed(self._recent)]

    def rate(self, now: float) -> float:
        """Events per second with stamps in (now - rate_window, now]."""
        lo = now - self.rate_window
        while self._times and self._times[0] <= lo:
            self._times.popleft()
        n = sum(1 for t in self._times if t <= now)
        span = self.rate_window
        if self._first_time is not None:
            span = min(span, max(now - self._first_time, 1.0))
        return n / span
