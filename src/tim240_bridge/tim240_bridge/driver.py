"""Native TiM240 driver: TCP transport, the start-up dialogue, streaming, reconnects. No ROS.

One thread owns the socket. It connects, runs the dialogue SICK's sick_scan_xd uses for a
TiM240 (no LMCstartmeas), then reads LMDscandata until the connection drops, the stream stalls
for ``timelimit`` or the device sends something it should not; each of those ends in a reconnect
after an exponential backoff. Decoded scans go to ``on_scan(scan, arrival)`` on this thread.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sensorhub_common.backoff import ExponentialBackoff
from tim240_bridge import cola
from tim240_bridge import scandata as sd

log = logging.getLogger("tim240_bridge.driver")


class StallError(cola.ColaError):
    """No telegram for timelimit seconds."""


class DialogueError(cola.ColaError):
    """The device's answer does not fit the dialogue (wrong reply, failed method...)."""


@dataclass
class DriverConfig:
    hostname: str = "192.168.0.1"
    port: int = 2111
    use_binary_protocol: bool = True
    password: int = 0xF4724744
    timelimit: float = 5.0
    connect_timeout: float = 3.0
    min_ang: float = -math.radians(120)  # ROS frame [rad]
    max_ang: float = math.radians(120)
    angle_shift_deg: float = 0.0
    intensity: bool = True
    intensity_resolution_16bit: bool = True
    time_flag: bool = False  # TiM240: sick_scan_xd switches the time block off
    set_output_range: bool = True
    backoff_min: float = 0.2
    backoff_max: float = 5.0


@dataclass
class DriverStats:
    connects: int = 0
    reconnects: int = 0
    scans: int = 0
    decode_errors: int = 0
    sfa: dict = field(default_factory=dict)  # name -> count
    unexpected_frames: int = 0
    stalls: int = 0
    connection_losses: int = 0
    protocol_errors: int = 0
    dialect_switches: int = 0
    bytes_received: int = 0


