#!/usr/bin/env python3
"""Soak: memory and file-descriptor growth per node of the whole sim graph over hours.

Runs `sensorhub up --profile sim --record` (every node of the sim graph, the MCAP recorder
included) with two Foxglove WebSocket clients subscribed to everything, samples RSS, PSS
(proportional set size: shared pages divided among the processes using them) and open fds of
every node every `--period` s, and fits a straight line to each after a warm-up (the first 20 %
or 60 s, whichever is longer: imports, DDS discovery and first allocations are not growth).

Goal (issue 15): < 1 MB/h per node. A short run bounds growth only loosely: a slope from 10
minutes is dominated by allocator noise of a few hundred kB; read it with its duration.

Writes DIR/soak.json and DIR/soak.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_domain
from _load import JsClients, Sampler, SimGraph, slope_per_hour

GOAL_MB_PER_H = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--hours", type=float, default=0.25, help="duration (fractions allowed; make bench: 0.25)"
    )
    ap.add_argument("--period", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--clients", type=int, default=2, help="Foxglove clients (0 = none)")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    os.environ["ROS_LOG_DIR"] = str(tmp / "roslog")
    duration = a.hours * 3600.0
    g = SimGraph(tmp, record=True)
    g.start()
    clients = None
    try:
        if not g.wait_running(120):
            print(f"graph did not come up; logs in {tmp}", file=sys.stderr)
            return 1
        if a.clients:
            clients = JsClients(g.procs, "clients", f"ws://127.0.0.1:{g.web_port}", a.clients)
        sampler = Sampler(g.pids, a.period)
        t0 = time.monotonic()
        while (el := time.monotonic() - t0) < duration:
            nodes = g.nodes()
            pss = sum((s[-1]["pss"] for s in sampler.series.values() if s), 0) / 1e6
            restarts = sum(n.get("restarts", 0) for n in nodes.values())
            print(
                f"\rsoak {el / 60:6.1f}/{duration / 60:.1f} min  graph PSS {pss:6.1f} MB  "
                f"restarts {restarts}   ",
                end="",
                flush=True,
            )
            time.sleep(min(5.0, max(0.1, duration - el)))
        print()
        sampler.stop()
        restarts = {n: v.get("restarts", 0) for n, v in g.nodes().items()}
    finally:
        if clients:
            clients.finish()
        g.stop()
        g.procs.stop_all()
    warm = max(60.0, 0.2 * duration)
    per_node = {}
    for name, xs in sampler.series.items():
        pid0 = xs[-1]["pid"]  # the last incarnation only: a restart is not growth
        xs = [x for x in xs if x["t"] >= warm and x["pid"] == pid0]
        ts = [x["t"] for x in xs]
        fit = {k: slope_per_hour(ts, [x[k] / 1e6 for x in xs]) for k in ("rss", "pss")}
        fds = slope_per_hour(ts, [float(x["fds"]) for x in xs])
        per_node[name] = {
            "samples": len(xs),
            "rss_mb_start": round(xs[0]["rss"] / 1e6, 2) if xs else None,
            "rss_mb_end": round(xs[-1]["rss"] / 1e6, 2) if xs else None,
            "pss_mb_end": round(xs[-1]["pss"] / 1e6, 2) if xs else None,
            "rss_mb_per_h": None if fit["rss"] is None else round(fit["rss"], 3),
            "pss_mb_per_h": None if fit["pss"] is None else round(fit["pss"], 3),
            "fds_start": xs[0]["fds"] if xs else None,
            "fds_end": xs[-1]["fds"] if xs else None,
            "fds_per_h": None if fds is None else round(fds, 2),
            "restarts": restarts.get(name, 0),
            "goal_met": fit["rss"] is not None and fit["rss"] < GOAL_MB_PER_H,
        }
    res = {
        "benchmark": "soak",
        "hours": a.hours,
        "period_s": a.period,
        "warmup_s": warm,
        "clients": a.clients,
        "host": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "goal_mb_per_h_per_node": GOAL_MB_PER_H,
        "graph_pss_mb_end": round(sum(n["pss_mb_end"] or 0 for n in per_node.values()), 1),
        "nodes": per_node,
        "note": "slopes from short runs are noisy (allocator, DDS history fill-up); "
        "the machine is shared, so read them with the duration",
        "series": {
            n: [[x["t"], x["rss"], x["pss"], x["fds"]] for x in xs]
            for n, xs in sampler.series.items()
        },
    }
    (a.out / "soak.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {a.out / 'soak.json'}")
    for n, v in sorted(per_node.items()):
        print(
            f"  {n:18s} RSS {v['rss_mb_end']} MB  {v['rss_mb_per_h']} MB/h  "
            f"PSS {v['pss_mb_per_h']} MB/h  fds {v['fds_start']}->{v['fds_end']}"
        )
    plot(sampler.series, warm, a.out / "soak.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def plot(series: dict, warm: float, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, xs in sorted(series.items()):
        ts = [x["t"] / 60 for x in xs]
        ax[0].plot(ts, [x["rss"] / 1e6 for x in xs], label=name)
        ax[1].plot(ts, [x["pss"] / 1e6 for x in xs], label=name)
        ax[2].plot(ts, [x["fds"] for x in xs], label=name)
    for a_, y in zip(ax, ("RSS [MB]", "PSS [MB]", "open fds"), strict=True):
        a_.axvline(warm / 60, ls="--", c="grey")
        a_.set(xlabel="minutes", ylabel=y)
    ax[0].legend(fontsize=7)
    fig.suptitle("bench/soak.py: per-node memory and fds (dashed: end of warm-up)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
