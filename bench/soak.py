#!/usr/bin/env python3
"""Soak: memory and file-descriptor growth per node of the whole sim graph over hours.

Runs `sensorhub up --profile sim --record` (every node of the sim graph, the MCAP recorder
included) with two Foxglove WebSocket clients subscribed to everything, samples RSS, PSS
(proportional set size: shared pages divided among the processes using them) and open fds of
every node every `--period` s, and fits a straight line to each after a warm-up (the first 20 %
or 60 s, whichever is longer: imports, DDS discovery and first allocations are not growth).

Goal: < 1 MB/h per node. A short run bounds growth only loosely: a slope from 10
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
from _common import bench_domain, pyplot
from _load import JsClients, Sampler, SimGraph, slope_per_hour

GOAL_MB_PER_H = 1.0
LATE_MIN_H = 2.0  # the recorder's chunk indexes fill for an hour (split_duration), then recycle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--hours", type=float, default=0.25, help="duration (fractions allowed; make bench: 0.25)"
    )
    ap.add_argument("--period", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--clients", type=int, default=2, help="Foxglove clients (0 = none)")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument(
        "--from-json",
        type=Path,
        help="analyse the series of an earlier soak.json again (no run) and write to --out",
    )
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.from_json:
        old = json.loads(a.from_json.read_text())
        restarts = {n: v.get("restarts", 0) for n, v in old["nodes"].items()}
        res = analyse(old["series"], old["hours"], old["period_s"], old["clients"], restarts)
        res["host"] = old["host"]
        report(res, a.out)
        return 0
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
    series = {
        n: [[x["t"], x["rss"], x["pss"], x["fds"], x["pid"]] for x in xs]
        for n, xs in sampler.series.items()
    }
    res = analyse(series, a.hours, a.period, a.clients, restarts)
    report(res, a.out)
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def analyse(series: dict, hours: float, period: float, clients: int, restarts: dict) -> dict:
    """Per-node slopes of `series` (name -> [[t, rss, pss, fds, pid], ...]).

    Two fits per node: after the warm-up, and over the second half of the run ("late"). The
    recorder's memory has a sawtooth by design: the MCAP writer keeps one chunk index (about
    1 kB) per chunk of the open file, a chunk a second, and frees them all at the hourly split.
    Over the first hour that reads as growth; from the second hour on the freed memory is reused
    and the late slope shows what a day would do. The goal is judged on the late fit when the
    run is at least LATE_MIN_H long, on the post-warm-up fit otherwise.
    """
    duration = hours * 3600.0
    warm = max(60.0, 0.2 * duration)
    late_from = duration / 2
    judge_late = hours >= LATE_MIN_H
    per_node = {}
    for name, rows in series.items():
        pid0 = rows[-1][4] if rows and len(rows[-1]) > 4 else None
        # the last incarnation only: a restart is not growth
        xs = [r for r in rows if r[0] >= warm and (pid0 is None or r[4] == pid0)]
        late = [r for r in xs if r[0] >= late_from]
        ts, lts = [r[0] for r in xs], [r[0] for r in late]
        rss = slope_per_hour(ts, [r[1] / 1e6 for r in xs])
        pss = slope_per_hour(ts, [r[2] / 1e6 for r in xs])
        rss_late = slope_per_hour(lts, [r[1] / 1e6 for r in late])
        fds = slope_per_hour(ts, [float(r[3]) for r in xs])
        judged = rss_late if judge_late else rss
        per_node[name] = {
            "samples": len(xs),
            "rss_mb_start": round(xs[0][1] / 1e6, 2) if xs else None,
            "rss_mb_end": round(xs[-1][1] / 1e6, 2) if xs else None,
            "rss_mb_max": round(max(r[1] for r in xs) / 1e6, 2) if xs else None,
            "pss_mb_end": round(xs[-1][2] / 1e6, 2) if xs else None,
            "rss_mb_per_h": _r(rss, 3),
            "rss_mb_per_h_late": _r(rss_late, 3),
            "pss_mb_per_h": _r(pss, 3),
            "fds_start": xs[0][3] if xs else None,
            "fds_end": xs[-1][3] if xs else None,
            "fds_per_h": _r(fds, 2),
            "restarts": restarts.get(name, 0),
            "goal_met": judged is not None and judged < GOAL_MB_PER_H and (fds or 0) <= 0.5,
        }
    return {
        "benchmark": "soak",
        "hours": hours,
        "period_s": period,
        "warmup_s": warm,
        "late_from_s": late_from,
        "goal_judged_on": "rss_mb_per_h_late" if judge_late else "rss_mb_per_h",
        "clients": clients,
        "host": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "goal_mb_per_h_per_node": GOAL_MB_PER_H,
        "graph_pss_mb_end": round(sum(n["pss_mb_end"] or 0 for n in per_node.values()), 1),
        "nodes": per_node,
        "note": "slopes from short runs are noisy (allocator, DDS history fill-up); "
        "the machine is shared, so read them with the duration. The recorder frees its chunk "
        "indexes at each hourly split: judge it on a run of 2 h or more",
        "series": series,
    }


def _r(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)


def report(res: dict, out: Path) -> None:
    (out / "soak.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out / 'soak.json'}  (goal judged on {res['goal_judged_on']})")
    for n, v in sorted(res["nodes"].items()):
        print(
            f"  {n:18s} RSS {v['rss_mb_end']} MB  {v['rss_mb_per_h']} MB/h "
            f"(late {v['rss_mb_per_h_late']})  PSS {v['pss_mb_per_h']} MB/h  "
            f"fds {v['fds_start']}->{v['fds_end']}  {'ok' if v['goal_met'] else 'MISSED'}"
        )
    plot(res["series"], res["warmup_s"], res["late_from_s"], out / "soak.png")


def plot(series: dict, warm: float, late_from: float, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, xs in sorted(series.items()):
        ts = [x[0] / 60 for x in xs]
        ax[0].plot(ts, [x[1] / 1e6 for x in xs], label=name)
        ax[1].plot(ts, [x[2] / 1e6 for x in xs], label=name)
        ax[2].plot(ts, [x[3] for x in xs], label=name)
    for a_, y in zip(ax, ("RSS [MB]", "PSS [MB]", "open fds"), strict=True):
        a_.axvline(warm / 60, ls="--", c="grey")
        a_.axvline(late_from / 60, ls=":", c="grey")
        a_.set(xlabel="minutes", ylabel=y)
    ax[0].legend(fontsize=7)
    fig.suptitle(
        "bench/soak.py: per-node memory and fds (dashed: end of warm-up; dotted: late half)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
