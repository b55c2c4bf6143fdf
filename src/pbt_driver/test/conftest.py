"""pbt_driver test helpers: start sims and drivers, collect what a subscriber receives."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from sensorhub_testing.processes import param_args, start_on_free_port


def exe(name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable("pbt_driver", name))


class Collector:
    """Subscribes like a recorder: every batch and event of one namespace, plus the driver's
    diagnostics (by task name, e.g. "losses")."""

    def __init__(self, node, hardware_id, ns: str = "/pbt"):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent, PbtSamples
        from sensorhub_testing import DiagnosticsCollector

        self.lock = threading.Lock()
        self.batches: list = []
        self.events: list = []
        hwid = f"PBT sensor on {hardware_id}"  # the driver's Updater
        self.diagnostics = DiagnosticsCollector(
            node, select=lambda s: s.hardware_id == hwid, key=lambda s: s.name.split(": ", 1)[-1]
        )
        self.subs = [
            node.create_subscription(
                PbtSamples, f"{ns}/samples", self._batch, qos.recorder(qos.pbt_samples(0.05))
            ),
            node.create_subscription(PbtEvent, f"{ns}/events", self._event, qos.PBT_EVENTS),
        ]

    def _batch(self, m):
        with self.lock:
            self.batches.append(
                (m.first_index, len(m.values), m.lost_before, m.lost_total, m.header.stamp)
            )

    def _event(self, m):
        with self.lock:
            self.events.append((time.time(), m))

    @property
    def n_samples(self) -> int:
        with self.lock:
            return sum(b[1] for b in self.batches)

    def latest(self, task: str, after: float = 0.0):
        """(level, message, values) of the newest status of task received at or after `after`."""
        return _triple(self.diagnostics.latest(task, after))

    def levels(self, task: str) -> list[tuple[int, str]]:
        return [(s.level, s.message) for s in self.diagnostics.all(task)]

    def check_contiguous(self) -> tuple[int, int]:
        """Every slot is either received or reported lost; returns (received, lost)."""
        with self.lock:
            b = sorted(self.batches, key=lambda x: x[0])
        received = sum(x[1] for x in b)
        lost = 0
        for prev, cur in itertools.pairwise(b):
            assert cur[0] == prev[0] + prev[1] + cur[2], (prev, cur)
            lost += cur[2]
        return received, lost


def _triple(s):
    return None if s is None else (s.level, s.message, s.values)


def parameter_value(value):
    """A ParameterValue typed like the Python value (str, int or float)."""
    from rcl_interfaces.msg import ParameterType, ParameterValue

    if isinstance(value, str):
        return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)


@pytest.fixture
def pbt(procs, tmp_path, wait):
    """Factory helpers bound to this test's process group and temp dir."""

    class H:
        tmp = tmp_path
        Collector = Collector

        @staticmethod
        def sim(name="sim", *args, link=None):
            link = link or tmp_path / f"{name}.tty"
            p = procs.start(name, [exe("pbt_sim"), "--link", link, *args])
            return p, link

        @staticmethod
        def driver(name="driver", ns="/pbt", env=None, **params):
            params.setdefault("rt_priority", 0)  # shared CI box: no SCHED_FIFO in tests
            argv = [exe("pbt_driver"), "--ros-args", "-r", f"__ns:={ns}", *param_args(params)]
            return procs.start(name, argv, env=env)

        @staticmethod
        def param_setter(node, driver: str = "/pbt/pbt_driver"):
            """set(name, value) -> SetParametersResult, through the driver's service."""
            from rcl_interfaces.msg import Parameter
            from rcl_interfaces.srv import SetParameters

            cli = node.create_client(SetParameters, f"{driver}/set_parameters")
            assert cli.wait_for_service(timeout_sec=30)

            def set_param(name, value):
                req = SetParameters.Request(
                    parameters=[Parameter(name=name, value=parameter_value(value))]
                )
                fut = cli.call_async(req)
                wait(fut.done, 30, what=f"set {name}")
                return fut.result().results[0]

            return set_param

        @staticmethod
        def pigpiod(name="pigpiod", *args):
            rec = tmp_path / f"{name}.jsonl"
            argv = [exe("pigpiod_sim"), "--record", rec, *args]
            p, port = start_on_free_port(procs, wait, name, argv, tmp_path, timeout=20)
            return p, port, rec

    return H
