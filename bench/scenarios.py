#!/usr/bin/env python3
"""Load scenarios (light / demo / peak) on the whole sim graph, measured from ground truth.

`sensorhub up --profile sim --record` (pbt_sim -> pbt_driver with the pigpio pulse backend live
on pigpiod_sim, tim240_sim at its full 15 Hz -> tim240_bridge, sec110_ftp + sec110_sim,
foxglove_gateway, system_monitor, mcap_recorder), plus the scenario's load:

| scenario | Foxglove clients | extra SEC110 uploads through the real FTP server | CPU hogs |
|---|---|---|---|
| light | 2 | none (the sim's 64 KiB file every 5 s) | none |
| demo | 10 | 1 uploader, 20 MB files back to back | none |
| peak | 20 | 2 uploaders, 50 MB files back to back | stress-ng on every core |

Measured (window = after a warm-up, until the end of the load):
* PBT samples lost: slots the simulator wrote to the pty (its write log) that never reached a
  reliable subscriber in another process, plus the driver's own lost_total.
* event recall / precision against the simulator's truth log (pulse peak index, +-2 samples).
* detection latency: write() of the event-closing sample (sim write log) -> PbtEvent received
  (same host clock), split by the event's DDS timestamps into the driver's share (write ->
  publish), DDS's (publish -> reception) and the observer's (reception -> callback); peak ->
  pulse command delay (PbtEvent.pulse_delay, pigpio backend).
* per-node CPU (% of one core), RSS and PSS over time; graph PSS (shared pages counted once).
* web delivery per client: share of the header stamps the reference subscriber saw that each
  WebSocket client received (/pbt/samples, /pbt/events, /tim240/scan_filtered).
* FTP throughput of the extra uploaders; recorder completeness (events and sample batches in the
  MCAP bags, read with the `mcap` library after the graph stopped).

The gateway's client limit (60 in the deployed config) is raised to the scenario's client count
so every client is served (`--deployed-limit` keeps the deployed limit: the rest are refused, as
designed).
Figures are from a shared, busy 2-core dev box (the Pi 4 has 4 cores): noisy, compare runs.

Writes DIR/scenario_<name>.json (top-level samples_lost, latency_p99_ms), .png and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, bench_domain, exe, free_port, wait_for
from _load import JsClients, PbtSub, Sampler, SimGraph, node_entry
from _scenario import analyse_pbt, delivery, markdown, plot, read_bags, recorder

SCENARIOS = {
    "light": {"clients": 2, "uploaders": 0, "upload_mb": 0, "cpu_hogs": False},
    "demo": {"clients": 10, "uploaders": 1, "upload_mb": 20, "cpu_hogs": False},
    "peak": {"clients": 20, "uploaders": 2, "upload_mb": 50, "cpu_hogs": True},
}
GOALS = {
    "samples_lost": 0,
    "events_recorded_pct": 100.0,
    "latency_p99_ms": 5.0,
    "graph_pss_mb": 200.0,
    "pbt_driver_cpu_pct": 5.0,
}
# what the Pi does not run (the supervisor does run there: it is counted)
SIMS = {"pbt_sim", "tim240_sim", "sec110_sim", "pigpiod_sim"}
# --isolate: every process but the driver on these CPUs (the driver keeps its own, "1")
ISOLATE_REST = "0"
# --rt: below the driver's reader thread (80), above everything else
# the event probe above the bench's own sample subscriber: equal SCHED_FIFO levels on one CPU
# never preempt each other, and that subscriber decodes scans and batches for milliseconds
SIM_RT, PROBE_RT, OBSERVER_RT = 70, 65, 60
WARMUP = 10.0  # s after everything runs: imports, DDS discovery, clients subscribed
TAIL = 3.0  # s after the window for messages in flight


def mutate_graph(sc: dict, tmp: Path, pigpio_port: int, a):
    rt, deployed_limit, isolate = a.rt, a.deployed_limit, a.isolate

    def m(g: dict) -> None:
        sim = node_entry(g, "pbt_sim")
        sim["args"] = [
            *sim["args"],
            "--seed",
            "7",
            "--truth",
            str(tmp / "truth.jsonl"),
            "--write-log",
            str(tmp / "writes.log"),
        ]
        sim["respawn"] = False  # a restarted sim would restart its indices and logs
        i = g["nodes"].index(sim)
        g["nodes"].insert(
            i + 1,
            {
                "name": "pigpiod_sim",
                "kind": "process",
                "package": "pbt_driver",
                "executable": "pigpiod_sim",
                "args": ["--port", str(pigpio_port)],
                "only_profiles": ["sim"],
                "roles": ["sensors"],
                "scheduling": {"nice": 0, "cpus": "0-1"},
            },
        )
        drv = node_entry(g, "pbt_driver")
        drv["parameters"].update(
            pulse_backend="pigpio", pigpio_host="127.0.0.1", pigpio_port=pigpio_port
        )
        if rt:
            drv["profiles"]["sim"]["scheduling"].update(rt_priority=80)
        if isolate:  # the Pi's isolcpus=3: the driver alone on the last CPU
            for n in g["nodes"]:
                if n["name"] != "pbt_driver":
                    n.setdefault("scheduling", {})["cpus"] = ISOLATE_REST
                    sim_sched = n.get("profiles", {}).get("sim", {}).get("scheduling")
                    if sim_sched and "cpus" in sim_sched:
                        sim_sched["cpus"] = ISOLATE_REST
            for c in g.get("containers", {}).values():  # used with --compose true
                c.setdefault("scheduling", {})["cpus"] = ISOLATE_REST
        if not deployed_limit:
            gw = node_entry(g, "foxglove_gateway")
            gw["parameters"]["max_clients"] = max(10, sc["clients"] + 2)

    return m


class Uploaders:
    """Extra SEC110-like uploaders (sec110_sim) pushing large files back to back."""

    def __init__(self, procs: Procs, port: int, n: int, size_mb: int, tmp: Path):
        self.logs = []
        self.ps = []
        for k in range(n):
            log = tmp / f"upload{k}.jsonl"
            self.logs.append(log)
            self.ps.append(
                procs.start(
                    f"uploader{k}",
                    [
                        exe("sec110_ftp", "sec110_sim"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        port,
                        "--user",
                        "sec110",
                        "--password",
                        "sec110",
                        "--size",
                        size_mb * 1_000_000,
                        "--interval",
                        "0",
                        "--prefix",
                        f"load{k}_",
                        "--log",
                        log,
                        "--seed",
                        k,
                    ],
                )
            )

    def done(self, t0: float, t1: float) -> list[dict]:
        out = []
        for log in self.logs:
            try:
                lines = log.read_text().splitlines()
            except OSError:
                continue
            out += [r for r in map(json.loads, lines) if t0 <= r["t"] <= t1 and not r["aborted"]]
        return out

    def stop(self) -> None:
        for p in self.ps:
            Procs.stop(p)


def fifo_all_threads(pid: int, prio: int) -> None:
    """SCHED_FIFO for every thread of a process (sched_setscheduler(pid) sets only its main
    thread; pigpiod_sim answers the driver from a thread per client)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(prio))
        except ProcessLookupError:
            pass


