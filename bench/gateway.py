#!/usr/bin/env python3
"""Benchmark of foxglove_gateway: gateway CPU and per-client delivery with 1, 10, 20, 50 clients.

Graph: the real sim graph (pbt_sim on a pty -> pbt_driver in namespace pbt: /pbt/samples 20 Hz,
/pbt/events, /diagnostics) when pbt_driver is installed, plus a synthetic TiM240-like load
(/tim240/scan_filtered LaserScan 241 points 15 Hz, /tim240/zones 15 Hz, zone markers 1 Hz)
because tim240_bridge is not in the graph yet (--no-scan-load to leave it out).

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
Goals (issue 5): 50 clients each get 100% of events and >= 99% of sample batches; gateway <= 25%
of one core at 20 clients.

Web bandwidth per client with the PBT scope on (issue 14, ``--no-web`` to skip): pbt_scope runs
in the graph with its package defaults (and a second instance with the lite profile's file on
/pbt/scope_lite); one JS client subscribes to exactly the topics the shipped layout
(src/bringup/config/foxglove_layout.json) shows, as Foxglove/Lichtblick do, and counts payload
bytes per topic over the window. Goal: <= 100 kB/s per client at the default rate.

Recorder restart cost (issue 12, ``--no-recorder`` to skip): mcap_recorder records a 20 Hz
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/ is not a package: put this script's folder first on sys.path so that `_common` imports
# whatever the cwd (tools/run_bench.sh runs `python bench/X.py` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Procs,
    RosThread,
    bench_domain,
    cpu_seconds,
    exe,
    free_port,
    rss_bytes,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "src" / "foxglove_gateway" / "test" / "js"
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


SEQ_LOAD = r"""
import time, rclpy
from sensorhub_msgs.msg import PbtEvent, PbtSamples
from sensorhub_common import qos
rclpy.init()
n = rclpy.create_node("bench_recorder_load")
ps = n.create_publisher(PbtSamples, "/bench/seq", qos.pbt_samples(0.05))
pe = n.create_publisher(PbtEvent, "/bench/events", qos.PBT_EVENTS)
i = 0
t_next = time.monotonic()
while rclpy.ok():
    now = time.time_ns()
    m = PbtSamples(first_index=i)
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, 1_000_000_000)
    ps.publish(m)
    if i % 4 == 0:
        e = PbtEvent(peak_index=i)
        e.header.stamp = m.header.stamp
        pe.publish(e)
    i += 1
    t_next += 0.05
    time.sleep(max(0.0, t_next - time.monotonic()))
