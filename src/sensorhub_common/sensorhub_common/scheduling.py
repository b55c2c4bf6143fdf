"""Process and thread scheduling that fails soft.

Every call returns a :class:`SchedResult` instead of raising: on a dev machine (no
CAP_SYS_NICE, two cores) a node must keep running and *say* what it could not get, and on the Pi
diagnostics must show it. :class:`SchedulingStatus` collects results and is a diagnostics
task (``run(stat)``).

No rclpy import: the supervisor uses this between fork and exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import threading
from dataclasses import dataclass

IO_CLASSES = {"none": 0, "realtime": 1, "best-effort": 2, "idle": 3}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "armv7l": 314, "armv6l": 314, "i686": 289}
_MCL_CURRENT, _MCL_FUTURE = 1, 2


@dataclass(frozen=True)
class SchedResult:
    what: str  # e.g. "nice", "affinity", "sched_fifo", "io_class", "mlockall"
    requested: str
    ok: bool
    message: str


def parse_cpu_list(spec: str | list[int] | tuple[int, ...] | None) -> frozenset[int] | None:
    """Parse "0-2,3" (taskset/cpuset syntax) or a list of ints; None/"" means no pinning."""
    if spec is None or spec in ("", []):
        return None
    if isinstance(spec, (list, tuple)):
        cpus = set()
        for c in spec:
            if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                raise ValueError(f"bad CPU {c!r} in {spec!r}: CPUs are integers >= 0")
            cpus.add(c)
        return frozenset(cpus)
    if not isinstance(spec, str):
        raise ValueError(f"bad CPU list {spec!r}: expected a string like '0-2,3' or a list")
    cpus = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise ValueError(f"bad CPU list {spec!r}: empty element")
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad CPU list {spec!r}: {part!r} is not N or N-M")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"bad CPU list {spec!r}: range {part!r} is descending")
        cpus.update(range(a, b + 1))
    return frozenset(cpus)


def format_cpu_list(cpus) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def set_affinity(cpus, tid: int = 0) -> SchedResult:
    """Pin a process (pid) or, on Linux, a single thread (native tid); 0 = the caller."""
    want = parse_cpu_list(cpus)
    if want is None:
        return SchedResult("affinity", "", True, "not requested")
    req = format_cpu_list(want)
    online = frozenset(range(os.cpu_count() or 1))
    missing = want - online
    if missing:
        return SchedResult(
            "affinity",
            req,
            False,
            f"CPUs {format_cpu_list(missing)} do not exist (online: {format_cpu_list(online)});"
            " not pinned",
        )
    try:
        os.sched_setaffinity(tid, want)
    except OSError as e:
        return SchedResult("affinity", req, False, f"sched_setaffinity failed: {e.strerror}")
    return SchedResult("affinity", req, True, f"pinned to CPUs {req}")


def set_nice(nice: int, pid: int = 0) -> SchedResult:
    """Set the nice value of a process (or, on Linux, a thread id)."""
    if not -20 <= nice <= 19:
        return SchedResult("nice", str(nice), False, f"nice {nice} outside -20..19")
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as e:
        hint = (
            " (needs CAP_SYS_NICE or RLIMIT_NICE)"
            if e.errno in (errno.EPERM, errno.EACCES)
            else ""
        )
        return SchedResult("nice", str(nice), False, f"setpriority failed: {e.strerror}{hint}")
    got = os.getpriority(os.PRIO_PROCESS, pid)
    return SchedResult("nice", str(nice), got == nice, f"nice {got}")


def set_io_class(io_class: str, level: int = 4, pid: int = 0) -> SchedResult:
    """ioprio_set(2): 'idle' keeps FTP/disk writers from delaying the PBT reader's I/O."""
    req = f"{io_class}:{level}" if io_class not in ("idle", "none") else io_class
    if io_class not in IO_CLASSES:
        return SchedResult("io_class", req, False, f"unknown I/O class {io_class!r}")
    if not 0 <= level <= 7:
        return SchedResult("io_class", req, False, f"I/O level {level} outside 0..7")
    nr = _SYS_IOPRIO_SET.get(platform.machine())
    if nr is None:
        return SchedResult("io_class", req, False, f"ioprio_set unknown on {platform.machine()}")
    value = (IO_CLASSES[io_class] << _IOPRIO_CLASS_SHIFT) | (0 if io_class == "idle" else level)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.syscall(nr, _IOPRIO_WHO_PROCESS, pid, value) != 0:
        err = ctypes.get_errno()
        return SchedResult("io_class", req, False, f"ioprio_set failed: {os.strerror(err)}")
    return SchedResult("io_class", req, True, f"I/O class {req}")


