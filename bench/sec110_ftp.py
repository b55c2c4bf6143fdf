#!/usr/bin/env python3
"""Benchmark of sec110_ftp: upload throughput (unthrottled, throttled), node CPU during a large
upload, and what it does to the PBT driver running beside it.

Graph: sec110_ftp (nice 10, idle I/O class as in the graph file; data root in a temp dir that
is removed afterwards) <- an ftplib client in this process (STOR x.tmp, RNFR/RNTO x.bin, like
the SEC110) -> sec110/files -> a subscriber in this process. Alongside: pbt_sim on a pty ->
pbt_driver (/pbt, default scheduling) -> the same subscriber, so sample losses and delivery
latency of the 800 Hz path are measured idle and during each upload.

* throughput: bytes / (STOR sent -> 226 received), MB/s (1 MB = 1e6 bytes).
* announce latency: 226 -> Sec110File received (confirmation + move + sha256 of the whole file).
* node CPU: user+system seconds of the node / wall time, % of one core, for the transfer and
  for the hash phase; peak RSS.
* PBT: samples lost (lost_before, contiguity) and batch delivery latency (receive time - stamp
  of the batch's last sample), p50/p99, idle vs during each upload; event count.

Writes DIR/sec110_ftp.json. Timing goals live here, never in tests.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

# bench/ is not a package: put this script's folder first on sys.path so that `_common` imports
# whatever the cwd (tools/run_bench.sh runs `python bench/X.py` from the repo root).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Procs, RosThread, bench_domain, cpu_seconds, exe, pct, rss_bytes, wait_for

ROOT = Path(__file__).resolve().parents[1]
SIM_USERS = ROOT / "src" / "bringup" / "config" / "sec110_users_sim.yaml"
MB = 1e6


class Sub(RosThread):
    """sec110/files and /pbt samples+events, spun by its own thread."""

    def __init__(self):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtEvent, PbtSamples, Sec110File

        super().__init__("bench_sec110")
        self.lock = threading.Lock()
        self.files, self.batches, self.events = [], [], []
        n = self.node
        n.create_subscription(Sec110File, "/sec110/files", self._f, qos.SEC110_FILES)
        n.create_subscription(PbtSamples, "/pbt/samples", self._b,
                              qos.recorder(qos.pbt_samples(0.05)))  # fmt: skip
        n.create_subscription(PbtEvent, "/pbt/events", self._e, qos.PBT_EVENTS)

    def _f(self, m):
        with self.lock:
            self.files.append((time.time(), m))

    def _b(self, m):
        now = time.time()
        st = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        last = st + (len(m.values) - 1) / m.sample_rate
        with self.lock:
            self.batches.append((m.first_index, len(m.values), m.lost_before, now, now - last))

    def _e(self, m):
        with self.lock:
            self.events.append(time.time())


def pbt_window(sub: Sub, t0: float, t1: float) -> dict:
    with sub.lock:
        b = [x for x in sub.batches if t0 <= x[3] <= t1]
        ev = sum(1 for t in sub.events if t0 <= t <= t1)
    if not b:
        return {"batches": 0}
    lost = sum(x[2] for x in b[1:])
    contiguous = all(c[0] == a[0] + a[1] + c[2] for a, c in itertools.pairwise(b))
    lat = [x[4] for x in b]
    return {
        "seconds": round(t1 - t0, 1),
        "samples_received": sum(x[1] for x in b),
        "samples_lost": lost,
        "batches_contiguous": contiguous,
        "events": ev,
        "batch_latency_p50_ms": round(pct(lat, 50) * 1e3, 2),
        "batch_latency_p99_ms": round(pct(lat, 99) * 1e3, 2),
        "batch_latency_max_ms": round(max(lat) * 1e3, 2),
    }


class Source:
    """`size` bytes of a repeated random block (little memory), hashed as it is read."""

    def __init__(self, size: int, block: int = 8 << 20):
        self.left = size
        self.block = os.urandom(block)
        self.pos = 0
        self.sha = hashlib.sha256()

    def read(self, n: int) -> bytes:
        n = min(n, self.left)
        if n <= 0:
            return b""
        start = self.pos % len(self.block)
        chunk = self.block[start : start + n]
        self.pos += len(chunk)
        self.left -= len(chunk)
        self.sha.update(chunk)
        return chunk


def start_ftpd(procs: Procs, tmp: Path, name: str, **params):
    import psutil

    pf = tmp / f"{name}.port"
    argv = [exe("sec110_ftp", "sec110_ftp"), "--ros-args", "-p", f"data_root:={tmp / name}",
            "-p", "address:=127.0.0.1", "-p", "port:=0", "-p", f"port_file:={pf}",
            "-p", f"credentials_file:={SIM_USERS}", "-p", "min_free_bytes:=0"]  # fmt: skip
    for k, v in params.items():
        argv += ["-p", f"{k}:={v}"]
    p = procs.start(name, argv)
    if not wait_for(pf.exists, 60, interval=0.02):
        raise RuntimeError(f"{name} did not start: {(tmp / f'{name}.log').read_text()[-2000:]}")
    ps = psutil.Process(p.pid)
    deployed = {}
    try:  # the graph's scheduling for sec110_ftp: nice 10, idle I/O class
        ps.nice(10)
        ps.ionice(psutil.IOPRIO_CLASS_IDLE)
        deployed = {"nice": 10, "io_class": "idle"}
    except (psutil.Error, OSError) as e:
        deployed = {"error": str(e)}
    return p, ps, int(pf.read_text()), deployed


def upload(sub: Sub, ps, port: int, size: int, name: str, timeout: float) -> dict:
    src = Source(size)
    f = ftplib.FTP(timeout=120)
    f.connect("127.0.0.1", port)
    f.login("sec110", "sec110")
    n_files = len(sub.files)
    rss = [rss_bytes(ps.pid)]
    stop = threading.Event()

    def sample_rss():
        while not stop.wait(0.2):
            try:
                rss.append(rss_bytes(ps.pid))
            except Exception:
                return

    threading.Thread(target=sample_rss, daemon=True).start()
    c0, t0 = cpu_seconds(ps.pid), time.monotonic()
    w0 = time.time()
    f.storbinary(f"STOR {name}.tmp", src, blocksize=256 * 1024)
    t1, c1 = time.monotonic(), cpu_seconds(ps.pid)
    f.rename(f"{name}.tmp", f"{name}.bin")
    f.quit()
    # fine polling: t2 - t1 is the announcement latency
    ok = wait_for(lambda: len(sub.files) > n_files, timeout, interval=0.02)
    t2, c2 = time.monotonic(), cpu_seconds(ps.pid)
    w2 = time.time()
    stop.set()
    if not ok:
        return {"error": "no announcement"}
    _, m = sub.files[-1]

    def cpu(a, b, dt):
        return round(100.0 * (b - a) / dt, 1)

    return {
        "bytes": size,
        "transfer_s": round(t1 - t0, 3),
        "throughput_MB_s": round(size / MB / (t1 - t0), 1),
        "announce_after_226_s": round(t2 - t1, 3),
        "node_cpu_percent_transfer": cpu(c0, c1, t1 - t0),
        "node_cpu_percent_hash_and_announce": cpu(c1, c2, t2 - t1),
        "node_cpu_seconds_total": round(c2 - c0, 2),
        "node_peak_rss_MB": round(max(rss) / MB, 1),
        "sha256_matches": m.sha256 == src.sha.hexdigest() and m.size == size,
        "msg_transfer_seconds": round(m.transfer_seconds, 3),
        "_window": (w0, w2),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results", help="directory for sec110_ftp.json")
    ap.add_argument("--size-mb", type=int, default=1000, help="large upload [MB]")
    ap.add_argument("--throttle", type=int, default=5_000_000, help="read_limit [bytes/s]")
    ap.add_argument("--throttled-mb", type=int, default=50, help="throttled upload [MB]")
    ap.add_argument("--no-pbt", action="store_true", help="without the PBT driver alongside")
    ap.add_argument("--quick", action="store_true", help="100 MB and 20 MB")
    a = ap.parse_args()
    if a.quick:
        a.size_mb, a.throttled_mb = 100, 20
    return a


def start_pbt(procs: Procs, sub: Sub, tmp: Path) -> str | None:
    """pbt_sim on a pty -> pbt_driver; an error when no samples arrive."""
    link = tmp / "pbt.tty"
    procs.start("pbt_sim", [exe("pbt_driver", "pbt_sim"), "--link", link, "--seed", "7"])
    wait_for(link.exists, 20, interval=0.02)
    procs.start("pbt_driver", [exe("pbt_driver", "pbt_driver"), "--ros-args", "-r",
                               "__ns:=/pbt", "-p", f"port:={link}"])  # fmt: skip
    if not wait_for(lambda: sum(b[1] for b in sub.batches) > 1600, 60, interval=0.02):
        return "no samples from the PBT driver"
    return None


def _upload_run(sub: Sub, ps, port: int, mb: int, name: str, pbt: bool):
    """One upload's figures, and the PBT figures during it (None without the driver)."""
    r = upload(sub, ps, port, int(mb * MB), name, 600)
    w = r.pop("_window", None)
    return r, (pbt_window(sub, *w) if w and pbt else None)


