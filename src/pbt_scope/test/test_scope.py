"""The rolling PBT scope (pure layer): window, decimation that keeps peaks, time axis, gaps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbt_scope.scope import EventHistory, Scope, ScopeConfig, ScopeError

R = 800.0
T0 = 1_764_000_000.0


@dataclass(frozen=True)
class Stream:
    """What the driver's batches carry besides the samples."""

    baseline: float = 500.0
    threshold: float = 20.0
    rate: float = R


DRIVER = Stream()


def feed(scope, values, first=0, batch=40, lost=(), stream=DRIVER):
    """Feed values[i] as sample index first + i in batches; indices in `lost` never arrive."""
    baseline, threshold, rate = stream.baseline, stream.threshold, stream.rate
    values = np.asarray(values, dtype=np.float32)
    lost = set(lost)
    for s in range(0, len(values), batch):
        idx = [first + s + j for j in range(min(batch, len(values) - s))]
        # split a batch around lost slots, like the driver (lost_before on the next batch)
        run: list[int] = []
        for i in [*idx, None]:
            if i is None or i in lost:
                if run:
                    f = run[0]
                    v = values[f - first : run[-1] - first + 1]
                    scope.add_batch(f, v, v * 0.5, baseline, threshold, rate, T0 + f / rate)
                run = []
            else:
                run.append(i)


def expected_buckets(values, first, b, nb, last, lost=()):
    """(min, max) of every index-aligned bucket of the window ending at `last` (None: empty)."""
    k_end = last // b
    start = (k_end - nb + 1) * b
    out = []
    for k in range(start, start + nb * b, b):
        xs = [
            values[i - first]
            for i in range(k, k + b)
            if first <= i <= last and i not in lost and i - first < len(values)
        ]
        out.append((min(xs), max(xs)) if xs else None)
    return out


