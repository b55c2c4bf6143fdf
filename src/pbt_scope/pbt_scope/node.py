"""pbt_scope: the PBT stream as a rolling oscilloscope window and an event list, for web viewers.

Runs on the web side of the graph (role ``web``), so the sensor host pays nothing for it: it
subscribes ``samples`` and ``events`` (namespace ``pbt``) and publishes, at the web rate,
``scope`` (PbtScope: one decimated window with baseline, threshold and event marks),
``scope_preview`` (the same window in fewer buckets at a lower rate: what a class of phones can
afford, ~15 kB/s each instead of ~60) and ``event_history`` (PbtEventHistory: the last events
newest first and the event rate). The work is in :mod:`pbt_scope.scope`; this node only moves
messages.
"""

from __future__ import annotations

import array
import socket
import time

from rclpy.node import Node

from pbt_scope.scope import (
    MAX_BUCKETS,
    MAX_WINDOW_S,
    EventHistory,
    Scope,
    ScopeConfig,
    ScopeError,
)
from sensorhub_common import diagnostics as diag
from sensorhub_common import qos
from sensorhub_common.params import Param, ParamSet
from sensorhub_common.runner import run_node

PARAMS = [
    Param("window", 5.0, "Seconds of signal shown by the scope", min=0.05, max=MAX_WINDOW_S),
    Param("buckets", 120,
          "Min/max buckets per window (2 points each); bandwidth ~ 24 B x 2 x buckets x rate",
          min=1, max=MAX_BUCKETS),
    Param("rate", 10.0, "Scope publications per second (the web rate) [Hz]", min=0.1, max=50.0),
    Param("preview_buckets", 50,
          "Buckets of scope_preview, the same window for phones and the lab page (0 = off)",
          min=0, max=MAX_BUCKETS),
    Param("preview_rate", 5.0, "scope_preview publications per second [Hz]", min=0.1,
          max=50.0),
    Param("history_rate", 2.0,
          "event_history publications per second at most (new events), at least 1 Hz [Hz]",
          min=0.1, max=50.0),
    Param("history", 20, "Events listed in event_history, newest first", min=1, max=1000,
          read_only=True),
    Param("rate_window", 10.0, "Event rate averaged over this much acquisition time [s]",
          min=0.1, max=3600.0, read_only=True),
]  # fmt: skip


def _f32(a) -> array.array:
    """numpy float32 -> the message's array.array('f') without a per-element Python loop."""
    return array.array("f", a.tobytes())


def _stamp_s(st) -> float:
    return st.sec + st.nanosec * 1e-9


def _set_stamp(header, t: float, frame_id: str) -> None:
    sec = int(t)
    header.stamp.sec, header.stamp.nanosec = sec, int((t - sec) * 1e9)
    header.frame_id = frame_id


