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

Baseline (``--no-baseline`` to skip): bench/_baseline_app.py, the one-process design the graph
replaces (pyserial readline thread, numpy ring buffers 4000 x 3, 20 Hz WebSocket emits), fed by
its own pbt_sim on a pty, with N counting clients; the same figures. "PBT->browser path"
compares pbt_driver + foxglove_gateway with that one process.

``--compose true|false|auto`` is passed to `sensorhub up` (default false: one process per node);
``--before OLD.json`` keeps an earlier run's summary beside this one (``before_after``).

Arrangements (``--arrangements separate,web_composed``): the graph once per process
arrangement, without the baseline, at 2 and 10 clients unless ``--clients`` says otherwise:
``separate`` (``--compose false``: one process per node), ``web_composed`` (``--compose auto``,
the default: pbt_scope + foxglove_gateway in the web_view container, the sensor side separate),
``composed`` (``--compose true``: every container). A run whose container processes are not
the arrangement's stops, naming what it found. Per arrangement and level: CPU % and PSS of the
PBT->browser path (pbt_driver, pbt_scope, foxglove_gateway, or web_view in their place) and of
the whole graph. Writes DIR/cost_arrangements.json and .png.

The machine is shared (other suites run on it): ``--rounds`` repeats every level; the JSON
keeps every round and reports medians. Writes DIR/cost.json and DIR/cost.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ROOT,
    Procs,
    bench_domain,
    ensure_js,
    exe,
    free_port,
    listening,
    pyplot,
    wait_for,
)
from _measure import (
    BROWSER_PATH,
    SIMS,
    detection_latency,
    latency_ms,
    measure,
    run_graph,
    stop_client,
)

BASELINE_APP = Path(__file__).resolve().parent / "_baseline_app.py"
GOALS = {
    "pbt_driver_cpu_pct": 2.5,
    "detection_latency_p99_ms": 2.0,
    "node_pss_mb": 32.0,
    "graph_pss_mb": 200.0,
    "path_cpu_ratio_2_10": 0.8,
    "path_cpu_ratio_50": 0.6,
    "path_pss_ratio": 1.6,
}


@dataclass(frozen=True)
class Arrangement:
    """How `sensorhub up` groups the graph's nodes into processes."""

    compose: str  # the --compose value
    containers: tuple[str, ...]  # the container processes the graph must then run
    description: str


ARRANGEMENTS = {
    "separate": Arrangement(compose="false", containers=(), description="one process per node"),
    "web_composed": Arrangement(
        compose="auto",
        containers=("web_view",),
        description="pbt_scope + foxglove_gateway in web_view, the sensor side separate",
    ),
    "composed": Arrangement(
        compose="true", containers=("services", "web_view"), description="every container"
    ),
}


def _baseline_round(a, procs: Procs, tmp: Path, app_pid: int, port: int, n: int, rnd: int):
    """One window of the one-process app with n counting clients."""
    out = tmp / f"base_clients_{n}_{rnd}.json"
    cl = procs.start(f"base_clients_{n}_{rnd}", [sys.executable, BASELINE_APP, "--clients", n,
                     "--url", f"ws://127.0.0.1:{port}", "--out", out])  # fmt: skip
    time.sleep(a.warmup + n * 0.02)
    t0 = time.time()
    per = measure({"baseline_app": app_pid}, a.window)
    t1 = time.time()
    stop_client(cl)
    try:
        c = json.loads(out.read_text())
    except (OSError, ValueError):
        c = {"clients": [], "events_client0": []}
    evs = [
        (t, e["peak_time"], e["peak_index"], e["end_index"])
        for t, e in c["events_client0"]
        if t0 <= t <= t1
    ]
    lat = detection_latency(evs, tmp / "base_truth.jsonl", tmp / "base_writes.log")
    r = {
        "clients": n,
        "round": rnd,
        "clients_connected": sum(1 for s in c["clients"] if s["connected"]),
        "processes": per,
        "events": len(evs),
        "detection_latency_ms": latency_ms(lat),
        "app_cpu_pct": per["baseline_app"]["cpu_pct"],
        "app_pss_mb": per["baseline_app"]["pss_mb"],
    }
    print(json.dumps({k: v for k, v in r.items() if k != "processes"}), flush=True)
    return r


