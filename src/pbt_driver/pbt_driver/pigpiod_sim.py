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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Request:
    cmd: int
    name: str
    p1: int
    p2: int
    ext: bytes
    now: float  # monotonic, when it was handled


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
            op = _HANDLERS.get(cmd)
            if op is None:
                return PI_UNKNOWN_COMMAND
            return op(self, Request(cmd, name, p1, p2, ext, time.monotonic()))

    # One handler per command (under the lock): the reply's result.
    def _modes(self, r: Request) -> int:
        self.modes[r.p1] = r.p2
        return 0

    def _modeg(self, r: Request) -> int:
        return self.modes.get(r.p1, 0)

    def _write(self, r: Request) -> int:
        bit = 1 << r.p1
        self.levels = (self.levels | bit) if r.p2 else (self.levels & ~bit)
        return 0

    def _read(self, r: Request) -> int:
        return (self.levels >> r.p1) & 1

    def _br1(self, r: Request) -> int:
        return self.levels

    def _tick(self, r: Request) -> int:
        return int((r.now - self.t0) * 1e6) & 0x7FFFFFFF

    def _noib(self, r: Request) -> int:
        self.handles += 1
        return self.handles - 1

    def _wave_clear(self, r: Request) -> int:
        self.pending = []
        if r.cmd == CMD["WVCLR"]:
            self.waves = {}
            self.log(cmd="WVCLR")
        return 0

    def _wave_add(self, r: Request) -> int:
        n = len(r.ext) // 12
        self.pending += [struct.unpack_from("<III", r.ext, 12 * i) for i in range(n)]
        return len(self.pending)

    def _wave_create(self, r: Request) -> int:
        if not self.pending:
            return PI_EMPTY_WAVEFORM
        wid = next(i for i in range(len(self.waves) + 1) if i not in self.waves)
        self.waves[wid] = self.pending
        self.pending = []
        bit, width = wave_width(self.waves[wid])
        self.log(cmd="WVCRE", wave=wid, gpio_bits=bit, width_us=width)
        return wid

    def _wave_delete(self, r: Request) -> int:
        return 0 if self.waves.pop(r.p1, None) is not None else PI_BAD_WAVE_ID

    def _wave_send(self, r: Request) -> int:
        pulses = self.waves.get(r.p1)
        if pulses is None:
            return PI_BAD_WAVE_ID
        bit, width = wave_width(pulses)
        total = sum(p[2] for p in pulses) * 1e-6
        mode = r.p2 if r.cmd == CMD["WVTXM"] else 0
        start = max(r.now, self.busy_until) if mode in (2, 3) else r.now  # *_SYNC waits
        self.busy_until = start + total
        self.log(cmd=r.name, wave=r.p1, mode=mode, gpio_bits=bit, width_us=width)
        return 2 * len(pulses)

    def _wave_busy(self, r: Request) -> int:
        return 1 if r.now < self.busy_until else 0

    def _wave_halt(self, r: Request) -> int:
        self.busy_until = r.now
        return 0


def _const(value: int):
    return lambda st, r: value


_HANDLERS = {
    CMD["MODES"]: State._modes, CMD["MODEG"]: State._modeg, CMD["WRITE"]: State._write,
    CMD["READ"]: State._read, CMD["BR1"]: State._br1, CMD["TICK"]: State._tick,
    CMD["HWVER"]: _const(0xA03111), CMD["PIGPV"]: _const(79), CMD["NB"]: _const(0),
    CMD["NC"]: _const(0), CMD["NOIB"]: State._noib, CMD["WVCLR"]: State._wave_clear,
    CMD["WVNEW"]: State._wave_clear, CMD["WVAG"]: State._wave_add,
    CMD["WVCRE"]: State._wave_create, CMD["WVDEL"]: State._wave_delete,
    CMD["WVTX"]: State._wave_send, CMD["WVTXM"]: State._wave_send,
    CMD["WVBSY"]: State._wave_busy, CMD["WVHLT"]: State._wave_halt,
}  # fmt: skip


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
