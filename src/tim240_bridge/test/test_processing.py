"""Zones (enter, leave, hysteresis, invalid points, the +-120 deg edge) and the scan filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tim240_bridge import processing as proc

ANG = np.radians(np.arange(-120.0, 120.5, 1.0))  # TiM240: 241 beams


def scan_with(points: dict[float, float], base: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Ranges of a TiM240 scan: `base` everywhere, `points` {angle deg: range} on top."""
    r = np.full(ANG.size, base, np.float32)
    for a, v in points.items():
        r[round(a + 120)] = v
    return r, np.isfinite(r) & (r > 0.05) & (r < 10)


def monitor(specs, **kw):
    return proc.ZoneMonitor(proc.parse_zones(specs), **kw)


def test_enter_and_leave_without_delays():
    m = monitor(["front sector 0.5 2.0 -10 10"], min_points=2)
    r, v = scan_with({0: 1.0, 1: 1.1})
    res = m.update(0.0, r, ANG, v)
    assert res.states[0].occupied and [c.occupied for c in res.changes] == [True]
    assert res.states[0].count == 2 and res.states[0].nearest_range == pytest.approx(1.0)
    r, v = scan_with({})
    res = m.update(0.1, r, ANG, v)
    assert not res.states[0].occupied and [c.occupied for c in res.changes] == [False]
    assert res.states[0].nearest_range == math.inf


def test_hysteresis_points_and_delays():
    m = monitor(["front sector 0.5 2.0 -10 10"], min_points=3, enter_delay=0.2,
                leave_delay=0.5)  # fmt: skip
    few, fv = scan_with({0: 1.0, 1: 1.0})  # 2 points < min_points
    many, mv = scan_with({0: 1.0, 1: 1.0, 2: 1.0})
    empty, ev = scan_with({})
    assert not m.update(0.0, few, ANG, fv).states[0].occupied
    assert not m.update(0.1, many, ANG, mv).states[0].occupied  # pending since 0.1
    assert not m.update(0.2, many, ANG, mv).states[0].occupied  # 0.1 s < enter delay
    res = m.update(0.3, many, ANG, mv)
    assert res.states[0].occupied and res.states[0].since == pytest.approx(0.3)
    # a short gap does not free it; the leave timer restarts when points come back
    assert m.update(0.4, empty, ANG, ev).states[0].occupied
    assert m.update(0.8, many, ANG, mv).states[0].occupied
    assert m.update(0.9, empty, ANG, ev).states[0].occupied
    assert m.update(1.3, empty, ANG, ev).states[0].occupied
    res = m.update(1.4, empty, ANG, ev)
    assert not res.states[0].occupied and res.changes[0].t == pytest.approx(1.4)


def test_invalid_points_never_count():
    m = monitor(["front sector 0.0 2.0 -10 10"], min_points=1)
    r, _ = scan_with({0: np.inf, 1: -np.inf, 2: np.nan, 3: 0.0})
    valid = np.zeros(r.size, bool)  # e.g. the filter marked them invalid
    res = m.update(0.0, r, ANG, valid)
    assert not res.states[0].occupied and res.states[0].count == 0
    assert res.nearest_range == math.inf
    # inf/nan flagged valid by mistake are still ignored
    res = m.update(0.1, r, ANG, np.ones(r.size, bool))
    assert res.states[0].count == 4 - 3  # only the 0.0 m point is finite


def test_zone_across_the_120_degree_edge():
    # 100 deg counter-clockwise through 180 deg to -100 deg: behind the TiM240's field of view
    # edges; only beams at |a| >= 100 deg can hit it
    m = monitor(["rear sector 0.2 1.5 100 -100"], min_points=2)
    r, v = scan_with({118: 1.0, -119: 1.2, 0: 1.0, 50: 1.0})
    res = m.update(0.0, r, ANG, v)
    assert res.states[0].count == 2 and res.states[0].occupied
    r, v = scan_with({120: 1.0, -120: 1.0})  # the two outermost beams
    assert m.update(0.1, r, ANG, v).states[0].count == 2
    r, v = scan_with({99: 1.0, -99: 1.0})
    assert m.update(0.2, r, ANG, v).states[0].count == 0