def run_baseline(a, tmp: Path, levels: list[int]) -> dict:
    procs = Procs(tmp)
    link, truth, wlog = tmp / "base.tty", tmp / "base_truth.jsonl", tmp / "base_writes.log"
    port = free_port()
    res: dict = {"web_port": port, "levels": []}
    try:
        procs.start("base_sim", [exe("pbt_driver", "pbt_sim"), "--link", link, "--seed", "42",
                                 "--truth", truth, "--write-log", wlog])  # fmt: skip
        if not wait_for(link.exists, 20):
            raise RuntimeError("baseline pbt_sim did not start")
        app = procs.start(
            "baseline_app", [sys.executable, BASELINE_APP, "--serial", link, "--port", port]
        )
        if not wait_for(lambda: listening(port), 30.0, interval=0.2):
            raise RuntimeError("baseline app not listening")
        time.sleep(a.settle)
        res["idle"] = measure({"baseline_app": app.pid}, min(a.window, 10.0))
        for n in levels:
            for rnd in range(a.rounds):
                res["levels"].append(_baseline_round(a, procs, tmp, app.pid, port, n, rnd))
    finally:
        procs.stop_all(timeout=10.0)
    return res


def _median(rows: list[dict], key) -> float | None:
    vals = [key(r) for r in rows]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 2) if vals else None


GRAPH_KEYS = (
    "graph_cpu_pct",
    "graph_pss_mb",
    "path_cpu_pct",
    "path_pss_mb",
    "browser_path_cpu_pct",
    "browser_path_pss_mb",
)


def _graph_summary(gr: list[dict]) -> dict:
    """Medians over the rounds of one level of the graph."""
    names = sorted({k for r in gr for k in r["processes"]})
    s: dict = {
        "per_process": {
            k: {
                "cpu_pct": _median(gr, lambda r, k=k: r["processes"].get(k, {}).get("cpu_pct")),
                "pss_mb": _median(gr, lambda r, k=k: r["processes"].get(k, {}).get("pss_mb")),
            }
            for k in names
        }
    }
    for key in GRAPH_KEYS:
        s[key] = _median(gr, lambda r, key=key: r.get(key))
    s["samples_lost"] = sum(r["samples_lost"] for r in gr)
    s["detection_latency_p99_ms"] = _median(gr, lambda r: r["detection_latency_ms"]["p99"])
    s["clients_connected_min"] = min(r["clients_connected"] for r in gr)
    return s


def _baseline_summary(br: list[dict]) -> dict:
    return {
        "baseline_cpu_pct": _median(br, lambda r: r["app_cpu_pct"]),
        "baseline_pss_mb": _median(br, lambda r: r["app_pss_mb"]),
        "baseline_detection_latency_p99_ms": _median(
            br, lambda r: r["detection_latency_ms"]["p99"]
        ),
    }


def _ratios(s: dict) -> None:
    """The path's CPU and PSS over the baseline's, where both were measured."""
    if s.get("baseline_cpu_pct") and s.get("path_cpu_pct") is not None:
        s["path_cpu_ratio"] = round(s["path_cpu_pct"] / s["baseline_cpu_pct"], 2)
    if s.get("baseline_pss_mb") and s.get("path_pss_mb") is not None:
        s["path_pss_ratio"] = round(s["path_pss_mb"] / s["baseline_pss_mb"], 2)


def summarize(result: dict, levels: list[int]) -> dict:
    g = result.get("graph", {}).get("levels", [])
    b = result.get("baseline", {}).get("levels", [])
    summary = {}
    for n in levels:
        gr = [r for r in g if r["clients"] == n]
        br = [r for r in b if r["clients"] == n]
        s: dict = _graph_summary(gr) if gr else {}
        if br:
            s.update(_baseline_summary(br))
        _ratios(s)
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


def run_arrangements(a, tmp: Path, levels: list[int]) -> dict:
    """The graph once per arrangement (a temp dir each): its runs and their summaries."""
    out = {}
    for name in a.arrangements:
        arr = ARRANGEMENTS[name]
        d = tmp / name
        d.mkdir()
        res = run_graph(a, d, levels, arr.compose, arr.containers)
        out[name] = {
            "compose": arr.compose,
            "description": arr.description,
            "graph": res,
            "summary": summarize({"graph": res}, levels),
        }
    return out