class NativeDriver:
    def __init__(
        self,
        cfg: DriverConfig,
        on_scan: Callable[[sd.Scan, float], None],
        on_event: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.cfg = cfg
        self.on_scan = on_scan
        self.on_event = on_event or (lambda level, msg: None)
        self.clock = clock
        self.framer = cola.Framer()
        self.stats = DriverStats()
        self.backoff = ExponentialBackoff(cfg.backoff_min, cfg.backoff_max)
        self.state = "starting"
        self.last_error = ""
        self.dialect = cola.BINARY if cfg.use_binary_protocol else cola.ASCII
        self.device_dialect = ""
        self.info: dict[str, str] = {}
        self.last_scan_mono = 0.0
        self.streaming_since = 0.0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._pending: list[cola.Frame] = []
        self._thread = threading.Thread(target=self._run, name="tim240-driver", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        s = self._sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                delay = self.backoff.next_try - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                self.stats.reconnects += 1
            first = False
            try:
                self._session()
            except (OSError, cola.ColaError) as e:
                if self._stop.is_set():
                    break
                kind = type(e).__name__
                if isinstance(e, StallError):
                    self.stats.stalls += 1
                elif isinstance(e, cola.ColaError):
                    self.stats.protocol_errors += 1
                else:
                    self.stats.connection_losses += 1
                self.last_error = f"{kind}: {e}"
                d = self.backoff.failed()
                self.state = "reconnecting"
                self.on_event("warn", f"{self.last_error}; reconnecting in {d:.1f} s")
            finally:
                self._close()
        self.state = "stopped"

    def _close(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        self.framer.reset()
        self._pending.clear()

    # -- I/O ------------------------------------------------------------------------------------
    def _read_frames(self, deadline: float) -> list[cola.Frame]:
        """Frames as they come; [] when the deadline passed. Raises OSError on EOF."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        s = self._sock
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            s.settimeout(min(left, 0.2))
            try:
                data = s.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("connection closed by the device")
            self.stats.bytes_received += len(data)
            frames = self.framer.feed(data)
            if frames:
                return frames
        raise ConnectionError("stopping")

    def _send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def _request(self, ctype: str, name: str, values=(), timeout: float | None = None,
                 dialect: str | None = None):  # fmt: skip
        """Send one dialogue command; return (reply dialect, decoded reply fields)."""
        req_kinds, rep_kinds = cola.DIALOGUE[(ctype, name)]
        d = dialect or self.dialect
        self._send(cola.command(d, ctype, name, req_kinds, values))
        want = cola.REPLY_TYPE[ctype]
        deadline = time.monotonic() + (timeout if timeout is not None else self.cfg.timelimit)
        while True:
            frames = self._read_frames(deadline)
            if not frames:
                raise DialogueError(f"no answer to {ctype} {name}")
            for i, f in enumerate(frames):
                try:
                    rtype, rname, rest = cola.split_command(f.dialect, f.payload)
                except cola.FieldError:
                    self.stats.unexpected_frames += 1
                    continue
                if rtype == "sFA":
                    e = cola.SopasError(cola.sfa_code(f.dialect, rest), f"{ctype} {name}")
                    self.stats.sfa[e.name] = self.stats.sfa.get(e.name, 0) + 1
                    raise e
                if rtype == want and rname == name:
                    self._pending = frames[i + 1 :]
                    return f.dialect, cola.decode_fields(f.dialect, rep_kinds, rest)
                self.stats.unexpected_frames += 1

    # -- session --------------------------------------------------------------------------------
    def _session(self) -> None:
        c = self.cfg
        self.state = "connecting"
        self._sock = socket.create_connection((c.hostname, c.port), timeout=c.connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connects += 1
        self.state = "dialogue"
        want = cola.BINARY if c.use_binary_protocol else cola.ASCII
        other = cola.ASCII if want == cola.BINARY else cola.BINARY
        # SCdevicestate also tells the device's dialect: it answers in the one it speaks.
        probe = min(2.0, c.timelimit)
        try:
            dev_d, (state,) = self._request("sRN", "SCdevicestate", timeout=probe, dialect=want)
        except DialogueError:
            dev_d, (state,) = self._request("sRN", "SCdevicestate", timeout=probe, dialect=other)
        self.device_dialect = dev_d
        self.dialect = dev_d
        self.info["device state"] = cola.DEVICE_STATES.get(state, str(state))
        if state == 2:
            raise DialogueError("device reports SCdevicestate error")
        (ok,) = self._request("sMN", "SetAccessMode", (3, c.password))[1]
        if not ok:
            raise DialogueError("SetAccessMode refused (wrong client password?)")
        if dev_d != want:
            self._request("sWN", "EIHstCola", (1 if want == cola.BINARY else 0,))
            self.dialect = want
            self.stats.dialect_switches += 1
            self.on_event("info", f"switched the device to {cola.DIALECT_NAMES[want]}")
        for key, name, fmt in (
            ("firmware", "FirmwareVersion", str),
            ("operating hours", "ODoprh", lambda v: f"{v / 10:.1f}"),
            ("power-on count", "ODpwrc", str),
            ("location", "LocationName", str),
        ):
            try:
                (v,) = self._request("sRN", name)[1]
                self.info[key] = fmt(v)
            except cola.SopasError as e:
                self.info[key] = f"n/a ({e.name})"
        _, res, start, stop = self._request("sRN", "LMPoutputRange")[1]
        self.info["output range"] = f"{start / 1e4:g}..{stop / 1e4:g} deg at {res / 1e4:g} deg"
        if c.set_output_range:
            lo = round((math.degrees(c.min_ang) - c.angle_shift_deg) * 1e4)
            hi = round((math.degrees(c.max_ang) - c.angle_shift_deg) * 1e4)
            lo, hi = max(lo, start), min(hi, stop)
            if hi > lo:
                self._request("sWN", "LMPoutputRange", (1, res, lo, hi))
        cfg = (1, 0, int(c.intensity), int(c.intensity_resolution_16bit), 0, 0, 0, 0, 0, 0,
               int(c.time_flag), 1)  # fmt: skip
        self._request("sWN", "LMDscandatacfg", cfg)
        self._request("sRN", "LMDscandatacfg")
        (ok,) = self._request("sMN", "Run")[1]
        if not ok:
            raise DialogueError("Run refused")
        self._request("sEN", "LMDscandata", (1,))
        self.state = "streaming"
        self.streaming_since = time.monotonic()
        self.on_event("info", f"streaming from {c.hostname}:{c.port} "
                      f"({cola.DIALECT_NAMES[self.dialect]})")  # fmt: skip
        self._stream()

    def _stream(self) -> None:
        c = self.cfg
        last = time.monotonic()
        got_first = False
        while not self._stop.is_set():
            frames = self._read_frames(last + c.timelimit)
            now_wall = self.clock()
            now = time.monotonic()
            if not frames:
                if self._stop.is_set():
                    return
                raise StallError(f"no scan for {c.timelimit:g} s")
            for f in frames:
                if not sd.is_scandata(f.payload):
                    try:
                        rtype, _, rest = cola.split_command(f.dialect, f.payload)
                    except cola.FieldError:
                        rtype, rest = "?", b""
                    if rtype == "sFA":
                        e = cola.SopasError(cola.sfa_code(f.dialect, rest), "while streaming")
                        self.stats.sfa[e.name] = self.stats.sfa.get(e.name, 0) + 1
                    else:
                        self.stats.unexpected_frames += 1
                    continue
                try:
                    scan = sd.decode(f.dialect, f.payload)
                except sd.ScanDataError:
                    self.stats.decode_errors += 1
                    continue
                self.stats.scans += 1
                last = now
                self.last_scan_mono = now
                if not got_first:
                    got_first = True
                    self.backoff.reset()
                    self.info["serial"] = str(scan.serial)
                self.on_scan(scan, now_wall)
