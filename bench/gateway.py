#!/usr/bin/env python3
"""Benchmark of foxglove_gateway: gateway CPU and per-client delivery with 1, 10, 20, 50 clients.

Graph: the real sim graph (pbt_sim on a pty -> pbt_driver in namespace pbt: /pbt/samples 20 Hz,
/pbt/events, /diagnostics) when pbt_driver is installed, plus a synthetic TiM240-like load
(/tim240/scan_filtered LaserScan 241 points 15 Hz, /tim240/zones 15 Hz, zone markers 1 Hz)
in place of a TiM240 bridge (--no-scan-load to leave it out).

Clients: the independent JS client (src/foxglove_gateway/test/js, count mode), N WebSocket
connections in one node process, each subscribed to every topic. Delivery: for each client, the
share of the header stamps a reliable reference subscriber saw during the measured window that
the client also received. Gateway CPU: user+system time of the gateway process over the window,
in % of one core.

DDS transport: UDPv4 only by default. On the shared 2-core dev machine a plain rclpy subscriber
(no gateway involved) was seen to stop receiving the whole graph after ~20 s with Fast DDS shared
memory while other test suites ran; over UDPv4 the runs are stable. ``--shm`` measures with the
default transports.

Writes DIR/gateway.json (and DIR/gateway.png when matplotlib is available).
Goals: 50 clients each get 100% of events and >= 99% of sample batches; gateway <= 25%
of one core at 20 clients.

Web bandwidth per client with the PBT scope on (``--no-web`` to skip): pbt_scope runs
in the graph with its package defaults (and a second instance with the lite profile's file on
/pbt/scope_lite); one JS client subscribes to exactly the topics the shipped layout
(src/bringup/config/foxglove_layout.json) shows, as Foxglove/Lichtblick do, and counts payload
bytes per topic over the window. Goal: <= 100 kB/s per client at the default rate.

Recorder restart cost (``--no-recorder`` to skip): mcap_recorder records a 20 Hz
sequence (the driver's batch rate and QoS) and 5 Hz transient-local events; it is killed with
SIGKILL several times and started again after mcap_recorder's respawn delay in graph.yaml
(0.1 s). From the bag (repaired and resumed by the restarted recorder, read with the ``mcap``
package): the publish-time span lost before each kill (goal <= the 1 s flush interval), the time
from the kill to the first message recorded again (goal: recording again within 1 s of the
crash, respawn delay included; the samples' transient-local history gives the new recorder what
was published while it was down), and events recorded twice (goal 0).
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
import time
from pathlib import Path

# bench/ is not a package: put this script's folder first on sys.path so that `_common` imports
# whatever the cwd (tools/run_bench.sh runs `python bench/X.py` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ROOT,
    Procs,
    RosThread,
    bench_domain,
    cpu_seconds,
    ensure_js,
    exe,
    free_port,
    listening,
    pyplot,
    rss_bytes,
    share,
    start_js,
    wait_for,
)
from _recorder import graph_recorder_respawn_delay, run_recorder_restarts

LAYOUT = ROOT / "src" / "bringup" / "config" / "foxglove_layout.json"
LITE_SCOPE = ROOT / "src" / "bringup" / "config" / "pbt_scope_lite.yaml"
WS_OVERHEAD = 13 + 4  # B per message: Foxglove binary message header + WebSocket frame header
REFERENCE_TOPICS = ("/pbt/samples", "/pbt/events", "/tim240/scan_filtered")


class Reference(RosThread):
    """Reliable rclpy subscriber: the stamps every client should have received."""

    def __init__(self):
        from sensorhub_common import qos

        super().__init__("bench_gateway_reference")
        self.seen: dict[str, list[tuple[float, str]]] = {t: [] for t in REFERENCE_TOPICS}
        self._qos = qos
        self._subs = []

    def subscribe(self) -> None:
        from sensor_msgs.msg import LaserScan

        from sensorhub_msgs.msg import PbtEvent, PbtSamples

        q = self._qos
        specs = {
            "/pbt/samples": (PbtSamples, q.recorder(q.pbt_samples(0.05))),
            "/pbt/events": (PbtEvent, q.recorder(q.PBT_EVENTS)),
            "/tim240/scan_filtered": (LaserScan, q.viewer(q.SCAN)),
        }
        for topic, (cls, prof) in specs.items():
            self._subs.append(
                self.node.create_subscription(cls, topic, lambda m, t=topic: self._on(t, m), prof)
            )

    def _on(self, topic: str, msg) -> None:
        s = msg.header.stamp
        self.seen[topic].append((time.monotonic(), f"{s.sec}.{s.nanosec:09d}"))

    def window(self, topic: str, t0: float, t1: float) -> set[str]:
        return {st for t, st in list(self.seen[topic]) if t0 <= t <= t1}


SCAN_LOAD = r"""
import math, time, rclpy
from sensor_msgs.msg import LaserScan
from visualization_msgs.msg import Marker, MarkerArray
from sensorhub_msgs.msg import ZoneStatus
from sensorhub_common import qos
rclpy.init()
n = rclpy.create_node("bench_scan_load")
ps = n.create_publisher(LaserScan, "/tim240/scan_filtered", qos.SCAN)
pz = n.create_publisher(ZoneStatus, "/tim240/zones", qos.DIAGNOSTICS)
pm = n.create_publisher(MarkerArray, "/tim240/zone_markers", qos.DIAGNOSTICS)
scan = LaserScan(angle_min=-2.0944, angle_max=2.0944, angle_increment=math.radians(1),
                 range_min=0.05, range_max=25.0, scan_time=1/15)