def test_polygon_zone_and_nearest_overall():
    m = monitor(["box polygon 1 -0.5 2 -0.5 2 0.5 1 0.5"], min_points=1)
    r, v = scan_with({0: 1.5, 45: 1.0, 10: 3.0})  # 45 deg at 1 m: x=y=0.707, outside
    res = m.update(0.0, r, ANG, v)
    assert res.states[0].count == 1 and res.states[0].nearest_range == pytest.approx(1.5)
    assert res.nearest_range == pytest.approx(1.0)
    assert res.nearest_angle == pytest.approx(math.radians(45))
    assert res.nearest_xy[0] == pytest.approx(math.sqrt(0.5), abs=1e-6)


@pytest.mark.parametrize("spec", ["x", "a sector 1 2 3", "a polygon 1 2 3 4", "a circle 1 2",
                                  "a sector 2 1 0 10", "a sector 0 1 0 nan"])  # fmt: skip
def test_bad_zone_specs_raise(spec):
    with pytest.raises(proc.ZoneConfigError):
        proc.parse_zone(spec)


def test_duplicate_zone_names_raise():
    with pytest.raises(proc.ZoneConfigError):
        proc.parse_zones(["a sector 0 1 0 10", "a sector 0 1 20 30"])


@given(x=st.floats(-3, 3), y=st.floats(-3, 3))
def test_polygon_square_matches_box(x, y):
    z = proc.parse_zone("sq polygon -1 -1 1 -1 1 1 -1 1")
    inside = z.contains(np.array([x]), np.array([y]), None, None)[0]
    if abs(abs(x) - 1) > 1e-9 and abs(abs(y) - 1) > 1e-9:
        assert inside == (abs(x) < 1 and abs(y) < 1)


def test_filter_crop_median_and_rep117():
    f = proc.ScanFilter(proc.FilterParams(range_min=0.1, range_max=4.0, min_ang=-math.radians(10),
                                          max_ang=math.radians(10), median_window=3,
                                          temporal_alpha=1.0))  # fmt: skip
    r = np.full(ANG.size, 2.0, np.float32)
    r[120] = 3.0  # a spike: the median removes it
    r[121] = np.inf
    r[122] = 0.05  # too close
    r[123] = 9.0  # too far
    out = f.apply(float(ANG[0]), math.radians(1), r)
    assert out.ranges.size == 21 and out.angle_min == pytest.approx(math.radians(-10))
    i0 = 10  # index of 0 deg in the cropped scan
    assert out.ranges[i0] == pytest.approx(2.0)
    assert np.isposinf(out.ranges[i0 + 1])
    assert np.isneginf(out.ranges[i0 + 2])
    assert np.isposinf(out.ranges[i0 + 3])
    assert not out.valid[i0 + 1 : i0 + 4].any()


def test_filter_invalid_modes():
    r = np.array([1.0, np.inf, 0.01, 1.0], np.float32)
    a = proc.ScanFilter(proc.FilterParams(invalid="nan", median_window=1, temporal_alpha=1.0))
    assert np.isnan(a.apply(0.0, 0.01, r).ranges[1:3]).all()
    b = proc.ScanFilter(proc.FilterParams(invalid="range_max", range_max=8.0, median_window=1,
                                          temporal_alpha=1.0))  # fmt: skip
    assert b.apply(0.0, 0.01, r).ranges[1:3].tolist() == [8.0, 8.0]


def test_temporal_filter_smooths_steady_beams_not_moving_ones():
    f = proc.ScanFilter(proc.FilterParams(median_window=1, temporal_alpha=0.5,
                                          temporal_max_jump=0.1))  # fmt: skip
    r1 = np.array([2.0, 2.0], np.float32)
    f.apply(0.0, 0.01, r1)
    out = f.apply(0.0, 0.01, np.array([2.04, 1.0], np.float32))
    assert out.ranges[0] == pytest.approx(2.02)  # steady: smoothed
    assert out.ranges[1] == pytest.approx(1.0)  # moved 1 m: taken as is


def test_filter_param_checks():
    with pytest.raises(proc.FilterConfigError):
        proc.ScanFilter(proc.FilterParams(median_window=2))
    with pytest.raises(proc.FilterConfigError):
        proc.ScanFilter(proc.FilterParams(range_min=5, range_max=1))
