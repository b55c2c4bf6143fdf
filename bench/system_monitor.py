#!/usr/bin/env python3
"""Benchmark of system_monitor: its own CPU with the full sim graph, and detection latency.

Graph: `sensorhub up --profile sim --compose false` on a copy of the installed graph (free
ports, own data root, own ROS_DOMAIN_ID, UDP loopback only), i.e. every simulator and node of
the sim profile in a process of its own (so each kill below takes down one node), system_monitor
included with its default settings (process poll 5 Hz, diagnostics 1 Hz).

* cpu: user+system time of the system_monitor process over the window, % of one core
  (goal <= 2 %), with its RSS; the host's total CPU load over the same window for context.
* latency: from the signal this script sends to the first /diagnostics status of the monitor
  that names the node at the expected level (received here, another process; goal <= 3 s):
  - kill: SIGKILL of a node (the supervisor restarts it) -> "node X" ERROR (exited/not running)
  - sigstop: SIGSTOP of pbt_driver -> ERROR (stopped); diag_stale: -> STALE (diagnostics silent)
  - resume: SIGCONT -> "node pbt_driver" OK again
  - stall: SIGSTOP of pbt_sim -> "topic /pbt/samples" ERROR (deadline 0.5 s); stall_resume
    -> OK.

Writes DIR/system_monitor.json. Timing goals live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# bench/ is not a package: put this script's folder first on sys.path so that `_common` imports
# whatever the cwd (tools/run_bench.sh runs `python bench/X.py` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, RosThread, bench_domain, cpu_seconds, rss_bytes
from _load import SimGraph

LATENCY_KEYS = ("kill_pbt_driver", "kill_foxglove_gateway", "sigstop", "diag_stale", "resume",
                "stall", "stall_resume")  # fmt: skip


class Watch(RosThread):
    """The monitor's statuses on /diagnostics as they arrive: (receive time, level, message)."""

    def __init__(self):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos

        super().__init__(f"bench_sysmon_{os.getpid()}")
        self.lock = threading.Lock()
        self.events: list[tuple[float, str, int, str]] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on, qos.DIAGNOSTICS)

    def _on(self, msg):
        now = time.monotonic()
        with self.lock:
            for s in msg.status:
                if s.name.startswith("system_monitor: "):
                    self.events.append((now, s.name, s.level[0], s.message))

    def first(self, name, pred, after, timeout=30.0):
        """Receive time of the first status `name` after `after` satisfying pred(level, msg)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for t, n, lv, m in self.events:
                    if t >= after and n == name and pred(lv, m):
                        return t
            time.sleep(0.01)
        return None


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": round(statistics.median(xs), 3), "max": round(max(xs), 3),
            "min": round(min(xs), 3), "samples": [round(x, 3) for x in xs]}  # fmt: skip


def _ok(lv: int, _msg: str) -> bool:
    return lv == 0


def wait_graph(g: SimGraph, tmp: Path) -> None:
    """Until every node runs (at most 120 s); SystemExit when `sensorhub up` exits."""
    g.wait_running(120)
    if g.sup.poll() is not None:
        raise SystemExit(f"sensorhub up exited {g.sup.returncode}; see {tmp}")


def measure_cpu(mon: int, window: float) -> dict:
    """The monitor's CPU over `window` s (% of one core), its RSS, the host's load beside it."""
    import psutil

    psutil.cpu_percent()
    t0, c0 = time.monotonic(), cpu_seconds(mon)
    time.sleep(window)
    t1, c1 = time.monotonic(), cpu_seconds(mon)
    return {
        "monitor_percent_one_core": round((c1 - c0) / (t1 - t0) * 100, 2),
        "goal_percent": 2.0,
        "window_s": round(t1 - t0, 1),
        "monitor_rss_mb": round(rss_bytes(mon) / 2**20, 1),
        "host_cpu_percent_all_cores": round(psutil.cpu_percent(), 1),
        "cores": os.cpu_count(),
    }


def _since(t: float, got: float | None) -> float | None:
    return got - t if got else None


def kill_latency(w: Watch, g: SimGraph, victim: str) -> float | None:
    """SIGKILL -> the monitor names the node ERROR; then wait until it is OK again."""
    name = f"system_monitor: node {victim}"
    t = time.monotonic()
    os.kill(g.pids()[victim], signal.SIGKILL)
    # a zombie until the supervisor reaps it, then "not running": both name it
    got = w.first(name, lambda lv, m: lv >= 2 and ("not running" in m or "zombie" in m), t)
    w.first(name, _ok, time.monotonic(), timeout=60)
    return _since(t, got)


def stop_latencies(w: Watch, pid: int, name: str, faults: dict, resumed: str, lat: dict) -> None:
    """SIGSTOP of pid -> each fault status `faults` names (key -> predicate); SIGCONT -> OK
    (`resumed`); the latencies appended to `lat`."""
    t = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        for key, pred in faults.items():
            lat[key].append(_since(t, w.first(name, pred, t)))
    finally:
        t = time.monotonic()
        os.kill(pid, signal.SIGCONT)
    lat[resumed].append(_since(t, w.first(name, _ok, t)))


def run_trials(w: Watch, g: SimGraph, trials: int) -> dict[str, list]:
    lat: dict[str, list] = {k: [] for k in LATENCY_KEYS}
    for _ in range(trials):
        for victim in ("pbt_driver", "foxglove_gateway"):
            lat[f"kill_{victim}"].append(kill_latency(w, g, victim))
            time.sleep(1.0)
        driver = {
            "sigstop": lambda lv, m: lv >= 2 and "SIGSTOP" in m,
            "diag_stale": lambda lv, m: lv == 3 and "diagnostics silent" in m,
        }
        stop_latencies(w, g.pids()["pbt_driver"], "system_monitor: node pbt_driver", driver,
                       "resume", lat)  # fmt: skip
        time.sleep(1.0)
        stall = {"stall": lambda lv, m: lv == 2 and "deadline" in m}
        stop_latencies(w, g.pids()["pbt_sim"], "system_monitor: topic /pbt/samples", stall,
                       "stall_resume", lat)  # fmt: skip
        time.sleep(2.0)
    return lat


def measure(w: Watch, g: SimGraph, a: argparse.Namespace, tmp: Path) -> dict:
    """CPU, then the detection latencies, once the graph runs."""
    wait_graph(g, tmp)
    nodes = sorted(g.nodes())
    print("graph:", ", ".join(nodes), flush=True)
    t_ok = w.first("system_monitor: watchdog", _ok, 0.0, timeout=120)  # all alive
    if t_ok is None:
        raise SystemExit("the watchdog never reported every node alive")
    time.sleep(5)  # settle
    result: dict = {"cpu": measure_cpu(g.pids()["system_monitor"], a.window)}
    print("cpu:", result["cpu"], flush=True)
    result["latency_s"] = {k: summary(v) for k, v in run_trials(w, g, a.trials).items()}
    result["latency_goal_s"] = 3.0
    for k, v in result["latency_s"].items():
        print(f"{k}: {v}", flush=True)
    result["graph"] = {
        "how": "sensorhub up --profile sim --compose false (installed graph copy, free ports)",
        "nodes": nodes,
        "transport": "Fast DDS UDPv4 loopback",
    }
    result["notes"] = [
        "latency = signal sent here -> monitor's /diagnostics status received here",
        "kill/sigstop come from the 5 Hz /proc poll; diag_stale from diag_timeout 2.5 s "
        "after the node's last 1 Hz diagnostics; stall from the 0.5 s topic deadline",
        "shared 2-core machine with other work running: figures include that load",
    ]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--window", type=float, default=60.0, help="CPU window [s]")
    ap.add_argument("--trials", type=int, default=5)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sysmon-"))
    bench_domain()  # own ROS_DOMAIN_ID, discovery on this machine only
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"  # no /dev/shm leftovers from SIGKILLs
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    g = SimGraph(tmp, compose="false")
    g.start()
    w = Watch()
    result: dict = {}
    try:
        result = measure(w, g, a, tmp)
    finally:
        w.close()
        Procs.stop(g.sup, timeout=30)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "system_monitor.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'system_monitor.json'}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
