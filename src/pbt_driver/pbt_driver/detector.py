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
  exceeding it and the event is already ``min_width`` long: that is when a pulse may be commanded.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

PRE_TRIGGER = 32  # samples kept before an event for the rise time
MAX_KEPT = 8192  # samples of one event kept for the rise time


class DetectorConfigError(ValueError):
    """A detector parameter combination is invalid."""


@dataclass(frozen=True)
class DetectorParams:
    threshold: float = 20.0
    hysteresis: float = 5.0
    baseline_tau: float = 2.0
    attack_tau: float = 0.0
    release_tau: float = 0.002
    min_width: float = 0.0025
    max_width: float = 1.0
    dead_time: float = 0.005
    confirm_samples: int = 2

    def check(self) -> None:
        if not self.threshold > 0:
            raise DetectorConfigError("threshold must be > 0")
        if not 0 <= self.hysteresis < self.threshold:
            raise DetectorConfigError("hysteresis must be >= 0 and < threshold")
        for name in ("baseline_tau", "attack_tau", "release_tau", "min_width", "dead_time"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                raise DetectorConfigError(f"{name} must be >= 0")
        if not self.baseline_tau > 0:
            raise DetectorConfigError("baseline_tau must be > 0")
        if not self.max_width > self.min_width:
            raise DetectorConfigError("max_width must be > min_width")
        if self.confirm_samples < 0:
            raise DetectorConfigError("confirm_samples must be >= 0")


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
    aborted_by_gap: int = 0


def _alpha(tau: float, dt: float) -> float:
    return 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)


class Detector:
    """process(values, first_index) -> (envelope list, [("confirm"|"close", Event), ...])."""

    def __init__(self, params: DetectorParams, rate: float):
        params.check()
        self.rate = float(rate)
        self.stats = DetectorStats()
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
        self.set_params(params)

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

    @property
    def active(self) -> bool:
        return self._ev is not None

    def gap(self, lost: int) -> list[tuple[str, Event]]:
        """Slots were lost: an open event cannot be measured; keep it only if already confirmed."""
        out: list[tuple[str, Event]] = []
        ev = self._ev
        if ev is not None:
            if ev.confirm_index >= 0:
                self._close(ev, out)
            else:
                self.stats.aborted_by_gap += 1
            self._ev = None
        self._pre.clear()
        return out

    def process(self, values, first_index: int) -> tuple[list[float], list[tuple[str, Event]]]:
        out: list[tuple[str, Event]] = []
        env_out: list[float] = []
        push = env_out.append
        p = self.params
        thr = p.threshold
        lo = thr - p.hysteresis
        a_base, a_att, a_rel = self._a_base, self._a_att, self._a_rel
        confirm, min_n, max_n = p.confirm_samples, self._min_n, self._max_n
        base = self.baseline
        env = self.env
        pre = self._pre
        ev = self._ev
        warm, warm_n = self._warm, self._warm_n
        idx = first_index - 1
        for x in values:
            idx += 1
            if base is None:
                base = env = x
            if x > env:
                env += a_att * (x - env)
            else:
                env += a_rel * (x - env)
            push(env)
            if ev is not None:
                if env - ev.baseline < lo:
                    if self._n >= min_n:
                        if ev.confirm_index < 0:
                            ev.confirm_index = idx
                            ev.confirm_peak = ev.peak
                            ev.confirm_peak_index = ev.peak_index
                            out.append(("confirm", ev))
                        self._close(ev, out)
                    else:
                        self.stats.rejected_short += 1
                    ev = self._ev = None
                    self._dead_until = idx + self._dead_n
                else:
                    self._n += 1
                    self._sum += x - ev.baseline
                    if len(self._kept) < MAX_KEPT:
                        self._kept.append(x)
                    if x > ev.peak:
                        ev.peak = x
                        ev.peak_index = idx
                    elif (
                        ev.confirm_index < 0
                        and idx - ev.peak_index >= confirm
                        and self._n >= min_n
                    ):
                        ev.confirm_index = idx
                        ev.confirm_peak = ev.peak
                        ev.confirm_peak_index = ev.peak_index
                        out.append(("confirm", ev))
                    if ev.confirm_index < 0 and confirm == 0 and self._n >= min_n:
                        ev.confirm_index = idx
                        ev.confirm_peak = ev.peak
                        ev.confirm_peak_index = ev.peak_index
                        out.append(("confirm", ev))
                    if self._n > max_n:
                        self.stats.overlong += 1
                        base = env  # a step, not a pulse: follow it
                        ev = self._ev = None
                        pre.clear()
                    continue
            if env - base > thr and idx > self._dead_until:
                ev = self._ev = Event(idx, idx, idx, x, base)
                self._n = 1
                self._sum = x - base
                self._kept = [*pre, x]
                self._pre_len = len(pre)
                if confirm == 0 and min_n <= 1:
                    ev.confirm_index = idx
                    ev.confirm_peak = ev.peak
                    ev.confirm_peak_index = ev.peak_index
                    out.append(("confirm", ev))
                continue
            if warm < warm_n:
                # Warm-up: a cumulative mean, so a start inside a pulse or far from the
                # baseline does not blind the detector for several baseline_tau.
                warm += 1
                base += max(a_base, 1.0 / warm) * (x - base)
            else:
                base += a_base * (x - base)
            pre.append(x)
        self.baseline = base
        self.env = env
        self._warm = warm
        return env_out, out

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
