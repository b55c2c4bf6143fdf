"""tim240_bridge test helpers: the real SICK captures, the emulator and the node as processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sensorhub_testing.processes import param_args, start_on_free_port


def data_dir() -> Path:
    env = os.environ.get("SENSORHUB_SHARED_DATA")
    if env:
        return Path(env) / "tim"
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "tim"


CAPTURES = {
    "20210125-tim781s-scandata.pcapng.json": 140,
    "20210113_tim871s_elephant.pcapng.json": 150,
    "20210302_lms111.pcapng.json": 175,
    "tim781s_pcap_json_converter_test.pcapng": 16,
}


def capture(name: str) -> Path:
    p = data_dir() / name
    if not p.exists():
        pytest.skip(f"SICK capture {name} not found in {data_dir()} (set SENSORHUB_SHARED_DATA)")
    return p


def pytest_generate_tests(metafunc):
    if "capture_name" in metafunc.fixturenames:
        metafunc.parametrize("capture_name", sorted(CAPTURES))


@pytest.fixture
def capture_path():
    """capture_path(name) -> Path of a SICK capture, or skip with the reason."""
    return capture


@pytest.fixture
def capture_counts():
    return dict(CAPTURES)


def exe(name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable("tim240_bridge", name))


class Collector:
    """Scans, filtered scans, zones and the node's diagnostics, as a recorder sees them."""

    def __init__(self, node):
        from sensor_msgs.msg import LaserScan
        from visualization_msgs.msg import MarkerArray

        from sensorhub_common import qos
        from sensorhub_msgs.msg import ZoneStatus
        from sensorhub_testing import DiagnosticsCollector

        self.lock = threading.Lock()
        self.scans: list = []
        self.filtered: list = []
        self.zones: list = []
        self.markers: list = []
        self.diagnostics = DiagnosticsCollector(  # by task name, e.g. "device"
            node,
            select=lambda s: s.name.startswith("tim240_bridge: "),
            key=lambda s: s.name.split(": ", 1)[1],
        )
        self.subs = [
            node.create_subscription(LaserScan, "scan", self._add(self.scans), qos.SCAN),
            node.create_subscription(LaserScan, "tim240/scan_filtered", self._add(self.filtered),
                                     qos.SCAN),
            node.create_subscription(ZoneStatus, "tim240/zones", self._add(self.zones), 50),
            node.create_subscription(MarkerArray, "tim240/markers", self._add(self.markers), 50),
        ]  # fmt: skip

    def _add(self, dest):
        def cb(m):
            with self.lock:
                dest.append((time.time(), m))
                del dest[:-400]

        return cb

    def n(self, what: str = "scans", after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for t, _ in getattr(self, what) if t >= after)

    def last(self, what: str = "scans"):
        with self.lock:
            lst = getattr(self, what)
            return lst[-1][1] if lst else None

    def latest(self, task: str, after: float = 0.0):
        """(level, message, values) of the newest status of task received at or after `after`."""
        s = self.diagnostics.latest(task, after)
        return None if s is None else (s.level, s.message, s.values)

    def levels(self, task: str) -> list[tuple[int, str]]:
        return [(s.level, s.message) for s in self.diagnostics.all(task)]


@pytest.fixture
def tim(procs, tmp_path, wait):
    """The emulator and the bridge as real processes of this test, and a Collector."""

    class H:
        Collector = Collector
        tmp = tmp_path

        @staticmethod
        def sim(*args, name="sim"):
            return start_on_free_port(procs, wait, name, [exe("tim240_sim"), *args], tmp_path)

        @staticmethod
        def bridge(name="bridge", **params):
            return procs.start(name, [exe("tim240_bridge"), "--ros-args", *param_args(params)])

    return H
