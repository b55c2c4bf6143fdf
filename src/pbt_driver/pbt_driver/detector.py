"""Baseline tracking, attack/release envelope and pulse event detection; no ROS.

All state lives in :class:`Detector`, so feeding a stream in any chunking gives bit-identical
envelopes and events. The filters are recursive (each output depends on the previous one), so
the inner loop is per sample over plain floats: at the few samples per wake-up that low latency
implies, that is cheaper than numpy's per-call overhead (about 1 us per sample).

Rules (signal e = envelope - baseline):
* idle: an event starts at the first sample with e > threshold (outside the dead time); the
  baseline (EMA, ``baseline_tau``; a cumulative mean during the first ``baseline_tau``) only
  follows idle samples and is frozen during an event;
* active: the event ends at the first sample with e < threshold - hysteresis; it is kept when it
  lasted >= ``min_width`` and force-closed (dropped, re-baselined) past ``max_width``;
* the peak (largest raw value) is *confirmed* once ``confirm_samples`` samples followed it without
  exceeding it and the event is already ``min_width`` long: that is when a pulse may be commanded;
* missing slots (:meth:`Detector.gap`): up to ``gap_bridge`` of them are bridged by linear
  interpolation (an open event goes on and counts them in ``missing_slots``; interpolated
  values never raise the peak of an open event); a longer gap closes an open event flagged
  ``gap_closed`` (published if confirmed) and no event starts again before the envelope has
  fallen below the end level, so the tail of the same pulse never becomes a second event;
* values the float32 messages cannot carry never enter the state (held at the previous value),
  and a state that is not finite anyway is reset at the end of the chunk (counted).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

PRE_TRIGGER = 32  # samples kept before an event for the rise time
MAX_KEPT = 8192  # samples of one event kept for the rise time
F32_MAX = 3.4028234663852886e38  # largest finite float32 (the messages' value type)
# Upper bounds that keep every product with the sample rate (<= 1e6 Hz) a modest integer and
# every filter constant finite (a 1e306 s width would raise OverflowError on the reader thread).
MAX_SECONDS = 3600.0  # baseline_tau, attack_tau, release_tau
MAX_WIDTH_S = 600.0  # min_width, max_width, dead_time
MAX_LEVEL = 1e38  # threshold, hysteresis [units]: below float32's range
MAX_GAP_BRIDGE = 10_000  # slots


class DetectorConfigError(ValueError):
    """A detector parameter combination is invalid."""


@dataclass(frozen=True)
class DetectorParams:
    threshold: float = 20.0  # an event starts when envelope - baseline exceeds it [units]
    hysteresis: float = 5.0  # ... and ends below threshold - hysteresis [units]
    baseline_tau: float = 2.0  # baseline EMA over idle samples [s]
    attack_tau: float = 0.0  # envelope attack [s] (0 = instant)
    release_tau: float = 0.002  # envelope release [s]
    min_width: float = 0.0025  # shorter events are rejected [s]
    max_width: float = 1.0  # longer ones are dropped and the baseline taken again [s]
    dead_time: float = 0.005
    confirm_samples: int = 2
    gap_bridge: int = 4  # missing slots bridged inside an event (and while idle)

    def check(self) -> None:
        if not 0 < self.threshold <= MAX_LEVEL:
            raise DetectorConfigError(f"threshold must be > 0 and <= {MAX_LEVEL:g}")
        if not 0 <= self.hysteresis < self.threshold:
            raise DetectorConfigError("hysteresis must be >= 0 and < threshold")
        for name, hi in (("baseline_tau", MAX_SECONDS), ("attack_tau", MAX_SECONDS),
                         ("release_tau", MAX_SECONDS), ("min_width", MAX_WIDTH_S),
                         ("max_width", MAX_WIDTH_S), ("dead_time", MAX_WIDTH_S)):  # fmt: skip
            v = getattr(self, name)
            if not 0 <= v <= hi:
                raise DetectorConfigError(f"{name} must be >= 0 and <= {hi:g} s")
        if not self.baseline_tau > 0:
            raise DetectorConfigError("baseline_tau must be > 0")
        if not self.max_width > self.min_width:
            raise DetectorConfigError("max_width must be > min_width")
        if not 0 <= self.confirm_samples <= 10_000:
            raise DetectorConfigError("confirm_samples must be in 0..10000")
        if not 0 <= self.gap_bridge <= MAX_GAP_BRIDGE:
            raise DetectorConfigError(f"gap_bridge must be in 0..{MAX_GAP_BRIDGE}")


@dataclass
class Event:
    start_index: int
    end_index: int
    peak_index: int
    peak: float
    baseline: float
    width: float = 0.0  # s above threshold - hysteresis
    area: float = 0.0  # sum(value - baseline) / rate
    rise_time: float = 0.0  # 10 % -> 90 % of the leading edge [s]
    confirm_index: int = -1  # sample at which the peak was confirmed
    confirm_peak: float = 0.0  # the peak as it was at confirmation (what the pulse maps from)
    confirm_peak_index: int = -1
    missing_slots: int = 0  # slots inside the event that never arrived (bridged)
    gap_closed: bool = False  # ended by a gap longer than gap_bridge, not by the signal
    # The pulse commanded for it (filled by the node / output backend).
    pulse: object | None = field(default=None, compare=False)

    @property
    def amplitude(self) -> float:
        return self.peak - self.baseline

    @property
    def confirm_amplitude(self) -> float:
        return self.confirm_peak - self.baseline


@dataclass
class DetectorStats:
    events: int = 0
    rejected_short: int = 0
    overlong: int = 0
    aborted_by_gap: int = 0  # unconfirmed events cut by a gap > gap_bridge (not published)
    closed_by_gap: int = 0  # confirmed events cut by a gap > gap_bridge (published, flagged)
    bridged_gaps: int = 0
    bridged_slots: int = 0
    bad_values: int = 0  # values beyond float32 reaching the detector (held)
    resets: int = 0  # non-finite state found and reset
    started: int = 0  # events started
    crossings: int = 0  # idle rising crossings of the threshold (started or blocked)


def _alpha(tau: float, dt: float) -> float:
    return 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)


class Detector:
    """process(values, first_index) -> (envelope list, [("confirm"|"close", Event), ...])."""

    def __init__(self, params: DetectorParams, rate: float):
        params.check()
        self.rate = float(rate)
        self.stats = DetectorStats()
        self._reset_state()
        self.set_params(params)

    def _reset_state(self) -> None:
        self.baseline: float | None = None
        self.env = 0.0
        self._ev: Event | None = None
        self._n = 0
        self._sum = 0.0
        self._kept: list[float] = []
        self._pre: deque[float] = deque(maxlen=PRE_TRIGGER)
        self._dead_until = -1
        self._pre_len = 0
        self._warm = 0  # idle samples seen, up to baseline_tau worth (warm-up averaging)
        self._last = None  # last real value (the left end of a bridge)
        self._bridge = 0  # missing slots to interpolate before the next value
        self._tail = False  # a gap closed an event: wait for the end level before re-arming
        self._tail_n = 0  # samples a start was blocked by the tail (a step if > max_width)
        self._above = False

    def set_params(self, p: DetectorParams) -> None:
        """Takes effect from the next sample; state (baseline, envelope, open event) is kept."""
        p.check()
        dt = 1.0 / self.rate
        self.params = p
        self._a_base = _alpha(p.baseline_tau, dt)
        self._a_att = _alpha(p.attack_tau, dt)
        self._a_rel = _alpha(p.release_tau, dt)
        self._min_n = max(1, math.ceil(p.min_width * self.rate - 1e-9))
        self._max_n = max(self._min_n + 1, math.floor(p.max_width * self.rate + 1e-9))
        self._dead_n = round(p.dead_time * self.rate)
        self._warm_n = max(1, round(p.baseline_tau * self.rate))

    def seed(self, baseline: float, envelope: float, last: float | None) -> None:
        """Continue a stream joined in the middle (a recording that starts after the driver):
        the tracked baseline and envelope as the driver had them, warm-up done, ``last`` the
        latest real value (the left end of a bridge over a following gap)."""
        self.baseline = float(baseline)
        self.env = float(envelope)
        self._warm = self._warm_n
        self._last = None if last is None else float(last)

    @property
    def active(self) -> bool:
        return self._ev is not None

    @property
    def healthy(self) -> bool:
        b = self.baseline
        return math.isfinite(self.env) and (b is None or math.isfinite(b))

    def gap(self, lost: int) -> list[tuple[str, Event]]:
        """Slots were lost. Up to gap_bridge: interpolated with the next value. Longer: an open
        event is closed (published flagged if confirmed, else aborted) and not re-opened on the
        tail of the same pulse."""
        out: list[tuple[str, Event]] = []
        if lost <= 0:
            return out
        if self._bridge + lost <= self.params.gap_bridge and self._last is not None:
            self._bridge += lost
            return out
        self._bridge = 0
        ev = self._ev
        if ev is not None:
            ev.gap_closed = True
            if ev.confirm_index >= 0:
                self.stats.closed_by_gap += 1
                self._close(ev, out)
            else:
                self.stats.aborted_by_gap += 1
            self._ev = None
            self._tail = True
            self._tail_n = 0
        self._pre.clear()
        self._last = None
        return out

    def process(self, values, first_index: int) -> tuple[list[float], list[tuple[str, Event]]]:
        out: list[tuple[str, Event]] = []
        env_out: list[float] = []
        if not len(values):
            return env_out, out
        g = self._bridge
        if g:
            self._bridge = 0
            x0, x1 = self._last, values[0]
            if -F32_MAX <= x1 <= F32_MAX:
                synth = [x0 + (x1 - x0) * k / (g + 1) for k in range(1, g + 1)]
                self._run(synth, first_index - g, [], out, True)
                self.stats.bridged_gaps += 1
                self.stats.bridged_slots += g
        self._run(values, first_index, env_out, out, False)
        if not self.healthy:
            self._recover()
        return env_out, out

    def process_one(self, x: float, index: int) -> tuple[float, list[tuple[str, Event]]]:
        """process([x], index) for the one-sample reads of a low-latency port: the envelope
        value and the notes, without the per-chunk lists."""
        if self._bridge:
            env, out = self.process([x], index)
            return env[0], out
        out: list[tuple[str, Event]] = []
        env_out: list[float] = []
        self._run((x,), index, env_out, out, False)
        if not self.healthy:
            self._recover()
        return env_out[0], out

    def _recover(self) -> None:
        """Should not happen (inputs are bounded): reset rather than stay poisoned."""
        st = self.stats
        st.resets += 1
        self._reset_state()
        self.stats = st

    def _run(self, values, first_index: int, env_out: list, out: list, synthetic: bool) -> None:
        """Alternate the two per-state loops; each runs until its state changes, so the
        per-sample work stays in one tight loop over locals."""
        it = iter(values)
        idx: int | None = first_index - 1
        while idx is not None:
            if self._ev is None:
                idx = self._run_idle(it, idx, env_out, out, synthetic)
            else:
                idx = self._run_active(it, idx, env_out, out, synthetic)

    def _run_idle(self, it, idx: int, env_out: list, out: list, synthetic: bool) -> int | None:
        """Idle samples from the iterator (idx: the previous sample's index): envelope,
        threshold crossings, baseline. Returns the index of the sample that started an event,
        None once the iterator is exhausted."""
        push = env_out.append
        p = self.params
        thr = p.threshold
        lo = thr - p.hysteresis
        a_base, a_att, a_rel = self._a_base, self._a_att, self._a_rel
        base, env, last = self.baseline, self.env, self._last
        pre = self._pre
        warm, warm_n = self._warm, self._warm_n
        above, tail = self._above, self._tail
        dead_until = self._dead_until
        fmax, fmin = F32_MAX, -F32_MAX
        for x in it:
            idx += 1
            if not fmin <= x <= fmax:
                x = self._held_value(last, base)
            last = x
            if base is None:
                base = env = x
            if x > env:
                env += a_att * (x - env)
            else:
                env += a_rel * (x - env)
            push(env)
            e = env - base
            if e > thr:
                if not above:
                    above = True
                    self.stats.crossings += 1
                if idx > dead_until and not tail:
                    self.baseline, self.env, self._last = base, env, last
                    self._warm, self._above, self._tail = warm, above, tail
                    self._start(x, idx, synthetic, out)
                    return idx
                if tail:
                    self._tail_n += 1
                    if self._tail_n > self._max_n:  # not a pulse's tail but a step: follow it
                        tail = False
                        self.stats.overlong += 1
                        base = env
            else:
                above = False
                if tail and e < lo:
                    tail = False
            if warm < warm_n:
                # Warm-up: a cumulative mean, so a start inside a pulse or far from the
                # baseline does not blind the detector for several baseline_tau.
                warm += 1
                base += max(a_base, 1.0 / warm) * (x - base)
            else:
                base += a_base * (x - base)
            pre.append(x)
        self.baseline, self.env, self._last = base, env, last
        self._warm, self._above, self._tail = warm, above, tail
        return None

    def _start(self, x: float, idx: int, synthetic: bool, out: list) -> None:
        base = self.baseline
        ev = self._ev = Event(idx, idx, idx, x, base)
        self.stats.started += 1
        self._n = 1
        self._sum = x - base
        pre = self._pre
        self._kept = [*pre, x]
        self._pre_len = len(pre)
        if synthetic:
            ev.missing_slots = 1
        if self.params.confirm_samples == 0 and self._min_n <= 1:
            self._confirm(ev, idx, out)

    def _run_active(self, it, idx: int, env_out: list, out: list, synthetic: bool) -> int | None:
        """Samples of the open event from the iterator: envelope, peak, confirmation. Returns
        the index of the sample that ended it, None once the iterator is exhausted."""
        push = env_out.append
        p = self.params
        lo = p.threshold - p.hysteresis
        a_att, a_rel = self._a_att, self._a_rel
        confirm, min_n, max_n = p.confirm_samples, self._min_n, self._max_n
        env, last = self.env, self._last
        ev = self._ev
        evb = ev.baseline
        cnt, total, kept = self._n, self._sum, self._kept
        fmax, fmin = F32_MAX, -F32_MAX
        for x in it:
            idx += 1
            if not fmin <= x <= fmax:
                x = self._held_value(last, self.baseline)
            last = x
            if x > env:
                env += a_att * (x - env)
            else:
                env += a_rel * (x - env)
            push(env)
            if env - evb < lo:
                self.env, self._last, self._n, self._sum = env, last, cnt, total
                self._end(ev, idx, out)
                self._idle_after_end(x)
                return idx
            cnt += 1
            total += x - evb
            if len(kept) < MAX_KEPT:
                kept.append(x)
            if synthetic:
                ev.missing_slots += 1
            elif x > ev.peak:
                ev.peak = x
                ev.peak_index = idx
            elif ev.confirm_index < 0 and idx - ev.peak_index >= confirm and cnt >= min_n:
                self._confirm(ev, idx, out)
            if ev.confirm_index < 0 and confirm == 0 and cnt >= min_n:
                self._confirm(ev, idx, out)
            if cnt > max_n:
                self.stats.overlong += 1
                self.baseline = env  # a step, not a pulse: follow it
                self._ev = None
                self._pre.clear()
                self.env, self._last, self._n, self._sum = env, last, cnt, total
                return idx
        self.env, self._last, self._n, self._sum = env, last, cnt, total
        return None

    def _end(self, ev: Event, idx: int, out: list) -> None:
        """The signal fell below the end level at idx: keep the event or reject it as short."""
        if self._n >= self._min_n:
            if ev.confirm_index < 0:
                self._confirm(ev, idx, out)
            self._close(ev, out)
        else:
            self.stats.rejected_short += 1
        self._ev = None
        self._dead_until = idx + self._dead_n

    def _idle_after_end(self, x: float) -> None:
        """The idle rules for the sample that ended an event (inside the dead time, so it starts
        nothing; the tail is never armed while an event is open)."""
        base = self.baseline
        if self.env - base > self.params.threshold:
            if not self._above:
                self._above = True
                self.stats.crossings += 1
        else:
            self._above = False
        if self._warm < self._warm_n:
            self._warm += 1
            base += max(self._a_base, 1.0 / self._warm) * (x - base)
        else:
            base += self._a_base * (x - base)
        self.baseline = base
        self._pre.append(x)

    def _held_value(self, last: float | None, base: float | None) -> float:
        """The decoder rejects values beyond float32; one that gets here anyway must not poison
        the filters: hold the previous value."""
        self.stats.bad_values += 1
        return last if last is not None else (base if base is not None else 0.0)

    def _confirm(self, ev: Event, idx: int, out: list) -> None:
        ev.confirm_index = idx
        ev.confirm_peak = ev.peak
        ev.confirm_peak_index = ev.peak_index
        out.append(("confirm", ev))

    def _close(self, ev: Event, out) -> None:
        ev.end_index = ev.start_index + self._n - 1
        ev.width = self._n / self.rate
        ev.area = self._sum / self.rate
        ev.rise_time = self._rise_time(ev)
        self.stats.events += 1
        out.append(("close", ev))

    def _rise_time(self, ev: Event) -> float:
        kept = self._kept
        k_peak = self._pre_len + (ev.peak_index - ev.start_index)
        if k_peak >= len(kept):
            k_peak = len(kept) - 1
        amp = ev.peak - ev.baseline
        if amp <= 0:
            return 0.0

        def cross(level: float) -> float:
            # last crossing of `level` before the peak, linearly interpolated (in samples)
            for k in range(k_peak, 0, -1):
                a, b = kept[k - 1], kept[k]
                if a < level <= b:
                    return k - 1 + (level - a) / (b - a)
            return 0.0

        t10 = cross(ev.baseline + 0.1 * amp)
        t90 = cross(ev.baseline + 0.9 * amp)
        return max(0.0, (t90 - t10) / self.rate)
