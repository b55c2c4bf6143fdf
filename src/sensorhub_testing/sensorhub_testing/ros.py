"""rclpy on the test's side: a spinning node of its own and a /diagnostics collector."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


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


@dataclass(frozen=True)
class Status:
    """One DiagnosticStatus as it arrived: level as an int, key/values as a dict."""

    name: str
    level: int
    message: str
    hardware_id: str
    values: dict[str, str]
    received: float  # by the collector's clock


class DiagnosticsCollector:
    """Every DiagnosticStatus on /diagnostics (and any other DiagnosticArray topic) that passes
    `select`, keyed by `key` (default: the status name), kept with the time it arrived.

    One subscription per topic with the graph's diagnostics QoS; `history` arrays per topic at
    most, so a long test keeps bounded memory.
    """

    def __init__(
        self,
        node,
        topics=("/diagnostics",),
        select=None,
        key=None,
        clock=time.time,
        history: int = 5000,
    ):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos

        self._select = select or (lambda s: True)
        self._key = key or (lambda s: s.name)
        self._clock = clock
        self._history = history
        self._lock = threading.Lock()
        self._arrays: dict[str, list[tuple[float, dict[str, Status]]]] = {t: [] for t in topics}
        self.subs = [
            node.create_subscription(
                DiagnosticArray, t, lambda m, t=t: self._on(t, m), qos.DIAGNOSTICS
            )
            for t in topics
        ]

    def _on(self, topic: str, msg) -> None:
        now = self._clock()
        got = {}
        for s in msg.status:
            if not self._select(s):
                continue
            values = {kv.key: kv.value for kv in s.values}
            k = self._key(s)
            got[k] = Status(s.name, s.level[0], s.message, s.hardware_id, values, now)
        if got:
            with self._lock:
                arrays = self._arrays[topic]
                arrays.append((now, got))
                del arrays[: -self._history]

    def latest(self, key: str, after: float = 0.0, topic: str | None = None) -> Status | None:
        """The newest status under `key` received at or after `after`, else None."""
        with self._lock:
            for t, d in reversed(self._arrays[topic or next(iter(self._arrays))]):
                if t < after:
                    break
                if key in d:
                    return d[key]
        return None

    def all(self, key: str, topic: str | None = None) -> list[Status]:
        """Every status received under `key`, oldest first."""
        with self._lock:
            arrays = list(self._arrays[topic or next(iter(self._arrays))])
        return [d[key] for _, d in arrays if key in d]

    def keys(self, topic: str | None = None) -> set[str]:
        with self._lock:
            arrays = list(self._arrays[topic or next(iter(self._arrays))])
        return {k for _, d in arrays for k in d}


def status_values(arrays, name: str) -> dict[str, str] | None:
    """The key/values of the newest status called `name` in a list of DiagnosticArray messages."""
    for arr in reversed(arrays):
        for s in arr.status:
            if s.name == name:
                return {kv.key: kv.value for kv in s.values}
    return None
