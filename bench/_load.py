"""The whole sim graph under `sensorhub up`, and what the load benchmarks measure on it.

Shared by bench/scenarios.py and bench/soak.py (not a benchmark: tools/run_bench.sh skips
`_*.py`). The graph is the installed one, copied to a temp dir with free ports and its own data
root, so a run never touches ./data or a developer's graph on 8765/2111/2121.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EventProbe,
    ProbeEvent,
    Procs,
    RosThread,
    cpu_seconds,
    ensure_js,
    free_port,
    js_argv,
    share,
    wait_for,
)


def node_entry(graph: dict, name: str) -> dict:
    return next(n for n in graph["nodes"] if n["name"] == name)


class SimGraph:
    """`sensorhub up --profile sim` on a copy of the installed graph (free ports, own data root).

    `mutate(graph_dict)` edits the copy before start (extra sim options, extra nodes).
    """

    def __init__(
        self,
        tmp: Path,
        *,
        record: bool = False,
        role: str = "all",
        mutate=None,
        compose: str = "auto",
    ):
        import yaml

        self.tmp = tmp
        self.data = tmp / "data"
        cfg = tmp / "cfg"
        shutil.copytree(share("bringup") / "config", cfg)
        g = yaml.safe_load((cfg / "graph.yaml").read_text())
        for var in ("web_port", "tim240_port", "sec110_port"):
            g["variables"][var] = free_port()
        self.web_port = g["variables"]["web_port"]
        self.sec110_port = g["variables"]["sec110_port"]
        if mutate:
            mutate(g)
        self.graph = g
        (cfg / "graph.yaml").write_text(yaml.safe_dump(g, sort_keys=False))
        self.graph_file = cfg / "graph.yaml"
        self.record, self.role, self.compose = record, role, compose
        self.procs = Procs(tmp)
        self.sup: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [
            shutil.which("sensorhub"),
            "up",
            "--graph",
            self.graph_file,
            "--profile",
            "sim",
            "--role",
            self.role,
            "--data-root",
            self.data,
            "--compose",
            self.compose,
            "--no-color",
            "--quiet",
        ]
        if self.record:
            argv.append("--record")
        self.sup = self.procs.start("sensorhub", argv)

    def state(self) -> dict:
        try:
            return json.loads((self.data / "run" / "supervisor.json").read_text())
        except (OSError, ValueError):
            return {}

    def nodes(self) -> dict[str, dict]:
        return {n["name"]: n for n in self.state().get("nodes", [])}

    def pids(self) -> dict[str, int]:
        """Node name -> pid of its running process; the supervisor itself as `sensorhub`."""
        out = {n: v["pid"] for n, v in self.nodes().items() if v.get("pid")}
        if self.sup is not None and self.sup.poll() is None:
            out["sensorhub"] = self.sup.pid
        return out

    def all_running(self) -> bool:
        nodes = self.nodes()
        return bool(nodes) and all(v["state"] == "running" for v in nodes.values())

    def wait_running(self, timeout: float = 90.0) -> bool:
        ok = wait_for(lambda: self.all_running() or self.sup.poll() is not None, timeout, 0.2)
        return ok and self.sup.poll() is None

    def stop(self, sig=signal.SIGINT, timeout: float = 60.0) -> int | None:
        if self.sup is None or self.sup.poll() is not None:
            return None if self.sup is None else self.sup.returncode
        self.sup.send_signal(sig)
        try:
            return self.sup.wait(timeout)
        except subprocess.TimeoutExpired:
            self.procs.stop_all()
            return None


def mem(pid: int) -> dict | None:
    """RSS, PSS (shared pages divided among their users) [bytes] and open fds of one process."""
    out = {"rss": 0, "pss": 0, "fds": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    out["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1]) * 1024
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return out


class Sampler:
    """Per-node CPU (% of one core), RSS, PSS and fds every `period` s, in a thread.

    Follows restarts: samples are keyed by node name and the pid is re-read each round.
    """

    def __init__(self, pids_fn, period: float = 1.0):
        self.pids_fn, self.period = pids_fn, period
        self.t0 = time.monotonic()
        self.series: dict[str, list[dict]] = {}
        self._last: dict[str, tuple[int, float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            now = time.monotonic()
            for name, pid in self.pids_fn().items():
                m = mem(pid)
                try:
                    cpu = cpu_seconds(pid)
                except OSError:
                    continue
                if m is None:
                    continue
                last = self._last.get(name)
                pct = None
                if last and last[0] == pid and now > last[2]:
                    pct = 100.0 * (cpu - last[1]) / (now - last[2])
                self._last[name] = (pid, cpu, now)
                self.series.setdefault(name, []).append(
                    {"t": round(now - self.t0, 2), "pid": pid, "cpu": pct, **m}
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self, t_from: float = 0.0) -> dict[str, dict]:
        """Per node over samples at t >= t_from: mean/max CPU, last and max RSS/PSS [MB]."""
        out = {}
        for name, xs in self.series.items():
            xs = [x for x in xs if x["t"] >= t_from]
            cpus = [x["cpu"] for x in xs if x["cpu"] is not None]
            if not xs:
                continue
            out[name] = {
                "cpu_mean_pct": round(sum(cpus) / len(cpus), 2) if cpus else None,
                "cpu_max_pct": round(max(cpus), 1) if cpus else None,
                "rss_mb": round(xs[-1]["rss"] / 1e6, 1),
                "pss_mb": round(xs[-1]["pss"] / 1e6, 1),
                "rss_max_mb": round(max(x["rss"] for x in xs) / 1e6, 1),
                "pss_max_mb": round(max(x["pss"] for x in xs) / 1e6, 1),
                "fds": xs[-1]["fds"],
                "pids": sorted({x["pid"] for x in xs}),
            }
        return out


class JsClients:
    """N independent Foxglove WebSocket clients (test/js/client.js, count mode) in one node
    process; `counts()` after `finish()`: per client, topic -> set of header stamps."""

    def __init__(self, procs: Procs, name: str, url: str, n: int, progress: float = 0.0):
        ensure_js()
        argv = js_argv(url, n)
        if progress:
            argv += ["--progress", progress]
        self.log = procs.tmp / f"{name}.log"
        self.p = procs.start(name, argv)
        self.n = n
        self._pos = 0
        self._last: dict[int, int] = {}

    def events(self, kind: str) -> list[dict]:
        out = []
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == kind:
                    out.append(ev)
        return out

    def received(self) -> int:
        """Messages received so far over all clients (from the progress lines), reading only
        what the log gained since the last call: this runs beside a latency observer."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return sum(self._last.values())
        end = chunk.rfind(b"\n") + 1
        self._pos += end
        for line in chunk[:end].splitlines():
            if line.startswith(b'{"event":"progress"'):
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                self._last[ev["client"]] = sum(t["n"] for t in ev["topics"].values())
        return sum(self._last.values())

    def finish(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                Procs.stop(self.p)

    def counts(self) -> dict[int, dict[str, set[str]]]:
        return {
            ev["client"]: {t: set(c.get("stamps", [])) for t, c in ev["topics"].items()}
            for ev in self.events("counts")
        }


class PbtSub(RosThread):
    """A recorder-like rclpy subscriber of /pbt/samples (+ reference stamps of the web topics)
    spun by its own thread, and of /pbt/events through bench/_probe.py, a process of its own
    (SCHED_FIFO `probe_fifo` when > 0); receive times on the host clock.

    Each event keeps its DDS source timestamp (the driver's publish) and reception timestamp, so
    the detection latency splits into the driver's, DDS's and the observer's shares."""

    def __init__(self, name: str = "bench_load", scan: bool = True, probe_fifo: int = 0):
        from sensor_msgs.msg import LaserScan

        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtSamples

        self._probe = EventProbe(f"{name}_events", probe_fifo)
        self._events: list[tuple] = []  # (t_rx, ProbeEvent)
        self._dds: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()
        super().__init__(name)
        self.batches: list[tuple] = []  # (first_index, n, lost_before, lost_total, t_rx, stamp)
        self.scans: list[tuple[float, str]] = []
        self.node.create_subscription(
            PbtSamples, "/pbt/samples", self._b, qos.recorder(qos.pbt_samples(0.05))
        )
        if scan:
            self.node.create_subscription(
                LaserScan, "/tim240/scan_filtered", self._s, qos.viewer(qos.SCAN)
            )

    @staticmethod
    def stamp(m) -> str:
        return f"{m.header.stamp.sec}.{m.header.stamp.nanosec:09d}"

    def _read_probe(self, records: list[dict] | None = None) -> None:
        with self._lock:
            for d in self._probe.read() if records is None else records:
                self._events.append((d["t_rx"], ProbeEvent(d)))
                self._dds[d["peak_index"]] = (d["src"], d["rx"])

    @property
    def events(self) -> list[tuple]:
        """(t_rx, event) for every PbtEvent the probe received so far."""
        self._read_probe()
        return self._events

    @property
    def event_dds(self) -> dict[int, tuple[float, float]]:
        """peak_index -> (DDS source timestamp, DDS reception timestamp) [s, host clock]."""
        self._read_probe()
        return self._dds

    def _b(self, m) -> None:
        self.batches.append(
            (m.first_index, len(m.values), m.lost_before, m.lost_total, time.time(), self.stamp(m))
        )

    def _s(self, m) -> None:
        self.scans.append((time.time(), self.stamp(m)))

    def samples(self) -> int:
        return sum(b[1] for b in self.batches)

    def close(self) -> None:
        super().close()
        self._read_probe(self._probe.close())


def slope_per_hour(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over ts [s], per hour; None with fewer than 3 points."""
    n = len(ts)
    if n < 3:
        return None
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return 3600.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var
