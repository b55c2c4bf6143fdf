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
import sys
import time
from functools import partial

from rclpy.node import Node

from sensorhub_common import diagnostics as diag
from sensorhub_common import lean_imports, qos
from sensorhub_common.params import Param, ParameterError, ParamSet
from sensorhub_common.paths import data_root
from sensorhub_common.runner import spin_node
from sensorhub_common.scheduling import format_cpu_list
from system_monitor import host
from system_monitor.aggregate import DEFAULT_GROUPS, Aggregator, GroupSpecError, parse_groups
from system_monitor.procinfo import (
    RT_POLICIES,
    ExpectedError,
    Finder,
    ProcFS,
    matches,
    parse_expected_list,
    top_thread,
)
from system_monitor.sdnotify import SdNotify
from system_monitor.watchdog import ProcState, Watchdog, WatchSpecError, parse_watches

AGG_TOPIC = "/diagnostics_agg"


def _check(parser):
    def check(value) -> str | None:
        try:
            parser(value)
        except (ExpectedError, WatchSpecError, GroupSpecError) as e:
            return str(e)
        return None

    return check


PARAMS = [
    Param("data_root", "", "Data root whose disk space is reported (empty: $SENSORHUB_DATA_ROOT "
          "or ./data)", read_only=True),
    Param("expected", [], "This host's graph processes (bringup's ${plan_nodes}: "
          "'name=..;kind=..;fqn=..;exe=pkg/exe;nice=..;cpus=..;rt=..', or bare node names); "
          "[''] = none", item_type=str, read_only=True, check=_check(parse_expected_list)),
    Param("watch_topics", [], "Key topics whose silence is an ERROR of their node: "
          "'/topic=node:max_silence_s'", item_type=str, read_only=True,
          check=_check(parse_watches)),
    Param("groups", list(DEFAULT_GROUPS), "/diagnostics_agg groups 'Name=fnmatch,fnmatch' on "
          "node names, first match wins, the rest go to Other", item_type=str, read_only=True,
          check=_check(parse_groups)),
    Param("check_period", 0.2, "Process poll and watchdog evaluation period [s]", min=0.05,
          max=1.0, read_only=True),
    Param("rescan_period", 1.0, "Command-line scan for missing processes at most this often [s]",
          min=0.1, max=60.0, read_only=True),
    Param("diag_timeout", 2.5, "A node's diagnostics silent this long is STALE [s]", min=0.5,
          max=60.0),
    Param("startup_grace", 15.0, "Missing processes/diagnostics are not errors this long after "
          "start [s]", min=0.0, max=600.0),
    Param("stale_timeout", 5.0, "/diagnostics_agg: an item not updated this long is STALE [s]",
          min=1.0, max=600.0),
    Param("cpu_warn", 70.0, "Average CPU above this is WARN [%]", min=0.0, max=100.0),
    Param("cpu_error", 90.0, "Average CPU above this is ERROR [%]", min=0.0, max=100.0),
    Param("cpu_hysteresis", 5.0, "A CPU level clears this far below its bound [%]", min=0.0,
          max=50.0),
    Param("temp_warn", 70.0, "Hottest thermal zone above this is WARN [degC]", min=0.0,
          max=150.0),
    Param("temp_error", 80.0, "Hottest thermal zone above this is ERROR [degC]", min=0.0,
          max=150.0),
    Param("temp_hysteresis", 2.0, "A temperature level clears this far below its bound [degC]",
          min=0.0, max=20.0),
    Param("mem_warn", 85.0, "Memory used above this is WARN [%]", min=0.0, max=100.0),
    Param("mem_error", 95.0, "Memory used above this is ERROR [%]", min=0.0, max=100.0),
    Param("disk_warn", 90.0, "Data root's file system used above this is WARN [%]", min=0.0,
          max=100.0),
    Param("disk_error", 95.0, "Data root's file system used above this is ERROR [%]", min=0.0,
          max=100.0),
    Param("thermal_root", "/sys/class/thermal", "Where thermal zones are read", read_only=True),
    Param("throttled_path", host.SYSFS_THROTTLED, "Pi firmware throttling flags in sysfs "
          "('' = skip)", read_only=True),
    Param("vcgencmd", "vcgencmd", "Fallback for the throttling flags ('' = skip)",
          read_only=True),
    Param("throttle_period", 5.0, "Read the throttling flags this often [s]", min=1.0,
          max=600.0, read_only=True),
    Param("kernel_log", "/dev/kmsg", "Kernel log for USB/serial errors ('' = off)",
          read_only=True),
    Param("thread_details", True, "Read every thread's scheduling (the highest-priority thread "
          "shows whether pbt_driver's reader got SCHED_FIFO)"),
    Param("thread_period", 5.0, "Re-read thread scheduling this often [s]", min=0.5, max=600.0),
    Param("systemd_watchdog", True, "Pet systemd's watchdog (when $NOTIFY_SOCKET and "
          "$WATCHDOG_USEC are set) while the graph is healthy", read_only=True),
    Param("systemd_unhealthy_s", 30.0, "Stop petting once a node has been down this long [s]",
          min=1.0, max=3600.0),
]  # fmt: skip

