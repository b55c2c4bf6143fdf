#!/usr/bin/env python3
"""The review's load scenarios (light / demo / peak) on the whole sim graph, from ground truth.

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

The gateway's client limit (10 in the deployed config) is raised to the scenario's client count
so every client is served (`--deployed-limit` keeps 10: the rest are refused, as designed).
Figures are from a shared, busy 2-core dev box (the Pi 4 has 4 cores): noisy, compare runs.

Writes DIR/scenario_<name>.json (top-level samples_lost, latency_p99_ms), .png and .md.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, bench_domain, exe, free_port, pct, wait_for
from _load import JsClients, PbtSub, Sampler, SimGraph, node_entry

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


def ms(xs) -> dict:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50_ms": round(pct(xs, 50) * 1e3, 3),
        "p99_ms": round(pct(xs, 99) * 1e3, 3),
        "max_ms": round(max(xs) * 1e3, 3),
    }


def read_bags(bags: Path) -> dict:
    """Events (peak_index), sample batches (first_index) and file health of every bag."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    out = {"files": 0, "files_without_summary": 0, "events": [], "batches": [], "errors": []}
    for f in sorted(bags.rglob("*.mcap")):
        out["files"] += 1
        try:
            with open(f, "rb") as fh:
                r = make_reader(fh)
                if r.get_summary() is None:
                    out["files_without_summary"] += 1
                for _, ch, msg in r.iter_messages(topics=["/pbt/events", "/pbt/samples"]):
                    if ch.topic == "/pbt/events":
                        out["events"].append(deserialize_message(msg.data, PbtEvent).peak_index)
                    else:
                        m = deserialize_message(msg.data, PbtSamples)
                        out["batches"].append(m.first_index)
        except Exception as e:  # a damaged file is a finding, not a crash of the bench
            out["errors"].append(f"{f.name}: {e}")
    return out


def analyse_pbt(tmp: Path, sub: PbtSub, w0: float, w1: float) -> dict:
    """Loss, recall/precision and latencies from the sim's truth and write logs."""
    truth = [json.loads(x) for x in (tmp / "truth.jsonl").read_text().splitlines() if x]
    writes = [
        tuple(map(float, x.split()))
        for x in (tmp / "writes.log").read_text().splitlines()
        if x.count(" ") == 2
    ]
    events = list(sub.events)
    batches = list(sub.batches)
    # driver index -> sim index: the truth peak nearest in time to each event's stamp
    tr_t = [t["t"] for t in truth]
    offs = []
    for _, m in events:
        st = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        i = bisect.bisect_left(tr_t, st)
        best = min(
            (j for j in (i - 1, i) if 0 <= j < len(truth)),
            key=lambda j: abs(tr_t[j] - st),
            default=None,
        )
        if best is not None and abs(tr_t[best] - st) < 0.02:
            offs.append(truth[best]["index"] - m.peak_index)
    if not offs:
        return {"error": "no event matched the truth log: cannot align indices"}
    off = statistics.mode(offs)
    # sim slots written inside the window
    win = [w for w in writes if w0 <= w[2] <= w1]
    if not win:
        return {"error": "no write inside the window"}
    k0, k1 = int(win[0][0]), int(win[-1][0] + win[-1][1])  # [k0, k1)
    got = bytearray(k1 - k0)
    for b in batches:
        a, n = b[0] + off, b[1]
        lo, hi = max(a, k0), min(a + n, k1)
        if lo < hi:
            got[lo - k0 : hi - k0] = b"\x01" * (hi - lo)
    lost = got.count(0)
    in_win = [b for b in batches if k0 <= b[0] + off < k1]
    lost_total_driver = (in_win[-1][3] - in_win[0][3]) if len(in_win) > 1 else 0
    # recall / precision within the window
    t_idx = sorted(t["index"] for t in truth if k0 <= t["index"] < k1 - 800)
    e_idx = sorted(m.peak_index + off for _, m in events if k0 <= m.peak_index + off < k1 - 800)
    matched_t = sum(1 for k in t_idx if _near(e_idx, k, 2))
    matched_e = sum(1 for k in e_idx if _near(t_idx, k, 2))
    # detection latency: closing sample (end_index + 1) written -> event received
    wf = [w[0] for w in writes]
    lat, delays = [], []
    parts: dict[str, list[float]] = {"driver": [], "dds": [], "observer": []}
    for t_rx, m in events:
        k = m.end_index + 1 + off
        if not k0 <= k < k1:
            continue
        i = bisect.bisect_right(wf, k) - 1
        if i >= 0 and writes[i][0] <= k < writes[i][0] + writes[i][1]:
            lat.append(t_rx - writes[i][2])
            dds = sub.event_dds.get(m.peak_index)
            if dds is not None:  # write -> publish -> DDS reception -> callback
                parts["driver"].append(dds[0] - writes[i][2])
                parts["dds"].append(dds[1] - dds[0])
                parts["observer"].append(t_rx - dds[1])
        if m.pulse_sent and m.pulse_delay >= 0:
            delays.append(m.pulse_delay)
    return {
        "index_offset": off,
        "window_slots": k1 - k0,
        "samples_lost": lost,
        "driver_lost_in_window": lost_total_driver,
        "truth_events": len(t_idx),
        "events": len(e_idx),
        "recall_pct": round(100.0 * matched_t / len(t_idx), 2) if t_idx else None,
        "precision_pct": round(100.0 * matched_e / len(e_idx), 2) if e_idx else None,
        "detection_latency": ms(lat),
        # its shares: closing sample written -> the driver's publish (DDS source timestamp),
        # -> DDS reception in the observer, -> the observer's callback
        "detection_latency_split": {k: ms(v) for k, v in parts.items()},
        "pulse_delay": ms(delays),
        "_lat": lat,
        "_delays": delays,
        "_k": (k0, k1, off),
    }


