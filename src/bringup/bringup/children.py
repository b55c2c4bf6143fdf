"""The supervisor's children: one process each (``prefix + argv`` in its own process group),
and what /proc says about them (the CPUs and nice they got, who holds a listening port)."""

from __future__ import annotations

import contextlib
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
