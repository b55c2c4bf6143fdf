"""Pure layers: hostile input never costs a sample, splits an event or poisons the
detector. Property tests (hypothesis) drive decoder -> clock -> detector (acquisition.Reader
without a port) with streams that mix garbage into good lines/frames."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pbt_driver.acquisition import AcqConfig, Reader, ReaderCallbacks
from pbt_driver.detector import Detector, DetectorConfigError, DetectorParams
from pbt_driver.frames import (
    F32_MAX,
    AsciiDecoder,
    BinaryDecoder,
    MalformedFrameError,
    encode_binary,
    encode_binary_block,
    parse_ascii_line,
)
from pbt_driver.sim import Generator

R = 800.0


def sim_values(seed: int, n: int, pulse_rate: float = 10.0) -> list[float]:
    a = SimpleNamespace(
        rate=R, baseline=512.0, drift=10.0, drift_period=30.0, walk=0.5, noise=2.0,
        pulse_rate=pulse_rate, min_separation=0.05, amp_min=40.0, amp_mean=150.0,
        amp_max=2000.0, rise=0.001, decay=0.006,
    )  # fmt: skip
    return Generator(a, np.random.default_rng(seed)).block(n)[0].tolist()


# -- values a float32 message cannot carry -------------------------------------------------
@pytest.mark.parametrize("text", [b"1.7e308", b"1e39", b"-1e39", b"3.5e38"])
def test_values_beyond_float32_are_malformed(text):
    with pytest.raises(MalformedFrameError) as e:
        parse_ascii_line(text)
    assert e.value.reason == "out_of_range"
    assert parse_ascii_line(b"3.4e38") == (None, 3.4e38)


def test_value_min_max_bounds_ascii_and_binary():
    d = AsciiDecoder("value", value_min=0.0, value_max=1000.0)
    d.at_line_start()
    out = d.feed(b"1\n-5\n1001\n1000\nnan\n")
    assert out.values == [1.0, 1000.0]
    assert out.keys == [1, 4]  # the bad lines are candidate slots (timing decides)
    assert d.stats.malformed == {"out_of_range": 2, "non_finite": 1}
    b = BinaryDecoder(value_min=0.0, value_max=1000.0)
    out = b.feed(b"".join(encode_binary(i, v) for i, v in enumerate([1.0, -5.0, 2e3, 7.0])))
    assert out.keys == [0, 3] and out.values == [1.0, 7.0]
    assert b.stats.malformed == {"out_of_range": 2}
    assert b.stats.discarded_bytes == 20


def test_detector_recovers_and_never_emits_non_finite():
    det = Detector(DetectorParams(), R)
    base = [512.0] * 400
    _, n1 = det.process([*base, 1.7e308, math.inf, -1e39, math.nan, *base], 0)
    assert det.healthy and math.isfinite(det.baseline)
    assert det.stats.bad_values == 4
    # events still flow afterwards
    _, n2 = det.process([512.0] * 20 + [600.0] * 6 + [512.0] * 40, 808)
    closes = [e for k, e in n1 + n2 if k == "close"]
    assert len(closes) == 1 and closes[0].peak == 600.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                          st.floats(-1e4, 1e4)), min_size=1, max_size=300))  # fmt: skip
def test_detector_fed_any_floats_never_raises_and_ends_finite(xs):
    det = Detector(DetectorParams(threshold=5.0, hysteresis=1.0), R)
    env, notes = det.process(xs, 0)
    assert len(env) == len(xs)
    assert det.healthy
    env, notes2 = det.process([100.0] * 50, len(xs))
    assert all(math.isfinite(v) for v in env)
    for _, e in notes + notes2:
        assert math.isfinite(e.peak) and math.isfinite(e.area) and math.isfinite(e.width)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_decoders_fed_any_bytes_never_raise_and_yield_float32(data, cuts):
    for dec in (AsciiDecoder("value"), AsciiDecoder("seq,value"), AsciiDecoder("time_us,value"),
                BinaryDecoder()):  # fmt: skip
        pos, i = 0, 0
        while pos < len(data):
            out = dec.feed(data[pos : pos + cuts[i % len(cuts)]])
            assert all(-F32_MAX <= v <= F32_MAX for v in out.values)
            pos += cuts[i % len(cuts)]
            i += 1


# -- parameters that validate must not kill the reader --------------------------------------
@pytest.mark.parametrize(
    "kw",
    [{"max_width": 1e306}, {"dead_time": 1e306}, {"baseline_tau": 1e306}, {"threshold": 1e308},
     {"gap_bridge": -1}, {"gap_bridge": 10**9}, {"attack_tau": math.inf}],
)  # fmt: skip
def test_parameter_bounds_keep_arithmetic_finite(kw):
    with pytest.raises(DetectorConfigError):
        DetectorParams(**kw).check()


def test_largest_accepted_parameters_run():
    p = DetectorParams(threshold=1e38, hysteresis=1.0, baseline_tau=3600.0, attack_tau=3600.0,
                       release_tau=3600.0, min_width=0.0, max_width=600.0, dead_time=600.0,
                       confirm_samples=10_000, gap_bridge=10_000)  # fmt: skip
    det = Detector(p, 1e6)
    det.process([1.0, 3e38, -3e38, 0.0], 0)
    det.gap(10_000)
    det.process([1.0, 2.0], 10_004)
    assert det.healthy


# -- gaps inside a pulse --------------------------------------------------------------------
def pulse(n_pre=200, amp=200.0, width=24, n_post=200):
    shape = [amp * math.exp(-abs(k - 6) / 5.0) for k in range(width)]
    return [512.0] * n_pre + [512.0 + s for s in shape] + [512.0] * n_post


def events_of(det, chunks):
    ev = []
    for first, vals, lost in chunks:
        if lost:
            ev += [e for k, e in det.gap(lost) if k == "close"]
        ev += [e for k, e in det.process(vals, first)[1] if k == "close"]
    return ev


def test_gap_inside_pulse_bridged_one_event_true_peak():
    v = pulse()
    p = DetectorParams(gap_bridge=4)
    (clean,) = events_of(Detector(p, R), [(0, v, 0)])
    cut = 200 + 9  # 3 slots after the peak, on the decay
    (ev,) = events_of(Detector(p, R), [(0, v[:cut], 0), (cut + 3, v[cut + 3 :], 3)])
    assert (ev.peak, ev.peak_index) == (clean.peak, clean.peak_index)
    assert (ev.start_index, ev.end_index) == (clean.start_index, clean.end_index)
    assert ev.width == clean.width
    assert ev.area == pytest.approx(clean.area, rel=0.02)
    assert ev.missing_slots == 3 and not ev.gap_closed
    assert clean.missing_slots == 0


def test_long_gap_closes_flagged_and_tail_is_not_a_new_event():
    v = pulse(width=60)
    p = DetectorParams(gap_bridge=4)
    cut = 200 + 12
    evs = events_of(Detector(p, R), [(0, v[:cut], 0), (cut + 10, v[cut + 10 :], 10)])
    assert len(evs) == 1
    assert evs[0].gap_closed and evs[0].peak_index == 206


# -- properties: garbage anywhere costs nothing ---------------------------------------------
def _good_line(v: float) -> bytes:
    return f"{v:.2f}\n".encode()


garbage_line = st.binary(min_size=1, max_size=90).map(lambda b: b.replace(b"\n", b"") + b"\n")


def _parses(line: bytes) -> bool:
    try:
        parse_ascii_line(line.strip())
        return line.strip() != b""
    except MalformedFrameError:
        return False


class Sink:
    def __init__(self):
        self.batches, self.events = [], []

    def batch(self, first, values, env, baseline, lost_before):
        self.batches.append((first, [float(x) for x in values], lost_before))

    def event(self, ev):
        self.events.append(ev)

    def samples(self):
        out = []
        for first, vals, _lost in sorted(self.batches):
            out += list(enumerate(vals, first))
        return out


def run_reader(reads, fmt="ascii"):
    """reads: [(bytes, t_read)]; returns the sink after the last read and a final flush."""
    sink = Sink()
    cfg = AcqConfig(port="/nonexistent", frame_format=fmt, batch_size=40)
    r = Reader(cfg, DetectorParams(), ReaderCallbacks(sink.batch, lambda e: None, sink.event))
    r.decoder.at_line_start()
    for data, t in reads:
        r.process(data, t)
    r.poll(reads[-1][1] + 5.0)
    r.batcher.flush(r.detector.baseline)
    return sink, r


def ev_key(e):
    return (e.start_index, e.peak_index, e.end_index, e.peak, e.width, e.area, e.missing_slots)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    where=st.lists(st.integers(0, 799), max_size=120),
    junk=st.lists(garbage_line, min_size=1, max_size=6),
)
def test_ascii_garbage_lines_anywhere_change_nothing(seed, where, junk):
    junk = [g for g in junk if not _parses(g)]
    assume(junk)
    values = [round(v, 2) for v in sim_values(seed, 800, pulse_rate=40.0)]
    t0 = 100.0
    clean = [(_good_line(v), t0 + k / R + 0.0002) for k, v in enumerate(values)]
    dirty = []
    for k, (line, t) in enumerate(clean):
        extra = b"".join(junk[(k + j) % len(junk)] for j in range(where.count(k)))
        dirty.append((extra + line, t))
    a, _ra = run_reader(clean)
    b, rb = run_reader(dirty)
    want = [float(x) for x in np.array(values, dtype=np.float32)]
    assert [v for _, v in b.samples()] == want  # exactly the good ones, in order
    assert b.samples() == a.samples()  # ... at the same indices: no phantom loss
    assert rb.clock.lost_total == 0
    assert [ev_key(e) for e in b.events] == [ev_key(e) for e in a.events]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    where=st.lists(st.integers(0, 799), max_size=60),
    junk=st.binary(min_size=1, max_size=40),
)
def test_binary_garbage_bytes_anywhere_change_nothing(seed, where, junk):
    values = np.array(sim_values(seed, 800, pulse_rate=40.0), dtype=np.float32)
    blob = encode_binary_block(np.arange(800), values)
    t0 = 100.0
    clean = [(blob[k * 10 : k * 10 + 10], t0 + k / R) for k in range(800)]
    junk = junk.replace(b"\xa5", b"\x00")  # a sync byte may legitimately claim a frame
    dirty = [(junk * where.count(k) + fr, t) for k, (fr, t) in enumerate(clean)]
    a, _ = run_reader(clean, "binary")
    b, rb = run_reader(dirty, "binary")
    assert b.samples() == a.samples()
    assert [v for _, v in b.samples()] == [float(x) for x in values]
    assert rb.clock.lost_total == 0
    assert [ev_key(e) for e in b.events] == [ev_key(e) for e in a.events]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), pick=st.lists(st.integers(0, 10_000), max_size=30),
       offset=st.integers(-2, 6))  # fmt: skip
def test_binary_corrupted_frames_inside_pulses_one_event_per_pulse(seed, pick, offset):
    values = np.array(sim_values(seed, 1600, pulse_rate=25.0), dtype=np.float32)
    blob = bytearray(encode_binary_block(np.arange(1600), values))
    clean, _ = run_reader([(bytes(blob[k * 10 : k * 10 + 10]), 100.0 + k / R)
                           for k in range(1600)], "binary")  # fmt: skip
    assume(clean.events)
    hit = set()
    for j in pick:  # corrupt one frame inside a random pulse, near its peak
        e = clean.events[j % len(clean.events)]
        k = min(max(e.start_index + 1, e.peak_index + offset), e.end_index - 1)
        if k == e.peak_index or k <= e.start_index or k in hit:
            continue
        blob[k * 10 + 5] ^= 0x40
        hit.add(k)
    dirty, rd = run_reader([(bytes(blob[k * 10 : k * 10 + 10]), 100.0 + k / R)
                            for k in range(1600)], "binary")  # fmt: skip
    assert rd.clock.lost_total == len(hit)
    assert len(dirty.events) == len(clean.events)
    for c, d in zip(clean.events, dirty.events, strict=True):
        assert (d.peak_index, d.peak, d.start_index) == (c.peak_index, c.peak, c.start_index)
        assert d.missing_slots == sum(c.start_index <= k <= c.end_index for k in hit)
        assert not d.gap_closed


def test_step_during_a_long_gap_does_not_block_events_forever():
    p = DetectorParams(gap_bridge=2, max_width=20 / R)
    det = Detector(p, R)
    det.process([0.0] * 400 + [100.0] * 10, 0)  # an event opens
    assert det.active
    det.gap(50)  # closed by the gap; the signal comes back 100 higher and stays there
    det.process([100.0] * 200, 460)
    _, notes = det.process([100.0] * 20 + [200.0] * 6 + [100.0] * 40, 660)
    assert [e.peak for k, e in notes if k == "close"] == [200.0]
