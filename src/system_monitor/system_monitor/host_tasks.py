"""The host's diagnostic tasks: psutil, sysfs and clock readings through their pure checks.

Each task fills one status (``cpu``, ``memory``, ...) the node's updater publishes; the level
trackers are rebuilt when a threshold parameter changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sensorhub_common import diagnostics as diag
from system_monitor import clock, host
from system_monitor.clock_reader import DaemonPoller, KernelClockReader, daemon_queries


def copy_report(report: host.Report, stat) -> None:
    stat.summary(report.level, report.message)
    for k, x in report.values:
        stat.add(k, x)


def _ms_tracker(warn_ms: float, error_ms: float) -> host.LevelTracker:
    return host.LevelTracker(host.Threshold(warn_ms / 1e3, error_ms / 1e3))


class HostTasks:
    """CPU, memory, disk, network, temperature, throttling, kernel-log and clock statuses."""

    def __init__(self, v: dict, data_root: str):
        import psutil

        self._psutil = psutil
        self.data_root = data_root
        self.thermal_root = v["thermal_root"]
        self.throttle_period = v["throttle_period"]
        self.make_trackers(v)
        self.throttle = host.ThrottleReader(v["throttled_path"], v["vcgencmd"])
        self._throttle_flags = None
        self._throttle_next = 0.0
        self.kmsg = host.KernelLog(v["kernel_log"]) if v["kernel_log"] else None
        self._net_prev, self._net_t = {}, 0.0
        self.kernel_clock = KernelClockReader()
        self.daemons = DaemonPoller(
            daemon_queries(v["chronyc"], v["timedatectl"]), v["clock_period"], v["clock_timeout"]
        )
        psutil.cpu_percent(percpu=True)  # the first call only starts the measurement

    def make_trackers(self, v: dict) -> None:
        self.cpu_level = host.LevelTracker(
            host.Threshold(v["cpu_warn"], v["cpu_error"], v["cpu_hysteresis"])
        )
        self.temp_level = host.LevelTracker(
            host.Threshold(v["temp_warn"], v["temp_error"], v["temp_hysteresis"])
        )
        self.mem_level = host.LevelTracker(host.Threshold(v["mem_warn"], v["mem_error"]))
        self.disk_level = host.LevelTracker(host.Threshold(v["disk_warn"], v["disk_error"]))
        self.clock_limits = clock.ClockLimits(
            offset=_ms_tracker(v["clock_offset_warn"], v["clock_offset_error"]),
            max_error=_ms_tracker(v["clock_max_error_warn"], v["clock_max_error_error"]),
            unsynced=clock.UNSYNCED_LEVELS[v["clock_unsynced"]],
        )

    def tasks(self) -> dict[str, Callable]:
        """Status name -> task, in publishing order."""
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "disk": self.disk,
            "network": self.network,
            "temperature": self.temperature,
            "throttling": self.throttling,
            "kernel log": self.kernel_log,
            "clock": self.clock,
        }

    def cpu(self, stat) -> None:
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
        copy_report(host.check_cpu(ps.cpu_percent(percpu=True), load, freq, self.cpu_level), stat)

    def memory(self, stat) -> None:
        vm, sw = self._psutil.virtual_memory(), self._psutil.swap_memory()
        r = host.check_percent(
            "memory",
            vm.percent,
            self.mem_level,
            total_MB=vm.total / 1e6,
            available_MB=vm.available / 1e6,
            swap_used=f"{sw.percent:.0f}% of {sw.total / 1e6:.0f} MB" if sw.total else "no swap",
        )
        copy_report(r, stat)

    def disk(self, stat) -> None:
        try:
            du = self._psutil.disk_usage(self.data_root)
            pct, free = du.percent, du.free / 1e9
        except OSError:
            pct = free = None
        r = host.check_percent("data root", pct, self.disk_level, free_GB=free)
        r.add("path", self.data_root)
        copy_report(r, stat)

    def network(self, stat) -> None:
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
        copy_report(host.net_rates(self._net_prev, cur, now - self._net_t), stat)
        self._net_prev, self._net_t = cur, now

    def temperature(self, stat) -> None:
        zones = host.read_thermal_zones(self.thermal_root)
        copy_report(host.check_temperature(zones, self.temp_level), stat)

    def throttling(self, stat) -> None:
        now = time.monotonic()
        if now >= self._throttle_next:
            self._throttle_next = now + self.throttle_period
            self._throttle_flags = self.throttle.read()
        copy_report(host.check_throttled(self._throttle_flags, self.throttle.source), stat)

    def kernel_log(self, stat) -> None:
        if self.kmsg is None:
            stat.summary(diag.OK, "kernel log not watched (kernel_log is empty)")
            return
        self.kmsg.poll()
        copy_report(self.kmsg.report(), stat)

    def clock(self, stat) -> None:
        daemon, why = self.daemons.latest()
        reading = clock.ClockReading(
            kernel=self.kernel_clock.read(),
            daemon=daemon,
            daemon_note=why,
            kernel_note=self.kernel_clock.error,
        )
        copy_report(clock.check_clock(reading, self.clock_limits), stat)

    def close(self) -> None:
        self.daemons.close()
        if self.kmsg is not None:
            self.kmsg.close()
