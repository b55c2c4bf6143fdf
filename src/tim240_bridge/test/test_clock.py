"""Device µs clock -> host time: lower envelope of the latency, drift, wrap, device reset."""

from __future__ import annotations

import numpy as np
import pytest

from tim240_bridge.clock import US_WRAP, DeviceClock


def run(clock, n, drift_ppm=40.0, start_us=0, seed=3, host0=1000.0):
    rng = np.random.default_rng(seed)
    errs = []
    for k in range(n):
        t_true = k / 15.0  # acquisition
        dev = (start_us + int(t_true * (1 + drift_ppm * 1e-6) * 1e6)) % US_WRAP
        tx = (dev + 7000) % US_WRAP
        arrival = host0 + t_true + 0.007 + 0.0005 + rng.exponential(0.004)
        clock.update(tx, arrival)
        errs.append(clock.to_host(dev) - (host0 + t_true))
    return np.array(errs)


def test_tracks_acquisition_time_with_drift():
    e = run(DeviceClock(), 15 * 120)
    # after settling, stamps stay within 2 ms of the true acquisition time (latency floor
    # 0.5 ms, drift 40 ppm would be 4.8 ms after 2 min uncorrected)
    assert np.abs(e[15 * 30 :]).max() < 0.002
    assert np.all(np.diff(e[15 * 30 :]) > -0.002)


def test_wraps_at_32_bit():
    e = run(DeviceClock(), 15 * 40, start_us=US_WRAP - 5_000_000)
    assert np.abs(e[15 * 20 :]).max() < 0.003


def test_device_reset_is_detected():
    c = DeviceClock()
    run(c, 100, start_us=500_000_000)
    run(c, 100, start_us=0, host0=1010.0)
    assert c.resets == 1


def test_to_host_before_update_raises():
    with pytest.raises(RuntimeError):
        DeviceClock().to_host(0)
