"""Reading the clock's state: adjtimex(2) through ctypes, the time daemons' commands off-thread.

adjtimex with ``modes = 0`` only reads, needs no privilege and no daemon. ``chronyc`` and
``timedatectl`` are run by a background thread with a timeout, so a hung daemon or D-Bus never
holds up the diagnostics; the node reads the latest answer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from system_monitor.clock import (
    ClockParseError,
    DaemonClock,
    KernelClock,
    decode_timex,
    parse_chrony_tracking,
    parse_timesync,
)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (glibc, native long)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]  # fmt: skip


class KernelClockReader:
    """adjtimex(2); ``error`` says why it is not available (not Linux, no libc symbol)."""

    def __init__(self):
        self.error = ""
        self._adjtimex = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            self._adjtimex = libc.adjtimex
            self._adjtimex.argtypes = [ctypes.POINTER(Timex)]
            self._adjtimex.restype = ctypes.c_int
        except (OSError, AttributeError) as e:
            self.error = f"adjtimex: {e}"

    def read(self) -> KernelClock | None:
        if self._adjtimex is None:
            return None
        tx = Timex()  # modes 0: read only
        state = self._adjtimex(ctypes.byref(tx))
        if state < 0:
            self.error = f"adjtimex: errno {ctypes.get_errno()}"
            return None
        return decode_timex(
            state=state,
            status=tx.status,
            offset=tx.offset,
            maxerror=tx.maxerror,
            esterror=tx.esterror,
        )


@dataclass(frozen=True)
class DaemonQuery:
    """One daemon's command and the parser of its output."""

    argv: tuple[str, ...]
    parse: Callable[[str], DaemonClock]


def daemon_queries(chronyc: str, timedatectl: str) -> list[DaemonQuery]:
    """chrony first (it reports the measured offset), then systemd-timesyncd; '' skips one."""
    out = []
    if chronyc:
        out.append(DaemonQuery((chronyc, "-c", "-n", "tracking"), parse_chrony_tracking))
    if timedatectl:
        out.append(DaemonQuery((timedatectl, "show-timesync"), parse_timesync))
    return out


def run_query(q: DaemonQuery, timeout: float) -> tuple[DaemonClock | None, str]:
    """(the daemon's view, or None and why)."""
    try:
        r = subprocess.run(q.argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return None, f"{q.argv[0]} not installed"
    except subprocess.TimeoutExpired:
        return None, f"{q.argv[0]} timed out after {timeout:g} s"
    except OSError as e:
        return None, f"{q.argv[0]}: {e.strerror}"
    if r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        return None, f"{q.argv[0]}: {why[-1] if why else f'exit {r.returncode}'}"
    try:
        return q.parse(r.stdout), ""
    except ClockParseError as e:
        return None, str(e)


class DaemonPoller:
    """Asks the daemons every ``period`` seconds in a thread; ``latest()`` never waits."""

    def __init__(self, queries: list[DaemonQuery], period: float, timeout: float):
        self.queries, self.period, self.timeout = queries, period, timeout
        self._lock = threading.Lock()
        self._latest: tuple[DaemonClock | None, str] = (None, "not asked yet")
        self._stop = threading.Event()
        self._thread = None
        if queries:
            self._thread = threading.Thread(target=self._run, name="clock-daemons", daemon=True)
            self._thread.start()
        else:
            self._latest = (None, "no daemon command configured")

    def poll_once(self) -> tuple[DaemonClock | None, str]:
        notes = []
        for q in self.queries:
            got, why = run_query(q, self.timeout)
            if got is not None:
                return got, ""
            notes.append(why)
        return None, "; ".join(notes)

    def _run(self) -> None:
        while not self._stop.is_set():
            result = self.poll_once()
            with self._lock:
                self._latest = result
            self._stop.wait(self.period)

    def latest(self) -> tuple[DaemonClock | None, str]:
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout * len(self.queries) + 1.0)