PAIRS = (("cpu_warn", "cpu_error"), ("temp_warn", "temp_error"), ("mem_warn", "mem_error"),
         ("disk_warn", "disk_error"))  # fmt: skip


def cross_check(v: dict) -> str | None:
    for w, e in PAIRS:
        if v[w] > v[e]:
            return f"{w} ({v[w]}) must be <= {e} ({v[e]})"
    return None


def message_class(type_name: str):
    pkg, sub, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


class _Updater(diag.Updater):
    """The shared updater, plus a hook: what it publishes also goes into the aggregated tree."""

    def __init__(self, node, on_publish, **kw):
        self._on_publish = on_publish
        super().__init__(node, **kw)

    def publish(self, stats) -> None:
        arr = self._Array()
        arr.header.stamp = self._stamp()
        arr.status = [s.to_msg() for s in stats]
        self.pub.publish(arr)
        self._on_publish(stats, arr.status)  # the same messages go into the tree


class SystemMonitorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("system_monitor", **kwargs)
        import psutil
        from diagnostic_msgs.msg import DiagnosticArray

        self._psutil = psutil
        self._Array = DiagnosticArray
        self.params = ParamSet(self, PARAMS, cross_check, self._on_change)
        v = self.params.snapshot()
        try:
            self.expected = parse_expected_list(v["expected"])
            self.watches = parse_watches(v["watch_topics"])
            groups = parse_groups(v["groups"])
        except (ExpectedError, WatchSpecError, GroupSpecError) as e:  # pragma: no cover
            raise ParameterError(str(e)) from None
        self.by_name = {e.name: e for e in self.expected}
        self.hostname = socket.gethostname()
        self.hwid = f"host {self.hostname}"
        self.data_root = str(data_root(v["data_root"]))
        self._make_trackers(v)

        now = time.monotonic()
        self.procfs = ProcFS()
        self.finder = Finder(self.procfs)
        self.pids: dict[str, tuple[int, int]] = {}
        self.pid_changes: dict[str, int] = {}
        self.proc_states: dict[str, ProcState] = {}
        self.prev_samples: dict = {}
        self._thread_cache: dict[str, tuple[float, int, list]] = {}
        self._last_scan = -1e9
        self.watchdog = Watchdog(
            self.expected, self.watches, v["diag_timeout"], v["startup_grace"], start=now
        )
        self.agg = Aggregator(
            groups,
            expected=[e.name for e in self.expected if e.publishes_diagnostics],
            stale_timeout=v["stale_timeout"],
            topic_owner={w.topic: w.owner for w in self.watches},
            monitor_name=self.get_name(),
        )
        self._levels: dict[str, int] = {}
        self._logged: dict[str, int] = {}

        self.throttle = host.ThrottleReader(v["throttled_path"], v["vcgencmd"])
        self._throttle_flags = None
        self._throttle_next = 0.0
        self.kmsg = host.KernelLog(v["kernel_log"]) if v["kernel_log"] else None
        self._net_prev, self._net_t = {}, 0.0
        psutil.cpu_percent(percpu=True)  # the first call only starts the measurement

        self.pub_agg = self.create_publisher(DiagnosticArray, AGG_TOPIC, qos.DIAGNOSTICS)
        # Inputs live on a second node that is never spun: DDS keeps the samples and _check()
        # takes them in batches. One executor wake-up per /diagnostics array and per watched
        # message (20 Hz /pbt/samples) was most of the monitor's CPU.
        import rclpy

        self._poll_node = rclpy.create_node(
            f"{self.get_name()}_inputs",
            namespace=self.get_namespace(),
            context=self.context,
            start_parameter_services=False,
            enable_rosout=False,
        )
        self._topic_subs: dict[str, object] = {}
        self._diag_sub = self._poll_node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diag, qos.DIAGNOSTICS
        )
        self._next_discover = 0.0
        self._tree_ready = False
        self.diag = _Updater(self, self._after_publish, hardware_id=self.hwid)
        self.diag.add("cpu", self._diag_cpu)
        self.diag.add("memory", self._diag_memory)
        self.diag.add("disk", self._diag_disk)
        self.diag.add("network", self._diag_network)
        self.diag.add("temperature", self._diag_temperature)
        self.diag.add("throttling", self._diag_throttling)
        self.diag.add("kernel log", self._diag_kernel)
        self.diag.add("watchdog", self._diag_watchdog)
        for e in self.expected:
            self.diag.add(f"node {e.name}", partial(self._diag_node, e.name))
        for w in self.watches:
            self.diag.add(f"topic {w.topic}", partial(self._diag_topic, w.topic))

        self._tree_ready = True
        self.sd = SdNotify() if v["systemd_watchdog"] else SdNotify({})
        self._unhealthy_since: float | None = None
        if self.sd.enabled and self.sd.interval > 0:
            self.create_timer(self.sd.interval, self._pet)
        self.sd.notify("READY=1")
        self.create_timer(v["check_period"], self._check)
        self._discover()
        self.get_logger().info(
            f"{self.hwid}: watching {len(self.expected)} processes "
            f"({', '.join(self.by_name) or 'none'}), topics "
            f"{', '.join(w.topic for w in self.watches) or 'none'}; systemd watchdog "
            f"{f'every {self.sd.interval:g} s' if self.sd.interval else 'off'}"
        )

    # -- parameters -----------------------------------------------------------------------------
    def _make_trackers(self, v: dict) -> None:
        self.cpu_level = host.LevelTracker(
            host.Threshold(v["cpu_warn"], v["cpu_error"], v["cpu_hysteresis"])
        )
        self.temp_level = host.LevelTracker(
            host.Threshold(v["temp_warn"], v["temp_error"], v["temp_hysteresis"])
        )
        self.mem_level = host.LevelTracker(host.Threshold(v["mem_warn"], v["mem_error"]))
        self.disk_level = host.LevelTracker(host.Threshold(v["disk_warn"], v["disk_error"]))

    def _on_change(self, changed: dict) -> None:
        v = self.params.snapshot()
        self._make_trackers(v)
        self.watchdog.diag_timeout = v["diag_timeout"]
        self.watchdog.grace = v["startup_grace"]
        self.agg.stale_timeout = v["stale_timeout"]

    # -- inputs ---------------------------------------------------------------------------------
    def _on_diag(self, msg, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        me = self.get_name() + ": "
        for s in msg.status:
            if s.hardware_id == self.hwid and s.name.startswith(me):
                continue  # our own, already in the tree
            node = s.name.partition(": ")[0]
            self.watchdog.on_diagnostics(node, now)
            level = s.level[0] if isinstance(s.level, (bytes, bytearray)) else int(s.level)
            # the received message itself goes into the tree: no copy of its key/values
            self.agg.update(s.name, level, s.message, s.hardware_id, (), now, payload=s)

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
                self._Array, "/diagnostics", self._on_diag, qos.DIAGNOSTICS
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
            for name, v in verdicts.items():
                before = self._logged.get(name, diag.OK)
                if v.level != before:
                    text = f"watchdog: {name}: {diag.LEVEL_NAMES.get(v.level)}: {v.message}"
                    if v.level > diag.WARN:  # rclpy: one severity per call site
                        self.get_logger().warning(text)
                    else:
                        self.get_logger().info(text)
                self._logged[name] = v.level
            self.diag.update()  # a node going silent is published now, not at the next tick

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
        arr = self._Array()
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

    @staticmethod
    def _copy(report: host.Report, stat) -> None:
        stat.summary(report.level, report.message)
        for k, x in report.values:
            stat.add(k, x)

    # -- host diagnostics -----------------------------------------------------------------------
    def _diag_cpu(self, stat) -> None:
        ps = self._psutil
        try:
            load = os.getloadavg()
        except OSError:
            load = None
        try:
            f = ps.cpu_freq()
            freq = f.current if f and f.current else None
        except (OSError, NotImplementedError, AttributeError):
            freq = None
        self._copy(host.check_cpu(ps.cpu_percent(percpu=True), load, freq, self.cpu_level), stat)

    def _diag_memory(self, stat) -> None:
        vm, sw = self._psutil.virtual_memory(), self._psutil.swap_memory()
        r = host.check_percent(
            "memory",
            vm.percent,
            self.mem_level,
            total_MB=vm.total / 1e6,
            available_MB=vm.available / 1e6,
            swap_used=f"{sw.percent:.0f}% of {sw.total / 1e6:.0f} MB" if sw.total else "no swap",
        )
        self._copy(r, stat)

    def _diag_disk(self, stat) -> None:
        try:
            du = self._psutil.disk_usage(self.data_root)
            pct, free = du.percent, du.free / 1e9
        except OSError:
            pct = free = None
        r = host.check_percent("data root", pct, self.disk_level, free_GB=free)
        r.add("path", self.data_root)
        self._copy(r, stat)

    def _diag_network(self, stat) -> None:
        now = time.monotonic()
        try:
            raw = self._psutil.net_io_counters(pernic=True)
        except OSError:
            raw = {}
        cur = {
            n: host.NetCounters(c.bytes_sent, c.bytes_recv, c.errin, c.errout, c.dropin,
                                c.dropout)
            for n, c in raw.items() if n != "lo"
        }  # fmt: skip
        self._copy(host.net_rates(self._net_prev, cur, now - self._net_t), stat)
        self._net_prev, self._net_t = cur, now

    def _diag_temperature(self, stat) -> None:
        zones = host.read_thermal_zones(self.params["thermal_root"])
        self._copy(host.check_temperature(zones, self.temp_level), stat)

    def _diag_throttling(self, stat) -> None:
        now = time.monotonic()
        if now >= self._throttle_next:
            self._throttle_next = now + self.params["throttle_period"]
            self._throttle_flags = self.throttle.read()
        self._copy(host.check_throttled(self._throttle_flags, self.throttle.source), stat)

    def _diag_kernel(self, stat) -> None:
        if self.kmsg is None:
            stat.summary(diag.OK, "kernel log not watched (kernel_log is empty)")
            return
        self.kmsg.poll()
        self._copy(self.kmsg.report(), stat)

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
        same = prev is not None and prev.pid == s.pid and s.t > prev.t
        dt = s.t - prev.t if same else 0.0
        stat.add("alive", s.stat.state not in ("Z", "X"))
        stat.add("pid", s.pid)
        stat.add("state", s.stat.state_name)
        stat.add("restarts seen", self.pid_changes.get(name, 0))
        cpu = f"{(s.stat.cpu_s - prev.stat.cpu_s) / dt * 100:.1f}" if same else "measuring"
        stat.add("CPU [% of one core]", cpu)
        st = s.status
        stat.add("RSS [MB]", f"{st.rss_bytes / 1e6:.1f}" if st and st.rss_bytes else "n/a")
        stat.add("threads", s.stat.num_threads)
        if st and st.voluntary is not None:
            stat.add("context switches voluntary/involuntary",
                     f"{st.voluntary} / {st.involuntary}")  # fmt: skip
            if same and prev.status and prev.status.voluntary is not None:
                stat.add("context switches per s voluntary/involuntary",
                         f"{(st.voluntary - prev.status.voluntary) / dt:.0f} / "
                         f"{(st.involuntary - prev.status.involuntary) / dt:.0f}")  # fmt: skip
        stat.add("policy", s.stat.policy_name)
        stat.add("RT priority", s.stat.rt_priority)
        stat.add("nice", s.stat.nice)
        cpus = st.cpus if st else None
        stat.add("CPU affinity", format_cpu_list(cpus) if cpus else "n/a")
        s.threads = self._threads(name, s.pid, now)
        top = top_thread(s.threads)
        stat.add("highest-priority thread", top.describe() if top else "n/a")
        # what was asked for, against what the kernel applied
        req = []
        if exp.nice is not None:
            req.append(f"nice {exp.nice}")
            if s.stat.nice != exp.nice:
                stat.merge_summary(diag.WARN, f"nice {s.stat.nice}, requested {exp.nice}")
        if exp.cpus:
            req.append(f"CPUs {format_cpu_list(exp.cpus)}")
            if cpus is not None and cpus != exp.cpus:
                stat.merge_summary(
                    diag.WARN,
                    f"CPUs {format_cpu_list(cpus)}, requested {format_cpu_list(exp.cpus)}",
                )
        if exp.rt:
            req.append(f"SCHED_FIFO {exp.rt} thread")
            if s.threads and (top is None or top.policy not in RT_POLICIES):
                stat.merge_summary(diag.WARN, f"no real-time thread (requested SCHED_FIFO "
                                   f"{exp.rt})")  # fmt: skip
        stat.add("requested", ", ".join(req) or "defaults")
        if exp.publishes_diagnostics:
            last = self.watchdog.last_diag.get(name)
            stat.add("diagnostics age [s]", f"{now - last:.1f}" if last else "none yet")

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
        if self.kmsg is not None:
            self.kmsg.close()


def main(args=None):
    lean_imports.install()  # before any node exists: no code generator in this process
    sys.exit(spin_node(lambda: SystemMonitorNode(), args=args))  # noqa: PLW0108


if __name__ == "__main__":
    main()
