"""Helpers shared by the benchmarks in bench/ (not a benchmark: tools/run_bench.sh skips `_*.py`).

Each benchmark puts its own folder on sys.path and imports this module, so it works from any cwd.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]
# the independent Foxglove client the gateway's tests use (count mode: stamps per topic)
JS_DIR = ROOT / "src" / "foxglove_gateway" / "test" / "js"

# Domains 101..200: never used by the test suites (random 1..100) or `make run` (0).
DOMAIN_RANGE = (101, 200)


def exe(pkg: str, name: str, *, optional: bool = False) -> str | None:
    """Path of an installed executable; with `optional`, None when it is not built."""
    from sensorhub_common.paths import executable

    if not optional:
        return str(executable(pkg, name))
    try:
        return str(executable(pkg, name))
    except Exception:
        return None


class Procs:
    """Child processes, each in its own session (a process group) with DIR/<name>.log."""

    def __init__(self, tmp: Path):
        self.tmp, self.ps = tmp, []

    def start(self, name, argv) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "wb") as log:  # the child keeps its own copy
            p = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        self.ps.append(p)
        return p

    @staticmethod
    def stop(p, timeout=10.0):
        """SIGINT to the process group, then SIGKILL if it is still running after `timeout`."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            if p.poll() is not None:
                return
            try:
                os.killpg(p.pid, sig)
                p.wait(timeout)
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                continue

    def stop_all(self, *, at_once: bool = False, timeout: float = 10.0):
        """Stop every child, last started first, one after the other; `at_once`: SIGINT to all,
        then SIGKILL to those still running once `timeout` has passed for all of them."""
        if not at_once:
            for p in reversed(self.ps):
                self.stop(p, timeout)
            return
        for p in reversed(self.ps):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in self.ps:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)


def share(pkg: str) -> Path:
    """An installed package's share directory (its config/ etc.)."""
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(pkg))


def ensure_js() -> None:
    """node and the JS client's packages (``npm ci`` on first use); RuntimeError without node."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node/npm not installed (needed for the JS Foxglove clients)")
    if not (JS_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)


def js_argv(url: str, clients: int = 1, *extra) -> list:
    """Command line of `clients` counting JS clients in one node process (`extra`: options)."""
    return ["node", JS_DIR / "client.js", "--url", url, "--mode", "count",
            "--clients", str(clients), *extra]  # fmt: skip


def start_js(out: Path, url: str, clients: int = 1, *extra) -> subprocess.Popen:
    """The JS clients in a session of their own, their JSON lines written to `out`."""
    with open(out, "wb") as fh:  # the child keeps its own copy
        return subprocess.Popen([str(a) for a in js_argv(url, clients, *extra)], stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display); None, said once, without
    matplotlib: a bench's figures do not depend on its plots."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return None
    return plt


def wait_for(pred, timeout, interval=0.05) -> bool:
    """Poll pred() every `interval` s until it is true (True) or `timeout` s passed (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return False


def pct(xs, q):
    """q-th percentile (nearest rank) of xs; None when empty."""
    xs = sorted(xs)
    if not xs:
        return None
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (/proc/PID/status VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _udp_ports_in_use() -> set[int]:
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                ports.update(int(line.split()[1].rsplit(":", 1)[1], 16) for line in f)
        except (OSError, StopIteration, ValueError, IndexError):
            pass
    return ports


def bench_domain() -> int:
    """Choose and export ROS_DOMAIN_ID, with discovery kept on this machine.

    $SENSORHUB_BENCH_DOMAIN when set; otherwise a random domain in 101..200 whose DDS port block
    (7400 + 250 * domain, 250 ports) has no UDP socket bound on this machine, so benchmarks run
    at the same time do not cross.
    """
    env = os.environ.get("SENSORHUB_BENCH_DOMAIN")
    if env:
        domain = int(env)
    else:
        lo, hi = DOMAIN_RANGE
        candidates = random.sample(range(lo, hi + 1), hi - lo + 1)
        used = _udp_ports_in_use()
        domain = next(
            (d for d in candidates if not any(7400 + 250 * d <= p < 7650 + 250 * d for p in used)),
            candidates[0],
        )
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


class RosThread:
    """A node in an rclpy context of its own, spun by a daemon thread: a bench's subscriber.

    Subclasses call ``super().__init__(name)`` first, then create their subscriptions on
    ``self.node`` (the executor picks them up at its next turn), and ``super().close()`` last.
    """

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, signal_handler_options=rclpy.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.ctx)
        self._ex = SingleThreadedExecutor(context=self.ctx)
        self._ex.add_node(self.node)
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True, name=name)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop and self.ctx.ok():
            self._ex.spin_once(timeout_sec=0.05)

    def close(self, timeout: float = 5.0) -> None:
        self._stop = True
        self._thread.join(timeout)
        self._ex.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.ctx)


class EventProbe:
    """bench/_probe.py in a process (and session) of its own, subscribed to /pbt/events; `read()`
    returns the events it has written since the last call (dicts: t_rx, src, rx, sec, nanosec,
    peak_index, end_index, pulse_sent, pulse_delay)."""

    def __init__(self, name: str, fifo: int = 0, topic: str = "/pbt/events"):
        import sys
        import tempfile

        fd, path = tempfile.mkstemp(prefix="bench-events-", suffix=".jsonl")
        os.close(fd)
        self.path = Path(path)
        self._pos = 0
        self.p = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_probe.py")), "--out", path,
             "--fifo", str(fifo), "--name", name, "--topic", topic],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Procs.stop signals its process group
        )  # fmt: skip

    def read(self) -> list[dict]:
        import json

        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # whole lines only
        self._pos += end
        return [json.loads(line) for line in data[:end].splitlines()]

    def close(self) -> list[dict]:
        """Stop the probe; what it wrote since the last read."""
        Procs.stop(self.p)
        out = self.read()
        self.path.unlink(missing_ok=True)
        return out


class ProbeEvent:
    """A PbtEvent as the probe wrote it (the attributes the benches read)."""

    __slots__ = ("end_index", "header", "peak_index", "pulse_delay", "pulse_sent")

    def __init__(self, d: dict):
        from types import SimpleNamespace

        self.header = SimpleNamespace(stamp=SimpleNamespace(sec=d["sec"], nanosec=d["nanosec"]))
        self.peak_index, self.end_index = d["peak_index"], d["end_index"]
        self.pulse_sent, self.pulse_delay = d["pulse_sent"], d["pulse_delay"]
