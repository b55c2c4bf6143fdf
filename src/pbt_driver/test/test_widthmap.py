"""Width mapping: fixed, linear with clamp, quantized to prepared waves."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbt_driver.widthmap import WidthMap, WidthMapError


def test_fixed():
    wm = WidthMap("fixed", width_us=250)
    wm.check()
    assert wm.map(0) == wm.map(1e6) == 250
    assert wm.widths() == [250]


def test_linear_clamps_and_quantizes():
    wm = WidthMap("linear", min_us=50, max_us=1000, amp_lo=0, amp_hi=1000, step_us=10)
    wm.check()
    assert wm.map(-5) == 50
    assert wm.map(0) == 50
    assert wm.map(500) == 525 - 5 or wm.map(500) == 530  # 525 rounds to a 10 us step from 50
    assert wm.map(1000) == 1000
    assert wm.map(5000) == 1000
    assert wm.map(float("inf")) == 1000


@given(st.floats(-1e4, 1e4, allow_nan=False), st.integers(1, 50), st.integers(1, 400))
def test_every_mapped_width_is_prepared(amp, step, span):
    wm = WidthMap("linear", min_us=20, max_us=20 + span * 3, amp_lo=-100, amp_hi=900,
                  step_us=step)  # fmt: skip
    try:
        wm.check()
    except WidthMapError:
        return  # too many waves for this step: refused up front
    w = wm.map(amp)
    assert w in wm.widths()
    assert wm.min_us <= w <= wm.max_us


def test_monotonic():
    wm = WidthMap("linear", min_us=100, max_us=900, amp_lo=10, amp_hi=200, step_us=5)
    ws = [wm.map(a) for a in range(0, 300)]
    assert ws == sorted(ws)


@pytest.mark.parametrize(
    "kw",
    [
        {"mode": "log"},
        {"mode": "fixed", "width_us": 0},
        {"mode": "linear", "min_us": 500, "max_us": 100},
        {"mode": "linear", "amp_lo": 5, "amp_hi": 5},
        {"mode": "linear", "min_us": 1, "max_us": 100000, "step_us": 1},
    ],
)
def test_invalid(kw):
    with pytest.raises(WidthMapError):
        WidthMap(**kw).check()
