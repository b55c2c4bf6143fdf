"""pbt_sim on a pty -> pbt_driver -> pbt_scope over real DDS: the rolling window and the event
list checked against the stream the driver actually published (every sample, by index)."""

from __future__ import annotations

import math
import threading

import pytest

from sensorhub_testing.files import stamp_s

pytestmark = pytest.mark.integration
R = 800.0
WINDOW, BUCKETS = 2.0, 100
B = round(WINDOW * R / BUCKETS)
PREVIEW = 20  # buckets of scope_preview


def exe(pkg: str, name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable(pkg, name))


class Watch:
    """Every published sample by index (the known stream), every scope window and event list."""

    def __init__(self, node):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent, PbtEventHistory, PbtSamples, PbtScope

        self.lock = threading.Lock()
        self.values: dict[int, float] = {}
        self.baseline: dict[int, float] = {}
        self.stamps: dict[int, float] = {}  # first_index -> stamp of the batch
        self.scopes: list = []
        self.previews: list = []
        self.histories: list = []
        self.events: dict[int, float] = {}
        self.subs = [
            node.create_subscription(
                PbtSamples, "/pbt/samples", self._batch, qos.recorder(qos.pbt_samples(0.05))
            ),
            node.create_subscription(PbtScope, "/pbt/scope", self._scope, qos.WEB_VIEW),
            node.create_subscription(PbtScope, "/pbt/scope_preview", self._preview, qos.WEB_VIEW),
            node.create_subscription(
                PbtEventHistory, "/pbt/event_history", self._history, qos.WEB_VIEW
            ),
            node.create_subscription(PbtEvent, "/pbt/events", self._event, qos.PBT_EVENTS),
        ]

    def _batch(self, m):
        with self.lock:
            self.stamps[m.first_index] = stamp_s(m.header.stamp)
            for i, v in enumerate(m.values):
                self.values[m.first_index + i] = v
                self.baseline[m.first_index + i] = m.baseline

    def _scope(self, m):
        with self.lock:
            self.scopes.append(m)

    def _preview(self, m):
        with self.lock:
            self.previews.append(m)

    def _history(self, m):
        with self.lock:
            self.histories.append(m)

    def _event(self, m):
        with self.lock:
            self.events[m.peak_index] = m.peak

    def covered(self):
        """Scope windows whose every slot the watcher has received, and which start after the
        scope's first window ends: everything in them was published after the scope had
        subscribed (it subscribes volatile, so a batch published while its subscription was
        still being matched never reaches it, and a loaded machine can take a while to match)."""
        with self.lock:
            lo = min(self.values, default=None)
            hi = max(self.values, default=-1)
            if lo is None or not self.scopes:
                return []
            lo = max(lo, self.scopes[0].last_index + 1)
            return [m for m in self.scopes if m.first_index >= lo and m.last_index <= hi]