def _near(sorted_xs: list[int], k: int, tol: int) -> bool:
    i = bisect.bisect_left(sorted_xs, k - tol)
    return i < len(sorted_xs) and sorted_xs[i] <= k + tol


def delivery(clients: JsClients, sub: PbtSub, w0: float, w1: float) -> dict:
    ref = {
        "/pbt/samples": {b[5] for b in sub.batches if w0 <= b[4] <= w1},
        "/pbt/events": {PbtSub.stamp(m) for t, m in sub.events if w0 <= t <= w1},
        "/tim240/scan_filtered": {s for t, s in sub.scans if w0 <= t <= w1},
    }
    counts = clients.counts()
    per_client = {}
    for c, topics in sorted(counts.items()):
        per_client[c] = {
            t: round(100.0 * len(want & topics.get(t, set())) / len(want), 2)
            for t, want in ref.items()
            if want
        }
    opened = len(clients.events("serverInfo"))
    closed = clients.events("close")
    summary = {}
    for t, want in ref.items():
        vals = [v[t] for v in per_client.values() if t in v and v]
        served = [v for v in vals if v > 0]
        if vals:
            summary[t] = {
                "reference": len(want),
                "min_pct": min(vals),
                "median_pct": statistics.median(vals),
                "min_pct_served": min(served) if served else None,
            }
    return {
        "clients": clients.n,
        "connected": opened,
        "closed_by_server": len(closed),
        "refusals": sorted({e.get("code") for e in closed}),
        # what the clients saw go wrong (first few), to tell a refusal from a timeout
        "client_errors": [
            f"client {e.get('client')}: {e.get('message')}" for e in clients.events("error")
        ][:5],
        "close_reasons": sorted({str(e.get("reason")) for e in closed})[:5],
        "per_topic": summary,
        "per_client": per_client,
    }


