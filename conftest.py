"""Workspace-wide test fixtures: an isolated DDS domain per run, real child processes, rclpy.

Every test run gets its own ROS_DOMAIN_ID and localhost-only discovery, so parallel or stale graphs
never cross, and removes only the Fast DDS shared-memory files its own run created.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

_SHM_GLOBS = ("/dev/shm/fastrtps_*", "/dev/shm/fastdds_*", "/dev/shm/sem.fastrtps_*")


def _shm_files() -> set[str]:
    return {f for g in _SHM_GLOBS for f in glob.glob(g)}


def _shm_in_use() -> set[str]:
    """Shared-memory files some live process still maps or holds open (any user, any run)."""
    used: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as f:
                used.update(line.split()[-1] for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    used.add(target)
        except OSError:
            continue
    return used


def pytest_configure(config):
    if "SENSORHUB_TEST_DOMAIN" in os.environ:
        domain = int(os.environ["SENSORHUB_TEST_DOMAIN"])
    else:
        domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Real DDS between real processes, over UDP loopback: /dev/shm is shared with every other DDS
    # user of the machine, and tests that SIGKILL nodes leave segments behind, so shared-memory
    # delivery is not what these tests should depend on. SENSORHUB_TEST_SHM=1 tests with it.
    if os.environ.get("SENSORHUB_TEST_SHM", "0") != "1":
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    logdir = tempfile.mkdtemp(prefix="sensorhub-test-roslog-")
    os.environ["ROS_LOG_DIR"] = logdir
    os.environ["PYTHONUNBUFFERED"] = "1"
    config._sensorhub_shm_before = _shm_files()


def pytest_report_header(config):
    return (
        f"sensorhub: ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, localhost discovery, "
        f"transports {os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'default (SHM + UDPv4)')}"
    )


def pytest_unconfigure(config):
    before = getattr(config, "_sensorhub_shm_before", None)
    if before is None:
        return
    # Only what appeared during this run and that no live process uses: a concurrent run's
    # segments appear too, and deleting those would silently cut its graph.
    in_use = _shm_in_use()
    for f in _shm_files() - before:
        base = f.removesuffix("_el")
        if f in in_use or base in in_use:
            continue
        try:
            os.unlink(f)
        except OSError:
            pass


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll predicate() until truthy; raise AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL of the whole process group."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # reap stragglers left in the group
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode


class ProcGroup:
    """Starts real child processes (own process group, output to a log) and always reaps them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[Proc] = []

    def start(self, name: str, argv, env: dict | None = None, cwd=None) -> Proc:
        log = self.tmp / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        e = dict(os.environ)
        if env:
            e.update({k: str(v) for k, v in env.items()})
        p = subprocess.Popen(
            [str(a) for a in argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=e,
            cwd=cwd,
            start_new_session=True,
        )
        fh.close()
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture
def procs(tmp_path, request):
    group = ProcGroup(tmp_path)
    yield group
    group.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for p in group.procs:
            sys.stderr.write(f"\n----- {p.name} (exit {p.popen.returncode}) -----\n")
            sys.stderr.write(p.output()[-6000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


class SpinningNode:
    """An rclpy node in its own context, spun by a SingleThreadedExecutor in a thread."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException

        try:
            while not self._stop.is_set() and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass

    def close(self):
        import rclpy

        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def ros_node(request):
    """A spinning rclpy node for the test's subscribers (real DDS)."""
    n = SpinningNode("test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50])
    yield n.node
    n.close()


@pytest.fixture
def wait():
    return wait_for
