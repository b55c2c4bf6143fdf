#!/usr/bin/env python3
"""Benchmark of tim240_bridge: decode time, processing time, node CPU at 15 Hz.

* decode: framing + LMDscandata decode per telegram, on the real 811-point CoLa-B TiM781S
  capture (SICK AG / sick_scan_xd, Apache-2.0; ../shared/data/tim or $SENSORHUB_SHARED_DATA),
  the same telegrams as CoLa-A, and a synthesized 241-point TiM240 telegram.
  Goal: <= 0.2 ms for an 811-point CoLa-B telegram.
* processing: LaserScan geometry + filter (median 3, temporal) + 3 zones + nearest, per scan.
* node CPU: tim240_sim (CoLa-B, synthesized moving scene, 15 Hz) -> tim240_bridge with the
  package's config (3 zones, markers): user+system time of the bridge process over the window,
  % of one core. Goal <= 3 %.

Writes DIR/tim240.json. Timing goals live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/ is not a package: put this script's folder first on sys.path so that `_common` imports
# whatever the cwd (tools/run_bench.sh runs `python bench/X.py` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, bench_domain, cpu_seconds, exe, rss_bytes, wait_for

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    env = os.environ.get("SENSORHUB_SHARED_DATA")
    return Path(env) / "tim" if env else REPO / ".." / "shared" / "data" / "tim"


def per_call_us(fn, items, repeat=5) -> dict:
    """Median over `repeat` passes of the mean time per item [us]; min pass too."""
    passes = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        passes.append((time.perf_counter() - t0) / len(items) * 1e6)
    return {"median_us": round(statistics.median(passes), 2), "min_us": round(min(passes), 2),
            "n_per_pass": len(items)}  # fmt: skip


def bench_decode() -> dict:
    from tim240_bridge import captures, cola
    from tim240_bridge import scandata as sd

    cap = data_dir() / "20210125-tim781s-scandata.pcapng.json"
    res = {}
    if cap.exists():
        payloads = captures.scandata_payloads(cap)
        frames_b = [cola.frame_b(p) for p in payloads]
        frames_a = [cola.frame_a(sd.encode(cola.ASCII, sd.decode(cola.BINARY, p)))
                    for p in payloads]  # fmt: skip

        def framed(dialect):
            def f(raw):
                fr = cola.Framer()
                for fm in fr.feed(raw):
                    sd.decode(fm.dialect, fm.payload)

            return f

        res["tim781s_811pt_colab_frame_and_decode"] = per_call_us(framed(cola.BINARY), frames_b)
        res["tim781s_811pt_colab_decode_only"] = per_call_us(
            lambda p: sd.decode(cola.BINARY, p), payloads
        )
        res["tim781s_811pt_colaa_frame_and_decode"] = per_call_us(framed(cola.ASCII), frames_a)
        res["source"] = str(cap.name)
    else:
        res["skipped"] = f"capture not found in {data_dir()}"
    import numpy as np

    s = sd.Scan(
        channels16=[
            sd.Channel("DIST1", 1.0, 0.0, -1200000, 10000, np.full(241, 2500, np.uint16), 16),
            sd.Channel("RSSI1", 1.0, 0.0, -1200000, 10000, np.full(241, 900, np.uint16), 16),
        ]
    )
    fb = cola.frame_b(sd.encode(cola.BINARY, s))
    res["tim240_241pt_colab_frame_and_decode"] = per_call_us(
        lambda raw: [sd.decode(f.dialect, f.payload) for f in cola.Framer().feed(raw)],
        [fb] * 200,
    )
    return res


def bench_processing() -> dict:
    import numpy as np
    import yaml

    from tim240_bridge import processing as proc
    from tim240_bridge import scandata as sd
    from tim240_bridge.sim import Scene, build_parser

    cfg = yaml.safe_load((REPO / "src/tim240_bridge/config/tim240_bridge.yaml").read_text())
    zones = proc.parse_zones(cfg["tim240_bridge"]["ros__parameters"]["zones"])
    args = build_parser().parse_args([])
    scene = Scene(args, np.random.default_rng(1))
    angles = np.arange(-120.0, 120.5, 1.0)
    scans = []
    for k in range(300):
        mm = scene.ranges(k / 15.0, angles)
        scans.append(
            sd.Scan(
                channels16=[
                    sd.Channel("DIST1", 1.0, 0.0, -1200000, 10000, mm, 16),
                    sd.Channel(
                        "RSSI1", 1.0, 0.0, -1200000, 10000, np.full(241, 900, np.uint16), 16
                    ),
                ]
            )
        )
    st = sd.SCANNER_TYPES["sick_tim_240"]
    filt = proc.ScanFilter(proc.FilterParams())
    mon = proc.ZoneMonitor(zones, 3, 0.1, 0.5)
    t = [0.0]

    def one(s):
        g = sd.to_geometry(s, st, -2.0944, 2.0944, 0.05, 100.0, True)
        f = filt.apply(g.angle_min, g.angle_increment, g.ranges, g.intensities)
        t[0] += 1 / 15
        mon.update(t[0], f.ranges, f.angles, f.valid)

    return {"tim240_241pt_geometry_filter_3zones": per_call_us(one, scans),
            "zones": [z.name for z in zones]}  # fmt: skip


def bench_node_cpu(window: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tim240-"))
    bench_domain()  # own ROS_DOMAIN_ID, discovery on this machine only
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    procs = Procs(tmp)
    try:
        pf = tmp / "port"
        sim = procs.start("sim", [exe("tim240_bridge", "tim240_sim"), "--port", "0",
                                  "--port-file", pf, "--protocol", "binary"])  # fmt: skip
        wait_for(pf.exists, 30)
        port = int(pf.read_text())
        cfg = REPO / "src/tim240_bridge/config/tim240_bridge.yaml"
        br = procs.start("bridge", [exe("tim240_bridge", "tim240_bridge"), "--ros-args",
                                    "--params-file", cfg, "-p", "hostname:=127.0.0.1",
                                    "-p", f"port:={port}"])  # fmt: skip
        time.sleep(5.0)  # start-up (imports, DDS discovery) is not steady state
        c0, s0, t0 = cpu_seconds(br.pid), cpu_seconds(sim.pid), time.monotonic()
        time.sleep(window)
        c1, s1, t1 = cpu_seconds(br.pid), cpu_seconds(sim.pid), time.monotonic()
        dt = t1 - t0
        cpu = (c1 - c0) / dt * 100
        scpu = (s1 - s0) / dt * 100
        log = (tmp / "bridge.log").read_text(errors="replace")
        return {"window_s": round(dt, 1), "bridge_cpu_percent_of_one_core": round(cpu, 2),
                "sim_cpu_percent_of_one_core": round(scpu, 2),
                "bridge_rss_mb": round(rss_bytes(br.pid) / 2**20, 1),
                "zone_changes_logged": log.count("zone "),
                "streaming": "streaming from" in log}  # fmt: skip
    finally:
        procs.stop_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--window", type=float, default=30.0, help="CPU window [s]")
    a = ap.parse_args()
    res = {
        "host": {"machine": platform.machine(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "decode": bench_decode(),
        "processing": bench_processing(),
    }  # fmt: skip
    print(json.dumps(res, indent=1), flush=True)
    res["node_15hz"] = bench_node_cpu(a.window)
    print(json.dumps(res["node_15hz"], indent=1), flush=True)
    d = res["decode"].get("tim781s_811pt_colab_frame_and_decode", {})
    res["goals"] = {
        "decode_811pt_colab_le_0.2ms": bool(d) and d["median_us"] <= 200,
        "node_cpu_le_3pct": res["node_15hz"]["bridge_cpu_percent_of_one_core"] <= 3.0,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "tim240.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["goals"]), flush=True)
    return 0 if math.isfinite(res["node_15hz"]["bridge_cpu_percent_of_one_core"]) else 1


if __name__ == "__main__":
    sys.exit(main())
