"""Scan filtering and zone monitoring, numpy-vectorised. No ROS.

Input is a plain scan: angle_min, angle_increment, ranges (float32, REP 117: +inf no return,
-inf too close, NaN error). The filter crops, smooths and marks invalid points; zones count the
valid points inside polygons or sectors and switch occupied/free with hysteresis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

INVALID_MODES = ("rep117", "nan", "range_max")


class ZoneConfigError(ValueError):
    """A zone definition that cannot be used (syntax, too few vertices, bad numbers)."""


class FilterConfigError(ValueError):
    pass


@dataclass
class FilterParams:
    range_min: float = 0.05
    range_max: float = 10.0
    min_ang: float = -math.pi
    max_ang: float = math.pi
    invalid: str = "rep117"
    median_window: int = 3  # odd; 1 = off
    temporal_alpha: float = 0.5  # weight of the new scan; 1 = off
    temporal_max_jump: float = 0.1  # [m] larger changes are taken as they are (moving objects)

    def check(self) -> None:
        if not self.range_max > self.range_min >= 0:
            raise FilterConfigError("filter range: need 0 <= range_min < range_max")
        if not self.max_ang > self.min_ang:
            raise FilterConfigError("filter angles: need min_ang < max_ang")
        if self.median_window < 1 or self.median_window % 2 == 0:
            raise FilterConfigError("median_window must be odd and >= 1")
        if not 0 < self.temporal_alpha <= 1:
            raise FilterConfigError("temporal_alpha must be in (0, 1]")
        if self.invalid not in INVALID_MODES:
            raise FilterConfigError(f"invalid must be one of {INVALID_MODES}")


@dataclass
class Filtered:
    angle_min: float
    angle_increment: float
    ranges: np.ndarray  # float32, invalid per params.invalid
    valid: np.ndarray  # bool
    angles: np.ndarray  # float64
    first_index: int
    intensities: np.ndarray | None = None


class ScanFilter:
    def __init__(self, params: FilterParams):
        params.check()
        self.p = params
        self._prev: np.ndarray | None = None
        self._prev_key = None

    def reset(self) -> None:
        self._prev = None

    def _window_index(self, n: int, w: int) -> np.ndarray:
        """(n, w) gather indices of each point's window; n (one past the end) = outside."""
        if getattr(self, "_idx_key", None) != (n, w):
            h = w // 2
            idx = np.arange(n)[:, None] + np.arange(-h, h + 1)[None, :]
            idx[(idx < 0) | (idx >= n)] = n
            self._idx, self._idx_key, self._rows = idx, (n, w), np.arange(n)
        return self._idx

    def apply(self, angle_min: float, inc: float, ranges, intensities=None) -> Filtered:
        p = self.p
        r = np.asarray(ranges, dtype=np.float32)
        n = r.size
        if inc > 0 and n:
            lo = max(0, math.ceil((p.min_ang - angle_min) / inc - 1e-4))
            hi = min(n - 1, math.floor((p.max_ang - angle_min) / inc + 1e-4))
        else:
            lo, hi = 0, n - 1
        if hi < lo:
            lo, hi = 0, -1
        r = r[lo : hi + 1].copy()
        inten = None if intensities is None or len(intensities) != n else (
            np.asarray(intensities, np.float32)[lo : hi + 1]
        )  # fmt: skip
        angles = angle_min + inc * np.arange(lo, hi + 1, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(r) & (r >= p.range_min) & (r <= p.range_max)
        # spatial median over valid neighbours; invalid centres stay invalid
        w = p.median_window
        if w > 1 and r.size:
            idx = self._window_index(r.size, w)
            x = np.empty(r.size + 1, np.float32)
            x[:-1] = np.where(valid, r, np.nan)
            x[-1] = np.nan  # what out-of-range window slots read
            win = x[idx]
            srt = np.sort(win, axis=1)  # NaN last
            cnt = w - np.isnan(win).sum(axis=1)
            med = srt[self._rows, np.maximum(cnt - 1, 0) // 2]
            r = np.where(valid, med, r)
        # temporal: exponential smoothing per beam while the beam is steady
        a = p.temporal_alpha
        key = (round(angle_min + lo * inc, 6), round(inc, 9), r.size)
        if a < 1 and self._prev is not None and self._prev_key == key:
            prev = self._prev
            with np.errstate(invalid="ignore"):
                steady = valid & np.isfinite(prev) & (np.abs(r - prev) <= p.temporal_max_jump)
            r = np.where(steady, prev + np.float32(a) * (r - prev), r)
        self._prev = np.where(valid, r, np.nan).astype(np.float32)
        self._prev_key = key
        out = r.astype(np.float32)
        if p.invalid == "rep117":
            with np.errstate(invalid="ignore"):
                out = np.where(valid | np.isnan(out), out, np.where(out < p.range_min,
                               -np.inf, np.inf)).astype(np.float32)  # fmt: skip
        elif p.invalid == "nan":
            out = np.where(valid, out, np.nan).astype(np.float32)
        else:
            out = np.where(valid, out, np.float32(p.range_max)).astype(np.float32)
        return Filtered(angle_min + lo * inc, inc, out, valid, angles, lo, inten)


# -- zones ----------------------------------------------------------------------------------


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


@dataclass
class Zone:
    name: str
    kind: str  # "sector" | "polygon"
    # sector: r_min, r_max [m], a_min, a_max [rad] (counter-clockwise from a_min to a_max)
    r_min: float = 0.0
    r_max: float = 0.0
    a_min: float = 0.0
    a_max: float = 0.0
    polygon: np.ndarray | None = None  # (k, 2)

    def contains(self, x, y, r, a) -> np.ndarray:
        if self.kind == "sector":
            span = (self.a_max - self.a_min) % (2 * np.pi)
            rel = (a - self.a_min) % (2 * np.pi)
            return (r >= self.r_min) & (r <= self.r_max) & (rel <= span + 1e-9)
        poly = self.polygon
        xi, yi = poly[:, 0:1], poly[:, 1:2]
        xj, yj = np.roll(poly[:, 0], 1)[:, None], np.roll(poly[:, 1], 1)[:, None]
        cond = (yi > y) != (yj > y)
        dy = np.where(yj == yi, 1.0, yj - yi)
        xc = (xj - xi) * (y - yi) / dy + xi
        return (np.count_nonzero(cond & (x < xc), axis=0) % 2).astype(bool)

    def outline(self, n_arc: int = 24) -> list[tuple[float, float]]:
        """Closed outline in the scan frame (for markers)."""
        if self.kind == "polygon":
            pts = [tuple(map(float, p)) for p in self.polygon]
            return [*pts, pts[0]]
        span = (self.a_max - self.a_min) % (2 * np.pi) or 2 * np.pi
        arc = self.a_min + np.linspace(0, span, n_arc)
        outer = [(self.r_max * math.cos(t), self.r_max * math.sin(t)) for t in arc]
        inner = [(self.r_min * math.cos(t), self.r_min * math.sin(t)) for t in arc[::-1]]
        pts = outer + inner
        return [*pts, pts[0]]


def parse_zone(spec: str) -> Zone:
    """``NAME sector R_MIN R_MAX A_MIN_DEG A_MAX_DEG`` or ``NAME polygon X1 Y1 X2 Y2 X3 Y3 ...``.

    A sector runs counter-clockwise from A_MIN to A_MAX, so ``100 -100`` is the 160 deg behind
    the scanner, across the +-180 deg edge.
    """
    t = spec.replace(",", " ").split()
    if len(t) < 2:
        raise ZoneConfigError(f"zone {spec!r}: need 'NAME sector|polygon ...'")
    name, kind = t[0], t[1].lower()
    try:
        nums = [float(v) for v in t[2:]]
    except ValueError:
        raise ZoneConfigError(f"zone {name}: numbers expected after {kind}") from None
    if not all(math.isfinite(v) for v in nums):
        raise ZoneConfigError(f"zone {name}: numbers must be finite")
    if kind == "sector":
        if len(nums) != 4:
            raise ZoneConfigError(f"zone {name}: sector needs R_MIN R_MAX A_MIN_DEG A_MAX_DEG")
        rmin, rmax, amin, amax = nums
        if not 0 <= rmin < rmax:
            raise ZoneConfigError(f"zone {name}: need 0 <= R_MIN < R_MAX")
        return Zone(name, "sector", rmin, rmax, math.radians(amin), math.radians(amax))
    if kind == "polygon":
        if len(nums) < 6 or len(nums) % 2:
            raise ZoneConfigError(f"zone {name}: polygon needs at least 3 x y pairs")
        return Zone(name, "polygon", polygon=np.array(nums, float).reshape(-1, 2))
    raise ZoneConfigError(f"zone {name}: kind must be 'sector' or 'polygon', got {kind!r}")


def parse_zones(specs) -> list[Zone]:
    zones = [parse_zone(s) for s in specs]
    names = [z.name for z in zones]
    if len(set(names)) != len(names):
        raise ZoneConfigError(f"zone names must be unique: {names}")
    return zones


@dataclass
class ZoneState:
    occupied: bool = False
    since: float = 0.0
    pending_since: float | None = None
    count: int = 0
    nearest_range: float = math.inf
    nearest_xy: tuple = (math.nan, math.nan)


@dataclass
class ZoneChange:
    name: str
    occupied: bool
    t: float
    count: int
    nearest_range: float


@dataclass
class ZoneResult:
    states: list
    changes: list
    nearest_range: float
    nearest_angle: float
    nearest_xy: tuple = field(default=(math.nan, math.nan))


class ZoneMonitor:
    """Occupied when >= min_points valid points are inside for enter_delay; free after
    leave_delay with fewer. Delays are measured in scan time (the scan stamps), so a replayed
    or delayed stream gives the same answers."""

    def __init__(self, zones, min_points: int = 3, enter_delay: float = 0.0,
                 leave_delay: float = 0.0):  # fmt: skip
        self.zones = list(zones)
        self.min_points = max(1, int(min_points))
        self.enter_delay = enter_delay
        self.leave_delay = leave_delay
        self.states = [ZoneState() for _ in self.zones]
        self._started = False

    def update(self, t: float, ranges, angles, valid) -> ZoneResult:
        r = np.asarray(ranges, np.float64)
        a = np.asarray(angles, np.float64)
        v = np.asarray(valid, bool) & np.isfinite(r)
        rv, av = r[v], _wrap(a[v])
        x, y = rv * np.cos(av), rv * np.sin(av)
        changes = []
        if not self._started:
            for s in self.states:
                s.since = t
            self._started = True
        for z, s in zip(self.zones, self.states, strict=True):
            m = z.contains(x, y, rv, av) if rv.size else np.zeros(0, bool)
            s.count = int(m.sum())
            if s.count:
                k = int(np.argmin(np.where(m, rv, np.inf)))
                s.nearest_range, s.nearest_xy = float(rv[k]), (float(x[k]), float(y[k]))
            else:
                s.nearest_range, s.nearest_xy = math.inf, (math.nan, math.nan)
            raw = s.count >= self.min_points
            if raw == s.occupied:
                s.pending_since = None
                continue
            if s.pending_since is None:
                s.pending_since = t
            delay = self.enter_delay if raw else self.leave_delay
            if t - s.pending_since >= delay - 1e-9:
                s.occupied, s.since, s.pending_since = raw, t, None
                changes.append(ZoneChange(z.name, raw, t, s.count, s.nearest_range))
        if rv.size:
            k = int(np.argmin(rv))
            near = (float(rv[k]), float(av[k]), (float(x[k]), float(y[k])))
        else:
            near = (math.inf, math.nan, (math.nan, math.nan))
        return ZoneResult(self.states, changes, near[0], near[1], near[2])