def recorder(bag: dict, sub: PbtSub, k_info, w0: float, w1: float) -> dict:
    ev_rx = {m.peak_index for t, m in sub.events if w0 <= t <= w1}
    b_rx = {b[0] for b in sub.batches if w0 <= b[4] <= w1}
    ev_bag, b_bag = set(bag["events"]), set(bag["batches"])
    return {
        "files": bag["files"],
        "files_without_summary": bag["files_without_summary"],
        "read_errors": bag["errors"],
        "events_in_window": len(ev_rx),
        "events_recorded_pct": round(100.0 * len(ev_rx & ev_bag) / len(ev_rx), 3)
        if ev_rx
        else None,
        "events_recorded_twice": len(bag["events"]) - len(ev_bag),
        "batches_in_window": len(b_rx),
        "batches_recorded_pct": round(100.0 * len(b_rx & b_bag) / len(b_rx), 3) if b_rx else None,
    }


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


def main() -> int:
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
        help="keep the gateway's deployed max_clients (10)",
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
    if a.isolate:
        os.sched_setaffinity(0, {int(ISOLATE_REST)})  # inherited by clients, uploaders, hogs
    sc = dict(SCENARIOS[a.scenario])
    if a.clients is not None:
        sc["clients"] = a.clients
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scenario-{a.scenario}-"))
    os.environ["ROS_LOG_DIR"] = str(tmp / "roslog")
    if sc["cpu_hogs"] and not shutil.which("stress-ng"):
        sys.exit("stress-ng is not installed (apt-get install stress-ng)")
    g = SimGraph(tmp, record=True, mutate=mutate_graph(sc, tmp, free_port(), a), compose=a.compose)
    sub = make_observer(a.rt)
    g.start()
    clients = uploads = hogs = None
    sampler = Sampler(g.pids, 1.0)
    t_start = time.time()
    try:
        if not g.wait_running(120) or not wait_for(lambda: sub.samples() > 800, 60):
            print(f"graph did not come up (logs in {tmp})", file=sys.stderr)
            return 1
        if a.rt:
            # the sensor stand-in: a real PBT sensor is not starved by CPU hogs
            # and pigpiod, whose reply ends the pulse delay: docs/raspberry-pi.md runs it FIFO
            for sim in ("pbt_sim", "pigpiod_sim"):
                fifo_all_threads(g.pids()[sim], SIM_RT)
        clients = JsClients(
            g.procs, "clients", f"ws://127.0.0.1:{g.web_port}", sc["clients"], progress=5.0
        )
        if sc["uploaders"]:
            uploads = Uploaders(g.procs, g.sec110_port, sc["uploaders"], sc["upload_mb"], tmp)
        total = WARMUP + a.duration
        if sc["cpu_hogs"]:
            pin = ["taskset", "-c", ISOLATE_REST] if a.isolate else []
            hog_cpus = 1 if a.isolate else 0  # 0 = one hog per online CPU
            hogs = g.procs.start(
                "stress-ng",
                [*pin, "stress-ng", "--cpu", str(hog_cpus), "--timeout", f"{int(total + 5)}s"],
            )
        t0 = time.monotonic()
        w0 = time.time() + WARMUP
        s0 = time.monotonic() - sampler.t0 + WARMUP
        while time.monotonic() - t0 < total:
            progress(t0, total, sub, clients, sampler, g)
            time.sleep(2.0)
        w1 = time.time()
        s1 = time.monotonic() - sampler.t0
        time.sleep(TAIL)
        print()
        restarts = {n: v.get("restarts", 0) for n, v in g.nodes().items()}
    finally:
        if hogs is not None:
            Procs.stop(hogs)
        if uploads:
            uploads.stop()
        if clients:
            clients.finish()
        sampler.stop()
        code = g.stop()
        g.procs.stop_all()
        sub.close()

    pbt = analyse_pbt(tmp, sub, w0, w1 - TAIL)
    lat, delays = pbt.pop("_lat", []), pbt.pop("_delays", [])
    k_info = pbt.pop("_k", None)
    nodes = sampler.summary(s0)
    win_series = {n: [x for x in xs if s0 <= x["t"] <= s1] for n, xs in sampler.series.items()}
    graph_nodes = [n for n in nodes if n not in SIMS]
    t_points = sorted({x["t"] for xs in win_series.values() for x in xs})
    pss_total = [
        sum(next((x["pss"] for x in win_series[n] if x["t"] == t), 0) for n in graph_nodes)
        for t in t_points
    ]
    bag = read_bags(g.data / "bags")
    web = delivery(clients, sub, w0, w1 - TAIL)
    ftp = None
    if uploads:
        done = uploads.done(w0, w1)
        ftp = {
            "uploaders": sc["uploaders"],
            "file_mb": sc["upload_mb"],
            "files": len(done),
            "mb_per_s": round(sum(r["size"] for r in done) / 1e6 / (w1 - w0), 2),
            "note": "sec110_ftp throttles each data connection (read_limit, 4 MB/s)",
        }
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
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "samples_lost": pbt.get("samples_lost"),
        "latency_p99_ms": pbt.get("detection_latency", {}).get("p99_ms"),
        "events_recorded_pct": None,
        "graph_pss_mb": round(max(pss_total) / 1e6, 1) if pss_total else None,
        "graph_rss_mb": round(sum(v["rss_max_mb"] for k, v in nodes.items() if k not in SIMS), 1),
        "pbt_driver_cpu_pct": drv.get("cpu_mean_pct"),
        "goals": GOALS,
        "pbt": pbt,
        "web": web,
        "ftp": ftp,
        "recorder": recorder(bag, sub, k_info, w0, w1 - TAIL),
        "nodes": nodes,
        "restarts": restarts,
        "supervisor_exit_code": code,
        "series": {
            n: [[x["t"], x["cpu"], x["rss"], x["pss"]] for x in xs] for n, xs in win_series.items()
        },
    }
    res["events_recorded_pct"] = res["recorder"]["events_recorded_pct"]
    res["verdict"] = {
        k: (res[k] is not None and (res[k] >= v if k == "events_recorded_pct" else res[k] <= v))
        for k, v in GOALS.items()
    }
    suffix = ("_rt" if a.rt else "") + ("_isolated" if a.isolate else "")
    suffix += "_composed" if a.compose == "true" else ""
    stem = a.out / f"scenario_{a.scenario}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    plot(res, lat, delays, stem.with_suffix(".png"))
    print(f"wrote {stem}.json/.md/.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def markdown(r: dict) -> str:
    p, w, rec = r["pbt"], r["web"], r["recorder"]
    v = r["verdict"]

    def ok(k):
        return "met" if v.get(k) else "MISSED"

    lines = [
        f"## Scenario `{r['scenario']}` ({r['duration_s']:.0f} s, {r['started']})",
        "",
        f"Load: {r['load']['clients']} Foxglove clients, {r['load']['uploaders']} extra "
        f"uploader(s) of {r['load']['upload_mb']} MB files, CPU hogs: {r['load']['cpu_hogs']}; "
        f"reader thread SCHED_FIFO: {r['rt_reader_thread']}; driver alone on a CPU: "
        f"{r.get('isolated_driver_cpu')}; containers (`--compose`): {r.get('compose', 'auto')}. "
        f"Host: {r['host']['cpus']} CPUs "
        "(shared dev box; figures are noisy).",
        "",
        "| figure | value | goal | |",
        "|---|---|---|---|",
        f"| PBT samples lost (ground truth) | {r['samples_lost']} | 0 | {ok('samples_lost')} |",
        f"| detection latency p99 [ms] | {r['latency_p99_ms']} | <= 5 | {ok('latency_p99_ms')} |",
        f"| events in the recording [%] | {r['events_recorded_pct']} | 100 | "
        f"{ok('events_recorded_pct')} |",
        f"| graph PSS without simulators [MB] | {r['graph_pss_mb']} | <= 200 | "
        f"{ok('graph_pss_mb')} |",
        f"| pbt_driver CPU [% of one core] | {r['pbt_driver_cpu_pct']} | <= 5 | "
        f"{ok('pbt_driver_cpu_pct')} |",
        f"| event recall / precision [%] | {p.get('recall_pct')} / {p.get('precision_pct')} | | |",
        f"| detection latency p50 / max [ms] | {p.get('detection_latency', {}).get('p50_ms')} / "
        f"{p.get('detection_latency', {}).get('max_ms')} | | |",
        *[
            f"| detection latency, {k} share p50 / p99 [ms] | {v.get('p50_ms')} / "
            f"{v.get('p99_ms')} | | |"
            for k, v in p.get("detection_latency_split", {}).items()
        ],
        f"| peak -> pulse command p50 / p99 [ms] | {p.get('pulse_delay', {}).get('p50_ms')} / "
        f"{p.get('pulse_delay', {}).get('p99_ms')} | | |",
        f"| web clients connected | {w['connected']} of {w['clients']} | | |",
    ]
    for t, s in w["per_topic"].items():
        lines.append(
            f"| web delivery {t} min / median [%] | {s['min_pct']} / {s['median_pct']} | | |"
        )
    if r["ftp"]:
        lines.append(
            f"| FTP throughput [MB/s] | {r['ftp']['mb_per_s']} ({r['ftp']['files']} files) | | |"
        )
    lines.append(f"| sample batches in the recording [%] | {rec['batches_recorded_pct']} | | |")
    lines.append(f"| restarts during the run | {sum(r['restarts'].values())} | 0 | |")
    lines += [
        "",
        "| node | CPU mean / max [%] | RSS [MB] | PSS [MB] | fds |",
        "|---|---|---|---|---|",
    ]
    for n, s in sorted(r["nodes"].items()):
        lines.append(
            f"| {n} | {s['cpu_mean_pct']} / {s['cpu_max_pct']} | {s['rss_max_mb']} | "
            f"{s['pss_max_mb']} | {s['fds']} |"
        )
    return "\n".join(lines) + "\n"


def plot(r: dict, lat: list, delays: list, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(2, 2, figsize=(13, 8))
    a0 = ax[0][0]
    if lat:
        a0.hist([x * 1e3 for x in lat], bins=50, alpha=0.7, label="closing sample -> PbtEvent")
    if delays:
        a0.hist([x * 1e3 for x in delays], bins=50, alpha=0.7, label="peak -> pulse command")
    a0.axvline(5.0, ls="--", c="#cc3311", label="goal p99 5 ms")
    a0.set(xlabel="ms", ylabel="events", title="detection latency / pulse delay")
    a0.legend(fontsize=7)
    for n, xs in sorted(r["series"].items()):
        ts = [x[0] for x in xs]
        ax[0][1].plot(ts, [x[1] if x[1] is not None else float("nan") for x in xs], label=n)
        ax[1][0].plot(ts, [x[2] / 1e6 for x in xs], label=n)
    ax[0][1].set(xlabel="s", ylabel="% of one core", title="CPU per node")
    ax[0][1].legend(fontsize=6, ncol=2)
    ax[1][0].set(xlabel="s", ylabel="RSS [MB]", title="RSS per node")
    a3 = ax[1][1]
    pc = r["web"]["per_client"]
    topics = list(r["web"]["per_topic"])
    width = 0.8 / max(1, len(topics))
    for i, t in enumerate(topics):
        xs = [int(c) + i * width for c in pc]
        a3.bar(xs, [pc[c].get(t, 0) for c in pc], width=width, label=t)
    a3.set(xlabel="client", ylabel="delivered [%]", title="web delivery per client", ylim=(0, 105))
    a3.legend(fontsize=7)
    fig.suptitle(f"bench/scenarios.py --scenario {r['scenario']} ({r['duration_s']:.0f} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