def pairs(frame):
    v = frame.value
    return [None if math.isnan(v[2 * j]) else tuple(sorted((v[2 * j], v[2 * j + 1])))
            for j in range(len(v) // 2)]  # fmt: skip


def test_window_length_and_bucket_count_as_configured():
    s = Scope(ScopeConfig(window=5.0, buckets=250))
    feed(s, np.arange(8000, dtype=np.float32))
    f = s.render()
    assert f.bucket_samples == 16  # 5 s * 800 Hz / 250
    assert len(f.t) == len(f.value) == len(f.envelope) == 500
    assert len(f.baseline) == len(f.threshold) == len(f.events) == 500
    assert f.window == pytest.approx(5.0)
    assert f.last_index == 7999
    assert f.first_index == 7999 // 16 * 16 - 249 * 16
    assert f.missing == 0


def test_time_axis_relative_to_the_newest_sample():
    s = Scope(ScopeConfig(window=1.0, buckets=100))
    feed(s, np.sin(np.arange(3000) / 10.0), first=1000)
    f = s.render()
    last = 3999
    assert f.stamp == pytest.approx(T0 + last / R)
    assert f.t[-1] == pytest.approx(0.0, abs=1e-6) or f.t[-1] <= 0.0
    assert np.all(f.t <= 0.0)
    assert np.all(np.diff(f.t) >= 0.0)  # one time-ordered trace
    # every point sits at its sample's time: value at t equals the stream at that index
    for t, v in zip(f.t, f.value, strict=True):
        i = round(last + float(t) * R)
        assert v == pytest.approx(np.float32(np.sin((i - 1000) / 10.0)), abs=1e-6)
    assert f.t[0] >= -1.0 - 1e-6 - 8 / R


def test_peaks_survive_decimation():
    rng = np.random.default_rng(3)
    x = rng.normal(500.0, 2.0, 4000).astype(np.float32)
    spikes = {517: 2000.0, 1203: 900.0, 2999: 1500.0, 3998: -300.0}
    for i, a in spikes.items():
        x[i] = a
    s = Scope(ScopeConfig(window=5.0, buckets=200))
    feed(s, x)
    f = s.render()
    got = pairs(f)
    want = expected_buckets(x, 0, f.bucket_samples, 200, 3999)
    assert got == want
    for i, a in spikes.items():
        j = np.flatnonzero(f.value == np.float32(a))
        assert len(j) == 1 and round(float(f.t[j[0]]) * R) == i - 3999


def test_gaps_are_nan_not_invented():
    x = np.arange(4000, dtype=np.float32)
    lost = set(range(1000, 1400))
    s = Scope(ScopeConfig(window=5.0, buckets=250))
    feed(s, x, lost=lost)
    f = s.render()
    assert f.missing == 400
    assert pairs(f) == expected_buckets(x, 0, 16, 250, 3999, lost)
    nan = np.isnan(f.value)
    assert np.array_equal(nan, np.isnan(f.envelope))
    assert np.array_equal(nan, np.isnan(f.baseline))
    assert not np.isnan(f.t).any()


def test_start_of_stream_shows_empty_buckets_before_it():
    s = Scope(ScopeConfig(window=5.0, buckets=250))
    feed(s, np.ones(800), first=0)
    f = s.render()
    assert f.last_index == 799
    assert np.isnan(f.value[: 2 * 200]).all()  # 4 s before the first sample
    assert not np.isnan(f.value[-2 * 50 :]).any()


def test_baseline_and_threshold_lines():
    s = Scope(ScopeConfig(window=1.0, buckets=50))
    feed(s, np.zeros(800), stream=Stream(baseline=100.0, threshold=25.0))
    f = s.render()
    assert np.all(f.baseline == 100.0)
    assert np.all(f.threshold == 125.0)


def test_event_marks_at_the_peak_point():
    x = np.full(8000, 500.0, dtype=np.float32)
    x[7000] = 1800.0
    s = Scope(ScopeConfig(window=5.0, buckets=250))
    feed(s, x)
    s.add_event(7000, 1800.0)
    s.add_event(10, 600.0)  # left the window long ago
    f = s.render()
    j = np.flatnonzero(~np.isnan(f.events))
    assert len(j) == 1 and f.events[j[0]] == 1800.0 and f.value[j[0]] == 1800.0
    assert round(float(f.t[j[0]]) * R) == 7000 - 7999
    assert f.event_count == 1


def test_late_batches_fill_in_and_old_ones_are_ignored():
    s = Scope(ScopeConfig(window=1.0, buckets=100))
    x = np.arange(2000, dtype=np.float32)
    s.add_batch(1960, x[1960:], x[1960:], 0.0, 1.0, R, T0)
    s.add_batch(1920, x[1920:1960], x[1920:1960], 0.0, 1.0, R, T0)  # reordered, in the window
    s.add_batch(1000, x[1000:1040], x[:40], 0.0, 1.0, R, T0)  # older than the window: late
    f = s.render()
    assert f.last_index == 1999 and s.late == 1
    assert f.missing == 800 - 80


def test_driver_restart_resets_the_window():
    s = Scope(ScopeConfig(window=1.0, buckets=100))
    feed(s, np.full(8000, 7.0), first=100_000)
    feed(s, np.full(80, 3.0), first=0)
    f = s.render()
    assert s.resets == 1 and f.last_index == 79
    assert set(np.unique(f.value[~np.isnan(f.value)])) == {3.0}


def test_rate_change_reallocates():
    s = Scope(ScopeConfig(window=2.0, buckets=100))
    feed(s, np.ones(400), stream=Stream(rate=200.0))
    assert s.render().bucket_samples == 4
    feed(s, np.ones(4000), stream=Stream(rate=1000.0), first=400)
    assert s.render().bucket_samples == 20 and s.resets == 1


@pytest.mark.parametrize(
    "cfg", [ScopeConfig(window=0.0), ScopeConfig(window=1e9), ScopeConfig(buckets=0)]
)
def test_bad_config_refused(cfg):
    with pytest.raises(ScopeError):
        Scope(cfg)


def test_render_before_data_refused_and_bad_batch():
    s = Scope()
    with pytest.raises(ScopeError):
        s.render()
    with pytest.raises(ScopeError):
        s.add_batch(0, [1.0, 2.0], [1.0], 0.0, 1.0, R, T0)
    with pytest.raises(ScopeError):
        s.add_batch(0, [1.0], [1.0], 0.0, 1.0, 0.0, T0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6000),
    buckets=st.integers(1, 400),
    window=st.floats(0.05, 8.0),
    batch=st.integers(1, 97),
    gap=st.tuples(st.integers(0, 6000), st.integers(0, 500)),
    seed=st.integers(0, 2**16),
)
def test_any_stream_matches_the_reference(n, buckets, window, batch, gap, seed):
    x = np.random.default_rng(seed).normal(0, 100, n).astype(np.float32)
    lost = set(range(gap[0], gap[0] + gap[1])) - {n - 1}
    s = Scope(ScopeConfig(window=window, buckets=buckets))
    feed(s, x, batch=batch, lost=lost)
    f = s.render()
    assert len(f.value) == 2 * buckets
    assert pairs(f) == expected_buckets(x, 0, f.bucket_samples, buckets, n - 1, lost)
    assert np.all(np.diff(f.t) >= 0) and f.t[-1] <= 0
    got_max = np.nanmax(f.value) if not np.isnan(f.value).all() else None
    inside = [x[i] for i in range(max(0, f.first_index), n) if i not in lost]
    assert got_max == (max(inside) if inside else None)


def test_event_history_newest_first_and_rate():
    h = EventHistory(size=20, rate_window=10.0)
    for i in range(50):
        assert h.add(100 * i, 1000.0 + 0.5 * i, payload=i)
    assert not h.add(100 * 49, 1024.5, payload="dup")
    assert h.newest_first() == list(range(49, 29, -1))
    assert h.total == 50
    # stamps 1000.0 .. 1024.5 every 0.5 s: 20 inside (1014.5, 1024.5]
    assert h.rate(1024.5) == pytest.approx(2.0)
    assert h.rate(1100.0) == 0.0


def test_event_history_out_of_order_and_short_run():
    h = EventHistory(size=3, rate_window=10.0)
    h.add(5, 1.0, "b")
    h.add(3, 0.5, "a")
    h.add(9, 2.0, "c")
    h.add(7, 1.5, "x")
    assert h.newest_first() == ["c", "x", "b"]
    assert h.rate(2.0) == pytest.approx(4 / 1.0)  # under 1 s of events: per 1 s