class PbtScopeNode(Node):
    def __init__(self, **kwargs):
        super().__init__("pbt_scope", **kwargs)
        from sensorhub_msgs.msg import PbtEvent, PbtEventHistory, PbtSamples, PbtScope

        self._Scope, self._History = PbtScope, PbtEventHistory
        self.params = ParamSet(self, PARAMS, self._cross_check, self._on_change)
        v = self.params.snapshot()
        self.scope = Scope(ScopeConfig(v["window"], v["buckets"]))
        self.preview = self._preview_scope(v)
        self.history = EventHistory(v["history"], v["rate_window"])
        self.frame_id = ""
        self.bad_batches = 0
        self.published = 0
        self._history_dirty = True
        self._history_sent = 0.0
        self.pub_scope = self.create_publisher(PbtScope, "scope", qos.WEB_VIEW)
        self.pub_preview = self.create_publisher(PbtScope, "scope_preview", qos.WEB_VIEW)
        self.pub_history = self.create_publisher(PbtEventHistory, "event_history", qos.WEB_VIEW)
        self.create_subscription(
            PbtSamples, "samples", self._on_batch, qos.live(qos.pbt_samples(0.05))
        )
        self.create_subscription(PbtEvent, "events", self._on_event, qos.PBT_EVENTS)
        self.freq = diag.FrequencyStatus(
            diag.FrequencyStatusParam({"min": v["rate"], "max": v["rate"]}, 0.2, 5), "scope rate"
        )
        self._timer = self.create_timer(1.0 / v["rate"], self._tick)
        self._preview_timer = self.create_timer(1.0 / v["preview_rate"], self._tick_preview)
        self.previews = 0
        self.diag = diag.Updater(self, hardware_id=f"PBT scope on {socket.gethostname()}")
        self.diag.add(self.freq)
        self.diag.add("window", self._diag_window)
        self.get_logger().info(
            f"{v['window']:g} s window in {v['buckets']} buckets at {v['rate']:g} Hz on "
            f"{self.pub_scope.topic_name} ({v['preview_buckets']} buckets at "
            f"{v['preview_rate']:g} Hz on {self.pub_preview.topic_name}); last {v['history']} "
            "events on "
            f"{self.pub_history.topic_name}"
        )

    # -- parameters
    @staticmethod
    def _preview_scope(v: dict) -> Scope | None:
        return (
            Scope(ScopeConfig(v["window"], v["preview_buckets"])) if v["preview_buckets"] else None
        )

    @staticmethod
    def _cross_check(v: dict) -> str | None:
        try:
            ScopeConfig(v["window"], v["buckets"]).check()
            if v["preview_buckets"]:
                ScopeConfig(v["window"], v["preview_buckets"]).check()
        except ScopeError as e:
            return str(e)
        return None

    def _on_change(self, changed: dict) -> None:
        v = self.params.snapshot()
        if "window" in changed or "buckets" in changed:
            self.scope.reconfigure(ScopeConfig(v["window"], v["buckets"]))
        if "rate" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / v["rate"], self._tick)
            self.freq.params.freq_bound = {"min": v["rate"], "max": v["rate"]}
        if {"window", "preview_buckets"} & set(changed):
            self.preview = self._preview_scope(v)  # starts empty, as a reconfigured scope does
        if "preview_rate" in changed:
            self.destroy_timer(self._preview_timer)
            self._preview_timer = self.create_timer(1.0 / v["preview_rate"], self._tick_preview)

    # -- input
    def _on_batch(self, m) -> None:
        self.frame_id = m.header.frame_id
        try:
            for s in (self.scope, self.preview) if self.preview else (self.scope,):
                s.add_batch(
                    m.first_index, m.values, m.envelope, m.baseline, m.threshold,
                    m.sample_rate, _stamp_s(m.header.stamp),
                )  # fmt: skip
        except ScopeError as e:
            self.bad_batches += 1
            self.get_logger().warning(f"batch at {m.first_index} ignored: {e}", once=True)

    def _on_event(self, m) -> None:
        self.scope.add_event(m.peak_index, m.peak)
        if self.preview:
            self.preview.add_event(m.peak_index, m.peak)
        if self.history.add(m.peak_index, _stamp_s(m.header.stamp), m):
            self._history_dirty = True

    # -- output
    def _tick(self) -> None:
        now = time.time()
        if self.scope.ready:
            self._publish_scope()
        # the list changes only with an event (at most history_rate); the rate decays with
        # time: at least once a second
        since = now - self._history_sent
        if (self._history_dirty and since >= 1.0 / self.params["history_rate"]) or since >= 1.0:
            self._publish_history(now)

    def _tick_preview(self) -> None:
        if self.preview and self.preview.ready and self.pub_preview.get_subscription_count():
            self.pub_preview.publish(self._scope_msg(self.preview))
            self.previews += 1

    def _publish_scope(self) -> None:
        self.pub_scope.publish(self._scope_msg(self.scope))
        self.published += 1
        self.freq.tick()

    def _scope_msg(self, scope: Scope):
        f = scope.render()
        m = self._Scope()
        _set_stamp(m.header, f.stamp, self.frame_id)
        m.t, m.value, m.envelope = _f32(f.t), _f32(f.value), _f32(f.envelope)
        m.baseline, m.threshold = _f32(f.baseline), _f32(f.threshold)
        m.events = _f32(f.events)
        m.window, m.bucket_samples, m.sample_rate = f.window, f.bucket_samples, f.sample_rate
        m.first_index, m.last_index = max(0, f.first_index), f.last_index
        m.missing, m.event_count = f.missing, f.event_count
        return m

    def _publish_history(self, now: float) -> None:
        h = self._History()
        _set_stamp(h.header, now, self.frame_id)
        h.rate = self.history.rate(now)
        h.rate_window = self.history.rate_window
        h.total = self.history.total
        h.events = self.history.newest_first()
        self.pub_history.publish(h)
        self._history_dirty = False
        self._history_sent = now

    # -- diagnostics
    def _diag_window(self, stat) -> None:
        s = self.scope
        if not s.ready:
            stat.summary(diag.WARN, "no samples yet")
        else:
            stat.summary(diag.OK, f"{s.config.window:g} s, {s.config.buckets} buckets")
        stat.add_all(
            {
                "samples per bucket": s.bucket,
                "sample rate (Hz)": s.rate,
                "batches received": s.batches,
                "batches too late for the window": s.late,
                "stream restarts/rate changes": s.resets,
                "bad batches": self.bad_batches,
                "windows published": self.published,
                "previews published": self.previews,
                "events received": self.history.total,
            }
        )


def main(args=None) -> None:
    run_node(PbtScopeNode, args=args)


if __name__ == "__main__":
    main()
