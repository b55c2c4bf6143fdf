"""Sample index and acquisition time: every nominal sample slot gets an index, lost ones too.

No ROS. The index counts nominal slots since start, across reconnects (and across restarts when
the node resumes from a saved state), so a gap in the index is exactly the number of samples
known lost. Losses are booked from evidence only:

* ``seq`` keys (binary frames, ascii 'seq,value'): gap = sequence delta - 1 (with wrap).
* ``time_us`` keys: gap = round(dt * rate) - 1.
* ``line`` keys (ascii 'value'): nothing in a line says which slot it is. A malformed line is a
  *candidate*: a corrupted sample (one lost slot) or inserted noise (no slot). Timing decides:
  samples are placed on the nominal-rate line through the lowest-latency arrivals; once every
  sample of a resolution window (``RES_WINDOW``) arrived at least k slots behind that line, k of
  the pending candidates were slots (booked), and candidates older than the window that the
  timing did not need were noise. A silence longer than ``gap_tolerance`` is *held*, not booked:
  the samples after it wait (unindexed) until the backlog has had time to arrive; what is still
  missing once arrivals no longer catch up (``HOLD_SETTLE``, at most ``HOLD_MAX``) is lost,
  a backlog that arrives in time costs nothing ("late is not lost").

Acquisition time of slot i is ``anchor_t + (i - anchor_i) / rate``: the line through the
lowest-latency arrivals, re-anchored when the sensor runs ahead, drift-corrected once per window
(never by slots that pending candidates may still claim).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

KEY_KINDS = ("line", "seq", "time_us")
US_MODULUS = 1 << 32


@dataclass
class Segment:
    """Contiguous slots first_index.. holding values; lost_before slots precede them."""

    lost_before: int
    first_index: int
    values: list


RES_WINDOW = 0.25  # s: line-kind candidates are resolved against timing this often
HOLD_SETTLE = 0.1  # s without catch-up before a held silence is booked as lost
HOLD_MAX = 1.0  # s: a held silence is decided at the latest after this long
TAIL_MIN_READS = 8  # reads after the latest candidate that make its latency floor credible


@dataclass
class ClockStats:
    seq_lost: int = 0  # slots lost per sequence / sensor-time gaps, or timing-confirmed bad lines
    timing_lost: int = 0  # slots lost per timing (silence longer than the tolerance)
    reconnect_lost: int = 0  # slots lost across a reconnect (seq-resolved when possible)
    restart_lost: int = 0  # slots lost while the process was down (resumed from a saved state)
    prior_lost: int = 0  # lost_total of the runs before a resume
    duplicates: int = 0  # frames whose key did not advance (dropped)
    key_resets: int = 0  # implausible key jumps (sensor restarted); gap taken from timing
    not_slots: int = 0  # 'value' layout: malformed lines timing showed were not sample slots
    holds: int = 0  # silences held for evidence
    late_not_lost: int = 0  # ... whose backlog arrived: nothing booked

    @property
    def lost(self) -> int:
        return (
            self.seq_lost + self.timing_lost + self.reconnect_lost + self.restart_lost
            + self.prior_lost
        )  # fmt: skip


@dataclass
class _Hold:
    t0: float
    best: float  # lowest deficit seen while holding (missing slots + latency floor)
    progress_t: float  # last time the deficit dropped by a slot or more (backlog arriving)
    reads: list = field(default_factory=list)
    n: int = 0


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
        self._restart = False
        self._win_start = 0.0
        self._win_min = math.inf
        self._carry = 0
        self._cand = 0  # line kind: malformed lines not yet resolved
        self._cand_old = 0  # ... of which older than the current resolution window
        self._res_start = 0.0
        self._res_min = math.inf
        self._cand_t = 0.0  # read time of the latest candidate
        self._tail_min = math.inf  # lowest deficit since the latest candidate
        self._tail_n = 0  # drained reads since the latest candidate
        self._hold: _Hold | None = None

    @property
    def lost_total(self) -> int:
        return self.stats.lost

    @property
    def undecided(self) -> bool:
        """A held silence or malformed lines still to judge: :meth:`poll` has work to do even
        when no data arrives."""
        return self._hold is not None or self._cand != 0

    @property
    def holding(self) -> int:
        """Samples received but held (not indexed yet) while a silence is judged."""
        return self._hold.n if self._hold is not None else 0

    def reconnected(self) -> None:
        """The port was reopened: the next sample's gap comes from timing (and its key)."""
        if self.anchor_t is not None:
            self._reconnect = True
        # Pending candidates' slots, if any, are inside the timing estimate of the gap.
        self._cand = self._cand_old = 0

    def time_of(self, index: int) -> float:
        if self.anchor_t is None:
            return 0.0
        return self.anchor_t + (index - self.anchor_i) / self.rate

    def deficit(self, n_slots: int, t_read: float) -> float:
        """Slots missing if n_slots more arrive at t_read (about 0 normally, > tol on a gap)."""
        if self.anchor_t is None:
            return 0.0
        last = self.next_index + n_slots - 1
        return (t_read - self.anchor_t) * self.rate - (last - self.anchor_i)

    # -- restart ------------------------------------------------------------------------------
    def state(self, wall_minus_mono: float) -> dict | None:
        """What a restarted process needs to go on counting (None before the first sample)."""
        if self.anchor_t is None:
            return None
        return {
            "next_index": self.next_index + self._carry,
            "last_key": self._last_key if self.kind != "line" else None,
            "kind": self.kind,
            "modulus": self.modulus,
            "rate": self.rate,
            "anchor_wall": self.anchor_t + wall_minus_mono,
            "anchor_i": self.anchor_i,
            "lost_total": self.lost_total + self._carry,
        }

    def resume(self, state: dict, wall_minus_mono: float) -> bool:
        """Go on from a previous run's state: the first sample's gap is the restart loss (exact
        with sequence keys, a timing estimate without). False when the state does not fit."""
        try:
            if (state["kind"], state["modulus"], state["rate"]) != (
                self.kind, self.modulus, self.rate
            ):  # fmt: skip
                return False
            self.next_index = int(state["next_index"])
            self.anchor_i = int(state["anchor_i"])
            self.anchor_t = float(state["anchor_wall"]) - wall_minus_mono
            key = state.get("last_key")
            self._last_key = int(key) if key is not None else None
            self.stats.prior_lost = int(state["lost_total"])
        except (KeyError, TypeError, ValueError):
            return False
        self._reconnect = self._restart = True
        return True

    # -- indexing -----------------------------------------------------------------------------
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
        """Index new samples; keys (same length) are seq / line / time_us values or None.

        Line keys only: a read that leaves the stream more than the tolerance behind the nominal
        line is held (returns []) until the evidence is in; :meth:`poll` decides on time."""
        n = len(values)
        if not n:
            return []
        h = self._hold
        if h is None:
            a_t = self.anchor_t
            if (
                not drained
                or self.kind != "line"
                or a_t is None
                or self._reconnect
                or (t_read - a_t) * self.rate
                - (self.next_index + n + self._carry - 1 - self.anchor_i)
                <= self.tol
            ):
                return self._assign(values, keys, t_read, drained)
            self.stats.holds += 1
            h = self._hold = _Hold(t_read, math.inf, t_read)
        h.reads.append((values, keys, t_read, drained))
        h.n += n
        dfc = self.deficit(h.n + self._carry, t_read)
        if dfc <= self.tol:
            self.stats.late_not_lost += 1
            return self._release(0)
        if drained and dfc < h.best:
            if dfc < h.best - 1.0:
                h.progress_t = t_read
            h.best = dfc
        return self.poll(t_read)

    def assign_one(
        self, value: float, key: int, t_read: float, drained: bool = True
    ) -> int | None:
        """One sample whose key is the next one, nothing pending: its index, with the state
        assign() would leave. None, with nothing changed, when assign() has more to decide."""
        last = self._last_key
        if (
            last is None
            or self._hold is not None
            or self._reconnect
            or self._carry
            or self.kind == "time_us"
        ):
            return None
        a_t = self.anchor_t
        if a_t is None:
            return None
        m = self.modulus
        if key != ((last + 1) % m if m else last + 1):
            return None
        i = self.next_index
        if (
            drained
            and self.kind == "line"
            and (t_read - a_t) * self.rate - (i - self.anchor_i) > self.tol
        ):
            return None  # a silence: assign() holds it
        self._last_key = key
        self.next_index = i + 1
        self._track(t_read, drained)
        return i

    def poll(self, t_now: float) -> list[Segment]:
        """Decide a held silence once arrivals stopped catching up (or HOLD_MAX passed)."""
        h = self._hold
        if h is None:
            if self._cand and t_now - self._cand_t >= RES_WINDOW:
                self._resolve_quiet()  # the stream went quiet
            return []
        if t_now - h.progress_t < HOLD_SETTLE and t_now - h.t0 < HOLD_MAX:
            return []
        return self.release()

    def release(self) -> list[Segment]:
        """Decide now with the evidence so far (poll, port down)."""
        h = self._hold
        if h is None:
            if self._cand:
                self._resolve_quiet()
            return []
        g = max(0, round(h.best)) if math.isfinite(h.best) else 0
        return self._release(g)

    def take_carry(self) -> int:
        """Slots booked lost with no sample after them yet (the stream stopped): the caller
        reports them now; the index moves past them."""
        k = self._carry
        if k and self._hold is None:
            self._carry = 0
            self.next_index += k
            return k
        return 0

    def _release(self, lost: int) -> list[Segment]:
        reads = self._hold.reads
        self._hold = None
        if lost:
            self.stats.timing_lost += lost
            self._carry += lost
        segs: list[Segment] = []
        for values, keys, t_read, drained in reads:
            segs += self._assign(values, keys, t_read, drained)
        return segs

    def _assign(self, values, keys, t_read: float, drained: bool) -> list[Segment]:
        n = len(values)
        if (
            keys
            and n == 1
            and self._last_key is not None
            and not self._reconnect
            and not self._carry
            and self.kind != "time_us"
        ):
            # Fast path (one sample per read): the next key, nothing lost.
            k = keys[0]
            nxt = (self._last_key + 1) % self.modulus if self.modulus else self._last_key + 1
            if k == nxt:
                self._last_key = k
                seg = Segment(0, self.next_index, [values[0]])
                self.next_index += 1
                self._track(t_read, drained)
                return [seg]
        pre = self._carry
        self._carry = 0
        if self.anchor_t is None:
            self.anchor_t = t_read
            self.anchor_i = n - 1
            self._win_start = t_read
        elif self._reconnect:
            pre += self._reconnect_gap(n, keys, t_read)
        lost = [0] * n
        drop: set[int] = set()
        if keys:
            self._key_gaps(keys, lost, drop, pre, t_read)
        segs = self._segments(values, lost, drop, pre)
        if segs:
            self._track(t_read, drained)
        return segs

    def _reconnect_gap(self, n: int, keys, t_read: float) -> int:
        """Slots lost across a reconnect (or restart) before this read's first sample."""
        self._reconnect = False
        g = self._resolve(self.deficit(n, t_read), keys[0] if keys else None)
        if self._restart:
            self._restart = False
            self.stats.restart_lost += g
        else:
            self.stats.reconnect_lost += g
        if keys:
            self._last_key = None  # keys[0] already accounted for
        return g

    def _key_gaps(self, keys, lost: list, drop: set, pre: int, t_read: float) -> None:
        """Book what the keys say: lost[i] slots before sample i, duplicates into drop, and
        (line keys) malformed lines as candidates for timing to decide."""
        st = self.stats
        line = self.kind == "line"
        key_delta = self._key_delta
        n = len(keys)
        last = self._last_key
        for i in range(n):
            k = keys[i]
            if last is None:
                last = k
                continue
            d = key_delta(k, last)
            last = k
            if d == 1:
                continue
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
                if line:
                    self._add_candidates(d - 1, t_read)
                else:
                    st.seq_lost += d - 1
                    lost[i] += d - 1
        self._last_key = last

    def _add_candidates(self, k: int, t_read: float) -> None:
        """Malformed lines between two samples: slots or noise? Timing decides."""
        if not self._cand:
            self._res_start = t_read
            self._res_min = math.inf
            self._cand_old = 0
        self._cand += k
        self._cand_t = t_read
        self._tail_min = math.inf
        self._tail_n = 0

    def _segments(self, values, lost: list, drop: set, pre: int) -> list[Segment]:
        """Contiguous runs of the read's samples; a run starts after every gap."""
        segs: list[Segment] = []
        idx = self.next_index
        cur: Segment | None = None
        for i in range(len(values)):
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
        return segs

    def _track(self, t_read: float, drained: bool) -> None:
        """Re-anchor when samples arrive early; resolve candidates; once per window remove the
        latency floor (clock drift)."""
        last = self.next_index - 1
        dfc = (t_read - self.anchor_t) * self.rate - (last - self.anchor_i)
        if dfc < 0:
            self.anchor_t = t_read
            self.anchor_i = last
            dfc = 0.0
        if drained and dfc < self._win_min:
            self._win_min = dfc
        if self._cand:
            if drained:
                self._res_min = min(self._res_min, dfc)
                self._tail_n += 1
                self._tail_min = min(self._tail_min, dfc)
            if t_read - self._res_start >= RES_WINDOW:
                if t_read - self._cand_t >= RES_WINDOW:  # a whole window after the latest one
                    self._resolve_candidates(self._tail_min, True)
                else:
                    self._resolve_candidates(self._res_min, False)
                self._res_start = t_read
        if t_read - self._win_start >= self.window:
            m = self._win_min
            if math.isfinite(m):
                if self._cand:  # slots the pending candidates may still claim stay visible
                    m -= min(self._cand, max(0, math.floor(m + 0.5)))
                if m > 0.5:
                    self.anchor_t += m / self.rate
                    self._res_min -= m
                    self._tail_min -= m
            self._win_start = t_read
            self._win_min = math.inf

    def _resolve_quiet(self) -> None:
        """The stream stopped: decide every pending candidate with what followed the latest one,
        if that is enough to judge the latency floor (else the window's lower bound)."""
        m = (
            self._tail_min
            if self._tail_n >= TAIL_MIN_READS
            else min(self._tail_min, self._res_min)
        )
        self._resolve_candidates(m, True)

    def _resolve_candidates(self, m: float, all_seen: bool) -> None:
        """m: lowest deficit over reads that followed the candidates (the slots still missing
        plus the latency floor); all_seen: m followed every pending candidate."""
        if not math.isfinite(m):
            return  # no drained read in the window: no evidence yet
        st = self.stats
        k = min(self._cand, max(0, math.floor(m + 0.5)))
        if k:
            st.seq_lost += k
            self._carry += k
            self._win_min -= k
            self._tail_min -= k
        noise = self._cand - k if all_seen else max(0, self._cand_old - k)
        st.not_slots += noise
        self._cand -= k + noise
        self._cand_old = self._cand
        self._res_min = math.inf
