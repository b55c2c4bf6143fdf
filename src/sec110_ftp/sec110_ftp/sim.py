"""sec110_sim: uploads files by FTP the way the SEC110 does (Python ftplib, no ROS).

Per file: log in (retrying with backoff while the server is not up yet), MKD/CWD the device
folder, STOR ``<name>.tmp``, check it with SIZE, RNFR/RNTO to ``<name>.csv``. With
``--abort-fraction`` some uploads are cut mid-way like a cable pull: the data socket is reset
and the session dropped without QUIT (the server must never announce those). ``--log`` writes
one JSON line per file (name, size, sha256, aborted) for tests and the bench.
"""

from __future__ import annotations

import argparse
import ftplib
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time

from sensorhub_common.backoff import ExponentialBackoff


class StopRequestedError(Exception):
    pass


def make_payload(rng: random.Random, size: int, index: int) -> bytes:
    """CSV-looking content of exactly `size` bytes (distinct per file)."""
    head = f"# sec110 run {index} t={time.time():.3f}\ntime_s,dose_uSv_h,counts\n".encode()
    rows = []
    n = len(head)
    i = 0
    while n < size:
        row = f"{i * 0.1:.1f},{rng.random() * 3:.4f},{rng.randrange(10000)}\n".encode()
        rows.append(row)
        n += len(row)
        i += 1
    return (head + b"".join(rows))[:size]


class Uploader:
    def __init__(self, a, stop: threading.Event):
        self.a = a
        self.stop = stop
        self.ftp: ftplib.FTP | None = None
        self.backoff = ExponentialBackoff(0.2, a.retry_max)

    def log(self, msg: str) -> None:
        print(f"[sec110_sim] {msg}", flush=True)

    def connect(self) -> ftplib.FTP:
        while not self.stop.is_set():
            try:
                ftp = ftplib.FTP(timeout=self.a.timeout)
                ftp.connect(self.a.host, self.a.port)
                ftp.login(self.a.user, self.a.password)
                ftp.set_pasv(not self.a.active)
                ftp.voidcmd("TYPE I")
                if self.a.dir:
                    try:
                        ftp.mkd(self.a.dir)
                    except ftplib.error_perm:
                        pass  # exists
                    ftp.cwd(self.a.dir)
                self.backoff.reset()
                return ftp
            except ftplib.error_perm as e:
                self.log(f"login refused: {e}")
                raise SystemExit(3) from None
            except (OSError, EOFError, ftplib.Error) as e:
                d = self.backoff.failed()
                self.log(
                    f"cannot connect to {self.a.host}:{self.a.port} ({e}); retry in {d:.1f} s"
                )
                self.stop.wait(d)
        raise StopRequestedError

    def drop(self) -> None:
        if self.ftp is not None:
            try:
                self.ftp.close()
            except OSError:
                pass
        self.ftp = None

    def upload(self, name: str, data: bytes, abort: bool) -> None:
        if self.ftp is None:
            self.ftp = self.connect()
        ftp = self.ftp
        tmp = name + ".tmp"
        conn = ftp.transfercmd(f"STOR {tmp}")
        cut = len(data) // 2 if abort else len(data)
        view = memoryview(data)
        try:
            for off in range(0, cut, 64 * 1024):
                if self.stop.is_set() and not abort:
                    raise StopRequestedError
                conn.sendall(view[off : min(off + 64 * 1024, cut)])
                if self.a.chunk_delay:
                    time.sleep(self.a.chunk_delay)
        except StopRequestedError:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.drop()
            raise
        if abort:
            # a cable pull: reset the data connection, drop the session without QUIT
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.drop()
            return
        conn.close()
        ftp.voidresp()
        size = ftp.size(tmp)
        if size != len(data):
            raise ftplib.Error(f"SIZE {tmp} = {size}, sent {len(data)}")
        ftp.rename(tmp, name)

    def close(self) -> None:
        if self.ftp is not None:
            try:
                self.ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                pass
        self.drop()


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sec110_sim", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2121)
    ap.add_argument("--user", default="sec110")
    ap.add_argument("--password", default="sec110")
    ap.add_argument("--size", type=int, default=64 * 1024, help="bytes per file")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--interval", type=float, default=5.0, help="seconds between file starts")
    g.add_argument("--rate", type=float, help="files per second (overrides --interval)")
    ap.add_argument("--count", type=int, default=0, help="files to upload (0 = until stopped)")
    ap.add_argument("--abort-fraction", type=float, default=0.0, help="share cut mid-way")
    m = ap.add_mutually_exclusive_group()
    m.add_argument("--passive", dest="active", action="store_false", help="PASV (default)")
    m.add_argument("--active", dest="active", action="store_true", help="PORT")
    ap.add_argument("--dir", default="", help="device folder to MKD/CWD into (e.g. sec110-01)")
    ap.add_argument("--prefix", default="run_", help="file name prefix")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=30.0, help="socket timeout [s]")
    ap.add_argument("--retry-max", type=float, default=5.0, help="longest reconnect delay [s]")
    ap.add_argument("--chunk-delay", type=float, default=0.0, help="sleep per 64 KiB [s]")
    ap.add_argument("--log", default="", help="append one JSON line per file here")
    return ap


def _stop_on_signals() -> threading.Event:
    """An event set by the first SIGINT/SIGTERM."""
    stop = threading.Event()

    def on_signal(signum, frame):
        # Repeats are ignored: the first one already asked us to stop. SIG_IGN (not this
        # handler) also covers interpreter shutdown, where Python resets its handlers to the
        # default action and a late repeat would kill the process.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if not stop.is_set():
            print(f"[sec110_sim] signal {signum}: stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def _record(a, name: str, data: bytes, abort: bool) -> None:
    """One JSON line per file in --log (what tests and the bench compare against)."""
    rec = {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
           "aborted": abort, "dir": a.dir, "t": time.time()}  # fmt: skip
    if a.log:
        with open(a.log, "a") as f:
            f.write(json.dumps(rec) + "\n")
    print(f"[sec110_sim] {'aborted' if abort else 'uploaded'} {name} ({len(data)} B)",
          flush=True)  # fmt: skip


def _run(a, up: Uploader, stop: threading.Event, interval: float) -> None:
    rng = random.Random(a.seed)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    i = 0
    next_t = time.monotonic()
    while not stop.is_set() and (a.count == 0 or i < a.count):
        name = f"{a.prefix}{stamp}_{i:05d}.csv"
        data = make_payload(rng, a.size, i)
        abort = rng.random() < a.abort_fraction
        try:
            up.upload(name, data, abort)
        except (OSError, EOFError, ftplib.Error) as e:
            print(f"[sec110_sim] upload of {name} failed: {e}; reconnecting", flush=True)
            up.drop()
            stop.wait(up.backoff.failed())
            continue  # same index again
        _record(a, name, data, abort)
        i += 1
        next_t += interval
        stop.wait(max(0.0, next_t - time.monotonic()))


def main(argv=None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if a.size < 0 or not 0.0 <= a.abort_fraction <= 1.0:
        ap.error("--size must be >= 0 and --abort-fraction within [0, 1]")
    interval = 1.0 / a.rate if a.rate else a.interval
    stop = _stop_on_signals()
    up = Uploader(a, stop)
    code = 0
    try:
        _run(a, up, stop, interval)
    except StopRequestedError:
        pass
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        up.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