def compare_arrangements(arrangements: dict, levels: list[int]) -> dict:
    """Per level and arrangement: the PBT->browser path's CPU and PSS (with its processes) and
    the whole graph's."""
    table = {}
    for n in levels:
        row = {}
        for name, arr in arrangements.items():
            s = arr["summary"].get(str(n), {})
            pp = s.get("per_process", {})
            row[name] = {
                "browser_path_cpu_pct": s.get("browser_path_cpu_pct"),
                "browser_path_pss_mb": s.get("browser_path_pss_mb"),
                "graph_cpu_pct": s.get("graph_cpu_pct"),
                "graph_pss_mb": s.get("graph_pss_mb"),
                "path_processes": {k: pp[k] for k in BROWSER_PATH if k in pp},
            }
        table[str(n)] = row
    return table


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--quick", action="store_true", help="short windows, one round")
    ap.add_argument("--clients", help="levels (default 2,10,50; with --arrangements 2,10)")
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
        "--arrangements",
        help=f"comma list of {', '.join(ARRANGEMENTS)}: the graph once per process arrangement "
        "(no baseline; --compose unused); writes cost_arrangements.json",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="an earlier cost.json (e.g. before a change): its summary is kept beside this one",
    )
    a = ap.parse_args()
    a.arrangements = [x.strip() for x in (a.arrangements or "").split(",") if x.strip()]
    unknown = [x for x in a.arrangements if x not in ARRANGEMENTS]
    if unknown:
        ap.error(
            f"--arrangements: unknown {', '.join(unknown)} (known: {', '.join(ARRANGEMENTS)})"
        )
    clients = a.clients or ("2,10" if a.arrangements else "2,10,50")
    a.levels = [int(x) for x in clients.split(",") if x.strip()]
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.window = a.window or (8.0 if a.quick else 30.0)
    a.warmup, a.settle = (3.0, 2.0) if a.quick else (5.0, 5.0)
    return a


def prepare(a: argparse.Namespace) -> Path:
    """Process settings, the JS client, the output folder, a DDS domain; the temp dir."""
    # The subscriber thread timing the events must get the GIL at once, not after the main
    # thread's 5 ms switch interval (as the driver does for its reader thread).
    sys.setswitchinterval(0.0005)
    if not a.shm:
        # as bench/gateway.py: UDPv4 only on the shared dev box
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    try:
        ensure_js()
    except RuntimeError as e:
        sys.exit(f"bench/cost.py: {e}")
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    return tmp


def run(a: argparse.Namespace, tmp: Path) -> tuple[dict, str]:
    """The runs the options ask for: their figures, and the results' file stem."""
    if a.arrangements:
        arrs = run_arrangements(a, tmp, a.levels)
        return {"arrangements": arrs, "comparison": compare_arrangements(arrs, a.levels)}, (
            "cost_arrangements"
        )
    res: dict = {}
    if not a.no_graph:
        res["graph"] = run_graph(a, tmp, a.levels, a.compose)
    if not a.no_baseline:
        res["baseline"] = run_baseline(a, tmp, a.levels)
    return res, "cost"


def main() -> int:
    a = parse_args()
    tmp = prepare(a)
    t_start = time.time()
    result: dict = {
        "benchmark": "cost",
        "tag": a.tag,
        "compose": a.compose if not a.arrangements else None,
        "host_cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "quick": a.quick,
        "rounds": a.rounds,
        "window_s": a.window,
        "dds_transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (SHM + UDPv4)"),
        "note": "shared 2-core machine: figures are medians of the rounds and noisy",
        "goals": GOALS,
    }
    try:
        figures, stem = run(a, tmp)
        result.update(figures)
    finally:
        result["bench_seconds"] = round(time.time() - t_start, 1)
    if stem == "cost":
        result["summary"] = summarize(result, a.levels)
        if a.before:
            embed_before(result, a.before)
        print(json.dumps(result["summary"], indent=1))
    else:
        print(json.dumps(result["comparison"], indent=1))
    out = a.out / f"{stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if stem == "cost":
        _plot(result, a.levels, a.out / "cost.png")
    else:
        _plot_arrangements(result, a.levels, a.out / f"{stem}.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _plot(result: dict, levels: list[int], path: Path) -> None:
    plt = pyplot()
    if plt is None:
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


def _plot_arrangements(result: dict, levels: list[int], path: Path) -> None:
    """The PBT->browser path's CPU and PSS per arrangement and client count."""
    plt = pyplot()
    if plt is None:
        return
    comp = result["comparison"]
    names = list(result["arrangements"])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [k + i * width for k in range(len(levels))]
        for axis, key in ((ax[0], "browser_path_cpu_pct"), (ax[1], "browser_path_pss_mb")):
            ys = [comp[str(n)][name][key] or 0 for n in levels]
            axis.bar(xs, ys, width=width, label=name)
    for axis, label in ((ax[0], "CPU [% of one core]"), (ax[1], "PSS [MB]")):
        axis.set_xticks(
            [k + 0.4 - width / 2 for k in range(len(levels))], [str(n) for n in levels]
        )
        axis.set(xlabel="clients", ylabel=label)
        axis.legend(fontsize=8, loc="lower right")
    fig.suptitle("PBT->browser path (pbt_driver, pbt_scope, foxglove_gateway) per arrangement")
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
