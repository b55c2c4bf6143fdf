#!/usr/bin/env python3
"""Benchmark of pulse output: event -> rising edge latency, serial offload vs pigpio.

Graph: pbt_sim (800 Hz, ascii, pulses) on a pty -> pbt_driver (namespace /pbt) -> either
* serial: ``pulse_backend: serial`` over ``socket://`` to the pbt_pulse firmware on the emulated
  ATmega328P (firmware/emulator/run.js, real-time pace); the edge is OC1A's rising edge at its
  emulated instant, on the wall clock; or
* pigpio: ``pulse_backend: pigpio`` into pigpiod_sim; the "edge" is the WVTXM's arrival (a real
  pigpiod starts the DMA wave then), so this side leaves out pigpiod's own delay.

Latency: the PbtEvent's stamp (the peak sample's acquisition time) -> that edge, per pulse,
p50/p99; its floor is confirm_samples x 1.25 ms. Width error: OC1A's width - the commanded
width (serial).
Writes DIR/firmware.json (+ firmware.png). Timing goals live here, never in tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, RosThread, bench_domain, exe, pct, pyplot, wait_for

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
RUN_JS = FIRMWARE / "emulator" / "run.js"
HEX = FIRMWARE / "pbt_pulse" / "build-uno" / "pbt_pulse.hex"
F_CPU = 16e6
WIDTHS = {"pulse_mode": "linear", "pulse_width_min_us": 100, "pulse_width_max_us": 19900,
          "pulse_amp_lo": 0.0, "pulse_amp_hi": 600.0, "pulse_width_step_us": 100}  # fmt: skip


class Events(RosThread):
    """(stamp s, pulse_sent, pulse_width_us) of every PbtEvent."""

    def __init__(self):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent

        super().__init__("bench_firmware")
        self.got: list[tuple[float, bool, int]] = []
        self.node.create_subscription(PbtEvent, "/pbt/events", self._e, qos.PBT_EVENTS)

    def _e(self, m):
        st = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        self.got.append((st, bool(m.pulse_sent), int(m.pulse_width_us)))


def prepare() -> None:
    """The firmware built and the emulator's packages installed; RuntimeError naming what lacks."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise RuntimeError("node/npm not installed: the emulated board cannot run")
    r = subprocess.run(["make", "-C", FIRMWARE], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"firmware build failed: {r.stderr.strip()[-500:]}")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def start_output(procs: Procs, tmp: Path, backend: str) -> tuple[dict, Path]:
    """The pulse device for `backend`; (driver parameters, its record file)."""
    pf = tmp / f"{backend}.port"
    if backend == "serial":
        rec = tmp / "edges.jsonl"
        procs.start("board", [RUN_JS, "--hex", HEX, "--port", "0", "--port-file", pf,
                              "--edges", rec, "--stats", tmp / "board.json"])  # fmt: skip
        if not wait_for(pf.exists, 30):
            raise RuntimeError("the emulated board did not start")
        return {"pulse_backend": "serial",
                "pulse_port": f"socket://127.0.0.1:{int(pf.read_text())}"}, rec  # fmt: skip
    rec = tmp / "waves.jsonl"
    procs.start("pigpiod", [exe("pbt_driver", "pigpiod_sim"), "--port", "0", "--port-file", pf,
                            "--record", rec])  # fmt: skip
    if not wait_for(pf.exists, 30):
        raise RuntimeError("pigpiod_sim did not start")
    return {"pulse_backend": "pigpio", "pigpio_host": "127.0.0.1",
            "pigpio_port": int(pf.read_text())}, rec  # fmt: skip


def edges_of(backend: str, rec: Path) -> list[tuple[float, float | None]]:
    """(wall time of the rising edge, width us or None) of every pulse, in order."""
    if backend == "pigpio":
        return [(r["t"], None) for r in read_jsonl(rec) if r.get("cmd") in ("WVTX", "WVTXM")]
    e = read_jsonl(rec)
    return [(a["wall"], (b["cycle"] - a["cycle"]) / F_CPU * 1e6)
            for a, b in itertools.pairwise(e)
            if a["level"] == 1 and b["level"] == 0]  # fmt: skip