scan.header.frame_id = "laser"
zones = ZoneStatus(names=["near", "far"], occupied=[False, False],
                   nearest_range=[math.inf, math.inf], point_count=[0, 0])
markers = MarkerArray(markers=[Marker(ns="zones", id=i, type=Marker.LINE_STRIP) for i in range(2)])
k = 0
t_next = time.monotonic()
while rclpy.ok():
    now = n.get_clock().now().to_msg()
    scan.header.stamp = now
    scan.ranges = [2.0 + 0.5 * math.sin(0.05 * i + 0.1 * k) for i in range(241)]
    scan.intensities = [100.0] * 241
    zones.header.stamp = now
    ps.publish(scan); pz.publish(zones)
    if k % 15 == 0:
        pm.publish(markers)
    k += 1
    t_next += 1 / 15
    time.sleep(max(0.0, t_next - time.monotonic()))
"""


def layout_topics() -> list[str]:
    import re

    text = json.dumps(json.loads(LAYOUT.read_text())["configById"])
    return sorted(set(re.findall(r'"(/[a-z0-9_/]+?)(?:[.\[{]|")', text)))


def _rates(a: dict, b: dict, dt: float) -> dict:
    """Messages and kB per s of each topic between two progress lines of the web client."""
    per = {}
    for t in sorted(b["topics"]):
        n1, by1 = b["topics"][t]["n"], b["topics"][t]["bytes"]
        n0 = a["topics"].get(t, {}).get("n", 0)
        by0 = a["topics"].get(t, {}).get("bytes", 0)
        per[t] = {
            "msgs_per_s": round((n1 - n0) / dt, 2),
            "kB_per_s": round((by1 - by0 + WS_OVERHEAD * (n1 - n0)) / dt / 1000, 2),
            "bytes_per_msg": round((by1 - by0) / max(1, n1 - n0)),
        }
    return per


def run_web(port: int, tmp: Path, warmup: float, window: float) -> dict:
    """One client subscribed to the layout's topics (+ the lite scope): payload bytes/s each."""
    topics = layout_topics()
    regex = "|".join([*topics, "/pbt/scope_lite"])
    out_path = tmp / "web_client.jsonl"
    url = f"ws://127.0.0.1:{port}"
    client = start_js(out_path, url, 1, "--topics", regex, "--progress", "1.0")
    time.sleep(warmup + window)
    client.send_signal(signal.SIGTERM)
    client.wait(20)
    prog = [json.loads(x) for x in out_path.read_text().splitlines() if x.startswith("{")]
    prog = [p for p in prog if p.get("event") == "progress"]
    if len(prog) < 2:
        return {"error": "the web client reported no progress"}
    t_first = prog[0]["t"]
    a = next((p for p in prog if p["t"] >= t_first + warmup), prog[0])
    b = prog[-1]
    dt = b["t"] - a["t"]
    per = _rates(a, b, dt)
    shown = [t for t in per if t in topics]
    total = sum(per[t]["kB_per_s"] for t in shown)
    lite = per.get("/pbt/scope_lite", {}).get("kB_per_s")
    default_scope = per.get("/pbt/scope", {}).get("kB_per_s")
    history = per.get("/pbt/event_history", {}).get("kB_per_s", 0.0)
    return {
        "window_s": round(dt, 1),
        "layout_topics": topics,
        "per_topic": per,
        "scope_kB_per_s": default_scope,
        "scope_lite_kB_per_s": lite,
        "scope_and_events_kB_per_s_per_client": (
            round(default_scope + history, 2) if default_scope is not None else None
        ),
        "layout_total_kB_per_s_per_client": round(total, 2),
        "note": "payload + 17 B/message framing; Foxglove subscribes only to the layout's topics",
    }


