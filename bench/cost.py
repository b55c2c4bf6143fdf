#!/usr/bin/env python3
"""Benchmark of the graph's cost: CPU and memory (PSS) per process with 2, 10 and 50 clients.

Graph: `sensorhub up --profile sim --record` (every node of the pi profile, with simulators) from
a copy of the installed graph whose pbt_sim also writes its ground truth and write log, on free
ports and a data root in a temp dir. Clients: the independent JS Foxglove client
(src/foxglove_gateway/test/js, count mode), N WebSocket connections subscribed to everything.

Per level, over a window: CPU of every process (user+system from /proc/PID/stat, % of one core),
PSS (/proc/PID/smaps_rollup, median of 2 s samples), PBT samples lost (lost_before in
/pbt/samples), detection latency (the sim's write of the sample that closes an event -> the
PbtEvent in bench/_probe.py, a process of its own; p50/p99), clients connected.

Baseline (``--no-baseline`` to skip): bench/_baseline_app.py, the review's one-process design
(pyserial readline thread, numpy ring buffers 4000 x 3, 20 Hz WebSocket emits), fed by its own
pbt_sim on a pty, with N counting clients; the same figures. "PBT->browser path" compares
pbt_driver + foxglove_gateway with that one process.

``--compose true`` runs the graph's containers (several non-real-time nodes per process);
``--before OLD.json`` keeps an earlier run's summary beside this one (``before_after``).

The machine is shared (other suites run on it): ``--rounds`` repeats every level; the JSON
keeps every round and reports medians. Writes DIR/cost.json and DIR/cost.png.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EventProbe,
    Procs,
    RosThread,
    bench_domain,
    cpu_seconds,
    exe,
    free_port,
    pct,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "src" / "foxglove_gateway" / "test" / "js"
# the PBT->browser path; with --compose the gateway runs in the web_view container (with
# pbt_scope, which the path then includes)
PATH_NODES = ("pbt_driver", "foxglove_gateway", "web_view")
SIMS = ("pbt_sim", "tim240_sim", "sec110_sim")
GOALS = {
    "pbt_driver_cpu_pct": 2.5,
    "detection_latency_p99_ms": 2.0,
    "node_pss_mb": 32.0,
    "graph_pss_mb": 200.0,
    "path_cpu_ratio_2_10": 0.8,
    "path_cpu_ratio_50": 0.6,
    "path_pss_ratio": 1.6,
}


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


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


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


def _node_name(cmdline: list[str]) -> str | None:
    """The graph entry a process runs: .../lib/<pkg>/<exe> in its command line, or the name of
    a container (``-m sensorhub_common.container --name NAME``, several nodes in one process)."""
    if "sensorhub_common.container" in cmdline[:3] and "--name" in cmdline:
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
                name = _node_name(c.cmdline())
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
    from ament_index_python.packages import get_package_share_directory

    src = Path(get_package_share_directory("bringup"), "config")
    dst = tmp / "config"
    shutil.copytree(src, dst)
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
    gw.write_text(gw.read_text().replace("max_clients: 10", f"max_clients: {max_clients}"))
    return g


def _js_clients(n: int, port: int, out: Path) -> subprocess.Popen:
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [
                "node",
                JS_DIR / "client.js",
                "--url",
                f"ws://127.0.0.1:{port}",
                "--mode",
                "count",
                "--clients",
                str(n),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout=20.0) -> None:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def run_graph(args, tmp: Path, levels: list[int]) -> dict:
    graph = _graph_copy(tmp, max(levels) + 5)
    port = free_port()
    data = tmp / "data"
    argv = [
        shutil.which("sensorhub") or "sensorhub",
        "up",
        "--profile",
        "sim",
        "--record",
        "--compose",
        args.compose,
        "--quiet",
        "--no-color",
        "--graph",
        graph,
        "--data-root",
        data,
        "--set",
        f"web_port={port}",
        "--set",
        f"tim240_port={free_port()}",
        "--set",
        f"sec110_port={free_port()}",
    ]
    procs = Procs(tmp)
    sup = procs.start("sensorhub", argv)
    res: dict = {"web_port": port, "levels": []}
    sub = None
    try:
        if not wait_for(lambda: _listening(port), 90.0, interval=0.5):
            raise RuntimeError("gateway not listening (see sensorhub.log)")
        sub = Sub()
        if not wait_for(lambda: sum(b[2] for b in sub.batches) > 1600, 60.0):
            raise RuntimeError("no /pbt/samples")
        time.sleep(args.settle)
        pids = graph_processes(sup.pid)
        res["processes"] = sorted(pids)
        res["idle"] = measure(pids, min(args.window, 10.0))
        for n in levels:
            for rnd in range(args.rounds):
                cl = _js_clients(n, port, tmp / f"js_{n}_{rnd}.jsonl")
                time.sleep(args.warmup + n * 0.02)
                pids = graph_processes(sup.pid)
                b0, e0 = len(sub.batches), len(sub.events)
                per = measure(pids, args.window)
                batches, events = sub.batches[b0:], sub.events[e0:]
                time.sleep(0.5)
                _stop(cl)
                opened = sum(
                    1
                    for ln in (tmp / f"js_{n}_{rnd}.jsonl").read_text().splitlines()
                    if '"serverInfo"' in ln
                )
                lat = detection_latency(events, tmp / "truth.jsonl", tmp / "writes.log")
                r = {
                    "clients": n,
                    "round": rnd,
                    "clients_connected": opened,
                    "processes": per,
                    "samples_received": sum(b[2] for b in batches),
                    "samples_lost": sum(b[3] for b in batches[1:]),
                    "events": len(events),
                    "detection_latency_ms": {
                        "n": len(lat),
                        "p50": ms(lat, 50),
                        "p99": ms(lat, 99),
                    },
                }
                _totals(r)
                print(json.dumps({k: v for k, v in r.items() if k != "processes"}), flush=True)
                res["levels"].append(r)
    finally:
        if sub is not None:
            sub.close()
        procs.stop_all(timeout=30.0)
    return res


def _totals(r: dict) -> None:
    per = r["processes"]
    nodes = {k: v for k, v in per.items() if k not in SIMS}

    def tot(d, key):
        vals = [v[key] for v in d.values() if v[key] is not None]
        return round(sum(vals), 2) if vals else None

    r["graph_cpu_pct"] = tot(nodes, "cpu_pct")
    r["graph_pss_mb"] = tot(nodes, "pss_mb")
    path = {k: v for k, v in per.items() if k in PATH_NODES}
    r["path_cpu_pct"] = tot(path, "cpu_pct")
    r["path_pss_mb"] = tot(path, "pss_mb")


def run_baseline(args, tmp: Path, levels: list[int]) -> dict:
    procs = Procs(tmp)
    link, truth, wlog = tmp / "base.tty", tmp / "base_truth.jsonl", tmp / "base_writes.log"
    port = free_port()
    app_py = Path(__file__).resolve().parent / "_baseline_app.py"
    res: dict = {"web_port": port, "levels": []}
    try:
        procs.start(
            "base_sim",
            [
                exe("pbt_driver", "pbt_sim"),
                "--link",
                link,
                "--seed",
                "42",
                "--truth",
                truth,
                "--write-log",
                wlog,
            ],
        )
        if not wait_for(link.exists, 20):
            raise RuntimeError("baseline pbt_sim did not start")
        app = procs.start(
            "baseline_app", [sys.executable, app_py, "--serial", link, "--port", port]
        )
        if not wait_for(lambda: _listening(port), 30.0, interval=0.2):
            raise RuntimeError("baseline app not listening")
        time.sleep(args.settle)
        res["idle"] = measure({"baseline_app": app.pid}, min(args.window, 10.0))
        for n in levels:
            for rnd in range(args.rounds):
                out = tmp / f"base_clients_{n}_{rnd}.json"
                cl = procs.start(
                    f"base_clients_{n}_{rnd}",
                    [
                        sys.executable,
                        app_py,
                        "--clients",
                        n,
                        "--url",
                        f"ws://127.0.0.1:{port}",
                        "--out",
                        out,
                    ],
                )
                time.sleep(args.warmup + n * 0.02)
                t0 = time.time()
                per = measure({"baseline_app": app.pid}, args.window)
                t1 = time.time()
                _stop(cl)
                try:
                    c = json.loads(out.read_text())
                except (OSError, ValueError):
                    c = {"clients": [], "events_client0": []}
                evs = [
                    (t, e["peak_time"], e["peak_index"], e["end_index"])
                    for t, e in c["events_client0"]
                    if t0 <= t <= t1
                ]
                lat = detection_latency(evs, truth, wlog)
                r = {
                    "clients": n,
                    "round": rnd,
                    "clients_connected": sum(1 for s in c["clients"] if s["connected"]),
                    "processes": per,
                    "events": len(evs),
                    "detection_latency_ms": {
                        "n": len(lat),
                        "p50": ms(lat, 50),
                        "p99": ms(lat, 99),
                    },
                    "app_cpu_pct": per["baseline_app"]["cpu_pct"],
                    "app_pss_mb": per["baseline_app"]["pss_mb"],
                }
                print(json.dumps({k: v for k, v in r.items() if k != "processes"}), flush=True)
                res["levels"].append(r)
    finally:
        procs.stop_all(timeout=10.0)
    return res


def _median(rows: list[dict], key) -> float | None:
    vals = [key(r) for r in rows]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 2) if vals else None


def summarize(result: dict, levels: list[int]) -> dict:
    g = result.get("graph", {}).get("levels", [])
    b = result.get("baseline", {}).get("levels", [])
    summary = {}
    for n in levels:
        gr = [r for r in g if r["clients"] == n]
        br = [r for r in b if r["clients"] == n]
        s: dict = {}
        if gr:
            names = sorted({k for r in gr for k in r["processes"]})
            s["per_process"] = {
                k: {
                    "cpu_pct": _median(
                        gr, lambda r, k=k: r["processes"].get(k, {}).get("cpu_pct")
                    ),
                    "pss_mb": _median(gr, lambda r, k=k: r["processes"].get(k, {}).get("pss_mb")),
                }
                for k in names
            }
            for key in ("graph_cpu_pct", "graph_pss_mb", "path_cpu_pct", "path_pss_mb"):
                s[key] = _median(gr, lambda r, key=key: r[key])
            s["samples_lost"] = sum(r["samples_lost"] for r in gr)
            s["detection_latency_p99_ms"] = _median(gr, lambda r: r["detection_latency_ms"]["p99"])
            s["clients_connected_min"] = min(r["clients_connected"] for r in gr)
        if br:
            s["baseline_cpu_pct"] = _median(br, lambda r: r["app_cpu_pct"])
            s["baseline_pss_mb"] = _median(br, lambda r: r["app_pss_mb"])
            s["baseline_detection_latency_p99_ms"] = _median(
                br, lambda r: r["detection_latency_ms"]["p99"]
            )
        if gr and br and s["baseline_cpu_pct"] and s["path_cpu_pct"] is not None:
            s["path_cpu_ratio"] = round(s["path_cpu_pct"] / s["baseline_cpu_pct"], 2)
        if gr and br and s.get("baseline_pss_mb") and s["path_pss_mb"] is not None:
            s["path_pss_ratio"] = round(s["path_pss_mb"] / s["baseline_pss_mb"], 2)
        summary[str(n)] = s
    return summary


BEFORE_KEYS = (
    "path_cpu_pct",
    "path_pss_mb",
    "graph_cpu_pct",
    "graph_pss_mb",
    "detection_latency_p99_ms",
    "baseline_cpu_pct",
    "baseline_pss_mb",
    "path_cpu_ratio",
    "path_pss_ratio",
)


def embed_before(result: dict, path: Path) -> None:
    """Keep an earlier run's summary, and per level the figures side by side."""
    old = json.loads(path.read_text())
    result["before"] = {
        k: old.get(k) for k in ("tag", "load_avg_at_start", "rounds", "window_s", "summary")
    }
    table = {}
    for n, now in result["summary"].items():
        was = old.get("summary", {}).get(n, {})
        row = {k: [was.get(k), now.get(k)] for k in BEFORE_KEYS if k in was or k in now}
        for proc, fig in now.get("per_process", {}).items():
            w = was.get("per_process", {}).get(proc, {})
            row[f"{proc} cpu_pct"] = [w.get("cpu_pct"), fig["cpu_pct"]]
            row[f"{proc} pss_mb"] = [w.get("pss_mb"), fig["pss_mb"]]
        table[n] = row
    result["before_after"] = {"columns": ["before", "after"], "levels": table}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--quick", action="store_true", help="short windows, one round")
    ap.add_argument("--clients", default="2,10,50")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per level (default 3)")
    ap.add_argument("--window", type=float, default=None, help="s per measurement (default 30)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--no-graph", action="store_true")
    ap.add_argument("--tag", default="", help="label stored in the JSON (e.g. before/after)")
    ap.add_argument("--shm", action="store_true", help="keep Fast DDS shared memory")
    ap.add_argument(
        "--compose",
        default="false",
        choices=("auto", "true", "false"),
        help="sensorhub up --compose: the graph's containers (several nodes per process)",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="an earlier cost.json (e.g. before a change): its summary is kept beside this one",
    )
    args = ap.parse_args()
    # The subscriber thread timing the events must get the GIL at once, not after the main
    # thread's 5 ms switch interval (as the driver does for its reader thread).
    sys.setswitchinterval(0.0005)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.window = args.window or (8.0 if args.quick else 30.0)
    args.warmup, args.settle = (3.0, 2.0) if args.quick else (5.0, 5.0)
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if not args.shm:
        # as bench/gateway.py: UDPv4 only on the shared dev box
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    if not shutil.which("node"):
        sys.exit("bench/cost.py: node not installed (needed for the JS clients)")
    if not (JS_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    t_start = time.time()
    result: dict = {
        "benchmark": "cost",
        "tag": args.tag,
        "compose": args.compose,
        "host_cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "quick": args.quick,
        "rounds": args.rounds,
        "window_s": args.window,
        "dds_transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (SHM + UDPv4)"),
        "note": "shared 2-core machine: figures are medians of the rounds and noisy",
        "goals": GOALS,
    }
    try:
        if not args.no_graph:
            result["graph"] = run_graph(args, tmp, levels)
        if not args.no_baseline:
            result["baseline"] = run_baseline(args, tmp, levels)
    finally:
        result["bench_seconds"] = round(time.time() - t_start, 1)
    result["summary"] = summarize(result, levels)
    if args.before:
        embed_before(result, args.before)
    out = args.out / "cost.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {out}")
    _plot(result, levels, args.out / "cost.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _plot(result: dict, levels: list[int], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    s = result["summary"]
    xs = [n for n in levels if str(n) in s]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (
        ("path_cpu_pct", "pbt_driver + foxglove_gateway"),
        ("baseline_cpu_pct", "one-process app (baseline)"),
        ("graph_cpu_pct", "whole graph (nodes)"),
    ):
        ys = [s[str(n)].get(key) for n in xs]
        if any(y is not None for y in ys):
            ax[0].plot(xs, ys, "o-", label=label)
    ax[0].set(xlabel="clients", ylabel="CPU [% of one core]", title="CPU (median of rounds)")
    ax[0].legend(fontsize=8)
    procs = sorted({k for n in xs for k in s[str(n)].get("per_process", {}) if k not in SIMS})
    if procs and xs:
        pp = s[str(xs[0])]["per_process"]
        vals = [pp[k]["pss_mb"] or 0 for k in procs]
        ax[1].barh(procs, vals, color="#4477aa")
        base = s[str(xs[0])].get("baseline_pss_mb")
        if base:
            ax[1].axvline(base, ls="--", c="#cc3311", label=f"baseline app {base} MB")
        ax[1].axvline(GOALS["node_pss_mb"], ls=":", c="grey", label="goal per node 32 MB")
        ax[1].legend(fontsize=8)
    ax[1].set(xlabel="PSS [MB]", title=f"memory per process ({xs[0] if xs else '-'} clients)")
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