def make_observer(rt: bool) -> PbtSub:
    """The PBT subscriber; with `rt`, its event probe process runs SCHED_FIFO (DDS threads
    included) and its sample subscription is created in a SCHED_FIFO thread so that its spin and
    DDS threads inherit the policy and this process's children (the graph) do not."""
    if not rt:
        return PbtSub("bench_scenario")
    out: list = []

    def make() -> None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(OBSERVER_RT))  # this thread
        out.append(PbtSub("bench_scenario", probe_fifo=PROBE_RT))

    t = threading.Thread(target=make)
    t.start()
    t.join()
    return out[0]


def progress(t0, dur, sub, clients, sampler, g) -> None:
    el = time.monotonic() - t0
    last = {n: s[-1] for n, s in sampler.series.items() if s}
    cpu = {n: x["cpu"] for n, x in last.items() if x["cpu"] is not None}
    top = max(cpu, key=cpu.get) if cpu else "-"
    pss = sum(x["pss"] for x in last.values()) / 1e6
    lost = sub.batches[-1][3] if sub.batches else 0
    restarts = sum(n.get("restarts", 0) for n in g.nodes().values())
    print(
        f"\r[{el:5.0f}/{dur:.0f} s] samples {sub.samples():7d} lost {lost}  events "
        f"{len(sub.events):5d}  web msgs {clients.received():7d}  PSS {pss:5.0f} MB  "
        f"top {top} {cpu.get(top, 0):.0f}%  load {os.getloadavg()[0]:.1f}  "
        f"restarts {restarts}  ",
        end="",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="light")
    ap.add_argument("--duration", type=float, default=120.0, help="measured window [s]")
    ap.add_argument("--clients", type=int, help="override the scenario's client count")
    ap.add_argument(
        "--rt",
        action="store_true",
        help="reader thread SCHED_FIFO 80 as on the Pi; pbt_sim (the sensor) and the "
        "observers (event probe, sample subscriber) SCHED_FIFO 70/65/60 so that their "
        "starvation is not counted (needs root)",
    )
    ap.add_argument(
        "--deployed-limit",
        action="store_true",
        help="keep the gateway's deployed max_clients (60)",
    )
    ap.add_argument(
        "--isolate",
        action="store_true",
        help="the Pi's isolcpus: pbt_driver alone on CPU 1; every other node, this bench, its "
        "clients and the CPU hogs on CPU 0",
    )
    ap.add_argument(
        "--compose",
        choices=("auto", "true", "false"),
        default="auto",
        help="sensorhub up --compose: true runs the graph's containers (non-real-time nodes "
        "sharing a process; the driver always alone), as the lite profile does",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    a = ap.parse_args()
    a.sc = dict(SCENARIOS[a.scenario])
    if a.clients is not None:
        a.sc["clients"] = a.clients
    return a


def prepare(a: argparse.Namespace) -> Path:
    """CPU affinity, output folder, DDS domain and transport, tools; the temp dir."""
    if a.isolate:
        os.sched_setaffinity(0, {int(ISOLATE_REST)})  # inherited by clients, uploaders, hogs
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scenario-{a.scenario}-"))
    os.environ["ROS_LOG_DIR"] = str(tmp / "roslog")
    if a.sc["cpu_hogs"] and not shutil.which("stress-ng"):
        sys.exit("stress-ng is not installed (apt-get install stress-ng)")
    return tmp


@dataclass
class Load:
    """What the scenario adds to the graph (each part once started)."""

    clients: JsClients | None = None
    uploads: Uploaders | None = None
    hogs: object | None = None  # the stress-ng process

    def stop(self) -> None:
        if self.hogs is not None:
            Procs.stop(self.hogs)
        if self.uploads:
            self.uploads.stop()
        if self.clients:
            self.clients.finish()


@dataclass
class Run:
    """One scenario run: its options, the graph, the observers and the load."""

    a: argparse.Namespace
    tmp: Path
    g: SimGraph
    sub: PbtSub
    sampler: Sampler
    t_start: float
    load: Load = field(default_factory=Load)


@dataclass(frozen=True)
class Window:
    """The measured window: wall-clock bounds and the sampler's (s since it started)."""

    w0: float
    w1: float
    s0: float
    s1: float


def start_load(run: Run, total: float) -> None:
    """The scenario's clients, uploaders and CPU hogs (these for `total` s)."""
    a, g, sc = run.a, run.g, run.a.sc
    run.load.clients = JsClients(
        g.procs, "clients", f"ws://127.0.0.1:{g.web_port}", sc["clients"], progress=5.0
    )
    if sc["uploaders"]:
        run.load.uploads = Uploaders(g.procs, g.sec110_port, sc["uploaders"], sc["upload_mb"],
                                     run.tmp)  # fmt: skip
    if sc["cpu_hogs"]:
        pin = ["taskset", "-c", ISOLATE_REST] if a.isolate else []
        hog_cpus = 1 if a.isolate else 0  # 0 = one hog per online CPU
        run.load.hogs = g.procs.start(
            "stress-ng",
            [*pin, "stress-ng", "--cpu", str(hog_cpus), "--timeout", f"{int(total + 5)}s"],
        )


def measure_window(run: Run) -> Window:
    """The load, a warm-up and the window (with a progress line); the tail after it."""
    if run.a.rt:
        # the sensor stand-in: a real PBT sensor is not starved by CPU hogs
        # and pigpiod, whose reply ends the pulse delay: docs/raspberry-pi.md runs it FIFO
        for sim in ("pbt_sim", "pigpiod_sim"):
            fifo_all_threads(run.g.pids()[sim], SIM_RT)
    total = WARMUP + run.a.duration
    start_load(run, total)
    t0 = time.monotonic()
    w0 = time.time() + WARMUP
    s0 = time.monotonic() - run.sampler.t0 + WARMUP
    while time.monotonic() - t0 < total:
        progress(t0, total, run.sub, run.load.clients, run.sampler, run.g)
        time.sleep(2.0)
    w1 = time.time()
    s1 = time.monotonic() - run.sampler.t0
    time.sleep(TAIL)
    print()
    return Window(w0=w0, w1=w1, s0=s0, s1=s1)


def _graph_pss(run: Run, nodes: dict, win: Window) -> tuple[dict, float | None]:
    """The window's samples per node, and the graph's largest PSS (simulators left out)."""
    series = {
        n: [x for x in xs if win.s0 <= x["t"] <= win.s1] for n, xs in run.sampler.series.items()
    }
    graph_nodes = [n for n in nodes if n not in SIMS]
    t_points = sorted({x["t"] for xs in series.values() for x in xs})
    pss_total = [
        sum(next((x["pss"] for x in series[n] if x["t"] == t), 0) for n in graph_nodes)
        for t in t_points
    ]
    return series, (round(max(pss_total) / 1e6, 1) if pss_total else None)


def _ftp(run: Run, win: Window) -> dict | None:
    if not run.load.uploads:
        return None
    sc = run.a.sc
    done = run.load.uploads.done(win.w0, win.w1)
    return {
        "uploaders": sc["uploaders"],
        "file_mb": sc["upload_mb"],
        "files": len(done),
        "mb_per_s": round(sum(r["size"] for r in done) / 1e6 / (win.w1 - win.w0), 2),
        "note": "sec110_ftp throttles each data connection (read_limit, 4 MB/s)",
    }


def analyse(run: Run, win: Window, restarts: dict, code) -> tuple[dict, list, list]:
    """The result (figures, verdict, series), and the latencies and pulse delays to plot."""
    a, sc, sub = run.a, run.a.sc, run.sub
    pbt = analyse_pbt(run.tmp, sub, win.w0, win.w1 - TAIL)
    lat, delays = pbt.pop("_lat", []), pbt.pop("_delays", [])
    k_info = pbt.pop("_k", None)
    nodes = run.sampler.summary(win.s0)
    series, graph_pss = _graph_pss(run, nodes, win)
    bag = read_bags(run.g.data / "bags")
    drv = nodes.get("pbt_driver", {})
    res = {
        "benchmark": "scenarios",
        "scenario": a.scenario,
        "load": sc,
        "duration_s": a.duration,
        "warmup_s": WARMUP,
        "rt_reader_thread": a.rt,
        "isolated_driver_cpu": a.isolate,
        "compose": a.compose,
        "host": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.t_start)),
        "samples_lost": pbt.get("samples_lost"),
        "latency_p99_ms": pbt.get("detection_latency", {}).get("p99_ms"),
        "events_recorded_pct": None,
        "graph_pss_mb": graph_pss,
        "graph_rss_mb": round(sum(v["rss_max_mb"] for k, v in nodes.items() if k not in SIMS), 1),
        "pbt_driver_cpu_pct": drv.get("cpu_mean_pct"),
        "goals": GOALS,
        "pbt": pbt,
        "web": delivery(run.load.clients, sub, win.w0, win.w1 - TAIL),
        "ftp": _ftp(run, win),
        "recorder": recorder(bag, sub, k_info, win.w0, win.w1 - TAIL),
        "nodes": nodes,
        "restarts": restarts,
        "supervisor_exit_code": code,
        "series": {
            n: [[x["t"], x["cpu"], x["rss"], x["pss"]] for x in xs] for n, xs in series.items()
        },
    }
    res["events_recorded_pct"] = res["recorder"]["events_recorded_pct"]
    res["verdict"] = {
        k: (res[k] is not None and (res[k] >= v if k == "events_recorded_pct" else res[k] <= v))
        for k, v in GOALS.items()
    }
    return res, lat, delays