def set_realtime(priority: int, tid: int = 0) -> SchedResult:
    """SCHED_FIFO for one thread (native tid, 0 = calling thread) so DDS threads stay normal."""
    req = f"SCHED_FIFO {priority}"
    lo, hi = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not lo <= priority <= hi:
        return SchedResult("sched_fifo", req, False, f"priority {priority} outside {lo}..{hi}")
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        hint = (
            f" (RLIMIT_RTPRIO is {soft}; raise it: LimitRTPRIO= in systemd or limits.conf)"
            if e.errno in (errno.EPERM, errno.EACCES)
            else ""
        )
        return SchedResult(
            "sched_fifo", req, False, f"sched_setscheduler failed: {e.strerror}{hint}"
        )
    return SchedResult("sched_fifo", req, True, f"SCHED_FIFO priority {priority}")


def lock_memory(future: bool = False) -> SchedResult:
    """mlockall after start-up: MCL_CURRENT pins what is mapped; MCL_FUTURE before rclpy init would
    lock hundreds of MB, so it is opt-in."""
    flags = _MCL_CURRENT | (_MCL_FUTURE if future else 0)
    req = "MCL_CURRENT" + ("|MCL_FUTURE" if future else "")
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(flags) != 0:
        err = ctypes.get_errno()
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return SchedResult(
            "mlockall",
            req,
            False,
            f"mlockall failed: {os.strerror(err)} (RLIMIT_MEMLOCK {soft}; LimitMEMLOCK=infinity)",
        )
    return SchedResult("mlockall", req, True, "memory locked")


def apply_process(
    nice: int | None = None,
    cpus=None,
    io_class: str | None = None,
    io_level: int = 4,
    pid: int = 0,
) -> list[SchedResult]:
    """Process-level settings (what a launch prefix or the supervisor applies before exec)."""
    out = []
    if nice is not None:
        out.append(set_nice(nice, pid))
    if cpus not in (None, "", []):
        out.append(set_affinity(cpus, pid))
    if io_class not in (None, "", "none"):
        out.append(set_io_class(io_class, io_level, pid))
    return out


def apply_current_thread(rt_priority: int = 0, cpus=None) -> list[SchedResult]:
    """Call from the hot thread itself: affinity first, then SCHED_FIFO (0 = leave SCHED_OTHER)."""
    tid = threading.get_native_id()
    out = []
    if cpus not in (None, "", []):
        out.append(set_affinity(cpus, tid))
    if rt_priority:
        out.append(set_realtime(rt_priority, tid))
    return out


class SchedulingStatus:
    """Thread-safe record of scheduling results; a diagnostics task named 'scheduling'."""

    name = "scheduling"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[str, SchedResult] = {}

    def record(self, results, scope: str = "process", logger=None) -> None:
        for r in results if isinstance(results, (list, tuple)) else [results]:
            with self._lock:
                self._results[f"{scope} {r.what}"] = r
            if logger is not None and not r.ok:
                logger.warning(f"{scope} {r.what} ({r.requested}) not applied: {r.message}")

    @property
    def degraded(self) -> bool:
        with self._lock:
            return any(not r.ok for r in self._results.values())

    def results(self) -> dict[str, SchedResult]:
        with self._lock:
            return dict(self._results)

    def run(self, stat):
        res = self.results()
        failed = [k for k, r in res.items() if not r.ok]
        if failed:
            stat.summary(1, "scheduling not fully applied: " + ", ".join(failed))
        else:
            stat.summary(0, "scheduling applied" if res else "no scheduling requested")
        for key, r in sorted(res.items()):
            stat.add(key, ("ok: " if r.ok else "FAILED: ") + r.message)
        return stat
