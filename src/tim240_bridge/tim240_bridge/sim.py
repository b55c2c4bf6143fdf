"""tim240_sim: a TiM240 on TCP speaking SOPAS CoLa-A and CoLa-B, for the graph and the tests.

Answers the start-up dialogue with typed answers in the dialect it speaks and, like the device,
nothing to a request in the other one (sick_scan_xd then retries in that dialect); honours
``EIHstCola`` (the dialect survives reconnects, as on the device), refuses unknown commands with
``sFA``, and streams LMDscandata at 15 Hz only after ``sEN LMDscandata 1``. Scans are synthesized
(a room, an object moving through the default zones, noise, missing echoes) or replayed from
captures of other SICK scanners, resampled to the TiM240's beams (``simscan``), with fresh
counters and device time. Fault knobs drop, stall, corrupt, truncate and pollute the stream;
with ``--fault-log`` every injected fault is one JSON line, so tests can count exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tim240_bridge import cola, simscan
from tim240_bridge import scandata as sd
from tim240_bridge.simscan import Scene

__all__ = ["Device", "Scene", "build_parser", "main", "parse_args"]

FIRMWARE = "V1.10"
LOCATION = "not defined"
SERIAL = 23160042


def _load_replay(args) -> simscan.Replay:
    """The capture's telegrams, or exit naming what is wrong with it."""
    from tim240_bridge.captures import scandata_payloads

    try:
        scans = [sd.decode(cola.BINARY, p) for p in scandata_payloads(args.replay)]
        return simscan.Replay(scans, sd.SCANNER_TYPES[args.replay_scanner])
    except (OSError, ValueError) as e:  # ColaError is a ValueError
        raise SystemExit(f"tim240_sim: cannot replay {args.replay}: {e}") from None


class Device:
    """State that survives connections: dialect, scan configuration, counters, clock."""

    def __init__(self, args):
        self.args = args
        self.dialect = cola.BINARY if args.protocol == "binary" else cola.ASCII
        self.rng = np.random.default_rng(args.seed)
        self.prng = random.Random(args.seed)
        self.scene = Scene(args, self.rng)
        self.res = simscan.STEP  # 1/10000 deg
        self.start, self.stop = simscan.START, simscan.STOP
        self.out_start, self.out_stop = self.start, self.stop
        self.cfg = [1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1]  # LMDscandatacfg
        self.telegram = 0
        self.scan_no = 0
        self.t0 = time.monotonic()
        self.us0 = self.prng.randrange(1 << 32)
        self.lock = threading.Lock()
        self.replay = _load_replay(args) if args.replay else None
        self._jumped = False

    def jump_clock(self, seconds: float) -> float:
        """Jump the device clock forward by ``seconds``, or back again if it is jumped."""
        j = -seconds if self._jumped else seconds
        self._jumped = not self._jumped
        self.us0 = (self.us0 + int(j * 1e6)) & 0xFFFFFFFF
        return j

    def device_us(self, mono: float) -> int:
        dt = (mono - self.t0) * (1.0 + self.args.clock_drift_ppm * 1e-6)
        return (self.us0 + int(dt * 1e6)) & 0xFFFFFFFF

    def next_scan(self, now: float) -> sd.Scan:
        with self.lock:
            self.telegram = (self.telegram + 1) & 0xFFFF
            self.scan_no = (self.scan_no + 1) & 0xFFFF
        tx = self.device_us(now)
        period = 1.0 / self.args.rate
        start_us = (tx - int(period * 0.5e6)) & 0xFFFFFFFF
        if self.replay is not None and self.args.replay_unchanged:
            out = self.replay.recorded()
        else:
            n = (self.out_stop - self.out_start) // self.res + 1
            ang = self.out_start + self.res * np.arange(n)
            if self.replay is not None:
                beams = self.replay.beams(ang)
            else:
                beams = self.scene.beams(now - self.t0, ang)
            spec = simscan.TelegramSpec(self.out_start, self.res, tuple(self.cfg),
                                        self.args.rate, self.args.serial)  # fmt: skip
            out = simscan.telegram(beams, spec)
        out.telegram_counter, out.scan_counter = self.telegram, self.scan_no
        out.time_since_power_up_us, out.time_of_transmission_us = start_us, tx
        return out