def run(a: argparse.Namespace, procs: Procs, sub: Sub, tmp: Path, res: dict) -> None:
    """PBT idle, the large unthrottled upload, then the throttled one (a new server)."""
    pbt = not a.no_pbt
    if pbt:
        err = start_pbt(procs, sub, tmp)
        if err:
            res["pbt_error"] = err
    _, ps, port, deployed = start_ftpd(procs, tmp, "ftpd", read_limit=0)
    res["node_scheduling"] = deployed
    time.sleep(2.0)  # settle: DDS matched, imports done
    if pbt:
        t0 = time.time()
        time.sleep(10.0)
        res["pbt_idle"] = pbt_window(sub, t0, time.time())
    res["unthrottled"], during = _upload_run(sub, ps, port, a.size_mb, "big", pbt)
    if during:
        res["pbt_during_unthrottled"] = during
    print(json.dumps(res["unthrottled"], indent=1), flush=True)
    Procs.stop(procs.ps[-1])
    shutil.rmtree(tmp / "ftpd", ignore_errors=True)
    _, ps, port, _ = start_ftpd(procs, tmp, "ftpd_thr", read_limit=a.throttle)
    time.sleep(2.0)
    res["throttled"], during = _upload_run(sub, ps, port, a.throttled_mb, "thr", pbt)
    res["throttled"]["read_limit_MB_s"] = a.throttle / MB
    if during:
        res["pbt_during_throttled"] = during
    print(json.dumps(res["throttled"], indent=1), flush=True)


def main() -> int:
    a = parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bench_domain()  # own ROS_DOMAIN_ID, discovery on this machine only
    os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    tmp = Path(tempfile.mkdtemp(prefix="bench-sec110-"))
    free = shutil.disk_usage(tmp).free
    if free < 1.5 * a.size_mb * MB:
        print(f"only {free / MB:.0f} MB free in {tmp}: large upload cut to {free / 3 / MB:.0f} MB")
        a.size_mb = int(free / 3 / MB)
    res: dict = {
        "host": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
        "dds_transport": "udp loopback only (LOCALHOST)",
        "client": "Python ftplib in the bench process, passive mode, 256 KiB blocks, loopback",
    }
    procs = Procs(tmp)
    sub = Sub()
    t_start = time.time()
    try:
        run(a, procs, sub, tmp, res)
    finally:
        sub.close()
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    res["large_upload_MB"] = a.size_mb
    res["bench_seconds"] = round(time.time() - t_start, 1)
    (out / "sec110_ftp.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out / 'sec110_ftp.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
