"""LMDscandata decoding on every telegram of the real SICK captures (SICK AG / sick_scan_xd)."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tim240_bridge import captures, cola
from tim240_bridge import scandata as sd


@cache
def _stream(p) -> bytes:
    """The lidar's bytes as they came off the wire (JSON entries joined; pcapng reassembled)."""
    if p.name.endswith(".json"):
        return b"".join(d for _, d in captures.read_json(p))
    return captures.lidar_stream(p)


def test_every_telegram_decodes(capture_name, capture_path, capture_counts):
    name = capture_name
    fr = cola.Framer()
    frames = fr.feed(_stream(capture_path(name)))
    scans = [sd.decode(f.dialect, f.payload) for f in frames if sd.is_scandata(f.payload)]
    assert len(scans) == capture_counts[name]
    assert fr.stats.checksum_errors == fr.stats.truncated == fr.stats.oversized == 0
    lms = "lms111" in name
    for s in scans:
        d = s.channel("DIST1")
        assert d.start_angle == -450000
        assert d.step == (5000 if lms else 3333)
        assert len(d.values) == (541 if lms else 811)
        assert s.serial == (18090362 if lms else 18480390)
        rssi = s.channel("RSSI1")
        assert (rssi is None) if lms else (len(rssi.values) == 811)
    counters = [s.scan_counter for s in scans]
    steps = [(b - a) % 65536 for a, b in itertools.pairwise(counters)]
    # consecutive; the LMS111 capture holds 3 telegrams twice (TCP retransmissions)
    assert set(steps) <= {0, 1} and steps.count(0) <= 3


def test_first_frame_values_as_documented(capture_path):
    capture = capture_path
    p = captures.read_json(capture("20210125-tim781s-scandata.pcapng.json"))
    f = next(f for _, d in p for f in cola.Framer().feed(d) if sd.is_scandata(f.payload))
    assert len(f.payload) == 3365
    s = sd.decode(cola.BINARY, f.payload)
    assert (s.version, s.device, s.serial) == (1, 1, 18480390)
    assert (s.telegram_counter, s.scan_counter) == (39216, 39236)
    assert (s.time_since_power_up_us, s.time_of_transmission_us) == (3235692189, 3235699863)
    assert s.scan_frequency_hz == 15.0 and s.measurement_frequency_hz == 16200.0
    assert s.encoders == []
    d = s.channel("DIST1")
    assert (d.scale, d.offset) == (1.0, 0.0)
    assert d.values[:3].tolist() == [1356, 1382, 1435]
    assert len(s.trailer) == 21 and s.time is not None and s.time[0] == 1970


def test_reencode_is_byte_identical_and_ascii_roundtrips(capture_name, capture_path):
    for p in captures.scandata_payloads(capture_path(capture_name)):
        s = sd.decode(cola.BINARY, p)
        assert sd.encode(cola.BINARY, s) == p
        a = sd.decode(cola.ASCII, sd.encode(cola.ASCII, s))
        assert sd.encode(cola.BINARY, a) == p


def test_geometry_per_scanner_type(capture_path):
    p = captures.scandata_payloads(capture_path("20210125-tim781s-scandata.pcapng.json"))[0]
    s = sd.decode(cola.BINARY, p)
    g = sd.to_geometry(s, sd.SCANNER_TYPES["sick_tim_7xxS"])
    assert g.angle_min == pytest.approx(math.radians(-135.0))
    assert g.angle_increment == pytest.approx(math.radians(0.3333))
    assert g.ranges.size == 811 and g.intensities.size == 811
    assert g.ranges[:3].tolist() == pytest.approx([1.356, 1.382, 1.435])
    assert g.scan_time == pytest.approx(1 / 15) and g.time_increment == pytest.approx(1 / 16200)
    # TiM240: no shift; cropping to +-120 deg keeps the telegram's own angles
    g2 = sd.to_geometry(s, sd.SCANNER_TYPES["sick_tim_240"], -math.radians(30), math.radians(30))
    assert g2.angle_min == pytest.approx(math.radians(-30), abs=math.radians(0.34))
    assert g2.angle_min >= math.radians(-30) - 1e-9
    assert g2.angle_max <= math.radians(30) + 1e-9
    raw = s.channel("DIST1").values[g2.first_index : g2.first_index + g2.ranges.size]
    # REP 117: 0 -> +inf (no echo), beyond the TiM240's 10 m -> +inf
    assert np.all(np.isposinf(g2.ranges[raw == 0]))
    assert np.all(np.isposinf(g2.ranges[raw > 10000]))


def test_lms111_has_no_intensities(capture_path):
    p = captures.scandata_payloads(capture_path("20210302_lms111.pcapng.json"))[0]
    g = sd.to_geometry(sd.decode(cola.BINARY, p), sd.SCANNER_TYPES["sick_lms_1xx"])
    assert g.intensities.size == 0
    assert g.angle_min == pytest.approx(math.radians(-135.0))
    assert g.angle_increment == pytest.approx(math.radians(0.5))
    assert g.scan_time == pytest.approx(1 / 50)


def _frames(data: bytes, cuts: list[int]):
    fr = cola.Framer()
    out = []
    prev = 0
    for c in [*sorted(cuts), len(data)]:
        out += fr.feed(data[prev:c])
        prev = c
    return [(f.dialect, f.payload) for f in out], fr.stats


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_random_splits_give_identical_results(capture_name, capture_path, data):
    raw = _stream(capture_path(capture_name))
    ref, _ = _frames(raw, [])
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=300))
    got, stats = _frames(raw, cuts)
    assert got == ref
    assert stats.discarded_bytes == 0


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=60), scan_no=st.integers(0, 15))
def test_ascii_stream_random_splits(capture_path, cuts, scan_no):
    p = captures.scandata_payloads(capture_path("tim781s_pcap_json_converter_test.pcapng"))[
        scan_no
    ]
    s = sd.decode(cola.BINARY, p)
    raw = cola.frame_a(sd.encode(cola.ASCII, s)) * 2
    got, stats = _frames(raw, [c % len(raw) for c in cuts])
    assert len(got) == 2 and stats.malformed == 0
    assert all(sd.encode(cola.BINARY, sd.decode(d, pl)) == p for d, pl in got)
