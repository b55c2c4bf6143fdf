"""system_monitor test helpers: start the monitor, the PBT sim and driver; watch diagnostics."""

from __future__ import annotations

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
        from sensorhub_testing import DiagnosticsCollector

        self.collector = DiagnosticsCollector(
            node, topics=("/diagnostics", "/diagnostics_agg"), clock=time.monotonic
        )

    def get(self, name: str, topic: str = "/diagnostics_agg", after: float = 0.0):
        """(level, message, hardware_id, values) if received after `after` (monotonic)."""
        s = self.collector.latest(name, after, topic)
        return None if s is None else (s.level, s.message, s.hardware_id, s.values)

    def names(self, topic: str = "/diagnostics_agg") -> set[str]:
        return self.collector.keys(topic)


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
        def monitor(expected, watches=(), name="system_monitor", ros_args=(), **params):
            argv = [exe("system_monitor", "system_monitor"), "--ros-args",
                    "-p", f"expected:={ros_list(expected or [''])}",
                    "-p", f"watch_topics:={ros_list(watches or [''])}",
                    "-p", f"data_root:={tmp_path / 'data'}",
                    "-p", f"kernel_log:={tmp_path / 'no-kmsg'}"]  # fmt: skip
            for k, v in params.items():
                argv += ["-p", f"{k}:={v}"]
            return procs.start(name, [*argv, *ros_args])

    return G
