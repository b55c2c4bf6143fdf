"""`sensorhub status`: nodes, diagnostics, topic rates and restarts in one terminal table.

What `ros2 topic hz` and a diagnostics viewer give on a distribution, for the wheels path (no
ros2cli): a plain rclpy node subscribes /diagnostics and every topic (raw bytes, best effort, so it
never back-pressures a publisher), and the supervisor's state file adds PIDs, restarts and the
scheduling the kernel actually applied. system_monitor's /diagnostics_agg is shown as the same
grouped tree Foxglove's diagnostics panels show.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections import deque

from bringup.supervisor import read_state

LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}
SKIP_TOPICS = {"/parameter_events", "/rosout"}
AGG_TOPIC = "/diagnostics_agg"


def _level(status) -> int:
    """A DiagnosticStatus level (a byte in the message) as an int."""
    lv = status.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)


def message_class(type_name: str):
    """'pkg/msg/Type' -> class (rosidl_runtime_py is not in the wheels)."""
    pkg, sub, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


class Collector:
    """Subscribes /diagnostics and samples every topic's rate over a sliding window."""

    def __init__(self, node, window: float = 5.0):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos

        self.node = node
        self.window = window
        self._lock = threading.Lock()
        self.diag: dict[str, tuple[int, str, float]] = {}  # status name -> level, msg, time
        self.times: dict[str, deque] = {}
        self.types: dict[str, str] = {}
        self.skipped: dict[str, str] = {}  # topic -> why it is not sampled
        self._qos = qos.viewer(qos.DIAGNOSTICS)  # rate sampling: best effort, depth 10
        self._subs = {}
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, qos.DIAGNOSTICS)
        # system_monitor's aggregated tree, shown as Foxglove's diagnostics panels show it
        self.tree: list[tuple[str, int, str]] = []
        self.tree_time = 0.0
        node.create_subscription(DiagnosticArray, AGG_TOPIC, self._on_agg, qos.DIAGNOSTICS)
        self.discover()
        node.create_timer(1.0, self.discover)

    def _on_diag(self, msg) -> None:
        now = time.monotonic()
        with self._lock:
            for s in msg.status:
                self.diag[s.name] = (_level(s), s.message, now)

    def _on_agg(self, msg) -> None:
        tree = [(s.name, _level(s), s.message) for s in msg.status]
        with self._lock:
            self.tree, self.tree_time = tree, time.monotonic()

    def agg_tree(self) -> tuple[list[tuple[str, int, str]], float | None]:
        """The latest /diagnostics_agg statuses and their age in seconds (None: never)."""
        with self._lock:
            age = time.monotonic() - self.tree_time if self.tree_time else None
            return list(self.tree), age

    def discover(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._subs or topic in SKIP_TOPICS or topic in self.skipped:
                continue
            try:
                cls = message_class(types[0])
            except (ImportError, AttributeError, ValueError) as e:
                self.skipped[topic] = f"type {types[0]} not importable ({e})"
                continue
            with self._lock:
                self.times[topic] = deque(maxlen=20000)
                self.types[topic] = types[0]
            self._subs[topic] = self.node.create_subscription(
                cls, topic, lambda _m, t=topic: self._tick(t), self._qos, raw=True
            )

    def _tick(self, topic: str) -> None:
        with self._lock:
            self.times[topic].append(time.monotonic())

    def rates(self) -> dict[str, tuple[str, float, int]]:
        """topic -> (type, Hz over the window, publisher count)."""
        now = time.monotonic()
        out = {}
        with self._lock:
            items = list(self.times.items())
        for topic, q in items:
            with self._lock:
                recent = [t for t in q if now - t <= self.window]
            hz = 0.0
            if len(recent) >= 2:
                period = max((recent[-1] - recent[0]) / (len(recent) - 1), 1e-6)
                # a stalled topic shows 0, not its old rate
                hz = 1.0 / period if now - recent[-1] <= max(3 * period, 1.0) else 0.0
            out[topic] = (self.types[topic], hz, self.node.count_publishers(topic))
        return out

    def node_diag(self, name: str) -> tuple[str, str]:
        """Worst level and its message over the '<name>: <task>' statuses (REP 107 naming)."""
        now = time.monotonic()
        worst = None
        with self._lock:
            for sname, (level, msg, t) in self.diag.items():
                if sname.split(":", 1)[0].strip() != name:
                    continue
                if now - t > 5.0:
                    level, msg = 3, "stale (no update for 5 s)"
                if worst is None or level > worst[0]:
                    worst = (level, f"{sname.split(':', 1)[-1].strip()}: {msg}")
        if worst is None:
            return "-", ""
        return LEVELS.get(worst[0], str(worst[0])), worst[1]

    def diag_names(self) -> set[str]:
        with self._lock:
            return {n.split(":", 1)[0].strip() for n in self.diag}


def _supervisor_line(state: dict) -> str:
    up = time.time() - state.get("started", time.time())
    alive = "running" if state.get("alive") else f"NOT running ({state.get('status')})"
    if state.get("alive") and state.get("stale") is not None:
        alive += (
            f", STATE STALE: not updated for {state['stale']:.0f} s (disk full? "
            "supervisor wedged?); the table below is old"
        )
    return (
        f"supervisor pid {state.get('supervisor_pid')} {alive}, up {_dur(up)}; profile "
        f"{state.get('profile')}, role {state.get('role')}, ROS_DOMAIN_ID "
        f"{state.get('domain_id')}, data {state.get('data_root')}"
    )


def _node_rows(state: dict, col: Collector | None) -> list[dict]:
    """The supervisor's nodes, container members under their container's row, then the nodes
    that report diagnostics but are not the supervisor's."""
    nodes = state.get("nodes", [])
    extra = set(col.diag_names()) - {n["name"] for n in nodes} if col else set()
    inside = {m.rsplit("/", 1)[-1]: c for c in nodes for m in c.get("members") or []}
    rows = []
    for n in nodes:
        rows.append(n)
        for m in sorted(k for k, c in inside.items() if c is n):
            rows.append({"name": f" {m}", "diag_name": m, "state": f"> {n['name']}"})
    extra -= set(inside)
    return rows + [{"name": n, "state": "(not ours)"} for n in sorted(extra)]


def _node_line(n: dict, col: Collector | None, width: int) -> str:
    level, msg = col.node_diag(n.get("diag_name", n["name"])) if col else ("-", "")
    applied = n.get("applied", {})
    if not msg and n.get("message"):
        msg = n["message"]
    row = (
        f"{n['name'][:18]:<18} {n.get('state', '?')[:10]:<10} {n.get('pid') or '-':>7} "
        f"{n.get('restarts', '-'):>3} {str(applied.get('cpus', '-'))[:6]:<6} "
        f"{applied.get('nice', '-'):>4} {level:<5} {msg}"
    )
    return row[:width]


def _topic_lines(col: Collector) -> list[str]:
    lines = [f"{'TOPIC':<34} {'TYPE':<42} {'RATE Hz':>8} {'PUBS':>4}"]
    for topic, (typ, hz, pubs) in sorted(col.rates().items()):
        lines.append(f"{topic[:34]:<34} {typ[:42]:<42} {hz:8.1f} {pubs:>4}")
    return lines


def render(state: dict | None, col: Collector | None, width: int = 120) -> str:
    if state is None:
        lines = ["supervisor: no state file (is `sensorhub up` running with this data root?)"]
        nodes = [{"name": n} for n in sorted(col.diag_names())] if col else []
    else:
        lines = [_supervisor_line(state)]
        nodes = _node_rows(state, col)
    hdr = f"{'NODE':<18} {'STATE':<10} {'PID':>7} {'RST':>3} {'CPUS':<6} {'NICE':>4} "
    hdr += f"{'DIAG':<5} MESSAGE"
    lines += ["", hdr]
    lines += [_node_line(n, col, width) for n in nodes]
    if col is not None:
        lines += ["", *render_tree(*col.agg_tree(), width=width)]
        lines += ["", *_topic_lines(col)]
    return "\n".join(lines)


def render_tree(tree, age: float | None, width: int = 120) -> list[str]:
    """system_monitor's /diagnostics_agg: one line per group, its items indented below."""
    if age is None:
        return [f"DIAGNOSTICS TREE: nothing on {AGG_TOPIC} (is system_monitor running?)"]
    old = f", {age:.0f} s old" if age > 3.0 else ""
    lines = [f"DIAGNOSTICS TREE ({AGG_TOPIC}{old})"]
    for name, level, msg in tree:
        parts = name.strip("/").split("/", 1)
        label = f"/{parts[0]}" if len(parts) == 1 else f"  {parts[1]}"
        lines.append(f"{LEVELS.get(level, str(level)):<5} {label[:44]:<44} {msg}"[:width])
    return lines


def _dur(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _follow_domain(state: dict | None) -> None:
    """The graph this state file describes lives in its own domain: look there."""
    domain = str((state or {}).get("domain_id") or "")
    if state and state.get("alive") and domain and domain != os.environ.get("ROS_DOMAIN_ID", "0"):
        print(f"(using the supervisor's ROS_DOMAIN_ID {domain})", file=sys.stderr)
        os.environ["ROS_DOMAIN_ID"] = domain


def _healthy(state: dict | None) -> bool:
    ok = state is not None and state.get("alive") and state.get("stale") is None
    return bool(ok and all(n["state"] == "running" for n in state.get("nodes", [])))


def _print_once(executor, col: Collector, data_root: str, window: float) -> int:
    end = time.monotonic() + window
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    state = read_state(data_root)
    print(render(state, col), flush=True)
    return 0 if _healthy(state) else 1


def _print_live(executor, col: Collector, data_root: str, interval: float) -> None:
    next_draw = 0.0
    while True:
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() >= next_draw:
            text = render(read_state(data_root), col)
            sys.stdout.write("\033[H\033[J" + text + "\n(Ctrl-C to quit)\n")
            sys.stdout.flush()
            next_draw = time.monotonic() + interval


def run_status(data_root: str, once: bool, window: float, interval: float = 1.0) -> int:
    """Print the table (once after `window` seconds, or live until Ctrl-C)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    _follow_domain(read_state(data_root))
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=rclpy.SignalHandlerOptions.NO)
    node = rclpy.create_node(
        f"sensorhub_status_{os.getpid()}", context=context, start_parameter_services=False
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    col = Collector(node, window=max(window, 1.0) if once else 5.0)
    code = 0
    try:
        if once:
            code = _print_once(executor, col, data_root, window)
        else:
            _print_live(executor, col, data_root, interval)
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return code