def write_results(a: argparse.Namespace, res: dict, lat: list, delays: list) -> None:
    suffix = ("_rt" if a.rt else "") + ("_isolated" if a.isolate else "")
    suffix += "_composed" if a.compose == "true" else ""
    stem = a.out / f"scenario_{a.scenario}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    plot(res, lat, delays, stem.with_suffix(".png"))
    print(f"wrote {stem}.json/.md/.png")


def main() -> int:
    a = parse_args()
    tmp = prepare(a)
    g = SimGraph(tmp, record=True, mutate=mutate_graph(a.sc, tmp, free_port(), a),
                 compose=a.compose)  # fmt: skip
    sub = make_observer(a.rt)
    g.start()
    run = Run(a=a, tmp=tmp, g=g, sub=sub, sampler=Sampler(g.pids, 1.0), t_start=time.time())
    try:
        if not g.wait_running(120) or not wait_for(lambda: sub.samples() > 800, 60):
            print(f"graph did not come up (logs in {tmp})", file=sys.stderr)
            return 1
        win = measure_window(run)
        restarts = {n: v.get("restarts", 0) for n, v in g.nodes().items()}
    finally:
        run.load.stop()
        run.sampler.stop()
        code = g.stop()
        g.procs.stop_all()
        sub.close()
    write_results(a, *analyse(run, win, restarts, code))
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