"""


def _graph_recorder_respawn_delay() -> float:
    """What the supervisor waits before restarting mcap_recorder (the graph's own setting)."""
    from bringup.backoff import RestartPolicy
    from bringup.graph import load_graph

    g = load_graph(ROOT / "src" / "bringup" / "config" / "graph.yaml")
    return RestartPolicy.from_graph(g.node("mcap_recorder").get("respawn")).delay


def run_recorder_restarts(procs: Procs, tmp: Path, kills: int, respawn_delay: float) -> dict:
    """SIGKILL the recorder ``kills`` times; what the bag lost and when recording resumed."""
    rec_exe = exe("foxglove_gateway", "mcap_recorder", optional=True)
    if rec_exe is None:
        return {"error": "mcap_recorder not built"}
    root = tmp / "rec_data"
    pf = tmp / "recorder.yaml"
    pf.write_text(
        "/**:\n  ros__parameters:\n"
        f"    data_root: {root}\n    topics_allow: ['/bench/.*']\n    chunk_interval: 1.0\n"
    )
    load = procs.start("recorder_load", [sys.executable, "-c", SEQ_LOAD])
    argv = [rec_exe, "--ros-args", "--params-file", pf]
    rec = procs.start("recorder_0", argv)
    kill_times, spawn_times = [], []
    time.sleep(6.0)
    for k in range(kills):
        rec.send_signal(signal.SIGKILL)
        kill_times.append(time.time_ns())
        rec.wait(10)
        time.sleep(respawn_delay)
        spawn_times.append(time.time_ns())
        rec = procs.start(f"recorder_{k + 1}", argv)
        time.sleep(6.0)
    rec.send_signal(signal.SIGINT)
    rec.wait(30)
    load.send_signal(signal.SIGINT)
    load.wait(10)

    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    (bag,) = list((root / "bags").iterdir())
    seq: dict[int, int] = {}  # first_index -> header stamp [ns]
    events: list[int] = []
    unfinished = 0
    files = sorted(bag.glob("*.mcap"))
    for f in files:
        with open(f, "rb") as fh:
            r = make_reader(fh)
            if r.get_summary() is None:
                unfinished += 1
            for _, ch, msg in r.iter_messages():
                if ch.topic == "/bench/seq":
                    m = deserialize_message(msg.data, PbtSamples)
                    seq[m.first_index] = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                elif ch.topic == "/bench/events":
                    events.append(deserialize_message(msg.data, PbtEvent).peak_index)
    stamps = sorted(seq.values())
    per_kill = []
    for k, (t_kill, t_spawn) in enumerate(zip(kill_times, spawn_times, strict=True)):
        following = _log_time(tmp / f"recorder_{k + 1}.log", "following /bench/seq")
        before = [t for t in stamps if t < t_kill]
        after = [t for t in stamps if t >= t_kill]
        lost_before = (t_kill - before[-1]) / 1e9 if before else None
        first_after = (after[0] - t_kill) / 1e9 if after else None
        per_kill.append(
            {
                "lost_before_kill_s": round(lost_before, 3) if lost_before is not None else None,
                "recording_again_after_kill_s": round(first_after, 3)
                if first_after is not None
                else None,
                "recording_again_after_spawn_s": round((after[0] - t_spawn) / 1e9, 3)
                if after
                else None,
                "subscribed_after_spawn_s": round((following - t_spawn) / 1e9, 3)
                if following
                else None,
            }
        )
    lb = [k["lost_before_kill_s"] for k in per_kill if k["lost_before_kill_s"] is not None]
    ra = [
        k["recording_again_after_kill_s"]
        for k in per_kill
        if k["recording_again_after_kill_s"] is not None
    ]
    return {
        "kills": kills,
        "respawn_delay_s": respawn_delay,
        "chunk_interval_s": 1.0,
        "bag_dirs": len(list((root / "bags").iterdir())),
        "files": len(files),
        "files_without_footer": unfinished,
        "sequence_recorded": len(seq),
        "events_recorded": len(events),
        "events_recorded_twice": len(events) - len(set(events)),
        "max_lost_before_kill_s": max(lb) if lb else None,
        "max_recording_again_after_kill_s": max(ra) if ra else None,
        "median_recording_again_after_kill_s": statistics.median(ra) if ra else None,
        "per_kill": per_kill,
        "goals": {"lost_before_kill_s": 1.0, "recording_again_after_kill_s": 1.0},
    }


def _log_time(path: Path, text: str) -> int | None:
    """Epoch ns of the first ROS log line containing ``text`` ("[INFO] [<epoch s>] ...")."""
    try:
        for line in path.read_text(errors="replace").splitlines():
            if text in line and line.startswith("["):
                return int(float(line.split("[")[2].split("]")[0]) * 1e9)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ensure_js() -> None:
    if not shutil.which("node") or not shutil.which("npm"):
        sys.exit("bench/gateway.py: node/npm not installed (needed for the JS clients)")
    if not (JS_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def layout_topics() -> list[str]:
    import re

    text = json.dumps(json.loads(LAYOUT.read_text())["configById"])
    return sorted(set(re.findall(r'"(/[a-z0-9_/]+?)(?:[.\[{]|")', text)))


def run_web(port: int, tmp: Path, warmup: float, window: float) -> dict:
    """One client subscribed to the layout's topics (+ the lite scope): payload bytes/s each."""
    topics = layout_topics()
    regex = "|".join([*topics, "/pbt/scope_lite"])
    out_path = tmp / "web_client.jsonl"
    with open(out_path, "wb") as fh:
        client = subprocess.Popen(
            ["node", JS_DIR / "client.js", "--url", f"ws://127.0.0.1:{port}", "--mode", "count",
             "--topics", regex, "--progress", "1.0"],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
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


def run_level(
    n: int, port: int, gw_pid: int, ref: Reference, tmp: Path, warmup: float, window: float
) -> dict:
    out_path = tmp / f"clients_{n}.jsonl"
    with open(out_path, "wb") as fh:
        client = subprocess.Popen(
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
    counts = []
    opened = 0
    for line in out_path.read_text().splitlines():
        if line.startswith("{"):
            ev = json.loads(line)
            if ev["event"] == "counts":
                counts.append(ev["topics"])
            elif ev["event"] == "serverInfo":
                opened += 1
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
    return {
        "clients": n,
        "clients_connected": opened,
        "window_s": round(t1 - t0, 2),
        "gateway_cpu_pct_of_one_core": round(100.0 * (cpu1 - cpu0) / (t1 - t0), 1),
        "js_clients_cpu_pct": round(100.0 * (js1 - js0) / (t1 - t0), 1),
        "gateway_rss_mb": round(max(rss) / 1e6, 1) if rss else None,
        "delivery": per_topic,
    }


def main() -> int:
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
    args = ap.parse_args()
    if not args.shm:
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    args.out.mkdir(parents=True, exist_ok=True)
    levels = [int(x) for x in args.clients.split(",") if x.strip() not in ("", "none")]
    window, warmup = (6.0, 3.0) if args.quick else (30.0, 5.0)

    bench_domain()  # own ROS_DOMAIN_ID, discovery on this machine only
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    _ensure_js()

    gw_exe = exe("foxglove_gateway", "foxglove_gateway", optional=True)
    if gw_exe is None:
        sys.exit("bench/gateway.py: foxglove_gateway is not built (tools/build.sh)")
    procs = Procs(tmp)
    result: dict = {
        "benchmark": "foxglove_gateway",
        "host_cpus": os.cpu_count(),
        "quick": args.quick,
        "dds_transport": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "default (SHM + UDPv4)"),
        "goals": {
            "events_pct": 100.0,
            "samples_pct": 99.0,
            "cpu_pct_at_20_clients": 25.0,
            "web_kB_per_s_per_client": 100.0,
        },
    }
    ref = Reference()
    try:
        sim = exe("pbt_driver", "pbt_sim", optional=True)
        drv = exe("pbt_driver", "pbt_driver", optional=True)
        if sim and drv:
            link = tmp / "pbt0"
            procs.start("pbt_sim", [sim, "--link", link])
            wait_for(link.exists, 5.0)
            from ament_index_python.packages import get_package_share_directory

            cfg = Path(get_package_share_directory("pbt_driver"), "config", "pbt_driver.yaml")
            procs.start(
                "pbt_driver",
                [
                    drv,
                    "--ros-args",
                    "-r",
                    "__ns:=/pbt",
                    "--params-file",
                    cfg,
                    "-p",
                    f"port:={link}",
                ],
            )
            result["graph"] = "sim graph: pbt_sim -> pbt_driver (/pbt/samples, /pbt/events)"
            scope = exe("foxglove_gateway", "pbt_scope", optional=True)
            if scope and not args.no_web:
                scfg = Path(
                    get_package_share_directory("foxglove_gateway"), "config", "pbt_scope.yaml"
                )
                ns = ["--ros-args", "-r", "__ns:=/pbt", "--params-file", scfg]
                procs.start("pbt_scope", [scope, *ns])
                lite = [
                    "--params-file",
                    LITE_SCOPE,
                    "-r",
                    "__node:=pbt_scope_lite",
                    "-r",
                    "scope:=scope_lite",
                    "-r",
                    "event_history:=event_history_lite",
                ]
                procs.start("pbt_scope_lite", [scope, *ns, *lite])
                result["graph"] += " + pbt_scope (/pbt/scope, default and lite)"
        else:
            result["graph"] = "pbt_driver not installed: no PBT load (figures not representative)"
        if not args.no_scan_load:
            procs.start("scan_load", [sys.executable, "-c", SCAN_LOAD])
            result["graph"] += " + synthetic TiM240 load (scan 15 Hz, zones 15 Hz, markers 1 Hz)"
        port = free_port()
        pf = tmp / "gateway.yaml"
        pf.write_text(
            "/**:\n  ros__parameters:\n    address: 127.0.0.1\n"
            f"    port: {port}\n    max_clients: {max(levels, default=0) + 5}\n"
        )
        gw = procs.start("gateway", [gw_exe, "--ros-args", "--params-file", pf])
        if not wait_for(lambda: _listening(port), 30.0, interval=0.2):
            raise RuntimeError(f"gateway not listening on {port}")
        ref.subscribe()
        time.sleep(3.0)  # discovery: the gateway follows every topic
        if not args.no_web:
            web = run_web(port, tmp, warmup, window)
            print(json.dumps(web), flush=True)
            result["web"] = web
        result["levels"] = []
        for n in levels:
            r = run_level(n, port, gw.pid, ref, tmp, warmup, window)
            print(json.dumps(r), flush=True)
            result["levels"].append(r)
        if not args.no_recorder:
            kills = min(args.kills, 2) if args.quick else args.kills
            delay = args.respawn_delay
            if delay is None:
                delay = _graph_recorder_respawn_delay()
            rr = run_recorder_restarts(procs, tmp, kills, delay)
            print(json.dumps(rr), flush=True)
            result["recorder_restarts"] = rr
    finally:
        procs.stop_all(at_once=True)
        ref.close()

    by_n = {r["clients"]: r for r in result["levels"]}
    top = by_n.get(50)
    verdict = {}
    if top:
        d = top["delivery"]
        if "/pbt/events" in d:
            verdict["events_100pct_at_50"] = d["/pbt/events"]["min_pct"] >= 100.0
        if "/pbt/samples" in d:
            verdict["samples_99pct_at_50"] = d["/pbt/samples"]["min_pct"] >= 99.0
    if 20 in by_n:
        verdict["cpu_le_25pct_at_20"] = by_n[20]["gateway_cpu_pct_of_one_core"] <= 25.0
    rr = result.get("recorder_restarts") or {}
    if rr.get("max_lost_before_kill_s") is not None:
        verdict["recorder_lost_le_1s_before_kill"] = rr["max_lost_before_kill_s"] <= 1.0
    if rr.get("max_recording_again_after_kill_s") is not None:
        verdict["recorder_again_within_1s"] = rr["max_recording_again_after_kill_s"] <= 1.0
    if "events_recorded_twice" in rr:
        verdict["recorder_no_duplicate_events"] = rr["events_recorded_twice"] == 0
    web = result.get("web") or {}
    if web.get("scope_and_events_kB_per_s_per_client") is not None:
        # what the rolling window adds per client; the layout's total is reported beside it
        verdict["web_scope_le_100kBps_per_client"] = (
            web["scope_and_events_kB_per_s_per_client"] <= 100.0
        )
    result["verdict"] = verdict
    out = args.out / "gateway.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    _plot(result, args.out / "gateway.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
