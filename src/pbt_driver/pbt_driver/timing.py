"""Sample index and acquisition time: every nominal sample slot gets an index, lost ones too.

No ROS. The index counts nominal slots since start, across reconnects, so a gap in the index is
exactly the number of samples known lost. Sources of truth, best first:

* ``seq`` keys (binary frames, ascii 'seq,value'): gap = sequence delta - 1 (with wrap).
* ``time_us`` keys: gap = round(dt * rate) - 1.
* ``line`` keys (ascii 'value'): a malformed line is a one-slot gap; longer silences are found
  from timing: the count of received slots against the nominal-rate line anchored on the earliest
  arrivals (a *deficit* larger than ``gap_tolerance`` samples when the port is drained is a gap).

Acquisition time of slot i is ``anchor_t + (i - anchor_i) / rate``: the line through the
lowest-latency arrivals, re-anchored when the sensor runs ahead, drift-corrected once per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KEY_KINDS = ("line", "seq", "time_us")
US_MODULUS = 1 << 32


@dataclass
class Segment:
    """Contiguous slots first_index.. holding values; lost_before slots precede them."""

    lost_before: int
    first_index: int
    values: list


@dataclass
class ClockStats:
    seq_lost: int = 0  # slots lost per sequence / sensor-time / line-number gaps
    timing_lost: int = 0  # slots lost per timing (silence longer than the tolerance)
    reconnect_lost: int = 0  # slots lost across a reconnect (seq-resolved when possible)
    duplicates: int = 0  # frames whose key did not advance (dropped)
    key_resets: int = 0  # implausible key jumps (sensor restarted); gap taken from timing

    @property
    def lost(self) -> int:
        return self.seq_lost + self.timing_lost + self.reconnect_lost


class SampleClock:
    def __init__(
        self,
        rate: float,
        key_kind: str = "line",
        seq_modulus: int = 0,
        gap_tolerance: float = 0.02,
        drift_window: float = 1.0,
    ):
        if key_kind not in KEY_KINDS:
            raise ValueError(f"unknown key kind {key_kind!r}")
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.kind = key_kind
        self.modulus = int(seq_modulus) if key_kind == "seq" else 0
        if key_kind == "time_us":
            self.modulus = US_MODULUS
        self.tol = max(1.0, gap_tolerance * self.rate)
        self.window = drift_window
        self.next_index = 0
        self.stats = ClockStats()
        self.anchor_t: float | None = None
        self.anchor_i = 0
        self._last_key: int | None = None
        self._reconnect = False
        self._win_start = 0.0
        self._win_min = math.inf
        self._carry = 0

    @property
    def lost_total(self) -> int:
        return self.stats.lost

    def reconnected(self) -> None:
        """The port was reopened: the next sample's gap comes from timing (and its key)."""
        if self.anchor_t is not None:
            self._reconnect = True

    def time_of(self, index: int) -> float:
        if self.anchor_t is None:
            return 0.0
        return self.anchor_t + (index - self.anchor_i) / self.rate

    def _late(self, t_read: float) -> bool:
        return self.deficit(1, t_read) > self.tol

    def deficit(self, n_slots: int, t_read: float) -> float:
        """Slots missing if n_slots more arrive at t_read (about 0 normally, > tol on a gap)."""
        if self.anchor_t is None:
            return 0.0
        last = self.next_index + n_slots - 1
        return (t_read - self.anchor_t) * self.rate - (last - self.anchor_i)

    def _key_delta(self, key: int, last: int) -> int | None:
        """Slots advanced from last to key; None when implausible (reset/reorder)."""
        if self.kind == "time_us":
            d = (key - last) % US_MODULUS
            if d > US_MODULUS // 2:
                return None
            return round(d * 1e-6 * self.rate)
        if self.modulus:
            d = (key - last) % self.modulus
            return None if d > self.modulus // 2 else d
        d = key - last
        return None if d < 0 else d

    def _resolve(self, est: float, key: int | None) -> int:
        """Gap across a reconnect/reset: the key-consistent value nearest the timing estimate."""
        est_i = max(0, round(est))
        if key is None or self._last_key is None or self.kind == "line":
            return est_i
        if self.kind == "time_us":
            d = round(((key - self._last_key) % US_MODULUS) * 1e-6 * self.rate) - 1
            m = round(US_MODULUS * 1e-6 * self.rate)
        elif self.modulus:
            d = (key - self._last_key) % self.modulus - 1
            m = self.modulus
        else:
            d = key - self._last_key - 1
            m = 0
        if d < 0 and not m:
            return est_i
        if m:
            k = max(0, round((est_i - d) / m))
            d = d + k * m
            return d if d >= 0 else est_i
        return d if abs(d - est_i) <= max(5, 0.1 * est_i) else est_i

    def assign(self, values, keys, t_read: float, drained: bool = True) -> list[Segment]:
        """Index new samples; keys (same length) are seq / line / time_us values or None."""
        n = len(values)
        if n == 0:
            return []
        st = self.stats
        if (
            keys
            and n == 1
            and self._last_key is not None
            and not self._reconnect
            and not self._carry
            and self.kind != "time_us"
        ):
            # Fast path (one sample per read): the next key, nothing lost, no timing check due.
            k = keys[0]
            nxt = (self._last_key + 1) % self.modulus if self.modulus else self._last_key + 1
            if k == nxt and not (self.kind == "line" and drained and self._late(t_read)):
                self._last_key = k
                seg = Segment(0, self.next_index, [values[0]])
                self.next_index += 1
                self._track(t_read, drained)
                return [seg]
        pre = self._carry
        self._carry = 0
        lost = [0] * n
        drop: set[int] = set()
        if self.anchor_t is None:
            self.anchor_t = t_read
            self.anchor_i = n - 1
            self._win_start = t_read
        elif self._reconnect:
            self._reconnect = False
            g = self._resolve(self.deficit(n, t_read), keys[0] if keys else None)
            st.reconnect_lost += g
            pre += g
            if keys:
                self._last_key = None  # keys[0] already accounted for
        if keys:
            last = self._last_key
            for i in range(n):
                k = keys[i]
                if last is None:
                    last = k
                    continue
                d = self._key_delta(k, last)
                last = k
                if d is None:
                    st.key_resets += 1
                    extra = sum(lost) + pre + n - len(drop)
                    g = max(0, round(self.deficit(extra, t_read) - (n - 1 - i)))
                    st.timing_lost += g
                    lost[i] += g
                elif d == 0:
                    st.duplicates += 1
                    drop.add(i)
                elif d > 1:
                    st.seq_lost += d - 1
                    lost[i] += d - 1
            self._last_key = last
        if self.kind == "line" and drained and self.next_index > 0:
            dfc = self.deficit(n - len(drop) + sum(lost) + pre, t_read)
            if dfc > self.tol:
                g = round(dfc)
                st.timing_lost += g
                pre += g
        segs: list[Segment] = []
        idx = self.next_index
        cur: Segment | None = None
        for i in range(n):
            if i in drop:
                continue
            g = lost[i] + pre
            pre = 0
            if cur is None or g:
                idx += g
                cur = Segment(g, idx, [])
                segs.append(cur)
            cur.values.append(values[i])
            idx += 1
        self._carry = pre  # everything dropped: report the gap with the next sample
        self.next_index = idx
        if segs:
            self._track(t_read, drained)
        return segs

    def _track(self, t_read: float, drained: bool) -> None:
        """Re-anchor when samples arrive early; once per window remove the latency floor."""
        last = self.next_index - 1
        dfc = (t_read - self.anchor_t) * self.rate - (last - self.anchor_i)
        if dfc < 0:
            self.anchor_t = t_read
            self.anchor_i = last
            dfc = 0.0
        if drained:
            self._win_min = min(self._win_min, dfc)
        if t_read - self._win_start >= self.window:
            if math.isfinite(self._win_min) and self._win_min > 0.5:
                self.anchor_t += self._win_min / self.rate
            self._win_start = t_read
            self._win_min = math.inf
