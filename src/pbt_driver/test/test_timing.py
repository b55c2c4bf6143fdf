"""Sample indexing: sequence gaps and wrap, duplicates, timing gaps, reconnects."""

from pbt_driver.timing import SampleClock

R = 800.0


def flat(segs):
    return [(s.lost_before, s.first_index, len(s.values)) for s in segs]


def test_seq_gap_and_wrap():
    c = SampleClock(R, "seq", 65536)
    keys = [65533, 65534, 65535, 0, 1, 3]
    segs = c.assign([0.0] * 6, keys, 1.0)
    assert flat(segs) == [(0, 0, 5), (1, 6, 1)]
    assert c.next_index == 7
    assert c.stats.seq_lost == 1


def test_seq_gap_across_chunks_and_duplicates():
    c = SampleClock(R, "seq", 65536)
    c.assign([0.0] * 3, [10, 11, 12], 1.0)
    segs = c.assign([0.0] * 3, [12, 15, 16], 1.0 + 4 / R)
    assert flat(segs) == [(2, 5, 2)]
    assert c.stats.duplicates == 1
    assert c.stats.seq_lost == 2


def test_line_numbers_make_one_slot_gaps():
    c = SampleClock(R, "line")
    segs = c.assign([1.0, 2.0, 3.0], [1, 2, 4], 1.0)
    assert flat(segs) == [(0, 0, 2), (1, 3, 1)]


def test_time_us_gaps():
    c = SampleClock(R, "time_us")
    us = [0, 1250, 2500, 6250, 7500]  # 2 samples missing between 2500 and 6250
    segs = c.assign([0.0] * 5, us, 1.0)
    assert flat(segs) == [(0, 0, 3), (2, 5, 2)]


def test_timing_gap_without_keys_counted_and_small_jitter_ignored():
    c = SampleClock(R, "line", gap_tolerance=0.02)
    t = 100.0
    line = 0
    for _ in range(50):  # steady 8 samples per 10 ms with a little jitter
        keys = list(range(line + 1, line + 9))
        line += 8
        c.assign([0.0] * 8, keys, t)
        t += 0.01
    assert c.lost_total == 0
    t += 0.25  # 200 samples never arrive
    keys = list(range(line + 1, line + 9))
    segs = c.assign([0.0] * 8, keys, t)
    assert c.stats.timing_lost == 200
    assert segs[0].lost_before == 200


def test_delayed_burst_is_not_loss():
    c = SampleClock(R, "line")
    c.assign([0.0] * 8, list(range(1, 9)), 10.0)
    # 100 ms silence, then the 80 delayed samples arrive at once: nothing lost
    c.assign([0.0] * 88, list(range(9, 97)), 10.11)
    assert c.lost_total == 0


def test_reconnect_uses_seq_when_consistent_with_time():
    c = SampleClock(R, "seq", 65536)
    c.assign([0.0] * 4, [0, 1, 2, 3], 10.0)
    c.reconnected()
    # 100 s later: 80000 slots, more than the 16-bit wrap; seq picks the exact value
    missing = 80000 - 1
    k = (3 + missing + 1) % 65536
    segs = c.assign([0.0], [k], 10.0 + 80000 / R + 0.0004)
    assert segs[0].lost_before == missing
    assert c.stats.reconnect_lost == missing


def test_stamps_follow_nominal_line():
    c = SampleClock(R, "seq", 65536)
    c.assign([0.0] * 8, list(range(8)), 50.0)
    assert abs(c.time_of(7) - 50.0) < 1e-9
    assert abs(c.time_of(15) - (50.0 + 8 / R)) < 1e-9


def test_one_sample_reads_equal_one_big_read():
    keys = [5, 6, 7, 9, 10, 10, 11, 14, 15, 16]
    big = SampleClock(R, "seq", 65536)
    segs = big.assign([float(k) for k in keys], keys, 1.0)
    ref = [(i, v) for s in segs for i, v in enumerate(s.values, s.first_index)]
    small = SampleClock(R, "seq", 65536)
    got = []
    for j, k in enumerate(keys):
        for s in small.assign([float(k)], [k], 1.0 + j / R):
            got += list(enumerate(s.values, s.first_index))
    assert got == ref
    assert small.lost_total == big.lost_total == 3
