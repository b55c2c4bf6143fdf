"""The sim graph as bench/cost.py measures it (not a benchmark: tools/run_bench.sh skips
`_*.py`): `sensorhub up` on a copy of the installed graph, CPU and PSS per process, and the PBT
detection latency from the simulator's ground truth and write log.
"""

from __future__ import annotations

import bisect
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EventProbe,
    Procs,
    RosThread,
    cpu_seconds,
    free_port,
    listening,
    pct,
    share,
    start_js,
    wait_for,
)

# the PBT->browser path beside the baseline; composed, the gateway runs in the web_view
# container (with pbt_scope, which the path then includes)
PATH_NODES = ("pbt_driver", "foxglove_gateway", "web_view")
# the whole PBT->browser path, the same processes' work in every arrangement
BROWSER_PATH = ("pbt_driver", "pbt_scope", "foxglove_gateway", "web_view")
SIMS = ("pbt_sim", "tim240_sim", "sec110_sim")
# the module a container process runs (``python -m MODULE --name NAME``)
CONTAINER_MODULE = "sensorhub_common.container"


def pss_bytes(pid: int) -> int:
    """Proportional set size (/proc/PID/smaps_rollup): shared pages divided among sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return None


class Sub(RosThread):
    """/pbt/samples and /pbt/events, as a recorder would subscribe, spun by its own thread."""

    def __init__(self):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtSamples

        super().__init__("bench_cost")
        self.batches: list[tuple[float, int, int, int]] = []  # t, first, n, lost_before
        self.node.create_subscription(
            PbtSamples, "/pbt/samples", self._b, qos.recorder(qos.pbt_samples(0.05))
        )
        # events: a process of its own on a bare wait set (bench/_probe.py), so the detection
        # latency is the graph's, not this process's executor's
        self._probe = EventProbe("bench_cost_events")
        self._events: list[tuple[float, float, int, int]] = []  # t_rx, stamp, peak, end

    def _b(self, m):
        self.batches.append((time.monotonic(), m.first_index, len(m.values), m.lost_before))

    def _add_events(self, records: list[dict]) -> None:
        for d in records:
            st = d["sec"] + d["nanosec"] * 1e-9
            self._events.append((d["t_rx"], st, d["peak_index"], d["end_index"]))

    @property
    def events(self) -> list[tuple[float, float, int, int]]:
        self._add_events(self._probe.read())
        return self._events

    def close(self):
        super().close()
        self._add_events(self._probe.close())


def detection_latency(events, truth_path: Path, wlog_path: Path) -> list[float]:
    """Seconds from the write of the sample that closes each event to its arrival.

    events: (t_rx wall, peak time wall, peak_index, end_index). Indices are mapped to the sim's
    by the most common offset between events and the ground-truth peaks near in time."""
    try:
        tr = [json.loads(x) for x in truth_path.read_text().splitlines() if x.strip()]
        writes = [tuple(map(float, x.split())) for x in wlog_path.read_text().splitlines()]
    except (OSError, ValueError):
        return []
    tr_t = [t["t"] for t in tr]
    offsets = []
    for _, st, peak, _ in events:
        i = bisect.bisect_left(tr_t, st)
        for j in (i - 1, i):
            if 0 <= j < len(tr) and abs(tr_t[j] - st) < 0.004:
                offsets.append(tr[j]["index"] - peak)
    if not offsets:
        return []
    off = statistics.mode(offsets)
    w_first = [w[0] for w in writes]
    lat = []
    for t_rx, _, _, end in events:
        k = end + 1 + off
        i = bisect.bisect_right(w_first, k) - 1
        if i >= 0 and writes[i][0] <= k < writes[i][0] + writes[i][1]:
            lat.append(t_rx - writes[i][2])
    return lat


def ms(xs, q):
    v = pct(xs, q)
    return round(v * 1e3, 3) if v is not None else None


def node_name(cmdline: list[str]) -> str | None:
    """The graph entry a process runs: .../lib/<pkg>/<exe> in its command line, or the name of
    a container (``-m sensorhub_common.container --name NAME``, several nodes in one process)."""
    if CONTAINER_MODULE in cmdline[:3] and "--name" in cmdline:
        return cmdline[cmdline.index("--name") + 1]
    for a in cmdline[:3]:
        p = Path(a)
        if p.parent.parent.name == "lib" and p.parent.name:
            return p.name
    return None


def graph_processes(sup_pid: int) -> dict[str, int]:
    import psutil

    out = {}
    try:
        for c in psutil.Process(sup_pid).children(recursive=True):
            try:
                name = node_name(c.cmdline())
            except psutil.Error:
                continue
            if name and name not in out:
                out[name] = c.pid
    except psutil.Error:
        pass
    return out


def measure(pids: dict[str, int], window: float) -> dict[str, dict]:
    """CPU % of one core over the window and median PSS (2 s samples) of each process."""
    c0 = {k: _cpu(p) for k, p in pids.items()}
    t0 = time.monotonic()
    pss: dict[str, list[int]] = {k: [] for k in pids}
    while time.monotonic() - t0 < window:
        time.sleep(min(2.0, max(0.0, window - (time.monotonic() - t0))))
        for k, p in pids.items():
            v = pss_bytes(p)
            if v:
                pss[k].append(v)
    dt = time.monotonic() - t0
    c1 = {k: _cpu(p) for k, p in pids.items()}
    out = {}
    for k in pids:
        cpu = None
        if c0[k] is not None and c1[k] is not None:
            cpu = round(100.0 * (c1[k] - c0[k]) / dt, 2)
        out[k] = {
            "cpu_pct": cpu,
            "pss_mb": round(statistics.median(pss[k]) / 1e6, 1) if pss[k] else None,
        }
    return out


def _graph_copy(tmp: Path, max_clients: int) -> Path:
    """The installed graph, with pbt_sim writing its ground truth and write log."""
    dst = tmp / "config"
    shutil.copytree(share("bringup") / "config", dst)
    g = dst / "graph.yaml"
    text = g.read_text()
    old = 'args: [--link, "${pbt_port}"]'
    if old not in text:
        raise RuntimeError(f"{g}: pbt_sim args not found ({old!r})")
    new = (
        f'args: [--link, "${{pbt_port}}", --seed, "42", --truth, "{tmp}/truth.jsonl", '
        f'--write-log, "{tmp}/writes.log"]'
    )
    g.write_text(text.replace(old, new, 1))
    gw = dst / "foxglove_gateway.yaml"  # room for the largest level
    text, n = re.subn(r"max_clients:\s*\d+", f"max_clients: {max_clients}", gw.read_text())
    if n != 1:
        raise RuntimeError(f"{gw}: expected one max_clients line, found {n}")
    gw.write_text(text)
    return g


def _containers(graph: Path) -> set[str]:
    import yaml

    return set(yaml.safe_load(graph.read_text()).get("containers") or {})


def stop_client(p: subprocess.Popen, sig=signal.SIGTERM, timeout=20.0) -> None:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def latency_ms(lat: list[float]) -> dict:
    return {"n": len(lat), "p50": ms(lat, 50), "p99": ms(lat, 99)}


def _up_argv(graph: Path, data: Path, port: int, compose: str) -> list:
    return [shutil.which("sensorhub") or "sensorhub", "up", "--profile", "sim", "--record",
            "--compose", compose, "--quiet", "--no-color", "--graph", graph, "--data-root", data,
            "--set", f"web_port={port}", "--set", f"tim240_port={free_port()}",
            "--set", f"sec110_port={free_port()}"]  # fmt: skip


def _graph_round(a, tmp: Path, sup_pid: int, sub: Sub, port: int, n: int, rnd: int) -> dict:
    """One measurement window with n clients connected."""
    log = tmp / f"js_{n}_{rnd}.jsonl"
    cl = start_js(log, f"ws://127.0.0.1:{port}", n)
    time.sleep(a.warmup + n * 0.02)
    pids = graph_processes(sup_pid)
    b0, e0 = len(sub.batches), len(sub.events)
    per = measure(pids, a.window)
    batches, events = sub.batches[b0:], sub.events[e0:]
    time.sleep(0.5)
    stop_client(cl)
    opened = sum(1 for ln in log.read_text().splitlines() if '"serverInfo"' in ln)
    lat = detection_latency(events, tmp / "truth.jsonl", tmp / "writes.log")
    r = {
        "clients": n,
        "round": rnd,
        "clients_connected": opened,
        "processes": per,
        "samples_received": sum(b[2] for b in batches),
        "samples_lost": sum(b[3] for b in batches[1:]),
        "events": len(events),
        "detection_latency_ms": latency_ms(lat),
    }
    _totals(r)
    print(json.dumps({k: v for k, v in r.items() if k != "processes"}), flush=True)
    return r


def _check_containers(pids: dict, graph: Path, expect: tuple[str, ...] | None) -> list[str]:
    """The container processes running; RuntimeError when `expect` names others."""
    found = sorted(set(pids) & _containers(graph))
    if expect is not None and found != sorted(expect):
        raise RuntimeError(
            f"expected the container processes {sorted(expect)}, found {found} "
            f"(processes: {sorted(pids)})"
        )
    return found


def run_graph(a, tmp: Path, levels: list[int], compose: str, expect=None) -> dict:
    """The graph under `sensorhub up --compose COMPOSE`, measured idle and at every level;
    `expect`: the container processes it must run."""
    graph = _graph_copy(tmp, max(levels) + 5)
    port = free_port()
    procs = Procs(tmp)
    sup = procs.start("sensorhub", _up_argv(graph, tmp / "data", port, compose))
    res: dict = {"web_port": port, "compose": compose, "levels": []}
    sub = None
    try:
        if not wait_for(lambda: listening(port), 90.0, interval=0.5):
            raise RuntimeError("gateway not listening (see sensorhub.log)")
        sub = Sub()
        if not wait_for(lambda: sum(b[2] for b in sub.batches) > 1600, 60.0):
            raise RuntimeError("no /pbt/samples")
        time.sleep(a.settle)
        pids = graph_processes(sup.pid)
        res["processes"] = sorted(pids)
        res["containers"] = _check_containers(pids, graph, expect)
        res["idle"] = measure(pids, min(a.window, 10.0))
        for n in levels:
            for rnd in range(a.rounds):
                res["levels"].append(_graph_round(a, tmp, sup.pid, sub, port, n, rnd))
    finally:
        if sub is not None:
            sub.close()
        procs.stop_all(timeout=30.0)
    return res


def _tot(d: dict, key: str) -> float | None:
    vals = [v[key] for v in d.values() if v[key] is not None]
    return round(sum(vals), 2) if vals else None


def _totals(r: dict) -> None:
    per = r["processes"]
    nodes = {k: v for k, v in per.items() if k not in SIMS}
    r["graph_cpu_pct"] = _tot(nodes, "cpu_pct")
    r["graph_pss_mb"] = _tot(nodes, "pss_mb")
    for prefix, names in (("path", PATH_NODES), ("browser_path", BROWSER_PATH)):
        path = {k: v for k, v in per.items() if k in names}
        r[f"{prefix}_cpu_pct"] = _tot(path, "cpu_pct")
        r[f"{prefix}_pss_mb"] = _tot(path, "pss_mb")
