"""pbt_driver test helpers: start sims and drivers, collect what a subscriber receives."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest


def exe(name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable("pbt_driver", name))


class Collector:
    """Subscribes like a recorder: every batch and event of one namespace, plus diagnostics."""

    def __init__(self, node, hardware_id, ns: str = "/pbt"):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent, PbtSamples

        self.lock = threading.Lock()
        self.batches: list = []
        self.events: list = []
        self.diag: list[tuple[float, dict]] = []  # (receive time, {task: (level, msg, values)})
        self.hwid = f"PBT sensor on {hardware_id}"  # the driver's Updater
        self.subs = [
            node.create_subscription(
                PbtSamples, f"{ns}/samples", self._batch, qos.recorder(qos.pbt_samples(0.05))
            ),
            node.create_subscription(PbtEvent, f"{ns}/events", self._event, qos.PBT_EVENTS),
            node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 50),
        ]

    def _batch(self, m):
        with self.lock:
            self.batches.append(
                (m.first_index, len(m.values), m.lost_before, m.lost_total, m.header.stamp)
            )

    def _event(self, m):
        with self.lock:
            self.events.append((time.time(), m))

    def _diag(self, m):
        d = {}
        for s in m.status:
            if s.hardware_id != self.hwid:
                continue
            task = s.name.split(": ", 1)[-1]
            d[task] = (s.level[0], s.message, {kv.key: kv.value for kv in s.values})
        if d:
            with self.lock:
                self.diag.append((time.time(), d))

    @property
    def n_samples(self) -> int:
        with self.lock:
            return sum(b[1] for b in self.batches)

    def latest(self, task: str, after: float = 0.0):
        with self.lock:
            for t, d in reversed(self.diag):
                if t >= after and task in d:
                    return d[task]
        return None

    def levels(self, task: str) -> list[tuple[int, str]]:
        with self.lock:
            return [(d[task][0], d[task][1]) for _, d in self.diag if task in d]

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


def stamp_s(st) -> float:
    return st.sec + st.nanosec * 1e-9


def read_jsonl(path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


@pytest.fixture
def pbt(procs, tmp_path, wait):
    """Factory helpers bound to this test's process group and temp dir."""

    class H:
        tmp = tmp_path
        Collector = Collector
        read_jsonl = staticmethod(read_jsonl)
        stamp_s = staticmethod(stamp_s)

        @staticmethod
        def sim(name="sim", *args, link=None):
            link = link or tmp_path / f"{name}.tty"
            p = procs.start(name, [exe("pbt_sim"), "--link", link, *args])
            return p, link

        @staticmethod
        def driver(name="driver", ns="/pbt", env=None, **params):
            params.setdefault("rt_priority", 0)  # shared CI box: no SCHED_FIFO in tests
            argv = [exe("pbt_driver"), "--ros-args", "-r", f"__ns:={ns}"]
            for k, v in params.items():
                v = str(v).lower() if isinstance(v, bool) else v
                argv += ["-p", f"{k}:={v}"]
            return procs.start(name, argv, env=env)

        @staticmethod
        def pigpiod(name="pigpiod", *args):
            pf = tmp_path / f"{name}.port"
            rec = tmp_path / f"{name}.jsonl"
            p = procs.start(name, [exe("pigpiod_sim"), "--port", "0", "--port-file", pf,
                                   "--record", rec, *args])  # fmt: skip
            wait(pf.exists, 20, what="pigpiod_sim port file")
            return p, int(pf.read_text()), rec

    return H
