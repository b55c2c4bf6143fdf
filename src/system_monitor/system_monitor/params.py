"""The system_monitor node's parameters: every one typed, bounded and described."""

from __future__ import annotations

from sensorhub_common.params import Param
from system_monitor import host
from system_monitor.aggregate import DEFAULT_GROUPS, GroupSpecError, parse_groups
from system_monitor.procinfo import ExpectedError, parse_expected_list
from system_monitor.watchdog import WatchSpecError, parse_watches


def _check(parser):
    def check(value) -> str | None:
        try:
            parser(value)
        except (ExpectedError, WatchSpecError, GroupSpecError) as e:
            return str(e)
        return None

    return check


def _bounds(key: str, what: str, unit: str, warn: float, error: float, top: float) -> list:
    """`<key>_warn` and `<key>_error`: `what` above the bound is WARN or ERROR."""
    return [
        Param(f"{key}_{level}", default, f"{what} above this is {level.upper()} [{unit}]",
              min=0.0, max=top)
        for level, default in (("warn", warn), ("error", error))
    ]  # fmt: skip


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
    *_bounds("cpu", "Average CPU", "%", 70.0, 90.0, top=100.0),
    Param("cpu_hysteresis", 5.0, "A CPU level clears this far below its bound [%]", min=0.0,
          max=50.0),
    *_bounds("temp", "Hottest thermal zone", "degC", 70.0, 80.0, top=150.0),
    Param("temp_hysteresis", 2.0, "A temperature level clears this far below its bound [degC]",
          min=0.0, max=20.0),
    *_bounds("mem", "Memory used", "%", 85.0, 95.0, top=100.0),
    *_bounds("disk", "Data root's file system used", "%", 90.0, 95.0, top=100.0),
    Param("thermal_root", "/sys/class/thermal", "Where thermal zones are read", read_only=True),
    Param("throttled_path", host.SYSFS_THROTTLED, "Pi firmware throttling flags in sysfs "
          "('' = skip)", read_only=True),
    Param("vcgencmd", "vcgencmd", "Fallback for the throttling flags ('' = skip)",
          read_only=True),
    Param("throttle_period", 5.0, "Read the throttling flags this often [s]", min=1.0,
          max=600.0, read_only=True),
    Param("kernel_log", "/dev/kmsg", "Kernel log for USB/serial errors ('' = off)",
          read_only=True),
    *_bounds("clock_offset", "|Clock offset| from its time source", "ms", 5.0, 50.0,
             top=60000.0),
    *_bounds("clock_max_error", "Clock's maximum error", "ms", 100.0, 1000.0, top=60000.0),
    Param("clock_unsynced", "warn", "Level of a clock no time daemon synchronises (two hosts: "
          "stamps and latencies come from different clocks)", choices=("ok", "warn", "error")),
    Param("chronyc", "chronyc", "chrony's client for the daemon's view of the clock "
          "('' = skip)", read_only=True),
    Param("timedatectl", "timedatectl", "systemd-timesyncd's view of the clock, when chrony's "
          "is not available ('' = skip)", read_only=True),
    Param("clock_period", 10.0, "Ask the time daemon this often [s]", min=1.0, max=600.0,
          read_only=True),
    Param("clock_timeout", 2.0, "A time daemon's command taking longer is 'not available' [s]",
          min=0.1, max=30.0, read_only=True),
    Param("thread_details", True, "Read every thread's scheduling (the highest-priority thread "
          "shows whether pbt_driver's reader got SCHED_FIFO)"),
    Param("thread_period", 5.0, "Re-read thread scheduling this often [s]", min=0.5, max=600.0),
    Param("systemd_watchdog", True, "Pet systemd's watchdog (when $NOTIFY_SOCKET and "
          "$WATCHDOG_USEC are set) while the graph is healthy", read_only=True),
    Param("systemd_unhealthy_s", 30.0, "Stop petting once a node has been down this long [s]",
          min=1.0, max=3600.0),
]  # fmt: skip

PAIRS = (("cpu_warn", "cpu_error"), ("temp_warn", "temp_error"), ("mem_warn", "mem_error"),
         ("disk_warn", "disk_error"), ("clock_offset_warn", "clock_offset_error"),
         ("clock_max_error_warn", "clock_max_error_error"))  # fmt: skip


def cross_check(v: dict) -> str | None:
    for w, e in PAIRS:
        if v[w] > v[e]:
            return f"{w} ({v[w]}) must be <= {e} ({v[e]})"
    return None
