#!/usr/bin/env python3
"""Benchmark of foxglove_gateway's subscribe on demand and slow-client priorities.

Graph: the sim graph of bench/gateway.py (pbt_sim -> pbt_driver, pbt_scope default and lite)
plus its synthetic TiM240 load, and the gateway.

1. Idle graph CPU (no viewer): user+system time of every graph process over the window, in % of
   one core, with the gateway holding every allowed topic's subscription
   (``subscribe_on_demand: false``, as before) and subscribing on demand (the default).
2. Slow client: a raw WebSocket client reading ``--slow-kBps`` (a phone on weak Wi-Fi)
   subscribed to the scope, samples, scan and events. Delivered: the share of the event stamps
   (and of the scope frames) a reliable reference subscriber saw in the window that the client
   received once the gateway's buffers for it were drained. Goal: 100% of events while it loses
   scope frames.

Writes DIR/gateway_demand.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ROOT,
    Procs,
    bench_domain,
    cpu_seconds,
    exe,
    free_port,
    listening,
    wait_for,
)
from gateway import SCAN_LOAD, Reference, start_pbt

SLOW_TOPICS = ("/pbt/scope", "/pbt/samples", "/tim240/scan_filtered", "/pbt/events")
PREFIX = 13 + 4 + 8  # message data header, CDR encapsulation, header.stamp


def start_gateway(procs: Procs, tmp: Path, gw_exe: str, name: str, **params):
    """A gateway with ``params`` once it accepts connections: (process, port)."""
    port = free_port()
    pf = tmp / f"{name}.yaml"
    extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in params.items())
    pf.write_text(f"/**:\n  ros__parameters:\n    address: 127.0.0.1\n    port: {port}\n{extra}")
    gw = procs.start(name, [gw_exe, "--ros-args", "--params-file", pf])
    if not wait_for(lambda: listening(port), 30.0, interval=0.2):
        raise RuntimeError(f"gateway not listening on {port}")
    return gw, port


def _label(p) -> str:
    return "scan_load" if p.args[0] == sys.executable else Path(str(p.args[0])).name


def idle_cpu(procs: Procs, tmp: Path, gw_exe: str, on_demand: bool, warmup, window) -> dict:
    name = f"gateway_{'on_demand' if on_demand else 'always'}"
    gw, _port = start_gateway(procs, tmp, gw_exe, name, subscribe_on_demand=on_demand)
    time.sleep(warmup)  # discovery: the gateway follows every topic
    running = {("gateway" if p is gw else f"{_label(p)}[{p.pid}]"): p.pid
               for p in procs.ps if p.poll() is None}  # fmt: skip
    c0 = {n: cpu_seconds(pid) for n, pid in running.items()}
    t0 = time.monotonic()
    time.sleep(window)
    dt = time.monotonic() - t0
    per = {n: round(100.0 * (cpu_seconds(pid) - c0[n]) / dt, 1) for n, pid in running.items()}
    procs.stop(gw)
    return {
        "subscribe_on_demand": on_demand,
        "gateway_cpu_pct": per["gateway"],
        "graph_cpu_pct": round(sum(per.values()), 1),
        "per_process_cpu_pct": per,
    }


class SlowClient:
    """Raw WebSocket client reading ``rate`` B/s; records the header stamps per topic."""

    def __init__(self, port: int, rate: int):
        from foxglove_gateway.wsframes import FrameScanner

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n\r\n".encode()
        )
        self.rate, self.slow = rate, True
        self.subs: dict[int, str] = {}
        self.stamps: dict[str, list[str]] = {t: [] for t in SLOW_TOPICS}
        self.scanner = FrameScanner(self._frame, binary_prefix=PREFIX, skip_http_head=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _frame(self, opcode: int, _fin: bool, p: bytes) -> None:
        if opcode == 0x2 and p[:1] == b"\x01" and len(p) >= PREFIX:
            topic = self.subs.get(int.from_bytes(p[1:5], "little"))
            if topic:
                sec, nsec = int.from_bytes(p[17:21], "little"), int.from_bytes(p[21:25], "little")
                self.stamps[topic].append(f"{sec}.{nsec:09d}")
        elif opcode == 0x1:
            msg = json.loads(p)
            if msg.get("op") == "advertise":
                self._subscribe(msg["channels"])

    def _subscribe(self, channels: list[dict]) -> None:
        from foxglove_gateway.wsframes import encode_frame

        subs = []
        for ch in channels:
            if ch["topic"] in SLOW_TOPICS:
                sid = len(self.subs) + 1
                self.subs[sid] = ch["topic"]
                subs.append({"id": sid, "channelId": ch["id"]})
        if subs:
            body = json.dumps({"op": "subscribe", "subscriptions": subs}).encode()
            self.sock.sendall(encode_frame(0x1, body, mask=os.urandom(4)))

    def _read(self) -> None:
        try:
            while data := self.sock.recv(2048 if self.slow else 1 << 20):
                self.scanner.feed(data)
                if self.slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass


def slow_client(procs, tmp, gw_exe, ref: Reference, rate: int, warmup, window) -> dict:
    gw, port = start_gateway(procs, tmp, gw_exe, "gateway_slow", ping_interval=0.0)
    client = SlowClient(port, rate)
    time.sleep(warmup)
    t0 = time.monotonic()
    time.sleep(window)
    t1 = time.monotonic()
    client.slow = False  # drain what the gateway still holds for it: caught up once it gets
    # samples newer than the window's (they flow on, so the socket never goes quiet)
    newest = max((float(s) for s in ref.window("/pbt/samples", t0, t1)), default=0.0)
    wait_for(lambda: any(float(s) > newest for s in client.stamps["/pbt/samples"][-50:]), 120.0)
    out = {"read_kB_per_s": rate / 1000, "window_s": round(t1 - t0, 1)}
    for topic in ("/pbt/events", "/pbt/samples", "/tim240/scan_filtered"):
        want = ref.window(topic, t0, t1)
        got = want & set(client.stamps[topic])
        out[topic] = {
            "published": len(want),
            "delivered": len(got),
            "pct": round(100.0 * len(got) / len(want), 1) if want else None,
        }
    out["/pbt/scope"] = {"received": len(client.stamps["/pbt/scope"])}
    client.sock.close()
    procs.stop(gw)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    ap.add_argument("--slow-kBps", type=float, default=20.0, help="the slow client's read rate")
    a = ap.parse_args()
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    a.out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    warmup, window = (3.0, 10.0) if a.quick else (5.0, 30.0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-demand-"))
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "roslog"))
    gw_exe = exe("foxglove_gateway", "foxglove_gateway", optional=True)
    if gw_exe is None:
        sys.exit("bench/gateway_demand.py: foxglove_gateway is not built (tools/build.sh)")
    procs = Procs(tmp)
    ref = Reference()
    result: dict = {
        "benchmark": "foxglove_gateway demand and priorities",
        "quick": a.quick,
        "host_cpus": os.cpu_count(),
        "goals": {"slow_client_events_pct": 100.0},
    }
    try:
        result["graph"] = start_pbt(procs, tmp, scopes=True)
        procs.start("scan_load", [sys.executable, "-c", SCAN_LOAD])
        ref.subscribe()
        result["idle"] = [
            idle_cpu(procs, tmp, gw_exe, on_demand, warmup, window) for on_demand in (False, True)
        ]
        print(json.dumps(result["idle"]), flush=True)
        result["slow_client"] = slow_client(
            procs, tmp, gw_exe, ref, int(a.slow_kBps * 1000), warmup, window
        )
        print(json.dumps(result["slow_client"]), flush=True)
    finally:
        procs.stop_all(at_once=True)
        ref.close()
    before, after = result["idle"]
    ev = result["slow_client"]["/pbt/events"]
    sc = result["slow_client"]["/pbt/samples"]
    result["verdict"] = {
        "idle_graph_cpu_lower_on_demand": after["graph_cpu_pct"] < before["graph_cpu_pct"],
        "slow_client_all_events": ev["pct"] in (None, 100.0),
        "slow_client_lost_samples_first": (sc["pct"] or 100.0) < 100.0,
    }
    out = a.out / "gateway_demand.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