def _client_counts(out_path: Path) -> tuple[list[dict], int]:
    """The clients' final stamp counts (one per client) and how many connected."""
    counts, opened = [], 0
    for line in out_path.read_text().splitlines():
        if line.startswith("{"):
            ev = json.loads(line)
            if ev["event"] == "counts":
                counts.append(ev["topics"])
            elif ev["event"] == "serverInfo":
                opened += 1
    return counts, opened


def _delivery(ref: Reference, counts: list[dict], t0: float, t1: float) -> dict:
    """Per reference topic: the share of the window's stamps each client received."""
    per_topic = {}
    for topic in REFERENCE_TOPICS:
        want = ref.window(topic, t0, t1)
        if not want:
            continue
        ratios = [
            100.0 * len(want & set(c.get(topic, {}).get("stamps", []))) / len(want) for c in counts
        ]
        per_topic[topic] = {
            "reference_messages": len(want),
            "rate_hz": round(len(want) / (t1 - t0), 2),
            "min_pct": round(min(ratios), 3) if ratios else 0.0,
            "median_pct": round(statistics.median(ratios), 3) if ratios else 0.0,
            "clients_at_100pct": sum(r >= 100.0 for r in ratios),
        }
    return per_topic


def run_level(
    n: int, port: int, gw_pid: int, ref: Reference, tmp: Path, warmup: float, window: float
) -> dict:
    out_path = tmp / f"clients_{n}.jsonl"
    client = start_js(out_path, f"ws://127.0.0.1:{port}", n)
    time.sleep(warmup + n * 0.02)
    cpu0, js0, t0 = cpu_seconds(gw_pid), cpu_seconds(client.pid), time.monotonic()
    rss = []
    while time.monotonic() - t0 < window:
        time.sleep(min(1.0, window - (time.monotonic() - t0)))
        rss.append(rss_bytes(gw_pid))
    cpu1, js1, t1 = cpu_seconds(gw_pid), cpu_seconds(client.pid), time.monotonic()
    time.sleep(2.0)  # messages of the window still in flight
    client.send_signal(signal.SIGTERM)
    client.wait(20)
    counts, opened = _client_counts(out_path)
    return {
        "clients": n,
        "clients_connected": opened,
        "window_s": round(t1 - t0, 2),
        "gateway_cpu_pct_of_one_core": round(100.0 * (cpu1 - cpu0) / (t1 - t0), 1),
        "js_clients_cpu_pct": round(100.0 * (js1 - js0) / (t1 - t0), 1),
        "gateway_rss_mb": round(max(rss) / 1e6, 1) if rss else None,
        "delivery": _delivery(ref, counts, t0, t1),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    ap.add_argument("--clients", default="1,10,20,50", help="levels; 'none': recorder only")
    ap.add_argument("--no-scan-load", action="store_true")
    ap.add_argument("--no-recorder", action="store_true", help="skip the recorder restarts")
    ap.add_argument("--no-web", action="store_true", help="skip the web bandwidth (scope on)")
    ap.add_argument("--kills", type=int, default=5, help="recorder kills (default 5)")
    ap.add_argument(
        "--respawn-delay",
        type=float,
        default=None,
        help="s before the restart (default: mcap_recorder's respawn delay in graph.yaml)",
    )
    ap.add_argument(
        "--shm",
        action="store_true",
        help="keep Fast DDS shared memory (default here: UDPv4 only, see the module docstring)",
    )
    a = ap.parse_args()
    a.levels = [int(x) for x in a.clients.split(",") if x.strip() not in ("", "none")]
    a.window, a.warmup = (6.0, 3.0) if a.quick else (30.0, 5.0)
    if a.quick:
        a.kills = min(a.kills, 2)
    return a


def start_scopes(procs: Procs) -> bool:
    """pbt_scope with its package defaults on /pbt/scope, and with the lite file on
    /pbt/scope_lite; False when pbt_scope is not built."""
    scope = exe("pbt_scope", "pbt_scope", optional=True)
    if scope is None:
        return False
    scfg = share("pbt_scope") / "config" / "pbt_scope.yaml"
    ns = ["--ros-args", "-r", "__ns:=/pbt", "--params-file", scfg]
    procs.start("pbt_scope", [scope, *ns])
    lite = ["--params-file", LITE_SCOPE, "-r", "__node:=pbt_scope_lite", "-r",
            "scope:=scope_lite", "-r", "event_history:=event_history_lite"]  # fmt: skip
    procs.start("pbt_scope_lite", [scope, *ns, *lite])
    return True


def start_pbt(procs: Procs, tmp: Path, *, scopes: bool) -> str:
    """pbt_sim on a pty -> pbt_driver (and the scopes); what runs, in words."""
    sim = exe("pbt_driver", "pbt_sim", optional=True)
    drv = exe("pbt_driver", "pbt_driver", optional=True)
    if not (sim and drv):
        return "pbt_driver not installed: no PBT load (figures not representative)"
    link = tmp / "pbt0"
    procs.start("pbt_sim", [sim, "--link", link])
    wait_for(link.exists, 5.0)
    cfg = share("pbt_driver") / "config" / "pbt_driver.yaml"
    procs.start("pbt_driver", [drv, "--ros-args", "-r", "__ns:=/pbt", "--params-file", cfg,
                               "-p", f"port:={link}"])  # fmt: skip
    graph = "sim graph: pbt_sim -> pbt_driver (/pbt/samples, /pbt/events)"
    if scopes and start_scopes(procs):
        graph += " + pbt_scope (/pbt/scope, default and lite)"
    return graph


def start_gateway(procs: Procs, tmp: Path, gw_exe: str, max_clients: int):
    """The gateway on a free port, once it accepts connections: (process, port)."""
    port = free_port()
    pf = tmp / "gateway.yaml"
    pf.write_text(
        "/**:\n  ros__parameters:\n    address: 127.0.0.1\n"
        f"    port: {port}\n    max_clients: {max_clients}\n"
    )
    gw = procs.start("gateway", [gw_exe, "--ros-args", "--params-file", pf])
    if not wait_for(lambda: listening(port), 30.0, interval=0.2):
        raise RuntimeError(f"gateway not listening on {port}")
    return gw, port


def _printed(r: dict) -> dict:
    print(json.dumps(r), flush=True)
    return r


def run(a: argparse.Namespace, procs: Procs, ref: Reference, tmp: Path, gw_exe: str) -> dict:
    """The graph, then the measurements the options ask for: the result's figures."""
    res: dict = {"graph": start_pbt(procs, tmp, scopes=not a.no_web)}
    if not a.no_scan_load:
        procs.start("scan_load", [sys.executable, "-c", SCAN_LOAD])
        res["graph"] += " + synthetic TiM240 load (scan 15 Hz, zones 15 Hz, markers 1 Hz)"
    gw, port = start_gateway(procs, tmp, gw_exe, max(a.levels, default=0) + 5)
    ref.subscribe()
    time.sleep(3.0)  # discovery: the gateway follows every topic
    if not a.no_web:
        res["web"] = _printed(run_web(port, tmp, a.warmup, a.window))
    res["levels"] = [
        _printed(run_level(n, port, gw.pid, ref, tmp, a.warmup, a.window)) for n in a.levels
    ]
    if not a.no_recorder:
        delay = a.respawn_delay
        if delay is None:
            delay = graph_recorder_respawn_delay()
        res["recorder_restarts"] = _printed(run_recorder_restarts(procs, tmp, a.kills, delay))
    return res


def _delivery_verdict(by_n: dict) -> dict:
    out = {}
    top = by_n.get(50)
    if top:
        d = top["delivery"]
        if "/pbt/events" in d:
            out["events_100pct_at_50"] = d["/pbt/events"]["min_pct"] >= 100.0
        if "/pbt/samples" in d:
            out["samples_99pct_at_50"] = d["/pbt/samples"]["min_pct"] >= 99.0
    if 20 in by_n:
        out["cpu_le_25pct_at_20"] = by_n[20]["gateway_cpu_pct_of_one_core"] <= 25.0
    return out


def _recorder_verdict(rr: dict) -> dict:
    out = {}
    if rr.get("max_lost_before_kill_s") is not None:
        out["recorder_lost_le_1s_before_kill"] = rr["max_lost_before_kill_s"] <= 1.0
    if rr.get("max_recording_again_after_kill_s") is not None:
        out["recorder_again_within_1s"] = rr["max_recording_again_after_kill_s"] <= 1.0
    if "events_recorded_twice" in rr:
        out["recorder_no_duplicate_events"] = rr["events_recorded_twice"] == 0
    return out


def verdict(result: dict) -> dict:
    """Each goal the run measured: met or not."""
    out = _delivery_verdict({r["clients"]: r for r in result["levels"]})
    out.update(_recorder_verdict(result.get("recorder_restarts") or {}))
    web = result.get("web") or {}
    if web.get("scope_and_events_kB_per_s_per_client") is not None:
        # what the rolling window adds per client; the layout's total is reported beside it
        out["web_scope_le_100kBps_per_client"] = (
            web["scope_and_events_kB_per_s_per_client"] <= 100.0
        )
    return out


def main() -> int:
    a = parse_args()
    if not a.shm:
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()  # own ROS_DOMAIN_ID, discovery on this machine only
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    try:
        ensure_js()
    except RuntimeError as e:
        sys.exit(f"bench/gateway.py: {e}")
    gw_exe = exe("foxglove_gateway", "foxglove_gateway", optional=True)
    if gw_exe is None:
        sys.exit("bench/gateway.py: foxglove_gateway is not built (tools/build.sh)")
    result: dict = {
        "benchmark": "foxglove_gateway",
        "host_cpus": os.cpu_count(),
        "quick": a.quick,
        "dds_transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (SHM + UDPv4)"),
        "goals": {
            "events_pct": 100.0,
            "samples_pct": 99.0,
            "cpu_pct_at_20_clients": 25.0,
            "web_kB_per_s_per_client": 100.0,
        },
    }
    procs = Procs(tmp)
    ref = Reference()
    try:
        result.update(run(a, procs, ref, tmp, gw_exe))
    finally:
        procs.stop_all(at_once=True)
        ref.close()
    result["verdict"] = verdict(result)
    out = a.out / "gateway.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    _plot(result, a.out / "gateway.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _plot(result: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    levels = result["levels"]
    xs = [r["clients"] for r in levels]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(xs, [r["gateway_cpu_pct_of_one_core"] for r in levels], "o-")
    ax[0].axhline(25, ls="--", c="grey")
    ax[0].set(xlabel="clients", ylabel="gateway CPU [% of one core]", title="CPU")
    for topic in REFERENCE_TOPICS:
        ys = [r["delivery"].get(topic, {}).get("min_pct") for r in levels]
        if any(y is not None for y in ys):
            ax[1].plot(xs, ys, "o-", label=topic)
    ax[1].set(xlabel="clients", ylabel="worst client delivery [%]", title="delivery")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    sys.exit(main())
