"""Detector: chunk invariance (hypothesis), known pulses, rules, validation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbt_driver.detector import Detector, DetectorConfigError, DetectorParams
from pbt_driver.sim import Generator, pulse_shape

R = 800.0


def stream(seed, n, pulse_rate=10.0, noise=2.0):
    a = SimpleNamespace(
        rate=R, baseline=512.0, drift=10.0, drift_period=30.0, walk=0.5, noise=noise,
        pulse_rate=pulse_rate, min_separation=0.05, amp_min=40.0, amp_mean=150.0,
        amp_max=2000.0, rise=0.001, decay=0.006,
    )  # fmt: skip
    g = Generator(a, np.random.default_rng(seed))
    values, truth = g.block(n)
    return values.tolist(), truth


def run(det, values, cuts=None):
    envs, notes = [], []
    pos, i = 0, 0
    while pos < len(values):
        c = len(values) if not cuts else cuts[i % len(cuts)]
        env, n = det.process(values[pos : pos + c], pos)
        envs += env
        notes += [(k, e.confirm_index, e.confirm_peak) for k, e in n]
        pos += c
        i += 1
    return envs, notes


def closed(det, values):
    out = []
    pos = 0
    while pos < len(values):
        _, n = det.process(values[pos : pos + 100], pos)
        out += [e for k, e in n if k == "close"]
        pos += 100
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    cuts=st.lists(st.integers(1, 97), min_size=1, max_size=12),
    thr=st.floats(8.0, 60.0),
    confirm=st.integers(0, 4),
)
def test_chunking_does_not_change_anything(seed, cuts, thr, confirm):
    values, _ = stream(seed, 2500, pulse_rate=20.0)
    p = DetectorParams(threshold=thr, hysteresis=thr / 4, confirm_samples=confirm)
    a, b = Detector(p, R), Detector(p, R)
    env_a, notes_a = run(a, values)
    env_b, notes_b = run(b, values, cuts)
    assert env_a == env_b  # bit-identical
    assert notes_a == notes_b
    ea, eb = closed(Detector(p, R), values), []
    d = Detector(p, R)
    pos, i = 0, 0
    while pos < len(values):
        c = cuts[i % len(cuts)]
        _, n = d.process(values[pos : pos + c], pos)
        eb += [e for k, e in n if k == "close"]
        pos += c
        i += 1
    assert ea == eb


def test_known_pulses_found_with_correct_peak_and_width():
    values, truth = stream(7, 16000)  # 20 s
    det = Detector(DetectorParams(), R)
    events = closed(det, values)
    assert len(truth) > 100
    found = 0
    for t in truth:
        m = [e for e in events if abs(e.peak_index - t["index"]) <= 2]
        assert len(m) == 1, t
        e = m[0]
        found += 1
        assert abs(e.amplitude - t["amplitude"]) < 0.25 * t["amplitude"] + 8
        assert e.start_index <= e.peak_index <= e.end_index
        assert e.rise_time > 0 and e.area > 0
    assert found == len(truth) == len(events)


def test_width_of_a_rectangular_pulse_and_area():
    p = DetectorParams(threshold=10, hysteresis=2, release_tau=0.0, min_width=0.0)
    det = Detector(p, R)
    values = [100.0] * 50 + [150.0] * 8 + [100.0] * 50
    _, notes = det.process(values, 0)
    ev = next(e for k, e in notes if k == "close")
    assert (ev.start_index, ev.end_index, ev.peak_index) == (50, 57, 50)
    assert ev.width == pytest.approx(8 / R)
    assert ev.area == pytest.approx(8 * 50 / R)
    assert ev.baseline == pytest.approx(100.0)


def test_peak_confirmed_before_event_closes():
    p = DetectorParams(threshold=10, hysteresis=2, release_tau=0.0, min_width=0.0,
                       confirm_samples=2)  # fmt: skip
    det = Detector(p, R)
    shape = [100, 100, 130, 170, 160, 150, 140, 130, 120, 100, 100]
    _, notes = det.process([float(x) for x in shape], 0)
    kinds = [(k, e.confirm_index) for k, e in notes]
    assert kinds == [("confirm", 5), ("close", 5)]  # peak at 3, confirmed 2 samples later
    assert notes[1][1].end_index == 8


def test_min_width_rejects_spikes_and_dead_time_blocks_retrigger():
    p = DetectorParams(threshold=10, hysteresis=2, release_tau=0.0, min_width=3 / R,
                       dead_time=5 / R)  # fmt: skip
    det = Detector(p, R)
    v = [0.0] * 10 + [50.0] * 2 + [0.0] * 10  # 2 samples: too short
    v += [50.0] * 4 + [0.0] * 2 + [50.0] * 4 + [0.0] * 10  # second one inside dead time
    _, notes = det.process(v, 0)
    closes = [e for k, e in notes if k == "close"]
    assert len(closes) == 1 and closes[0].start_index == 22
    assert det.stats.rejected_short == 1


def test_max_width_rebaselines_on_a_step():
    p = DetectorParams(threshold=10, hysteresis=2, max_width=20 / R)
    det = Detector(p, R)
    det.process([0.0] * 20 + [100.0] * 100, 0)
    assert det.stats.overlong == 1
    assert not det.active
    assert det.baseline == pytest.approx(100.0, abs=1.0)


def test_gap_aborts_unconfirmed_event():
    p = DetectorParams(threshold=10, hysteresis=2, confirm_samples=5, gap_bridge=2)
    det = Detector(p, R)
    det.process([0.0] * 10 + [50.0, 60.0], 0)
    assert det.active
    assert det.gap(3) == []
    assert det.stats.aborted_by_gap == 1


def test_runtime_param_change_keeps_state():
    det = Detector(DetectorParams(), R)
    det.process([500.0] * 100, 0)
    b = det.baseline
    det.set_params(DetectorParams(threshold=50.0, hysteresis=10.0))
    assert det.baseline == b
    assert det.params.threshold == 50.0


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 0.0},
        {"threshold": 10.0, "hysteresis": 10.0},
        {"hysteresis": -1.0},
        {"baseline_tau": 0.0},
        {"min_width": 0.5, "max_width": 0.1},
        {"confirm_samples": -1},
        {"release_tau": math.nan},
    ],
)
def test_invalid_params_rejected(kw):
    with pytest.raises(DetectorConfigError):
        DetectorParams(**kw).check()


def test_sim_pulse_shape_peaks_at_one():
    f, tp = pulse_shape(0.001, 0.006)
    assert f(np.array([tp]))[0] == pytest.approx(1.0)
    assert f(np.array([-0.001]))[0] == 0.0


def test_start_inside_a_pulse_does_not_blind_the_detector():
    # the first sample is 150 above the baseline: the warm-up mean settles within ~0.1 s
    p = DetectorParams()
    det = Detector(p, R)
    values = [662.0, 600.0, 560.0, 530.0] + [512.0] * 200 + [512.0 + 40.0] * 4 + [512.0] * 20
    _, notes = det.process(values, 0)
    closes = [e for k, e in notes if k == "close"]
    assert len(closes) == 1 and closes[0].start_index == 204


def test_seed_continues_a_stream_joined_in_the_middle():
    """sensorhub report joins recordings mid-stream: seeded with the driver's state at that
    point, the detector finds exactly the events a detector that saw everything finds."""
    rate = 800.0
    p = DetectorParams()
    rng = np.random.default_rng(3)
    x = 100.0 + rng.normal(0.0, 1.0, 8000)
    for k in range(1000, 8000, 700):
        x[k : k + 12] += np.hanning(12) * 80.0
    full = Detector(p, rate)
    ev_full = [e.peak_index for k, e in full.process(x.tolist(), 0)[1] if k == "close"]
    head = Detector(p, rate)
    head.process(x[:4000].tolist(), 0)
    joined = Detector(p, rate)
    joined.seed(head.baseline, head.env, float(x[3999]))
    _, notes = joined.process(x[4000:].tolist(), 4000)
    ev_joined = [e.peak_index for k, e in notes if k == "close"]
    assert ev_joined == [k for k in ev_full if k >= 4000]
    assert ev_joined
