"""The wheels path's stand-in for the distribution's diagnostic_updater (PyPI has none).

Same semantics as diagnostic_updater (REP 107): an :class:`Updater` calls every task's
``run(stat)`` once per period (parameter ``diagnostic_updater.period``, default 1 s) and
publishes one ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` with status names
``"<node>: <task>"``. :class:`FrequencyStatus` and :class:`TimeStampStatus` keep
diagnostic_updater's levels and messages.
``tick()`` is O(1) and thread-safe, so an 800 Hz reader thread may call it directly.

Tasks and the wrapper have no rclpy dependency (unit-testable); only :class:`Updater` needs a node.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


class DiagnosticStatusWrapper:
    """diagnostic_updater.DiagnosticStatusWrapper: summary/merge_summary/add, then to_msg()."""

    def __init__(self, level: int = OK, name: str = "", message: str = "", hardware_id: str = ""):
        self.level = level
        self.name = name
        self.message = message
        self.hardware_id = hardware_id
        self.values: list[tuple[str, str]] = []

    def summary(self, level: int, message: str) -> None:
        self.level = int(level)
        self.message = message

    def merge_summary(self, level: int, message: str) -> None:
        """Keep the worst level; join messages of the same non-OK severity class with '; '."""
        level = int(level)
        if level > OK and self.level > OK:
            if self.message:
                self.message += "; "
            self.message += message
        elif level > self.level:
            self.message = message
        self.level = max(self.level, level)

    def add(self, key: str, value) -> None:
        if isinstance(value, bool):
            value = "True" if value else "False"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        self.values.append((str(key), str(value)))

    def add_all(self, values: dict) -> None:
        """:meth:`add` every key and value, in order (a node's figures as one table)."""
        for key, value in values.items():
            self.add(key, value)

    def to_msg(self):
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        m = DiagnosticStatus()
        m.level = bytes([self.level])
        m.name = self.name
        m.message = self.message
        m.hardware_id = self.hardware_id
        m.values = [KeyValue(key=k, value=v) for k, v in self.values]
        return m


class FunctionDiagnosticTask:
    def __init__(self, name: str, fn: Callable[[DiagnosticStatusWrapper], object]):
        self.name = name
        self._fn = fn

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        self._fn(stat)
        return stat


class CompositeDiagnosticTask:
    """Runs several tasks into one status, merging their summaries (worst wins)."""

    def __init__(self, name: str, tasks=()):
        self.name = name
        self.tasks = list(tasks)

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        combined = DiagnosticStatusWrapper()
        for t in self.tasks:
            stat.summary(OK, "")
            t.run(stat)
            combined.merge_summary(stat.level, stat.message)
        stat.summary(combined.level, combined.message)
        return stat


class FrequencyStatusParam:
    def __init__(self, freq_bound: dict, tolerance: float = 0.1, window_size: int = 5):
        self.freq_bound = freq_bound  # {"min": Hz, "max": Hz}
        self.tolerance = tolerance
        self.window_size = window_size


class FrequencyStatus:
    """Rate of tick() over a sliding window of updates, against [min, max] +- tolerance."""

    def __init__(self, params: FrequencyStatusParam, name: str = "Frequency Status", clock=None):
        self.name = name
        self.params = params
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            now = self._clock()
            self._count = 0
            n = max(1, self.params.window_size)
            self._times = [now] * n
            self._seq = [0] * n
            self._hist = 0

    def tick(self, n: int = 1) -> None:
        with self._lock:
            self._count += n

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        with self._lock:
            now = self._clock()
            count = self._count
            events = count - self._seq[self._hist]
            window = now - self._times[self._hist]
            freq = events / window if window > 0 else 0.0
            self._seq[self._hist] = count
            self._times[self._hist] = now
            self._hist = (self._hist + 1) % len(self._times)
        fmin = self.params.freq_bound.get("min", 0.0)
        fmax = self.params.freq_bound.get("max", math.inf)
        tol = self.params.tolerance
        if events == 0:
            stat.summary(ERROR, "No events recorded.")
        elif freq < fmin * (1 - tol):
            stat.summary(WARN, "Frequency too low.")
        elif freq > fmax * (1 + tol):
            stat.summary(WARN, "Frequency too high.")
        else:
            stat.summary(OK, "Desired frequency met")
        stat.add("Events in window", events)
        stat.add("Events since startup", count)
        stat.add("Duration of window (s)", f"{window:f}")
        stat.add("Actual frequency (Hz)", f"{freq:f}")
        if fmin == fmax:
            stat.add("Target frequency (Hz)", f"{fmin:f}")
        if fmin > 0:
            stat.add("Minimum acceptable frequency (Hz)", f"{fmin * (1 - tol):f}")
        if math.isfinite(fmax):
            stat.add("Maximum acceptable frequency (Hz)", f"{fmax * (1 + tol):f}")
        return stat


class TimeStampStatusParam:
    def __init__(self, min_acceptable: float = -1.0, max_acceptable: float = 5.0):
        self.min_acceptable = min_acceptable
        self.max_acceptable = max_acceptable


class TimeStampStatus:
    """Delay of message stamps behind the clock: too late, too early (future) and zero stamps."""

    def __init__(
        self, params: TimeStampStatusParam | None = None, name="Timestamp Status", clock=None
    ):
        self.name = name
        self.params = params or TimeStampStatusParam()
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._early = self._late = self._zero = 0
        self._reset()

    def _reset(self) -> None:
        self._valid = False
        self._min = 0.0
        self._max = 0.0
        self._zero_seen = False

    def tick(self, stamp_s: float) -> None:
        with self._lock:
            if stamp_s == 0:
                self._zero_seen = True
                return
            delta = self._clock() - stamp_s
            if not self._valid or delta > self._max:
                self._max = delta
            if not self._valid or delta < self._min:
                self._min = delta
            self._valid = True

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        with self._lock:
            stat.summary(OK, "Timestamps are reasonable.")
            if not self._valid:
                stat.summary(WARN, "No data since last update.")
            else:
                if self._min < self.params.min_acceptable:
                    stat.summary(ERROR, "Timestamps too far in future seen.")
                    self._early += 1
                if self._max > self.params.max_acceptable:
                    stat.summary(ERROR, "Timestamps too far in past seen.")
                    self._late += 1
            if self._zero_seen:
                stat.summary(ERROR, "Zero timestamp seen.")
                self._zero += 1
            stat.add("Earliest timestamp delay:", f"{self._min:f}")
            stat.add("Latest timestamp delay:", f"{self._max:f}")
            stat.add("Earliest acceptable timestamp delay:", f"{self.params.min_acceptable:f}")
            stat.add("Latest acceptable timestamp delay:", f"{self.params.max_acceptable:f}")
            stat.add("Late diagnostic update count:", self._late)
            stat.add("Early diagnostic update count:", self._early)
            stat.add("Zero seen diagnostic update count:", self._zero)
            self._reset()
        return stat


PERIOD_MIN, PERIOD_MAX = 0.1, 60.0  # s; faster only burns CPU, slower is not "about 1 Hz"


def period_error(v) -> str | None:
    """Why a diagnostic_updater.period value is refused (None when fine)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"must be a number of seconds, got {v!r}"
    if not (PERIOD_MIN <= v <= PERIOD_MAX):
        return f"must be within [{PERIOD_MIN}, {PERIOD_MAX}] s, got {v}"
    return None


def process_tag() -> str:
    """``host:pid``, in each array's ``header.frame_id`` (unused by REP 107): the watchdog
    tells a node's own process from another one publishing under its name."""
    return f"{socket.gethostname()}:{os.getpid()}"


def parse_process_tag(frame_id: str) -> tuple[str, int] | None:
    host, sep, pid = frame_id.rpartition(":")
    return (host, int(pid)) if sep and host and pid.isdigit() else None


class Updater:
    """diagnostic_updater.Updater for rclpy: one DiagnosticArray on /diagnostics per period."""

    PERIOD_PARAM = "diagnostic_updater.period"

    def __init__(self, node, period: float = 1.0, hardware_id: str = "none"):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos

        self.node = node
        self.hardware_id = hardware_id
        self.tasks: list = []
        self._lock = threading.Lock()
        self.period = self._declare_period(period)
        node.add_on_set_parameters_callback(self._on_set)
        self._Array = DiagnosticArray
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS)
        self._timer = node.create_timer(self.period, self.update)
        self.broadcast(OK, "Node starting up")

    def _declare_period(self, period: float) -> float:
        from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult

        self._Result = SetParametersResult
        node = self.node
        if not node.has_parameter(self.PERIOD_PARAM):
            node.declare_parameter(
                self.PERIOD_PARAM,
                float(period),
                ParameterDescriptor(
                    description="Seconds between /diagnostics updates (REP 107: ~1 s)",
                    floating_point_range=[
                        FloatingPointRange(from_value=PERIOD_MIN, to_value=PERIOD_MAX, step=0.0)
                    ],
                ),
            )
        value = float(node.get_parameter(self.PERIOD_PARAM).value)
        err = period_error(value)
        if err:
            raise ValueError(f"{self.PERIOD_PARAM}: {err}")
        return value

    @property
    def prefix(self) -> str:
        return self.node.get_name()

    def _on_set(self, params):
        for p in params:
            if p.name == self.PERIOD_PARAM:
                v = p.value
                err = period_error(v)
                if err:
                    return self._Result(successful=False, reason=f"{p.name}: {err}")
                # The new timer exists before the old one goes: a failure leaves the old one.
                try:
                    timer = self.node.create_timer(float(v), self.update)
                except Exception as e:
                    return self._Result(successful=False, reason=f"{p.name}: {e}")
                old, self._timer, self.period = self._timer, timer, float(v)
                self.node.destroy_timer(old)
        return self._Result(successful=True)

    def add(self, task_or_name, fn=None):
        task = FunctionDiagnosticTask(task_or_name, fn) if fn is not None else task_or_name
        with self._lock:
            self.tasks.append(task)
        return task

    def _stamp(self):
        return self.node.get_clock().now().to_msg()

    def collect(self) -> list[DiagnosticStatusWrapper]:
        with self._lock:
            tasks = list(self.tasks)
        out = []
        for t in tasks:
            stat = DiagnosticStatusWrapper(
                name=f"{self.prefix}: {t.name}", hardware_id=self.hardware_id
            )
            try:
                t.run(stat)
            except Exception as e:  # a broken task must not silence the others
                stat.summary(ERROR, f"diagnostic task raised {type(e).__name__}: {e}")
            out.append(stat)
        return out

    def update(self) -> None:
        self.publish(self.collect())

    def publish(self, stats) -> None:
        arr = self._Array()
        arr.header.stamp = self._stamp()
        arr.header.frame_id = process_tag()
        arr.status = [s.to_msg() for s in stats]
        self.pub.publish(arr)

    def broadcast(self, level: int, message: str) -> None:
        """One status per task with the same level/message (e.g. start-up, shutdown)."""
        with self._lock:
            names = [t.name for t in self.tasks] or ["node"]
        stats = []
        for n in names:
            s = DiagnosticStatusWrapper(level, f"{self.prefix}: {n}", message, self.hardware_id)
            stats.append(s)
        self.publish(stats)