class Faults:
    """Periodic fault schedule of one connection (after --faults-after once streaming)."""

    KINDS = ("drop", "stall", "corrupt", "truncate", "garbage", "zero_step", "nan_scale",
             "clock_jump", "start_jump")  # fmt: skip

    def __init__(self, args, start: float):
        self.a = args
        self.next = {}
        for k in self.KINDS:
            every = getattr(args, f"{k}_every")
            if every and every > 0:
                self.next[k] = start + args.faults_after + every
        self.stall_until = 0.0

    def due(self, kind: str, now: float) -> bool:
        t = self.next.get(kind)
        if t is None or now < t:
            return False
        self.next[kind] = now + getattr(self.a, f"{kind}_every")
        return True


@dataclass(frozen=True)
class Request:
    """A command the device knows, its fields decoded."""

    ctype: str
    name: str
    vals: list
    rtype: str  # the reply's command type
    rep_kinds: tuple


class Connection:
    def __init__(self, dev: Device, sock: socket.socket, peer, stop: threading.Event, log):
        self.dev, self.sock, self.peer, self.stop, self.log = dev, sock, peer, stop, log
        self.a = dev.args
        self.framer = cola.Framer()
        self.access = 0
        self.streaming = False
        self.faults: Faults | None = None
        self.ignored = 0  # requests in the other dialect

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, ctype, name, kinds=(), values=()):
        self.send(cola.command(self.dev.dialect, ctype, name, kinds, values))

    def handle(self, f: cola.Frame) -> None:
        if f.dialect != self.dev.dialect:
            self._ignore(f)  # the device stays silent; the client retries in the other dialect
            return
        req = self._request(f)
        if req is None:
            return
        if req.ctype == "sWN" and req.name != "EIHstCola" and self.access < 3:
            self.send(cola.sfa(self.dev.dialect, 10))
            return
        fixed = _FIXED_REPLIES.get((req.ctype, req.name))
        if fixed is not None:
            self.reply(req.rtype, req.name, req.rep_kinds, fixed)
            return
        _HANDLERS[(req.ctype, req.name)](self, req)

    def _ignore(self, f: cola.Frame) -> None:
        if not self.ignored:
            print(f"tim240_sim: {self.peer[0]}:{self.peer[1]} sent {cola.DIALECT_NAMES[f.dialect]}"
                  f" while speaking {cola.DIALECT_NAMES[self.dev.dialect]}: no answer",
                  flush=True)  # fmt: skip
        self.ignored += 1

    def _request(self, f: cola.Frame) -> Request | None:
        """The command of a frame with its fields decoded; None when refused with sFA."""
        d = self.dev.dialect
        try:
            ctype, name, rest = cola.split_command(f.dialect, f.payload)
        except cola.FieldError:
            self.send(cola.sfa(d, 12))
            return None
        spec = cola.DIALOGUE.get((ctype, name))
        if spec is None:
            code = {"sRN": 3, "sWN": 3, "sMN": 2, "sEN": 15}.get(ctype, 12)
            self.send(cola.sfa(d, code))
            self.log("unknown", command=f"{ctype} {name}")
            return None
        req_kinds, rep_kinds = spec
        try:
            vals = cola.decode_fields(f.dialect, req_kinds, rest)
        except cola.FieldError:
            self.send(cola.sfa(d, 5))
            return None
        return Request(ctype, name, vals, cola.REPLY_TYPE[ctype], rep_kinds)

    # One handler per command that changes state (under _HANDLERS).
    def _set_access_mode(self, r: Request) -> None:
        level, pw = r.vals
        ok = level == 3 and pw == self.a.password
        self.access = level if ok else 0
        self.reply(r.rtype, r.name, r.rep_kinds, (int(ok),))

    def _switch_dialect(self, r: Request) -> None:
        dev = self.dev
        if self.access < 3:
            self.send(cola.sfa(dev.dialect, 10))
            return
        self.reply(r.rtype, r.name)  # answered in the old dialect, then switched
        dev.dialect = cola.BINARY if r.vals[0] else cola.ASCII
        self.log("dialect", dialect=cola.DIALECT_NAMES[dev.dialect])

    def _read_output_range(self, r: Request) -> None:
        dev = self.dev
        self.reply(r.rtype, r.name, r.rep_kinds, (1, dev.res, dev.out_start, dev.out_stop))

    def _write_output_range(self, r: Request) -> None:
        dev = self.dev
        _, res, lo, hi = r.vals
        if res != dev.res or not dev.start <= lo < hi <= dev.stop:
            self.send(cola.sfa(dev.dialect, 5))
            return
        dev.out_start = dev.start + (lo - dev.start + res - 1) // res * res
        dev.out_stop = dev.start + (hi - dev.start) // res * res
        self.reply(r.rtype, r.name)

    def _write_scan_config(self, r: Request) -> None:
        self.dev.cfg = list(r.vals)
        self.reply(r.rtype, r.name)

    def _read_scan_config(self, r: Request) -> None:
        self.reply(r.rtype, r.name, r.rep_kinds, self.dev.cfg)

    def _run_command(self, r: Request) -> None:
        self.access = 0
        self.reply(r.rtype, r.name, r.rep_kinds, (1,))

    def _stream(self, r: Request) -> None:
        self.streaming = bool(r.vals[0])
        self.reply(r.rtype, r.name, r.rep_kinds, (r.vals[0],))
        if self.streaming and self.faults is None:
            self.faults = Faults(self.a, time.monotonic())

    def send_scan(self, now: float) -> bool:
        """One scan, faults applied; False when the connection is to be dropped."""
        dev, fl = self.dev, self.faults
        if fl is not None and now < fl.stall_until:
            return True
        if fl is not None and fl.due("stall", now):
            fl.stall_until = now + self.a.stall_duration
            self.log("stall", duration=self.a.stall_duration)
            return True
        if fl is not None and fl.due("drop", now):
            self.log("drop")
            return False
        if fl is not None and fl.due("clock_jump", now):
            self.log("clock_jump", seconds=dev.jump_clock(self.a.clock_jump))
        s = self._mutated(dev.next_scan(now), now)
        data = cola.frame(dev.dialect, sd.encode(dev.dialect, s))
        if fl is not None and fl.due("garbage", now):
            g = bytes(self.dev.prng.choice(_GARBAGE) for _ in range(self.a.garbage_bytes))
            self.send(g)
            self.log("garbage", bytes=len(g))
        if fl is not None and fl.due("corrupt", now):
            b = bytearray(data)
            if dev.dialect == cola.BINARY:
                b[-1] ^= 0x5A
            else:
                b[len(b) // 2] = 0x01
            data = bytes(b)
            self.log("corrupt", bytes=len(data))
        elif fl is not None and fl.due("truncate", now):
            data = data[: len(data) // 2]
            self.log("truncate", bytes=len(data))
        self.send(data)
        return True

    def _mutated(self, s: sd.Scan, now: float) -> sd.Scan:
        """The scan as a misbehaving device would send it: a telegram no TiM240 sends."""
        fl = self.faults
        if fl is None:
            return s
        if fl.due("zero_step", now):
            s.channels16 = [dataclasses.replace(c, step=0) for c in s.channels16]
            s.channels8 = [dataclasses.replace(c, step=0) for c in s.channels8]
            self.log("zero_step")
        elif fl.due("nan_scale", now):
            s.channels16 = [dataclasses.replace(c, scale=float("nan"))
                            if c.name.startswith("DIST") else c for c in s.channels16]  # fmt: skip
            self.log("nan_scale")
        if fl.due("start_jump", now):
            j = int(self.a.clock_jump * 1e6)
            s.time_since_power_up_us = (s.time_since_power_up_us - j) & 0xFFFFFFFF
            self.log("start_jump", seconds=-self.a.clock_jump)
        return s

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ)
        period = 1.0 / self.a.rate
        due = time.monotonic() + period
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                timeout = max(0.0, min(due - now, 0.2)) if self.streaming else 0.2
                for _ in sel.select(timeout):
                    try:
                        data = self.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        return
                    self.sock.setblocking(True)
                    for f in self.framer.feed(data):
                        self.handle(f)
                    self.sock.setblocking(False)
                now = time.monotonic()
                if self.streaming and now >= due:
                    self.sock.setblocking(True)
                    ok = self.send_scan(now)
                    self.sock.setblocking(False)
                    if not ok:
                        return
                    due += period
                    if due < now - period:  # fell behind (loaded box): no burst
                        due = now + period
                elif not self.streaming:
                    due = now + period
        except OSError:
            pass
        finally:
            sel.close()
            try:
                self.sock.close()
            except OSError:
                pass


_GARBAGE = bytes(b for b in range(256) if b != 0x02)
# Read-only answers that never change.
_FIXED_REPLIES = {
    ("sRN", "SCdevicestate"): (1,),
    ("sRN", "FirmwareVersion"): (FIRMWARE,),
    ("sRN", "ODoprh"): (1234,),
    ("sRN", "ODpwrc"): (56,),
    ("sRN", "LocationName"): (LOCATION,),
}
_HANDLERS = {
    ("sMN", "SetAccessMode"): Connection._set_access_mode,
    ("sWN", "EIHstCola"): Connection._switch_dialect,
    ("sRN", "LMPoutputRange"): Connection._read_output_range,
    ("sWN", "LMPoutputRange"): Connection._write_output_range,
    ("sWN", "LMDscandatacfg"): Connection._write_scan_config,
    ("sRN", "LMDscandatacfg"): Connection._read_scan_config,
    ("sMN", "Run"): Connection._run_command,
    ("sEN", "LMDscandata"): Connection._stream,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tim240_sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2111, help="0 = pick a free port")
    p.add_argument("--port-file", type=Path, help="write the bound port here")
    p.add_argument(
        "--protocol",
        "--dialect",
        dest="protocol",
        choices=("ascii", "binary"),
        default="ascii",
        help="initial dialect (TiM240 factory setting: ascii)",
    )
    p.add_argument(
        "--replay",
        type=Path,
        help="*.pcapng.json or .pcapng capture to replay as a TiM240 sends it: each telegram "
        "resampled to 241 points over +-120 deg at 1 deg",
    )
    p.add_argument(
        "--replay-scanner",
        choices=sorted(sd.SCANNER_TYPES),
        default="sick_tim_7xx",
        help="scanner type of the capture: its angle shift maps the captured beams onto the "
        "TiM240's (default: %(default)s, the TiM7xx/LMS1xx captures' -90 deg)",
    )
    p.add_argument(
        "--replay-unchanged",
        action="store_true",
        help="send the capture's telegrams as recorded: another model's telegrams (their "
        "points and angles), which a TiM240 driver such as sick_scan_xd rejects",
    )
    p.add_argument("--rate", type=float, default=15.0, help="scans per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--serial", type=int, default=SERIAL)
    p.add_argument(
        "--password",
        type=lambda s: int(s, 16),
        default=0xF4724744,
        help="client password hash (hex)",
    )
    p.add_argument("--clock-drift-ppm", type=float, default=30.0)
    scene = p.add_argument_group("synthesized scene (metres)")
    scene.add_argument("--room-front", type=float, default=4.0)
    scene.add_argument("--room-back", type=float, default=2.0)
    scene.add_argument("--room-half-width", type=float, default=2.5)
    scene.add_argument("--object-x", type=float, default=1.5)
    scene.add_argument("--object-y", type=float, default=0.0, help="with --object-speed 0")
    scene.add_argument("--object-span", type=float, default=2.0)
    scene.add_argument("--object-speed", type=float, default=0.8, help="m/s")
    scene.add_argument("--object-radius", type=float, default=0.2)
    scene.add_argument("--no-object", action="store_true")
    scene.add_argument("--noise", type=float, default=0.01, help="range noise sigma")
    scene.add_argument("--invalid-rate", type=float, default=0.01, help="share of no-echo")
    f = p.add_argument_group("faults (periods in seconds; 0 = off)")
    f.add_argument("--faults-after", type=float, default=2.0,
                   help="seconds of clean streaming first")  # fmt: skip
    f.add_argument("--drop-every", type=float, default=0.0, help="close the connection")
    f.add_argument("--stall-every", type=float, default=0.0, help="stop sending scans")
    f.add_argument("--stall-duration", type=float, default=3.0)
    f.add_argument("--corrupt-every", type=float, default=0.0, help="bad checksum")
    f.add_argument("--truncate-every", type=float, default=0.0, help="send half a frame")
    f.add_argument("--garbage-every", type=float, default=0.0, help="random bytes")
    f.add_argument("--garbage-bytes", type=int, default=37)
    f.add_argument("--zero-step-every", type=float, default=0.0,
                   help="a telegram with angle step 0")  # fmt: skip
    f.add_argument("--nan-scale-every", type=float, default=0.0,
                   help="a telegram with a NaN DIST scale factor")  # fmt: skip
    f.add_argument("--clock-jump-every", type=float, default=0.0,
                   help="jump the device clock by --clock-jump, forward, back, ...")  # fmt: skip
    f.add_argument("--start-jump-every", type=float, default=0.0,
                   help="a telegram whose scan-start counter is --clock-jump s early")  # fmt: skip
    f.add_argument("--clock-jump", type=float, default=1360.0, help="seconds")
    f.add_argument("--fault-log", type=Path, help="JSON line per injected fault")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.replay_unchanged and not args.replay:
        parser.error("--replay-unchanged needs --replay")
    return args


def _source(args) -> str:
    if not args.replay:
        return "synthesized scene"
    how = "as recorded" if args.replay_unchanged else f"as a TiM240 ({args.replay_scanner})"
    return f"replaying {args.replay} {how}"


def main(argv=None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum, _frame):
        # Repeats (a terminal Ctrl-C under launch arrives twice) are ignored; SIG_IGN rather
        # than this handler also covers interpreter shutdown, where Python restores the default.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    dev = Device(args)
    log_lock = threading.Lock()

    def log(kind, **kw):
        if args.fault_log is None:
            return
        with log_lock, open(args.fault_log, "a") as fh:
            fh.write(json.dumps({"fault": kind, "t": time.time(), **kw}) + "\n")

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((args.host, args.port))
    except OSError as e:
        print(f"tim240_sim: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    srv.listen(4)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(args.port_file)
    src = _source(args)
    print(f"tim240_sim: listening on {args.host}:{port} "
          f"({cola.DIALECT_NAMES[dev.dialect]}, {src})", flush=True)  # fmt: skip
    threads = []
    while not stop.is_set():
        try:
            sock, peer = srv.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print(f"tim240_sim: client {peer[0]}:{peer[1]}", flush=True)
        conn = Connection(dev, sock, peer, stop, log)
        t = threading.Thread(target=conn.run, daemon=True)
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]
    srv.close()
    for t in threads:
        t.join(2.0)
    print("tim240_sim: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
