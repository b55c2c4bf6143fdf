"""The system_monitor node: host health, per-node process metrics, a watchdog, /diagnostics_agg.

Thin: procinfo/host/watchdog/aggregate do the work without ROS. Two timers: a fast one
(``check_period``) polls the expected processes' /proc state and re-evaluates the watchdog,
publishing at once when a node's level changes; the diagnostic updater (1 Hz) publishes every
status and the aggregated tree.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from functools import partial

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from sensorhub_common import diagnostics as diag
from sensorhub_common import qos
from sensorhub_common.params import ParameterError, ParamSet
from sensorhub_common.paths import data_root
from sensorhub_common.runner import run_node
from system_monitor import process_status
from system_monitor.aggregate import Aggregator, GroupSpecError, parse_groups
from system_monitor.host_tasks import HostTasks
from system_monitor.params import PARAMS, cross_check
from system_monitor.procinfo import (
    ExpectedError,
    Finder,
    ProcFS,
    matches,
    parse_expected_list,
    writer_pid,
)
from system_monitor.sdnotify import SdNotify
from system_monitor.watchdog import ProcState, Watchdog, WatchSpecError, parse_watches

AGG_TOPIC = "/diagnostics_agg"


def message_class(type_name: str):
    pkg, sub, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


class _Updater(diag.Updater):
    """The shared updater, plus a hook: what it publishes also goes into the aggregated tree."""

    def __init__(self, node, on_publish, **kw):
        self._on_publish = on_publish
        super().__init__(node, **kw)

    def publish(self, stats) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self._stamp()
        arr.header.frame_id = diag.process_tag()
        arr.status = [s.to_msg() for s in stats]
        self.pub.publish(arr)
        self._on_publish(stats, arr.status)  # the same messages go into the tree


class SystemMonitorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("system_monitor", **kwargs)
        self.params = ParamSet(self, PARAMS, cross_check, self._on_change)
        v = self.params.snapshot()
        self._read_specs(v)
        self.hostname = socket.gethostname()
        self.hwid = f"host {self.hostname}"
        self.host = HostTasks(v, str(data_root(v["data_root"])))
        self._make_process_state()
        self._make_graph_state(v)
        self.pub_agg = self.create_publisher(DiagnosticArray, AGG_TOPIC, qos.DIAGNOSTICS)
        self._make_inputs()
        self._make_updater()
        self._start_timers(v)
        self.get_logger().info(
            f"{self.hwid}: watching {len(self.expected)} processes "
            f"({', '.join(self.by_name) or 'none'}), topics "
            f"{', '.join(w.topic for w in self.watches) or 'none'}; systemd watchdog "
            f"{f'every {self.sd.interval:g} s' if self.sd.interval else 'off'}"
        )

    # -- construction ---------------------------------------------------------------------------
    def _read_specs(self, v: dict) -> None:
        try:
            self.expected = parse_expected_list(v["expected"])
            self.watches = parse_watches(v["watch_topics"])
            self.groups = parse_groups(v["groups"])
        except (ExpectedError, WatchSpecError, GroupSpecError) as e:  # pragma: no cover
            raise ParameterError(str(e)) from None
        self.by_name = {e.name: e for e in self.expected}

    def _make_process_state(self) -> None:
        self.procfs = ProcFS()
        self.finder = Finder(self.procfs)
        self.pids: dict[str, tuple[int, int]] = {}
        self.pid_changes: dict[str, int] = {}
        self.proc_states: dict[str, ProcState] = {}
        self.prev_samples: dict = {}
        self._thread_cache: dict[str, tuple[float, int, list]] = {}
        self._last_scan = -1e9

    def _make_graph_state(self, v: dict) -> None:
        self.watchdog = Watchdog(
            self.expected,
            self.watches,
            v["diag_timeout"],
            v["startup_grace"],
            start=time.monotonic(),
        )
        self.agg = Aggregator(
            self.groups,
            expected=[e.name for e in self.expected if e.publishes_diagnostics],
            stale_timeout=v["stale_timeout"],
            topic_owner={w.topic: w.owner for w in self.watches},
            monitor_name=self.get_name(),
        )
        self._levels: dict[str, int] = {}
        self._logged: dict[str, int] = {}
        self._unhealthy_since: float | None = None

    def _make_inputs(self) -> None:
        # Inputs live on a second node that is never spun: DDS keeps the samples and _check()
        # takes them in batches. One executor wake-up per /diagnostics array and per watched
        # message (20 Hz /pbt/samples) was most of the monitor's CPU.
        import rclpy

        # Not the process's global arguments: their `-r __node:=system_monitor` would rename
        # this node too, and the graph would list /system_monitor twice.
        self._poll_node = rclpy.create_node(
            f"{self.get_name()}_inputs",
            namespace=self.get_namespace(),
            context=self.context,
            use_global_arguments=False,
            start_parameter_services=False,
            enable_rosout=False,
        )
        self._topic_subs: dict[str, object] = {}
        self._writers: dict[bytes, tuple[int | None, str]] = {}
        self._tagged: dict[int, float] = {}  # pid -> last array with our process tag
        self._untagged: tuple[int | None, str] = (None, "")
        self._diag_sub = self._poll_node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diag, qos.DIAGNOSTICS
        )
        self._next_discover = 0.0

    def _make_updater(self) -> None:
        self._tree_ready = False
        self.diag = _Updater(self, self._after_publish, hardware_id=self.hwid)
        for name, task in self.host.tasks().items():
            self.diag.add(name, task)
        self.diag.add("watchdog", self._diag_watchdog)
        for e in self.expected:
            self.diag.add(f"node {e.name}", partial(self._diag_node, e.name))
        for w in self.watches:
            self.diag.add(f"topic {w.topic}", partial(self._diag_topic, w.topic))
        self._tree_ready = True

    def _start_timers(self, v: dict) -> None:
        self.sd = SdNotify() if v["systemd_watchdog"] else SdNotify({})
        if self.sd.enabled and self.sd.interval > 0:
            self.create_timer(self.sd.interval, self._pet)
        self.sd.notify("READY=1")
        self.create_timer(v["check_period"], self._check)
        self._discover()

    # -- parameters -----------------------------------------------------------------------------
    def _on_change(self, changed: dict) -> None:
        v = self.params.snapshot()
        self.host.make_trackers(v)
        self.watchdog.diag_timeout = v["diag_timeout"]
        self.watchdog.grace = v["startup_grace"]
        self.agg.stale_timeout = v["stale_timeout"]

    # -- inputs ---------------------------------------------------------------------------------
    def _on_diag(self, msg, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        me = self.get_name() + ": "
        tag = diag.parse_process_tag(msg.header.frame_id)
        if tag is not None and tag[0] != self.hostname:  # none of our expected processes
            self._other_host(msg, now)
            return
        if tag is not None:
            key, pid, who = tag[1], tag[1], ""
            self._tagged[tag[1]] = now
        else:  # a publisher without our updater: the one such process the graph shows, if one
            key, (pid, who) = "untagged", self._untagged
        for s in msg.status:
            if s.hardware_id == self.hwid and s.name.startswith(me):
                continue  # our own, already in the tree
            node = s.name.partition(": ")[0]
            self.watchdog.on_diagnostics(node, now, key, pid, who)
            level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
            # the received message itself goes into the tree: no copy of its key/values
            self.agg.update(s.name, level, s.message, s.hardware_id, (), now, payload=s)

    def _other_host(self, msg, now: float) -> None:
        """Another host's statuses: into the tree only (its monitor watches its processes)."""
        for s in msg.status:
            level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
            self.agg.update(s.name, level, s.message, s.hardware_id, (), now, payload=s)

    def _find_untagged(self, now: float) -> None:
        """Which process publishes /diagnostics without our updater's process tag: the DDS
        writers' GUIDs (Fast DDS) carry their pid; those not seen tagging are the candidates."""
        tagged = {p for p, t in self._tagged.items() if now - t < 10.0}
        self._tagged = {p: t for p, t in self._tagged.items() if p in tagged}
        known = [pid for pid, _ in self.pids.values()]
        found = set()
        for info in self.get_publishers_info_by_topic("/diagnostics"):
            gid = bytes(info.endpoint_gid)
            if gid not in self._writers:
                if len(self._writers) > 1000:  # writers of processes long gone
                    self._writers.clear()
                self._writers[gid] = writer_pid(gid, known, self.procfs)
            pid, who = self._writers[gid]
            if pid is not None and pid not in tagged and pid != os.getpid():
                found.add((pid, who))
        self._untagged = found.pop() if len(found) == 1 else (None, "")

    def _discover(self) -> None:
        """Subscribe watched topics once their type is known; keep publisher counts current."""
        missing = [w for w in self.watches if w.topic not in self._topic_subs]
        if missing:
            types = dict(self.get_topic_names_and_types())
            for w in missing:
                if w.topic not in types:
                    continue
                try:
                    cls = message_class(types[w.topic][0])
                except (ImportError, AttributeError, ValueError) as e:
                    self.get_logger().warning(f"cannot watch {w.topic}: {e}")
                    continue
                # best effort: matches any publisher
                node = self._poll_node if self._poll_node is not None else self
                self._topic_subs[w.topic] = node.create_subscription(
                    cls,
                    w.topic,
                    partial(self._on_topic, w.topic),
                    qos.viewer(qos.DIAGNOSTICS),
                    raw=True,
                )
        for w in self.watches:
            self.watchdog.topics[w.topic].publishers = self.count_publishers(w.topic)
        self._find_untagged(time.monotonic())

    def _on_topic(self, topic: str, _msg) -> None:
        self.watchdog.on_topic(topic, time.monotonic())

    def _take(self, now: float) -> None:
        """Everything that arrived since the last check (rclpy's own take, without a wake-up)."""
        if self._poll_node is None:
            return
        try:
            sub = self._diag_sub
            with sub.handle:
                while (got := sub.handle.take_message(sub.msg_type, False)) is not None:
                    self._on_diag(got[0], now)
            for topic, sub in self._topic_subs.items():
                with sub.handle:
                    while sub.handle.take_message(sub.msg_type, True) is not None:
                        self.watchdog.on_topic(topic, now)
        except AttributeError:  # an rclpy without Subscription.handle.take_message
            self.get_logger().warning("cannot poll subscriptions here; using callbacks")
            self._poll_node.destroy_node()
            self._poll_node = None
            self._topic_subs.clear()
            self._diag_sub = self.create_subscription(
                DiagnosticArray, "/diagnostics", self._on_diag, qos.DIAGNOSTICS
            )
            self._discover()

    # -- the fast loop --------------------------------------------------------------------------
    def _poll_procs(self, now: float) -> None:
        missing = False
        for e in self.expected:
            known = self.pids.get(e.name)
            st = self.procfs.stat(known[0]) if known else None
            if st is None or st.starttime != known[1]:
                if known:
                    del self.pids[e.name]
                self.proc_states[e.name] = ProcState(None)
                missing = True
            else:
                self.proc_states[e.name] = ProcState(known[0], st.state)
        if missing and now - self._last_scan >= self.params["rescan_period"]:
            self._last_scan = now
            self._rescan()

    def _rescan(self) -> None:
        """Look up the expected processes that have no known PID."""
        found = self.finder.find([e for e in self.expected if e.name not in self.pids])
        # The Finder never matches itself: this process is the monitor's own entry, or the
        # container it runs in (sensorhub_common.container).
        mine = [
            e.name
            for e in self.expected
            if e.name not in self.pids
            and e.name not in found
            and (e.name == self.get_name() or matches(e, self.procfs.cmdline(os.getpid())))
        ]
        me = self.procfs.stat(os.getpid()) if mine else None
        if me is not None:
            for name in mine:
                found[name] = (os.getpid(), me.starttime)
        for name, (pid, start) in found.items():
            self.pids[name] = (pid, start)
            self.pid_changes[name] = self.pid_changes.get(name, -1) + 1
            st = self.procfs.stat(pid)
            self.proc_states[name] = ProcState(pid, st.state if st else "")

    def _check(self) -> None:
        now = time.monotonic()
        self._poll_procs(now)
        self._take(now)
        if now >= self._next_discover:
            self._next_discover = now + 1.0
            self._discover()
        verdicts = self.watchdog.evaluate(now, self.proc_states)
        levels = {n: v.level for n, v in verdicts.items()}
        levels.update({f"topic {t}": lv for t, (lv, _) in self.watchdog.topic_levels.items()})
        changed = levels != self._levels
        self._levels = levels
        bad = self.watchdog.unhealthy()
        if bad and self._unhealthy_since is None:
            self._unhealthy_since = now
        elif not bad:
            self._unhealthy_since = None
        if changed:
            self._log_changes(verdicts)
            self.diag.update()  # a node going silent is published now, not at the next tick

    def _log_changes(self, verdicts: dict) -> None:
        for name, v in verdicts.items():
            before = self._logged.get(name, diag.OK)
            if v.level != before:
                text = f"watchdog: {name}: {diag.LEVEL_NAMES.get(v.level)}: {v.message}"
                if v.level > diag.WARN:  # rclpy: one severity per call site
                    self.get_logger().warning(text)
                else:
                    self.get_logger().info(text)
            self._logged[name] = v.level

    def _pet(self) -> None:
        since = self._unhealthy_since
        limit = self.params["systemd_unhealthy_s"]
        if since is not None and time.monotonic() - since > limit:
            bad = self.watchdog.unhealthy()
            self.sd.notify("STATUS=unhealthy: " + "; ".join(f"{n}: {m}" for n, m in bad.items()))
            return  # systemd restarts the unit after WatchdogSec
        self.sd.notify("WATCHDOG=1")

    # -- publishing -----------------------------------------------------------------------------
    def _after_publish(self, stats, msgs=None) -> None:
        if not self._tree_ready:
            return  # the updater's start-up broadcast, before our tasks exist
        now = time.monotonic()
        self.watchdog.on_diagnostics(self.get_name(), now)  # we are expected too (role graph)
        for i, s in enumerate(stats):
            m = msgs[i] if msgs is not None else None
            self.agg.update(s.name, s.level, s.message, s.hardware_id, s.values, now, m)
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        out = []
        for a in self.agg.tree(now):
            m = a.payload
            if m is None:
                w = diag.DiagnosticStatusWrapper(a.level, a.name, a.message, a.hardware_id)
                w.values = list(a.values)
                m = w.to_msg()
            else:  # ours to change: name, level and message as the tree shows them
                m.name, m.level, m.message = a.name, bytes([a.level]), a.message
            out.append(m)
        arr.status = out
        self.pub_agg.publish(arr)

    # -- graph diagnostics ----------------------------------------------------------------------
    def _diag_watchdog(self, stat) -> None:
        bad = self.watchdog.unhealthy()
        n = len(self.watchdog.verdicts)
        if bad:
            stat.summary(
                max(v.level for v in self.watchdog.verdicts.values()),
                "; ".join(f"{k}: {m}" for k, m in bad.items()),
            )
        else:
            stat.summary(diag.OK, f"all {n} watched nodes alive" if n else "nothing to watch")
        for name, v in self.watchdog.verdicts.items():
            stat.add(name, f"{diag.LEVEL_NAMES.get(v.level)}: {v.message}")
        stat.add("systemd watchdog",
                 f"every {self.sd.interval:g} s, {self.sd.sent} sent" if self.sd.interval
                 else "off (no WATCHDOG_USEC)")  # fmt: skip

    def _diag_node(self, name: str, stat) -> None:
        v = self.watchdog.verdicts.get(name)
        if v is None:
            stat.summary(diag.STALE, "not evaluated yet")
            return
        stat.summary(v.level, v.message)
        exp = self.by_name.get(name)
        known = self.pids.get(name)
        stat.add("process", exp.kind if exp else "(not expected here)")
        if exp is None or known is None:
            stat.add("alive", False)
            stat.add("pid", "-")
            self.prev_samples.pop(name, None)
            return
        now = time.monotonic()
        s = self.procfs.sample(known[0], threads=False, now=now)
        if s is None:
            stat.add("alive", False)
            return
        prev = self.prev_samples.get(name)
        self.prev_samples[name] = s
        s.threads = self._threads(name, s.pid, now)
        top = process_status.add_sample(stat, s, prev, self.pid_changes.get(name, 0))
        process_status.add_requested(stat, exp, s, top)
        if exp.publishes_diagnostics:
            last = self.watchdog.expected_last.get(name)
            stat.add("diagnostics age [s]", f"{now - last:.1f}" if last else "none yet")
            pubs = self.watchdog.publishers.get(name, {}).values()
            stat.add("diagnostics from", ", ".join(p.label(known[0]) for p in pubs) or "none")

    def _threads(self, name: str, pid: int, now: float) -> list:
        """Thread scheduling, re-read every thread_period: it changes at start-up, not at 1 Hz,
        and reading ~20 threads of each process every second was most of our CPU."""
        if not self.params["thread_details"]:
            return []
        cached = self._thread_cache.get(name)
        if cached is None or cached[1] != pid or now - cached[0] >= self.params["thread_period"]:
            cached = (now, pid, self.procfs.threads(pid))
            self._thread_cache[name] = cached
        return cached[2]

    def _diag_topic(self, topic: str, stat) -> None:
        ts = self.watchdog.topics[topic]
        level, msg = self.watchdog.topic_levels.get(topic, (diag.STALE, "not evaluated yet"))
        stat.summary(level, msg)
        stat.add("node", ts.watch.owner)
        stat.add("max silence [s]", f"{ts.watch.max_silence:g}")
        stat.add("subscribed", topic in self._topic_subs)
        stat.add("publishers", ts.publishers if ts.publishers >= 0 else "unknown")
        stat.add("messages", ts.count)
        stat.add("last message age [s]",
                 f"{time.monotonic() - ts.last:.2f}" if ts.last else "none yet")  # fmt: skip
        stat.add("silences", ts.silences)

    def on_shutdown(self) -> None:
        self.sd.notify("STOPPING=1")
        if self._poll_node is not None:
            self._poll_node.destroy_node()
        self.host.close()


def main(args=None):
    run_node(SystemMonitorNode, args=args)


if __name__ == "__main__":
    main()
