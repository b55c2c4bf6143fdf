"""pigpiod_sim: a pigpiod stand-in speaking pigpio's socket protocol, recording the waves.

Tests point the real ``pigpio`` client library at it, so the pigpio backend is exercised end to
end without a Pi. Protocol: each request is 16 bytes ``cmd, p1, p2, p3`` (uint32 LE) followed by
``p3`` extension bytes; each reply echoes ``cmd, p1, p2`` and a signed int32 result. A socket that
sent NOIB becomes a notification stream (we never notify) and is closed on NC.

Implemented: MODES MODEG READ WRITE BR1 TICK HWVER NB NC PIGPV WVCLR WVAG WVBSY WVHLT WVNEW WVCRE
WVDEL WVTX WVTXM NOIB. Waves are single-GPIO in practice: WVAG appends pulses (no time merge).
Every transmission is one JSON line in ``--record``: time, command, wave id, mode, width_us, gpio.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time

CMD = {
    "MODES": 0, "MODEG": 1, "READ": 3, "WRITE": 4, "BR1": 10, "TICK": 16, "HWVER": 17, "NB": 19,
    "NC": 21, "PIGPV": 26, "WVCLR": 27, "WVAG": 28, "WVBSY": 32, "WVHLT": 33, "WVCRE": 49,
    "WVDEL": 50, "WVTX": 51, "WVNEW": 53, "NOIB": 99, "WVTXM": 100,
}  # fmt: skip
NAMES = {v: k for k, v in CMD.items()}
PI_BAD_WAVE_ID = -66
PI_EMPTY_WAVEFORM = -69
PI_UNKNOWN_COMMAND = -123
_REQ = struct.Struct("<IIII")


def wave_width(pulses: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(gpio bit, microseconds from the pulse that sets it to the one that clears it)."""
    on_at = None
    t = 0
    for on, off, delay in pulses:
        if on and on_at is None:
            on_at, bit = t, on
        elif off and on_at is not None and off & bit:
            return bit, t - on_at
        t += delay
    return 0, 0


class State:
    def __init__(self, record: str | None, delays: dict[int, float]):
        self.lock = threading.Lock()
        self.modes: dict[int, int] = {}
        self.levels = 0
        self.pending: list[tuple[int, int, int]] = []
        self.waves: dict[int, list[tuple[int, int, int]]] = {}
        self.busy_until = 0.0
        self.counts: dict[str, int] = {}
        self.delays = delays
        self.t0 = time.monotonic()
        self.handles = 0
        self.rec = open(record, "a") if record else None  # noqa: SIM115

    def log(self, **kw) -> None:
        if self.rec:
            self.rec.write(json.dumps({"t": time.time(), **kw}) + "\n")
            self.rec.flush()

    def handle(self, cmd: int, p1: int, p2: int, ext: bytes) -> int:
        name = NAMES.get(cmd, str(cmd))
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            now = time.monotonic()
            if cmd == CMD["MODES"]:
                self.modes[p1] = p2
                return 0
            if cmd == CMD["MODEG"]:
                return self.modes.get(p1, 0)
            if cmd == CMD["WRITE"]:
                self.levels = (self.levels | (1 << p1)) if p2 else (self.levels & ~(1 << p1))
                return 0
            if cmd == CMD["READ"]:
                return (self.levels >> p1) & 1
            if cmd == CMD["BR1"]:
                return self.levels
            if cmd == CMD["TICK"]:
                return int((now - self.t0) * 1e6) & 0x7FFFFFFF
            if cmd == CMD["HWVER"]:
                return 0xA03111
            if cmd == CMD["PIGPV"]:
                return 79
            if cmd in (CMD["NB"], CMD["NC"]):
                return 0
            if cmd == CMD["NOIB"]:
                self.handles += 1
                return self.handles - 1
            if cmd in (CMD["WVCLR"], CMD["WVNEW"]):
                self.pending = []
                if cmd == CMD["WVCLR"]:
                    self.waves = {}
                    self.log(cmd="WVCLR")
                return 0
            if cmd == CMD["WVAG"]:
                n = len(ext) // 12
                self.pending += [struct.unpack_from("<III", ext, 12 * i) for i in range(n)]
                return len(self.pending)
            if cmd == CMD["WVCRE"]:
                if not self.pending:
                    return PI_EMPTY_WAVEFORM
                wid = next(i for i in range(len(self.waves) + 1) if i not in self.waves)
                self.waves[wid] = self.pending
                self.pending = []
                bit, width = wave_width(self.waves[wid])
                self.log(cmd="WVCRE", wave=wid, gpio_bits=bit, width_us=width)
                return wid
            if cmd == CMD["WVDEL"]:
                if self.waves.pop(p1, None) is None:
                    return PI_BAD_WAVE_ID
                return 0
            if cmd in (CMD["WVTX"], CMD["WVTXM"]):
                pulses = self.waves.get(p1)
                if pulses is None:
                    return PI_BAD_WAVE_ID
                bit, width = wave_width(pulses)
                total = sum(p[2] for p in pulses) * 1e-6
                mode = p2 if cmd == CMD["WVTXM"] else 0
                start = max(now, self.busy_until) if mode in (2, 3) else now  # *_SYNC waits
                self.busy_until = start + total
                self.log(cmd=name, wave=p1, mode=mode, gpio_bits=bit, width_us=width)
                return 2 * len(pulses)
            if cmd == CMD["WVBSY"]:
                return 1 if now < self.busy_until else 0
            if cmd == CMD["WVHLT"]:
                self.busy_until = now
                return 0
            return PI_UNKNOWN_COMMAND


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_client(sock: socket.socket, st: State) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    notify = False
    try:
        while True:
            req = _recv_exact(sock, 16)
            if req is None:
                return
            cmd, p1, p2, p3 = _REQ.unpack(req)
            ext = _recv_exact(sock, p3) if p3 else b""
            if ext is None:
                return
            if notify and cmd == CMD["NC"]:
                return  # closing the stream ends the client's notification thread
            d = st.delays.get(cmd)
            if d:
                time.sleep(d)
            res = st.handle(cmd, p1, p2, ext)
            sock.sendall(struct.pack("<IIIi", cmd, p1, p2, res))
            if cmd == CMD["NOIB"]:
                notify = True
    except OSError:
        return
    finally:
        sock.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pigpiod_sim", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8888, help="TCP port (0 = any free port)")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--record", help="JSON lines: every wave created and transmitted")
    p.add_argument("--delay", action="append", default=[], metavar="CMD=SECONDS",
                   help="answer CMD (e.g. WVTXM) only after SECONDS: a stuck pigpiod")  # fmt: skip
    a = p.parse_args(argv)
    delays = {}
    for d in a.delay:
        k, _, v = d.partition("=")
        delays[CMD[k.upper()]] = float(v)
    st = State(a.record, delays)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(8)
    port = srv.getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os

        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"pigpiod_sim: listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()
        srv.close()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except OSError:
            break
        threading.Thread(target=serve_client, args=(conn, st), daemon=True).start()
    print(f"pigpiod_sim: commands {json.dumps(st.counts)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
