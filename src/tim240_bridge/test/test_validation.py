"""Telegrams no TiM-family scanner sends are refused by reason; every real one is taken."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tim240_bridge import captures, cola, simscan
from tim240_bridge import scandata as sd

TIM240 = sd.SCANNER_TYPES["sick_tim_240"]
CFG = (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1)


def tim240_scan() -> sd.Scan:
    """What the emulated TiM240 sends: 241 points at 1 deg over +-120 deg, with RSSI."""
    b = simscan.Beams(np.full(241, 2000, np.uint16), np.full(241, 5000.0))
    return simscan.telegram(b, simscan.TelegramSpec(simscan.START, simscan.STEP, CFG, 15.0, 7))


def with_dist(s: sd.Scan, **changes) -> sd.Scan:
    """The scan with its DIST channel changed (values given as a count make a fresh array)."""
    n = changes.pop("count", None)
    if n is not None:
        changes["values"] = np.full(n, 2000, np.uint16)
    s.channels16 = [dataclasses.replace(c, **changes) if c.name.startswith("DIST") else c
                    for c in s.channels16]  # fmt: skip
    return s


def test_a_tim240_telegram_passes_in_both_dialects():
    for d in (cola.ASCII, cola.BINARY):
        s = sd.decode(d, sd.encode(d, tim240_scan()))
        sd.check_telegram(s)
        g = sd.to_geometry(s, TIM240)
        assert g.ranges.size == 241 and np.all(np.isfinite(g.ranges))


def test_every_telegram_of_the_real_captures_passes(capture_name, capture_path):
    """TiM781S, TiM871S (811 points at 1/3 deg) and LMS111 (541 at 0.5 deg, 50 Hz)."""
    for p in captures.scandata_payloads(capture_path(capture_name)):
        sd.check_telegram(sd.decode(cola.BINARY, p))


REFUSED = [
    ("angle step 0", dict(step=0)),
    ("angle step negative", dict(step=-10000)),
    ("angle step out of range", dict(step=20000, count=100)),
    ("angle step out of range", dict(step=100)),
    ("start angle out of range", dict(start_angle=-1900000)),
    ("start angle out of range", dict(start_angle=1800001)),
    ("no points", dict(count=0)),
    ("more points than the field of view holds", dict(count=272)),
    ("more points than the field of view holds", dict(step=3333, count=812)),
    ("scale factor NaN", dict(scale=math.nan)),
    ("scale factor infinite", dict(scale=math.inf)),
    ("scale factor infinite", dict(scale=-math.inf)),
    ("scale factor <= 0", dict(scale=0.0)),
    ("scale factor <= 0", dict(scale=-1.0)),
    ("scale factor out of range", dict(scale=1e6)),
    ("offset NaN", dict(offset=math.nan)),
    ("offset infinite", dict(offset=math.inf)),
    ("offset out of range", dict(offset=-50.0)),
]


@pytest.mark.parametrize("reason,changes", REFUSED, ids=[f"{r}-{c}" for r, c in REFUSED])
def test_refused_with_its_reason(reason, changes):
    s = with_dist(tim240_scan(), **changes)
    with pytest.raises(sd.RefusedTelegramError) as e:
        sd.to_geometry(s, TIM240)
    assert e.value.reason == reason
    assert isinstance(e.value, sd.ScanDataError)  # what the driver already counts and skips


def test_refused_after_the_wire_too():
    """Step 0 and a NaN scale survive both encodings and are refused after decoding."""
    for d in (cola.ASCII, cola.BINARY):
        for changes, reason in ((dict(step=0), "angle step 0"),
                                (dict(scale=math.nan), "scale factor NaN")):  # fmt: skip
            s = sd.decode(d, sd.encode(d, with_dist(tim240_scan(), **changes)))
            with pytest.raises(sd.RefusedTelegramError, match=reason):
                sd.check_telegram(s)


def test_the_widest_tim_scan_passes():
    """270 deg at 1/3 deg (811 points, TiM5xx/7xx) and 271 points at 1 deg still pass."""
    sd.check_telegram(with_dist(tim240_scan(), start_angle=-450000, step=3333, count=811))
    sd.check_telegram(with_dist(tim240_scan(), start_angle=-1350000, count=271))


def test_intensity_scaling_and_scan_frequency():
    s = tim240_scan()
    s.channels16 = [dataclasses.replace(c, scale=math.nan) if c.name.startswith("RSSI") else c
                    for c in s.channels16]  # fmt: skip
    with pytest.raises(sd.RefusedTelegramError) as e:
        sd.check_telegram(s)
    assert e.value.reason == "intensity scaling not finite"
    for f in (0, 50, 20000):
        s = tim240_scan()
        s.scan_frequency = f
        with pytest.raises(sd.RefusedTelegramError, match="scan frequency out of range"):
            sd.check_telegram(s)


def test_refusals_count_per_reason_and_per_window():
    r = sd.Refusals()
    step0 = sd.RefusedTelegramError("angle step 0")
    nan = sd.RefusedTelegramError("scale factor NaN")
    assert r.add(step0) is True  # new: worth a log line
    assert all(r.add(step0) is False for _ in range(14))
    w = r.take_window()
    assert w == {"angle step 0": 15}
    assert r.describe(w) == "refused 15 telegrams: angle step 0"
    assert r.add(step0) is False  # still going on: not logged again
    assert r.add(nan) is True
    r.add(nan)
    w = r.take_window()
    assert r.describe(w) == "refused 3 telegrams: scale factor NaN (2), angle step 0 (1)"
    assert r.take_window() == {}
    assert r.add(step0) is True  # after a quiet window: logged again
    assert r.count == 19 and r.total == {"angle step 0": 17, "scale factor NaN": 2}
    assert r.describe({"no points": 1}) == "refused 1 telegram: no points"
