"""Device microsecond clock -> host time, drift-corrected against arrival times. No ROS.

The scanner stamps each telegram with its own free-running µs counter (uint32, wraps every
71.6 min): the scan start and the moment of transmission. Arrival = transmission + network and
stack latency, and the latency is never negative, so the lowest (arrival - transmission) seen
is the best offset: the clock follows the lower envelope of the offsets. Drift (a few 10 ppm
between two quartz clocks) is tracked by estimating the slope of that envelope over windows, so
stamps neither jump back nor creep behind between the rare low-latency arrivals.
"""

from __future__ import annotations

from collections import deque

US_WRAP = 1 << 32


class DeviceClock:
    def __init__(self, window_s: float = 10.0, max_skew: float = 500e-6):
        self.window_s = window_s
        self.max_skew = max_skew
        self.reset()

    def reset(self) -> None:
        """Forget everything (reconnect: the device may have rebooted)."""
        self._last_us: int | None = None
        self._ext = 0  # wraps seen * 2^32
        self._t0: float | None = None  # device seconds of the first telegram (origin)
        self._offset: float | None = None  # host - device at device time _t_ref
        self._t_ref = 0.0
        self.skew = 0.0
        self._win: deque = deque()  # (device s, min offset in that sub-window)
        self._cur_start: float | None = None
        self._cur_min = 0.0
        self.resets = 0
        self.samples = 0

    def _unwrap(self, us: int) -> float:
        if self._last_us is not None:
            d = (us - self._last_us) % US_WRAP
            if d > US_WRAP // 2:  # went backwards: not a wrap; treat as a device reset
                self.resets += 1
                self._ext = 0
                self._last_us = None
                self._offset = None
                self._win.clear()
                self._cur_start = None
                self.skew = 0.0
            elif us < self._last_us:
                self._ext += US_WRAP
        self._last_us = us
        return (self._ext + us) * 1e-6

    def update(self, tx_us: int, arrival: float) -> None:
        """One telegram's transmission time [device µs] and its arrival [host s]."""
        t = self._unwrap(tx_us)
        self.samples += 1
        o = arrival - t
        if self._offset is None:
            self._offset, self._t_ref = o, t
            self._cur_start, self._cur_min = t, o
            return
        pred = self._offset + self.skew * (t - self._t_ref)
        if o < pred:  # a faster path than any before: the envelope is lower here
            self._offset, self._t_ref = o, t
        # sub-window minima to estimate the skew
        sub = self.window_s / 4
        if self._cur_start is None:
            self._cur_start, self._cur_min = t, o
        elif t - self._cur_start < sub:
            self._cur_min = min(self._cur_min, o)
        else:
            self._win.append((self._cur_start + sub / 2, self._cur_min))
            self._cur_start, self._cur_min = t, o
            while len(self._win) > 8:
                self._win.popleft()
            if len(self._win) >= 3:
                t0, m0 = self._win[0]
                t1, m1 = self._win[-1]
                if t1 > t0:
                    sk = (m1 - m0) / (t1 - t0)
                    self.skew = max(-self.max_skew, min(self.max_skew, sk))
                    # re-anchor the envelope on the newest sub-window minimum
                    self._offset, self._t_ref = m1, t1

    def to_host(self, dev_us: int) -> float:
        """Host time [s] of a device µs stamp near the last update (handles one wrap)."""
        if self._offset is None or self._last_us is None:
            raise RuntimeError("DeviceClock.to_host before update")
        d = (dev_us - self._last_us) % US_WRAP
        if d > US_WRAP // 2:
            d -= US_WRAP
        t = (self._ext + self._last_us + d) * 1e-6
        return t + self._offset + self.skew * (t - self._t_ref)