def test_scope_window_matches_the_published_stream(procs, ros_node, wait, tmp_path):
    link = tmp_path / "pbt.tty"
    procs.start("sim", [exe("pbt_driver", "pbt_sim"), "--link", link, "--seed", "7",
                        "--pulse-rate", "25"])  # fmt: skip
    wait(link.exists, 20, what="sim pty link")
    w = Watch(ros_node)
    procs.start("driver", [exe("pbt_driver", "pbt_driver"), "--ros-args", "-r", "__ns:=/pbt",
                           "-p", f"port:={link}", "-p", "rt_priority:=0",
                           "-p", "threshold:=25.0"])  # fmt: skip
    procs.start("scope", [exe("pbt_scope", "pbt_scope"), "--ros-args", "-r",
                          "__ns:=/pbt", "-p", f"window:={WINDOW}", "-p", f"buckets:={BUCKETS}",
                          "-p", "rate:=5.0", "-p", f"preview_buckets:={PREVIEW}",
                          "-p", "preview_rate:=2.0"])  # fmt: skip
    wait(lambda: len(w.covered()) >= 3, 120, what="3 scope windows over received samples")
    wait(lambda: any(len(h.events) == 20 for h in w.histories), 60, what="20 recent events")

    m = w.covered()[-1]
    with w.lock:
        values, baseline, stamps = dict(w.values), dict(w.baseline), dict(w.stamps)
        events = dict(w.events)
    # window length and decimation as configured
    assert m.bucket_samples == B and m.sample_rate == R
    assert m.window == pytest.approx(BUCKETS * B / R)
    n = 2 * BUCKETS
    assert len(m.t) == len(m.value) == len(m.envelope) == n
    assert len(m.baseline) == len(m.threshold) == len(m.events) == n
    assert m.last_index - m.first_index + 1 <= BUCKETS * B
    assert m.first_index % B == 0 and m.missing == 0
    # every bucket keeps its minimum and maximum, in time order, at the right time
    last = m.last_index
    for j in range(BUCKETS):
        ks = [k for k in range(m.first_index + j * B, m.first_index + (j + 1) * B) if k <= last]
        xs = [values[k] for k in ks]
        pair = (m.value[2 * j], m.value[2 * j + 1])
        assert sorted(pair) == [min(xs), max(xs)], j
        for p in (2 * j, 2 * j + 1):
            k = last + round(m.t[p] * R)
            assert k in ks and values[k] == m.value[p], (j, p)
            assert m.baseline[p] == pytest.approx(baseline[k])
            assert m.threshold[p] == pytest.approx(baseline[k] + 25.0, abs=1e-3)
        assert m.t[2 * j] <= m.t[2 * j + 1]
    # the window's peak is the stream's peak; the time axis ends at the newest sample
    assert max(m.value) == max(values[k] for k in range(m.first_index, last + 1))
    assert m.t[-1] <= 0.0 and m.t[0] >= -WINDOW - 1e-6
    f0 = max(f for f in stamps if f <= last)
    assert stamp_s(m.header.stamp) == pytest.approx(stamps[f0] + (last - f0) / R, abs=2e-6)
    # events inside the window are marked with their peak at their bucket
    inside = {k: p for k, p in events.items() if m.first_index <= k <= last}
    marks = [(last + round(m.t[i] * R), m.events[i]) for i in range(n)
             if not math.isnan(m.events[i])]  # fmt: skip
    assert m.event_count >= len(inside) > 0
    for k, peak in inside.items():
        assert any(
            (mk - m.first_index) // B == (k - m.first_index) // B and mv >= peak
            for mk, mv in marks
        ), (k, peak, marks)

    h = next(h for h in reversed(w.histories) if len(h.events) == 20)
    idx = [e.peak_index for e in h.events]
    assert idx == sorted(idx, reverse=True)  # newest first
    assert h.rate > 0 and h.total >= 20 and h.rate_window == 10.0


def test_the_preview_is_the_same_window_in_fewer_buckets(procs, ros_node, wait, tmp_path):
    link = tmp_path / "pbt.tty"
    procs.start("sim", [exe("pbt_driver", "pbt_sim"), "--link", link, "--seed", "3"])
    wait(link.exists, 20, what="sim pty link")
    w = Watch(ros_node)
    procs.start("driver", [exe("pbt_driver", "pbt_driver"), "--ros-args", "-r", "__ns:=/pbt",
                           "-p", f"port:={link}", "-p", "rt_priority:=0"])  # fmt: skip
    procs.start("scope", [exe("pbt_scope", "pbt_scope"), "--ros-args", "-r",
                          "__ns:=/pbt", "-p", f"window:={WINDOW}", "-p", f"buckets:={BUCKETS}",
                          "-p", f"preview_buckets:={PREVIEW}"])  # fmt: skip

    def covered():
        with w.lock:
            lo, hi = min(w.values, default=None), max(w.values, default=-1)
            if lo is None or not w.previews:
                return []
            lo = max(lo, w.previews[0].last_index + 1)
            return [m for m in w.previews if m.first_index >= lo and m.last_index <= hi]

    wait(lambda: len(covered()) >= 2, 120, what="2 preview windows over received samples")
    m = covered()[-1]
    with w.lock:
        values = dict(w.values)
    b = round(WINDOW * R / PREVIEW)
    assert m.bucket_samples == b and m.window == pytest.approx(WINDOW)
    assert len(m.t) == len(m.value) == len(m.envelope) == len(m.events) == 2 * PREVIEW
    for j in range(PREVIEW):
        ks = [k for k in range(m.first_index + j * b, m.first_index + (j + 1) * b)
              if k <= m.last_index]  # fmt: skip
        xs = [values[k] for k in ks]
        assert sorted((m.value[2 * j], m.value[2 * j + 1])) == [min(xs), max(xs)], j
