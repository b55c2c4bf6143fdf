"""The supervisor's children: one process each (``prefix + argv`` in its own process group),
and what /proc says about them (the CPUs and nice they got, who holds a listening port), and
everything they started, even what left their process group (:class:`Descendants`)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque

from bringup.backoff import Backoff
from bringup.console import RotatingLog
from bringup.specs import ProcessSpec
from sensorhub_common.scheduling import format_cpu_list


def signal_name(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = {0: "clean exit", 1: "crash", 2: "invalid parameters/configuration"}.get(code, "")
    return f"exit code {code}" + (f" ({meaning})" if meaning else "")


class Child:
    """One supervised process: its spec, log, restart bookkeeping and last output."""

    def __init__(self, spec: ProcessSpec, log: RotatingLog, color: str | None):
        self.spec = spec
        self.log = log
        self.color = color
        self.backoff = Backoff(spec.respawn)
        self.popen: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.state = "pending"
        self.started_at = 0.0
        self.since_wall = time.time()
        self.next_start: float | None = None
        self.last_exit: int | None = None
        self.message = ""
        self.tail: deque[str] = deque(maxlen=12)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None and self.popen.poll() is None else None

    def spawn(self, env: dict[str, str]) -> None:
        """Start ``prefix + argv`` in its own process group (Ctrl-C reaches only the
        supervisor, which stops in order); raises OSError."""
        self.popen = subprocess.Popen(
            self.spec.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.spec.cwd,
            start_new_session=True,
        )
        self.starts += 1
        self.state = "running"
        self.started_at = time.monotonic()
        self.since_wall = time.time()
        self.next_start = None
        self.message = ""

    def reap(self) -> None:
        """Kill what is left of its process group and let its output reader finish."""
        if self.popen is not None:
            killpg(self.popen.pid, signal.SIGKILL)
            if self.reader is not None:
                self.reader.join(2.0)


def killpg(pid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_until(popen: subprocess.Popen, deadline: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(max(0.0, deadline - time.monotonic()))


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address, IPv4 and IPv6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if (
                        len(parts) > 9
                        and parts[3] == "0A"
                        and int(parts[1].rsplit(":", 1)[1], 16) == port
                    ):
                        out.add(parts[9])
        except (OSError, ValueError):
            continue
    return out


def _process_group(pid: str) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2 :].split()[2])


def _holds_socket(pid: str, wanted: set[str]) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") in wanted:
                return True
    return False


def group_listens(pgid: int, port: int) -> bool:
    """True when a process of the group ``pgid`` (a child and what it started) holds the
    listening socket on ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if _process_group(entry) == pgid and _holds_socket(entry, wanted):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def applied(pid: int) -> dict:
    """What the kernel says this process got (the observable truth, not the request)."""
    out = {}
    try:
        out["cpus"] = format_cpu_list(os.sched_getaffinity(pid))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["nice"] = int(fields[16])
    except (OSError, IndexError, ValueError):
        pass
    return out


_PR_SET_CHILD_SUBREAPER = 36
SUPERVISED_ENV = "SENSORHUB_SUPERVISED"  # the child's name; inherited by all it starts


def become_subreaper() -> bool:
    """Orphans of our children re-parent to us, not to init: they stay findable and killable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, start time, state) of every process /proc shows."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                f = _stat_fields(int(entry))
                out[int(entry)] = (int(f[1]), int(f[19]), f[0])
    return out


def descendants(root: int, table: dict | None = None) -> dict[int, int]:
    """pid -> start time of every live process below ``root`` (zombies left out)."""
    table = process_table() if table is None else table
    below: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        below.setdefault(ppid, []).append(pid)
    out, todo = {}, list(below.get(root, []))
    while todo:
        pid = todo.pop()
        ppid, start, state = table[pid]
        if state not in ("Z", "X"):
            out[pid] = start
        todo += below.get(pid, [])
    return out


def owner(pid: int) -> str | None:
    """The supervised child a process was started by (its inherited environment says)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    key = SUPERVISED_ENV.encode() + b"="
    return next((e[len(key) :].decode(errors="replace") for e in env if e.startswith(key)), None)


def _same(pid: int, start: int) -> bool:
    """Still that process (not a new one that got its pid) and not a zombie."""
    try:
        f = _stat_fields(pid)
    except (OSError, IndexError):
        return False
    return int(f[19]) == start and f[0] not in ("Z", "X")


class Descendants:
    """What the children started beyond their process group (a ``setsid`` grandchild, a
    daemon): found by walking /proc from the supervisor, which is their subreaper when the
    kernel allows, and stopped with the graph. Zombies of such orphans are reaped here; the
    children themselves are left to their Popen."""

    def __init__(self):
        self.me = os.getpid()
        self.subreaper = become_subreaper()

    def _mine(self) -> list[int]:
        """Our direct children: /proc's children lists (cheap), else a walk of /proc."""
        try:
            out: list[int] = []
            for t in os.listdir(f"/proc/{self.me}/task"):
                with open(f"/proc/{self.me}/task/{t}/children") as f:
                    out += [int(x) for x in f.read().split()]
            return out
        except (OSError, ValueError):
            return [p for p, (pp, _, _) in process_table().items() if pp == self.me]

    def reap(self, known: set[int]) -> None:
        """Collect exited orphans (our zombies that are no Popen's)."""
        for pid in self._mine():
            if pid in known:
                continue
            with contextlib.suppress(OSError, IndexError):
                if _stat_fields(pid)[0] == "Z":
                    with contextlib.suppress(ChildProcessError, OSError):
                        os.waitpid(pid, os.WNOHANG)

    def left_by(self, name: str | None, known: set[int]) -> dict[int, int]:
        """Live processes below us that no running child holds (``name``: only that child's)."""
        table = process_table()
        skip = set(known)
        for pid in known:
            skip |= set(descendants(pid, table))
        found = {p: s for p, s in descendants(self.me, table).items() if p not in skip}
        if name is not None:
            found = {p: s for p, s in found.items() if owner(p) == name}
        return found

    def stop(self, procs: dict[int, int], known: set[int], timeout: float = 2.0) -> list[int]:
        """SIGTERM, then SIGKILL after ``timeout``; returns the pids that were signalled."""
        hit = [p for p, s in procs.items() if _same(p, s)]
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
            left = [p for p in hit if _same(p, procs[p])]
            for p in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, sig)
            end = time.monotonic() + wait
            while left and time.monotonic() < end:
                self.reap(known)
                left = [p for p in left if _same(p, procs[p])]
                if left:
                    time.sleep(0.05)
        self.reap(known)
        return hit
