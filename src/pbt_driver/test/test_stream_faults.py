"""Faulty streams over real ptys and real DDS: streams written by the test itself (first line,
garbage floods, huge values, gaps inside pulses, late backlogs), reader stalls (SIGSTOP), reader
death and restart, parameter bounds."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import termios
import threading
import time
import tty

import numpy as np
import pytest

from pbt_driver.frames import encode_binary
from sensorhub_testing.files import read_jsonl

pytestmark = pytest.mark.integration
R = 800.0


class PtyWriter:
    """A device on a pty written by the test: schedule = [(seconds after start, bytes)]."""

    def __init__(self, link):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.link = link
        os.symlink(os.ttyname(self.slave), link)
        self.thread = None
        self.done = threading.Event()
        self.stopping = threading.Event()

    def play(self, schedule):
        def run():
            t0 = time.monotonic()
            i = 0
            while i < len(schedule) and not self.stopping.is_set():
                now = time.monotonic() - t0
                chunk = []
                while i < len(schedule) and schedule[i][0] <= now:
                    chunk.append(schedule[i][1])
                    i += 1
                if chunk:
                    data = b"".join(chunk)
                    while data and not self.stopping.is_set():
                        data = data[os.write(self.master, data) :]
                if i < len(schedule):
                    time.sleep(max(0.0, min(0.002, schedule[i][0] - now)))
            self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self):
        # the writer thread must be done with the fds before they are closed (and reused)
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        with contextlib.suppress(OSError):
            os.unlink(self.link)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def writer(pbt):
    made = []

    def make(name="dev"):
        w = PtyWriter(pbt.tmp / f"{name}.tty")
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


class Values:
    """Collects every sample value with its index, plus events (real DDS subscriber)."""

    def __init__(self, node, ns="/pbt"):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent, PbtSamples

        self.lock = threading.Lock()
        self.batches, self.events = [], []
        node.create_subscription(PbtSamples, f"{ns}/samples", self._b,
                                 qos.recorder(qos.pbt_samples(0.05)))  # fmt: skip
        node.create_subscription(PbtEvent, f"{ns}/events", self._e, qos.PBT_EVENTS)

    def _b(self, m):
        with self.lock:
            self.batches.append((m.first_index, list(m.values), m.lost_before, m.lost_total))

    def _e(self, m):
        with self.lock:
            self.events.append(m)

    def samples(self):
        with self.lock:
            b = sorted(self.batches, key=lambda x: x[0])
        return [(i, v) for first, vals, _, _ in b for i, v in enumerate(vals, first)]

    def n(self):
        with self.lock:
            return sum(len(b[1]) for b in self.batches)

    def lost(self):
        with self.lock:
            return max((b[3] for b in self.batches), default=0)

    def contiguous(self):
        with self.lock:
            b = sorted(self.batches, key=lambda x: x[0])
        for prev, cur in itertools.pairwise(b):
            assert cur[0] == prev[0] + len(prev[1]) + cur[2], (prev[:1], cur[:1], cur[2])
        return b


def pulse_values(n, period=80, amp=200.0, seed=1):
    """Baseline 512 + noise, a pulse every `period` samples (peak 6 samples after its start)."""
    rng = np.random.default_rng(seed)
    v = 512.0 + rng.normal(0, 1.0, n)
    peaks = []
    for s in range(40, n - 30, period):
        for j in range(24):
            v[s + j] += amp * math.exp(-abs(j - 6) / 4.0)
        peaks.append(s + 6)
    return np.round(v, 2), peaks


def lines_schedule(values, t0=0.5, extra=None, late=None):
    """One line per sample at its time; extra[k] = bytes written just before sample k."""
    sched = []
    for k, v in enumerate(values):
        t = t0 + k / R
        if late and late[0] <= k < late[1]:
            t = t0 + late[1] / R + late[2]
        sched.append((t, (extra or {}).get(k, b"") + f"{v:.2f}\n".encode()))
    return sched


def diag_after(c, wait, task, dt=1.1):
    after = time.time() + dt
    return wait(lambda: c.latest(task, after), 20, what=f"{task} diagnostics")


def wait_driver_listening(c, wait):
    wait(lambda: any("open" in m for _, m in c.levels("serial port")), 60, what="port open")


def test_first_line_on_an_idle_port_is_sample_zero(pbt, ros_node, wait, writer):
    """The device starts streaming after the driver opened the idle port: its first line is
    whole and becomes sample 0, nothing is discarded at open."""
    w = writer()
    pbt.driver(port=w.link)
    c = pbt.Collector(ros_node, w.link)
    vals = Values(ros_node)
    wait_driver_listening(c, wait)
    time.sleep(0.3)  # idle after open
    v = [100.0 + k for k in range(1200)]  # (a stream's last lines, if late, look lost: 1 s)
    w.play(lines_schedule(v, t0=0.0))
    wait(lambda: vals.n() >= len(v), 60, what="all samples")
    got = vals.samples()
    assert got[0] == (0, 100.0)
    assert [x for _, x in got] == v
    assert vals.lost() == 0
    d = wait(lambda: c.latest("losses"), 20, what="losses")[2]
    assert d["discarded at (re)open (bytes)"] == "0"


def test_garbage_flood_and_huge_values_cost_nothing(pbt, ros_node, wait, writer):
    """ascii 'value': 2 garbage lines per good line on average and values no
    float32 can carry, between good lines at 800 Hz: no loss, true indices, one event per pulse,
    the detector stays healthy."""
    n = 8800  # 800 clean lines at the end: a stream's last lines, if late, are unknowable
    v, peaks = pulse_values(n)
    rng = np.random.default_rng(3)
    junk = [b"\x80\x81garbage\n", b"abc\n", b"1.2.3\n", b"\xff\xfe\n", b"12,34,56\n", b"nan\n"]
    extra = {}
    huge = 0
    for k in range(1, n - 800):
        parts = [junk[int(j)] for j in rng.integers(0, len(junk), int(rng.poisson(2.0)))]
        if k % 500 == 250:
            parts.append(b"1.7e308\n" if huge % 2 else b"1e39\n")
            huge += 1
        extra[k] = b"".join(parts)
    w = writer()
    pbt.driver(port=w.link)
    c = pbt.Collector(ros_node, w.link)
    vals = Values(ros_node)
    wait_driver_listening(c, wait)
    time.sleep(0.3)
    w.play(lines_schedule(v, extra=extra))
    wait(lambda: vals.n() >= n, 120, what=f"{n} samples")
    wait(lambda: len(vals.events) >= len(peaks), 30, what="events")
    time.sleep(0.5)
    got = vals.samples()
    assert [x for _, x in got] == [float(np.float32(x)) for x in v]
    assert [i for i, _ in got] == list(range(n))  # indices true to the slots
    assert vals.lost() == 0
    ev = sorted(vals.events, key=lambda m: m.peak_index)
    assert [m.peak_index for m in ev] == peaks
    assert all(math.isfinite(m.peak) and math.isfinite(m.area) for m in ev)
    assert all(m.missing_slots == 0 and not m.gap_closed for m in ev)
    loss = diag_after(c, wait, "losses")[2]
    assert int(loss["malformed: out_of_range"]) == huge
    assert int(loss["lost samples total"]) == 0
    det = diag_after(c, wait, "detector")
    assert det[0] == 0, det


def test_gaps_inside_pulses_bridged_or_closed_once(pbt, ros_node, wait, writer):
    """Binary frames: a corrupted frame (and a 2-frame hole) inside a pulse leaves one
    event with missing_slots; a 6-frame hole closes the event flagged, no tail event."""
    n = 4000
    v, peaks = pulse_values(n)
    frames = [encode_binary(k, float(x)) for k, x in enumerate(v)]
    missing = {}
    for j, p in enumerate(peaks):
        if j % 3 == 0:
            bad = bytearray(frames[p + 2])
            bad[6] ^= 0x20
            frames[p + 2] = bytes(bad)
            missing[p] = 1
        elif j % 3 == 1:
            frames[p + 3] = frames[p + 4] = b""
            missing[p] = 2
    long_p = peaks[len(peaks) // 2 + 1]
    for k in range(long_p + 3, long_p + 9):  # after confirmation; the pulse is still high after
        frames[k] = b""
    missing[long_p] = None
    w = writer()
    pbt.driver(port=w.link, frame_format="binary")
    c = pbt.Collector(ros_node, w.link)
    vals = Values(ros_node)
    wait_driver_listening(c, wait)
    w.play([(0.3 + k / R, fr) for k, fr in enumerate(frames)])
    wait(w.done.is_set, 60, what="stream written")
    wait(lambda: len(vals.events) >= len(peaks), 30, what="one event per pulse")
    time.sleep(0.5)
    ev = sorted(vals.events, key=lambda m: m.peak_index)
    assert [m.peak_index for m in ev] == peaks
    for m in ev:
        want = missing.get(m.peak_index, 0)
        if want is None:
            assert m.gap_closed
        else:
            assert (m.missing_slots, m.gap_closed) == (want, False), m.peak_index
    # the batch booking the last gap may arrive after its pulse's event (another topic)
    wait(lambda: vals.lost() >= sum(x for x in missing.values() if x) + 6, 30, what="every gap")
    vals.contiguous()
    assert vals.lost() == sum(x for x in missing.values() if x) + 6


def test_late_backlog_after_a_sender_stall_is_not_lost(pbt, ros_node, wait, writer):
    """The sender stalls 150 ms, sends one line, and the rest of its backlog 40 ms later: a
    reader that wakes in between holds the silence and books nothing once the backlog is in."""
    n = 4000
    v = [500.0 + (k % 100) for k in range(n)]
    sched = []
    t1 = 0.3 + 1720 / R  # 150 ms late
    for k, x in enumerate(v):
        t = 0.3 + k / R
        if k == 1600:
            t = t1
        elif 1600 < k <= 1752:
            t = t1 + 0.04
        sched.append((t, f"{x:.2f}\n".encode()))
    w = writer()
    pbt.driver(port=w.link)
    c = pbt.Collector(ros_node, w.link)
    vals = Values(ros_node)
    wait_driver_listening(c, wait)
    w.play(sched)
    wait(lambda: vals.n() >= n, 60, what="all samples")
    got = vals.samples()
    assert [i for i, _ in got] == list(range(n))
    assert [x for _, x in got] == v
    assert vals.lost() == 0
    d = diag_after(c, wait, "losses")[2]
    assert d["lost samples total"] == "0"


def test_sigstop_of_the_driver_books_no_loss(pbt, ros_node, wait):
    """The driver is stopped 150-300 ms while the pty keeps filling: the backlog costs no
    sample."""
    sim, link = pbt.sim("sim", "--seed", "4")
    wait(link.exists, 20, what="sim pty link")
    drv = pbt.driver(port=link)
    c = pbt.Collector(ros_node, link)
    wait(lambda: c.n_samples >= int(2 * R), 60, what="first samples")
    for pause in (0.15, 0.3, 0.2, 0.25):
        n0 = c.n_samples
        os.kill(drv.pid, signal.SIGSTOP)
        time.sleep(pause)
        os.kill(drv.pid, signal.SIGCONT)
        wait(lambda n0=n0: c.n_samples >= n0 + int(R), 30, what="samples after SIGCONT")
    sim.stop()
    time.sleep(0.5)
    _received, lost = c.check_contiguous()
    assert lost == 0
    assert all(b[3] == 0 for b in c.batches)
    d = diag_after(c, wait, "losses")[2]
    assert d["lost samples total"] == "0"


def test_reader_death_exits_1_and_restart_counts_the_slots(pbt, ros_node, wait):
    """A reader thread that dies ends the process (exit 1); the respawned driver goes on
    from the saved index, books the slots lost meanwhile exactly (binary seq keys), and its
    indices stay the sensor's slots."""
    link = pbt.tmp / "sim.tty"
    state = pbt.tmp / "state.json"
    truth = pbt.tmp / "truth.jsonl"
    kw = dict(port=link, frame_format="binary", reopen_backoff_max=0.3, state_file=state)
    drv = pbt.driver("drv1", env={"PBT_DRIVER_CRASH_AFTER_SAMPLES": "3000"}, **kw)
    c = pbt.Collector(ros_node, link)
    vals = Values(ros_node)
    wait(lambda: c.levels("serial port"), 60, what="driver diagnostics")
    sim, _ = pbt.sim("sim", "--format", "binary", "--seed", "8", "--pulse-rate", "20",
                     "--truth", truth, link=link)  # fmt: skip
    assert drv.popen.wait(60) == 1, drv.output()[-3000:]
    assert "reader thread crashed" in drv.output()
    assert state.exists()
    n0 = vals.n()
    # The respawned driver finds its port only once this subscriber surely matched it (a new
    # publisher's first messages may precede DDS matching); the pty keeps the frames meanwhile.
    link2 = pbt.tmp / "respawn.tty"
    kw["port"] = link2
    c2 = pbt.Collector(ros_node, link2)
    pbt.driver("drv2", **kw)
    wait(lambda: any("port down" in m for _, m in c2.levels("serial port")), 60,
         what="respawned driver's diagnostics")  # fmt: skip
    time.sleep(1.0)
    os.symlink(os.readlink(link), link2)
    wait(lambda: vals.n() >= n0 + 2 * R, 60, what="samples after the restart")
    sim.stop()
    b = vals.contiguous()
    gap = [x for x in b if x[2] > 0]
    # the first gap is the restart (the frame being processed when the reader died); later ones
    # are frames the pty could not hold while no driver read it (sequence gaps, exact too)
    assert gap and gap[0][0] >= 3000, [(x[0], len(x[1]), x[2], x[3]) for x in gap]
    d = diag_after(c2, wait, "losses")[2]
    assert int(d["lost: while restarting"]) == gap[0][2]
    assert int(d["lost: sequence gaps"]) == sum(x[2] for x in gap[1:])
    assert int(d["lost samples total"]) == sum(x[2] for x in gap) == gap[-1][3]
    assert "resumed at index" in d["resume"]
    # indices are still the sensor's slots: events after the restart sit on the true peaks
    tr = {t["index"] for t in read_jsonl(truth)}
    after = [m.peak_index for m in vals.events if m.peak_index > gap[0][0]]
    assert after and sum(p in tr or p - 1 in tr or p + 1 in tr for p in after) >= 0.9 * len(after)


def test_parameters_that_would_overflow_are_refused(pbt, ros_node, wait, writer):
    """Bounds keep every parameter's arithmetic finite: values beyond them are refused and the
    driver keeps running."""
    w = writer()
    drv = pbt.driver(port=w.link)
    c = pbt.Collector(ros_node, w.link)
    wait_driver_listening(c, wait)
    set_ = pbt.param_setter(ros_node)

    for name, bad in [("max_width", 1e306), ("dead_time", 1e306), ("baseline_tau", 1e306),
                      ("threshold", 1e308), ("hysteresis", 1e300), ("pulse_amp_hi", 1e308),
                      ("gap_bridge", 10**9), ("diagnostic_updater.period", 1e-9),
                      ("diagnostic_updater.period", 1e300)]:  # fmt: skip
        r = set_(name, bad)
        assert not r.successful, (name, bad)
    assert set_("gap_bridge", 8).successful
    assert set_("max_width", 600.0).successful
    v = [512.0] * 3000
    w.play(lines_schedule(v))
    wait(lambda: c.n_samples >= 1500, 60, what="samples still flowing")
    assert drv.alive()
