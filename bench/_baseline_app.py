#!/usr/bin/env python3
"""The one-process design the graph replaces, rebuilt as a baseline for bench/cost.py (not a
benchmark: tools/run_bench.sh skips `_*.py`).

That design's app.py, without Flask (not in the venv): a pyserial ``readline()`` thread reading the
PBT at 800 Hz into numpy ring buffers (4000 x 3: time, value, envelope), an envelope/threshold
event detector per sample in that thread, and a 20 Hz emit loop that sends every connected
WebSocket client the samples since the last emit as a Socket.IO-style JSON text message
(``42["pbt_data", {...}]``, encoded once per emit, like a broadcast). Events go out at once
(``pbt_event``). One thread per client connection, as Flask-SocketIO's threading mode does. The
WebSocket server is a minimal RFC 6455 one written here (handshake, unmasked server text frames;
client frames are read and dropped).

``--clients N --url ws://...`` instead runs N counting clients in one asyncio process (the
load side of the bench): each reads and decodes every frame; at exit it writes one JSON line
with messages per client and the receive times of the events (for detection latency).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
BUFFER_SIZE = 4000
EMIT_INTERVAL = 0.05  # 20 Hz
THRESHOLD, HYSTERESIS = 20.0, 5.0
BASELINE_TAU, RELEASE_TAU, RATE = 2.0, 0.002, 800.0


class App:
    def __init__(self, port: str, baud: int):
        import numpy as np
        import serial

        self.np = np
        self.ser = serial.Serial(port, baud, timeout=1.0)
        self.buf = np.zeros((BUFFER_SIZE, 3), dtype=np.float64)  # time, value, envelope
        self.head = 0  # samples written so far
        self.lock = threading.Lock()
        self.clients: list[socket.socket] = []
        self.clients_lock = threading.Lock()
        self.stop = threading.Event()
        self.events: list[dict] = []

    # -- serial thread -------------------------------------------------------------------------
    def reader(self) -> None:
        import math

        a_rel = 1.0 - math.exp(-1.0 / (RELEASE_TAU * RATE))
        a_base = 1.0 - math.exp(-1.0 / (BASELINE_TAU * RATE))
        base = env = None
        active, peak, peak_i, peak_t, start_i = False, 0.0, 0, 0.0, 0
        idx = -1
        self.ser.readline()  # a partial first line
        while not self.stop.is_set():
            line = self.ser.readline()
            if not line:
                continue
            try:
                x = float(line)
            except ValueError:
                continue
            t = time.time()
            idx += 1
            if base is None:
                base = env = x
            env = x if x > env else env + a_rel * (x - env)
            with self.lock:
                row = self.buf[self.head % BUFFER_SIZE]
                row[0], row[1], row[2] = t, x, env
                self.head += 1
            e = env - base
            if active:
                if x > peak:
                    peak, peak_i, peak_t = x, idx, t
                if e < THRESHOLD - HYSTERESIS:
                    active = False
                    ev = {
                        "peak_index": peak_i,
                        "end_index": idx - 1,
                        "start_index": start_i,
                        "peak_time": peak_t,
                        "amplitude": peak - base,
                    }
                    self.broadcast(self.packet("pbt_event", ev))
                continue
            if e > THRESHOLD:
                active, peak, peak_i, peak_t, start_i = True, x, idx, t, idx
                continue
            base += a_base * (x - base)

    # -- emit thread ---------------------------------------------------------------------------
    def emitter(self) -> None:
        last = 0
        next_t = time.monotonic()
        while not self.stop.is_set():
            next_t += EMIT_INTERVAL
            time.sleep(max(0.0, next_t - time.monotonic()))
            with self.lock:
                head = self.head
                n = min(head - last, BUFFER_SIZE)
                idx = (self.np.arange(head - n, head)) % BUFFER_SIZE
                chunk = self.buf[idx].copy()
            last = head
            if not n:
                continue
            data = {
                "t": chunk[:, 0].tolist(),
                "values": chunk[:, 1].tolist(),
                "envelope": chunk[:, 2].tolist(),
                "first": head - n,
            }
            self.broadcast(self.packet("pbt_data", data))

    @staticmethod
    def packet(name: str, data) -> bytes:
        payload = ("42" + json.dumps([name, data], separators=(",", ":"))).encode()
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x81, 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 127, n)
        return head + payload

    def broadcast(self, frame: bytes) -> None:
        with self.clients_lock:
            clients = list(self.clients)
        for c in clients:
            try:
                c.sendall(frame)
            except OSError:
                self.drop(c)

    def drop(self, c: socket.socket) -> None:
        with self.clients_lock:
            if c in self.clients:
                self.clients.remove(c)
        try:
            c.close()
        except OSError:
            pass

    # -- WebSocket server ----------------------------------------------------------------------
    def serve(self, port: int) -> None:
        srv = socket.create_server(("127.0.0.1", port), reuse_port=False, backlog=128)
        srv.settimeout(0.5)
        while not self.stop.is_set():
            try:
                c, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.client, args=(c,), daemon=True).start()
        srv.close()

    def client(self, c: socket.socket) -> None:
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                d = c.recv(4096)
                if not d:
                    return
                req += d
            key = next(
                ln.split(b":", 1)[1].strip()
                for ln in req.split(b"\r\n")
                if ln.lower().startswith(b"sec-websocket-key:")
            )
            acc = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n"
            )
            c.settimeout(None)
            with self.clients_lock:
                self.clients.append(c)
            while c.recv(4096):  # client frames (pings, acks): read and dropped
                pass
        except (OSError, StopIteration):
            pass
        finally:
            self.drop(c)


def run_app(a) -> int:
    app = App(a.serial, a.baud)
    signal.signal(signal.SIGTERM, lambda *_: app.stop.set())
    threading.Thread(target=app.reader, daemon=True, name="serial").start()
    threading.Thread(target=app.emitter, daemon=True, name="emit").start()
    threading.Thread(target=app.serve, args=(a.port,), daemon=True, name="ws").start()
    try:
        while not app.stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        app.stop.set()
    return 0


# -- the load: counting clients ------------------------------------------------------------------
async def _client(host: str, port: int, st: dict, events: list) -> None:
    r, w = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16))
    w.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    await r.readuntil(b"\r\n\r\n")
    st["connected"] += 1
    while True:
        h = await r.readexactly(2)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await r.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await r.readexactly(8))[0]
        payload = await r.readexactly(n)
        name, data = json.loads(payload[2:])
        st["messages"] += 1
        if name == "pbt_event":
            events.append((time.time(), data))
        elif name == "pbt_data":
            st["samples"] += len(data["values"])


async def run_clients(a) -> int:
    host, port = a.url.split("//", 1)[1].rsplit(":", 1)
    stats = [{"connected": 0, "messages": 0, "samples": 0} for _ in range(a.clients)]
    events: list[list] = [[] for _ in range(a.clients)]
    tasks = [
        asyncio.create_task(_client(host, int(port), s, e))
        for s, e in zip(stats, events, strict=True)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for t in tasks:
        t.cancel()
    out = {"clients": stats, "events_client0": events[0] if events else []}
    with open(a.out, "w") as f:
        json.dump(out, f)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serial", help="serial port (the pbt_sim pty)")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--port", type=int, default=5000, help="WebSocket port")
    ap.add_argument("--clients", type=int, default=0, help="run N counting clients instead")
    ap.add_argument("--url", default="ws://127.0.0.1:5000")
    ap.add_argument("--out", default="clients.json")
    a = ap.parse_args()
    if a.clients:
        return asyncio.run(run_clients(a))
    return run_app(a)


if __name__ == "__main__":
    sys.exit(main())
