"""Device microsecond clock -> host time, drift-corrected against arrival times. No ROS.

The scanner stamps each telegram with its own free-running µs counter (uint32, wraps every
71.6 min): the scan start and the moment of transmission. Arrival = transmission + network and
stack latency, and the latency is never negative, so the lowest (arrival - transmission) seen
is the best offset: the clock follows the lower envelope of the offsets. Drift (a few 10 ppm
between two quartz clocks) is tracked by estimating the slope of that envelope over windows, so
stamps neither jump back nor creep behind between the rare low-latency arrivals.

A device clock that jumps (a reboot, a counter reset, a firmware hiccup, or the host clock being
stepped) would carry every later stamp off by the jump. So each telegram's arrival is compared
with the arrival the model predicts for it; beyond ``jump_threshold`` the model is re-anchored on
that telegram and the jump counted, and a scan-start counter that does not precede its own
transmission by at most ``jump_threshold`` is not trusted (the scan is stamped at the
transmission). A stamp therefore lies within 2 * ``jump_threshold`` before its arrival.
"""

from __future__ import annotations

from collections import deque

US_WRAP = 1 << 32


class DeviceClock:
    def __init__(self, window_s: float = 10.0, max_skew: float = 500e-6,
                 jump_threshold: float = 1.0):  # fmt: skip
        self.window_s = window_s
        self.max_skew = max_skew
        self.jump_threshold = jump_threshold
        self.reset()

    def reset(self) -> None:
        """Forget everything, counters included."""
        self.reanchor()
        self.resets = 0  # the counter went backwards (device reset or a jump back)
        self.jumps = 0  # re-anchored after a jump either way
        self.last_jump = 0.0  # [s] device clock against the host: > 0 ahead, < 0 behind
        self.inconsistent_starts = 0  # scan-start counter not just before the transmission
        self.samples = 0

    def reanchor(self) -> None:
        """Forget the model, keep the counters (reconnect: the device may have rebooted)."""
        self._last_us: int | None = None
        self._ext = 0  # wraps seen * 2^32
        self._offset: float | None = None  # host - device at device time _t_ref
        self._t_ref = 0.0
        self.skew = 0.0
        self._win: deque = deque()  # (device s, min offset in that sub-window)
        self._cur_start: float | None = None
        self._cur_min = 0.0

    def _jumped(self, us: int, arrival: float) -> float | None:
        """The jump [s] when this transmission stamp does not fit the model, else None."""
        if self._offset is None or self._last_us is None:
            return None
        d = (us - self._last_us) % US_WRAP
        back = d > US_WRAP // 2
        if back:
            d -= US_WRAP
        t = (self._ext + self._last_us + d) * 1e-6
        late = arrival - (t + self._offset + self.skew * (t - self._t_ref))
        if back or abs(late) > self.jump_threshold:
            self.resets += back
            return -late
        return None

    def _unwrap(self, us: int) -> float:
        if self._last_us is not None and us < self._last_us:
            self._ext += US_WRAP
        self._last_us = us
        return (self._ext + us) * 1e-6

    def update(self, tx_us: int, arrival: float) -> float | None:
        """One telegram's transmission time [device µs] and its arrival [host s].

        Returns the jump [s] when this telegram re-anchored the model after a device clock jump,
        else None.
        """
        jump = self._jumped(tx_us, arrival)
        if jump is not None:
            self.jumps += 1
            self.last_jump = jump
            self.reanchor()
        t = self._unwrap(tx_us)
        self.samples += 1
        o = arrival - t
        if self._offset is None:
            self._offset, self._t_ref = o, t
            self._cur_start, self._cur_min = t, o
            return jump
        pred = self._offset + self.skew * (t - self._t_ref)
        if o < pred:  # a faster path than any before: the envelope is lower here
            self._offset, self._t_ref = o, t
        self._track_skew(t, o)
        return jump

    def _track_skew(self, t: float, o: float) -> None:
        """Sub-window minima of the offset; their slope is the skew."""
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

    def stamp(self, start_us: int, tx_us: int, arrival: float) -> tuple[float, float | None]:
        """(host time of the scan start, the jump [s] this telegram re-anchored on or None).

        The scan start is trusted only when it precedes the transmission by at most
        ``jump_threshold``; otherwise the scan is stamped at its transmission.
        """
        jump = self.update(tx_us, arrival)
        age = (tx_us - start_us) % US_WRAP
        if age > US_WRAP // 2:
            age -= US_WRAP
        if not 0 <= age * 1e-6 <= self.jump_threshold:
            self.inconsistent_starts += 1
            start_us = tx_us
        return min(self.to_host(start_us), arrival), jump
