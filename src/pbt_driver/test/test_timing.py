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
    # A malformed line is a candidate slot, booked once timing shows it missing (booked at
    # once, inserted noise lines would become phantom losses).
    c = SampleClock(R, "line")
    feed_lines(c, 0, 1.0, 400)
    segs = c.assign([1.0, 2.0, 3.0], [401, 402, 404], 1.0 + 403 / R)
    assert flat(segs) == [(0, 400, 3)]  # not booked yet: no evidence
    got = feed_lines(c, 404, 1.0 + 404 / R, 400)  # samples 404.. on time: slot 402 is missing
    assert c.stats.seq_lost == 1
    assert sum(s.lost_before for s in got) == 1
    assert got[-1].first_index + len(got[-1].values) == 804


LATENCY = 0.0002  # s: every line arrives this long after its slot's time


def feed_lines(c, start_slot, t0, n, skip=(), noise=(), line0=None):
    """True slots start_slot.. arrive one per read at their time (+ LATENCY); slots in `skip`
    are corrupted lines (key advances, no sample), `noise` slots get an extra bad line."""
    segs = []
    line = line0 if line0 is not None else c._last_key or 0
    for j in range(n):
        k = start_slot + j
        line += 1 + (k in noise)
        if k in skip:
            continue
        segs += c.assign([float(k)], [line], t0 + j / R + LATENCY)
    return segs


def index_of_values(segs):
    return {v: i for s in segs for i, v in enumerate(s.values, s.first_index)}


def test_corrupted_lines_are_lost_slots_noise_lines_are_not():
    c = SampleClock(R, "line")
    skip = {300, 900, 901, 1500}
    noise = set(range(100, 1600, 7))  # ~215 inserted garbage lines
    segs = feed_lines(c, 0, 10.0, 2400, skip=skip, noise=noise)
    assert c.stats.seq_lost == len(skip)
    assert c.lost_total == len(skip)
    assert c.stats.not_slots == len(noise)
    # once booked, every sample's index is its true slot again
    idx = index_of_values(segs)
    assert all(idx[float(k)] == k for k in range(2000, 2400))


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
    segs = []
    for _ in range(30):  # booked from evidence, once arrivals stopped catching up
        keys = list(range(line + 1, line + 9))
        line += 8
        segs += c.assign([0.0] * 8, keys, t)
        t += 0.01
    assert c.stats.timing_lost == 200
    assert segs[0].lost_before == 200
    assert c.stats.holds == 1 and c.holding == 0


def test_late_backlog_is_not_lost():
    """The reader wakes before the sender caught up; the backlog then arrives
    intact 30 ms later. Nothing is booked and the index stays continuous."""
    c = SampleClock(R, "line")
    segs = feed_lines(c, 0, 5.0, 800)
    t = 5.0 + 800 / R + 0.17  # 170 ms late: the first sample of the backlog arrives alone
    line = c._last_key
    segs += c.assign([800.0], [line + 1], t)
    assert c.holding == 1
    n = int(0.2 * R)  # 30 ms later: the rest of the backlog at once, then on time
    segs += c.assign([float(k) for k in range(801, 801 + n)], list(range(line + 2, line + 2 + n)),
                     t + 0.03)  # fmt: skip
    segs += feed_lines(c, 801 + n, 5.0 + (801 + n) / R, 200)
    assert c.lost_total == 0
    assert c.stats.late_not_lost == 1
    idx = index_of_values(segs)
    assert all(idx[float(k)] == k for k in range(0, 801 + n + 200))


def test_held_silence_decided_by_poll_when_data_stops():
    c = SampleClock(R, "line")
    feed_lines(c, 0, 5.0, 400)
    t = 5.0 + 500 / R  # 100 slots missing, then one sample and nothing more
    assert c.assign([0.0], [c._last_key + 1], t) == []
    assert c.poll(t + 0.05) == []
    segs = c.poll(t + 0.2)
    assert flat(segs) == [(100, 500, 1)]


def test_time_us_gaps():
    c = SampleClock(R, "time_us")
    us = [0, 1250, 2500, 6250, 7500]  # 2 samples missing between 2500 and 6250
    segs = c.assign([0.0] * 5, us, 1.0)
    assert flat(segs) == [(0, 0, 3), (2, 5, 2)]


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


def test_restart_resume_counts_slots_lost_while_down_exactly_with_seq():
    a = SampleClock(R, "seq", 65536)
    a.assign([0.0] * 4, [10, 11, 12, 13], 50.0)
    a.assign([0.0], [15], 50.0 + 5 / R)  # one lost before the restart
    st = a.state(wall_minus_mono=1000.0)
    assert st["next_index"] == 6 and st["last_key"] == 15 and st["lost_total"] == 1
    b = SampleClock(R, "seq", 65536)
    assert b.resume(st, wall_minus_mono=2000.0)  # another process: other monotonic origin
    # 2.5 s later (other origin: -1000 s): 2000 slots, the first key after the restart says so
    t = 50.0 + 5 / R - 1000.0 + 2000 / R
    b.reconnected()
    segs = b.assign([0.0], [(15 + 2000) % 65536], t)
    assert flat(segs) == [(1999, 6 + 1999, 1)]
    assert b.stats.restart_lost == 1999 and b.lost_total == 2000


def test_resume_refuses_another_layout():
    a = SampleClock(R, "seq", 65536)
    a.assign([0.0], [1], 1.0)
    assert not SampleClock(R, "line").resume(a.state(0.0), 0.0)
    assert not SampleClock(400.0, "seq", 65536).resume(a.state(0.0), 0.0)


def test_candidate_before_the_stream_stops_is_decided_and_reported():
    c = SampleClock(R, "line")
    feed_lines(c, 0, 1.0, 400)
    feed_lines(c, 401, 1.0 + 401 / R, 40, line0=c._last_key + 1)  # slot 400's line was bad
    assert c.poll(1.0 + 441 / R + 0.01) == [] and c.lost_total == 0  # too early to judge
    c.poll(1.0 + 441 / R + 0.3)  # quiet: judged with the 40 samples that followed
    assert c.stats.seq_lost == 1
    assert c.take_carry() == 1 and c.next_index == 441