def run(tmp: Path, backend: str, seconds: float, confirm: int) -> dict:
    procs = Procs(tmp)
    try:
        params, rec = start_output(procs, tmp, backend)
        link = tmp / "pbt.tty"
        procs.start("sim", [exe("pbt_driver", "pbt_sim"), "--link", link, "--seed", "42",
                            "--pulse-rate", "15"])  # fmt: skip
        if not wait_for(link.exists, 20):
            return {"error": "pbt_sim did not start"}
        ev = Events()
        argv = [exe("pbt_driver", "pbt_driver"), "--ros-args", "-r", "__ns:=/pbt",
                "-p", f"port:={link}", "-p", f"confirm_samples:={confirm}",
                "-p", "rt_priority:=0"]  # fmt: skip
        for k, v in {**params, **WIDTHS}.items():
            argv += ["-p", f"{k}:={v}"]
        procs.start("driver", argv)
        if not wait_for(lambda: any(s for _, s, _ in ev.got), 60):
            return {"error": "no pulse sent by the driver"}
        time.sleep(seconds)
        events = list(ev.got)
        for p in procs.ps[1:]:  # stop the sim and driver first: the last pulses land
            Procs.stop(p)
        time.sleep(0.5)
        ev.close()
    finally:
        procs.stop_all()
    return summarize(backend, events, edges_of(backend, rec), tmp)


def summarize(backend: str, events, edges, tmp: Path) -> dict:
    sent = [(st, w) for st, s, w in events if s]
    n = min(len(sent), len(edges))
    lat = [edges[i][0] - sent[i][0] for i in range(n)]
    out = {"backend": backend, "events": len(events), "pulses_sent": len(sent),
           "edges": len(edges), "events_unsent": len(events) - len(sent),
           "latency_ms": ms_stats(lat),
           "_raw": {"latency_ms": [x * 1e3 for x in lat]}}  # fmt: skip
    if backend == "serial":
        err = [edges[i][1] - sent[i][1] for i in range(n)]
        out["width_error_us"] = {"n": len(err), "min": round(min(err, default=0), 4),
                                 "p50": round(pct(err, 50) or 0, 4),
                                 "max": round(max(err, default=0), 4),
                                 "max_abs": round(max(map(abs, err), default=0), 4),
                                 "tick_us": "0.5 (<= 32767 us), 4 (above)"}  # fmt: skip
        out["_raw"]["width_error_us"] = err
        board = tmp / "board.json"
        out["emulator"] = json.loads(board.read_text()) if board.exists() else {}
    return out


def ms_stats(xs) -> dict:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1e3, 3),
            "p99_ms": round(pct(xs, 99) * 1e3, 3), "max_ms": round(max(xs) * 1e3, 3),
            "min_ms": round(min(xs) * 1e3, 3)}  # fmt: skip


def plot(res: dict, raw: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for backend, color in (("serial", "#4477aa"), ("pigpio", "#cc6677")):
        data = raw.get(backend, {}).get("latency_ms", [])
        if data:
            a1.hist(data, bins=40, alpha=0.6, color=color, label=backend)
    floor = res["confirm_samples"] * 1.25
    a1.axvline(floor, color="k", linestyle="--", label=f"confirmation floor {floor:g} ms")
    a1.set_title("event (peak acquired) -> rising edge [ms]", fontsize=9)
    a1.legend(fontsize=8)
    err = raw.get("serial", {}).get("width_error_us", [])
    if err:
        a2.hist(err, bins=40, color="#4477aa")
    a2.set_title("OC1A width - commanded width [us] (emulated Uno)", fontsize=9)
    fig.suptitle("pulse output (bench/firmware.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results", help="directory for firmware.json")
    ap.add_argument("--quick", action="store_true", help="short windows")
    ap.add_argument("--confirm-samples", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bench_domain()
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    seconds = 10.0 if a.quick else 40.0
    res: dict = {"host": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
                 "window_s": seconds, "confirm_samples": a.confirm_samples}  # fmt: skip
    raw = {}
    for backend in ("serial", "pigpio"):
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-fw-{backend}-"))
        try:
            if backend == "serial":
                prepare()
            r = run(tmp, backend, seconds, a.confirm_samples)
        except RuntimeError as e:
            r = {"error": str(e)}
        raw[backend] = r.pop("_raw", {})
        res[backend] = r
        print(json.dumps({backend: r}, indent=1), flush=True)
    path = out / "firmware.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {path}")
    plot(res, raw, out / "firmware.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
