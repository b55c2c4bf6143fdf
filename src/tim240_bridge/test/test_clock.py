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


def feed(clock, ks, jump_at=None, jump_s=0.0, start_us=1_000_000_000, host0=1000.0):
    """Telegrams k (15 Hz, 5 ms latency) whose device clock jumps by jump_s from k = jump_at on;
    yields (k, stamp - true acquisition time, jump reported)."""
    for k in ks:
        t_true = k / 15.0
        j = jump_s if jump_at is not None and k >= jump_at else 0.0
        dev = (start_us + int((t_true + j) * 1e6)) % US_WRAP
        stamp, jump = clock.stamp(dev, (dev + 7000) % US_WRAP, host0 + t_true + 0.012)
        yield k, stamp - (host0 + t_true), jump


@pytest.mark.parametrize("jump_s", [1360.0, -2087.0, 3.0, -3.0, 2500.0])
def test_a_device_clock_jump_is_counted_once_and_stamps_stay_near_arrival(jump_s):
    c = DeviceClock(jump_threshold=1.0)
    out = list(feed(c, range(300), jump_at=150, jump_s=jump_s))
    jumps = [(k, j) for k, _, j in out if j is not None]
    assert len(jumps) == 1 and c.jumps == 1
    k, j = jumps[0]
    seen = ((jump_s * 1e6 + US_WRAP / 2) % US_WRAP - US_WRAP / 2) * 1e-6  # 32-bit counters
    assert k == 150 and j == pytest.approx(seen, abs=0.01)
    assert c.last_jump == pytest.approx(seen, abs=0.01)
    assert c.resets == (1 if seen < 0 else 0)  # went back
    err = np.array([e for _, e, _ in out])
    assert np.abs(err).max() < 0.02  # every stamp: the acquisition time, within the latency


def test_small_latency_spikes_are_no_jump():
    c = DeviceClock(jump_threshold=0.5)
    for k in range(300):
        t = k / 15.0
        lat = 0.4 if k % 37 == 0 else 0.005  # a busy host now and then
        c.stamp(int(t * 1e6), int(t * 1e6) + 7000, 1000.0 + t + lat)
    assert c.jumps == 0 and c.resets == 0


def test_a_scan_start_far_from_its_transmission_is_stamped_at_the_transmission():
    c = DeviceClock(jump_threshold=1.0)
    list(feed(c, range(30)))
    tx = 1_000_000_000 + 2_000_000 + 7000
    for start in (tx - 2087_000_000, tx + 1360_000_000, tx + 5000):  # long before, after
        stamp, jump = c.stamp(start % US_WRAP, tx, 1000.0 + 2.0 + 0.012)
        assert jump is None
        assert 1000.0 + 2.0 - 0.05 < stamp <= 1000.0 + 2.0 + 0.012
    assert c.inconsistent_starts == 3 and c.jumps == 0


def test_stamps_never_after_arrival_nor_beyond_the_bound():
    """Random counters (a hostile device): every stamp within 2 * threshold before arrival."""
    rng = np.random.default_rng(5)
    c = DeviceClock(jump_threshold=0.7)
    for k in range(500):
        arrival = 1000.0 + k / 15.0
        tx = int(rng.integers(0, US_WRAP)) if k % 5 == 0 else int(k / 15.0 * 1e6)
        start = int(rng.integers(0, US_WRAP)) if k % 7 == 0 else tx - 30000
        stamp, _ = c.stamp(start % US_WRAP, tx % US_WRAP, arrival)
        assert arrival - 2 * 0.7 - 1e-6 <= stamp <= arrival


def test_reanchor_keeps_the_counters():
    c = DeviceClock()
    list(feed(c, range(100), jump_at=50, jump_s=100.0))
    c.reanchor()
    assert c.jumps == 1 and c.samples == 100
    with pytest.raises(RuntimeError):
        c.to_host(0)
    c.reset()
    assert c.jumps == 0 and c.samples == 0
