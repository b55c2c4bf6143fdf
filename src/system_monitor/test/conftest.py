"""system_monitor test helpers: start the monitor, the PBT sim and driver; watch diagnostics."""

from __future__ import annotations

import threading
import time

import pytest


def exe(package: str, name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable(package, name))


def ros_list(items) -> str:
    return "[" + ", ".join(f"'{x}'" for x in items) + "]"


class DiagWatcher:
    """Latest status per name on /diagnostics and /diagnostics_agg, with the time it arrived."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos

        self.lock = threading.Lock()
        self.latest: dict[str, dict[str, tuple[float, int, str, str, dict]]] = {
            "/diagnostics": {},
            "/diagnostics_agg": {},
        }
        self.subs = [
            node.create_subscription(
                DiagnosticArray, t, lambda m, t=t: self._on(t, m), qos.DIAGNOSTICS
            )
            for t in self.latest
        ]

    def _on(self, topic, msg):
        now = time.monotonic()
        with self.lock:
            for s in msg.status:
                vals = {kv.key: kv.value for kv in s.values}
                self.latest[topic][s.name] = (now, s.level[0], s.message, s.hardware_id, vals)

    def get(self, name: str, topic: str = "/diagnostics_agg", after: float = 0.0):
        """(level, message, hardware_id, values) if received after `after` (monotonic)."""
        with self.lock:
            x = self.latest[topic].get(name)
        if x is None or x[0] < after:
            return None
        return x[1:]

    def names(self, topic: str = "/diagnostics_agg") -> set[str]:
        with self.lock:
            return set(self.latest[topic])


@pytest.fixture
def graph(procs, tmp_path, wait):
    class G:
        link = tmp_path / "pbt0"
        watcher = DiagWatcher

        @staticmethod
        def sim(name="pbt_sim"):
            p = procs.start(name, [exe("pbt_driver", "pbt_sim"), "--link", G.link])
            wait(G.link.exists, 30, what="sim pty link")
            return p

        @staticmethod
        def driver(name="pbt_driver"):
            return procs.start(
                name,
                [exe("pbt_driver", "pbt_driver"), "--ros-args", "-r", "__node:=pbt_driver",
                 "-r", "__ns:=/pbt", "-p", f"port:={G.link}", "-p", "rt_priority:=0"],
            )  # fmt: skip

        @staticmethod
        def monitor(expected, watches=(), name="system_monitor", **params):
            argv = [exe("system_monitor", "system_monitor"), "--ros-args",
                    "-p", f"expected:={ros_list(expected or [''])}",
                    "-p", f"watch_topics:={ros_list(watches or [''])}",
                    "-p", f"data_root:={tmp_path / 'data'}",
                    "-p", f"kernel_log:={tmp_path / 'no-kmsg'}"]  # fmt: skip
            for k, v in params.items():
                argv += ["-p", f"{k}:={v}"]
            return procs.start(name, argv)

    return G
