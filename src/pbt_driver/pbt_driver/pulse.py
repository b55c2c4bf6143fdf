"""Pulse output backends: none, pigpio (DMA waves via pigpiod), serial (microcontroller offload).

No ROS. The reader thread only calls :meth:`PulseBackend.command`, which never blocks: it puts the
command on a bounded queue that a dedicated *output thread* drains (socket/serial I/O, connects,
wave preparation). A full queue or a degraded backend gives ``sent=False`` at once.

pigpio: every width the :class:`WidthMap` can return is prepared as a wave when pigpiod is
connected (and again when the mapping changes); a command is one ``wave_send_using_mode(wid,
ONE_SHOT_SYNC)`` (WVTXM): DMA-timed, returns at once, and a pulse commanded while the previous one
is still on waits for it instead of cutting it. Nothing ever polls ``wave_tx_busy``.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from dataclasses import dataclass

from pbt_driver import offload
from pbt_driver.widthmap import WidthMap

OK, WARN, ERROR = 0, 1, 2
BACKENDS = ("none", "pigpio", "serial")


class BackendDownError(RuntimeError):
    """The pulse device (pigpiod, offload MCU port) is not usable right now."""


@dataclass
class PulseRecord:
    """One commanded pulse; the output thread fills t_sent/sent/error when it has written it."""

    backend: str
    width_us: int
    amplitude: float
    t_peak: float  # monotonic acquisition time of the peak sample
    t_queued: float  # monotonic, when the reader thread handed it over
    t_sent: float = 0.0  # monotonic, when the command was written to pigpiod / the MCU
    sent: bool | None = None  # None while queued
    error: str = ""

    @property
    def delay(self) -> float:
        """Peak acquisition -> command written (or handed over while still queued)."""
        return (self.t_sent or self.t_queued) - self.t_peak


class PulseBackend:
    name = "none"

    def __init__(self, widthmap: WidthMap):
        self.widthmap = widthmap
        self.commanded = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # queue full or backend down at command time

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def set_widthmap(self, wm: WidthMap) -> None:
        self.widthmap = wm

    @property
    def degraded(self) -> bool:
        return False

    def command(self, width_us: int, amplitude: float, t_peak: float) -> PulseRecord:
        rec = PulseRecord("none", 0, amplitude, t_peak, time.monotonic(), sent=False)
        return rec

    def status(self) -> tuple[int, str, dict]:
        return OK, "pulse output disabled (events only)", {"backend": "none"}


class NoneBackend(PulseBackend):
    pass


class _ThreadedBackend(PulseBackend):
    """Bounded queue + output thread with connect/backoff; subclasses do the device I/O."""

    QUEUE = 64
    RETRY_MIN, RETRY_MAX = 0.5, 5.0

    def __init__(self, widthmap: WidthMap, logger=None):
        super().__init__(widthmap)
        self._q: queue.Queue = queue.Queue(maxsize=self.QUEUE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulse-{self.name}", daemon=True)
        self._up = False
        self._why = "not connected yet"
        self._remap = threading.Event()
        self._log = logger
        self.connects = 0
        self.thread_setup = None  # called first on the output thread (scheduling)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3.0)
        self._disconnect()

    @property
    def degraded(self) -> bool:
        return not self._up

    def set_widthmap(self, wm: WidthMap) -> None:
        self.widthmap = wm
        self._remap.set()

    def command(self, width_us: int, amplitude: float, t_peak: float) -> PulseRecord:
        rec = PulseRecord(self.name, int(width_us), amplitude, t_peak, time.monotonic())
        self.commanded += 1
        if not self._up:
            rec.sent, rec.error = False, self._why
            self.dropped += 1
            return rec
        try:
            self._q.put_nowait(rec)
        except queue.Full:
            rec.sent, rec.error = False, "output queue full"
            self.dropped += 1
        return rec

    def _warn(self, msg: str) -> None:
        if self._log is not None:
            self._log.warning(msg)

    def _run(self) -> None:
        if self.thread_setup is not None:
            try:
                self.thread_setup()
            except Exception as e:
                self._warn(f"pulse output thread setup failed: {e}")
        delay = self.RETRY_MIN
        while not self._stop.is_set():
            if not self._up:
                try:
                    self._connect()
                    self._up, self._why = True, ""
                    self._remap.clear()
                    self.connects += 1
                    delay = self.RETRY_MIN
                except Exception as e:
                    self._disconnect()
                    why = f"{e}"
                    if why != self._why:
                        self._warn(f"pulse backend {self.name} down: {why}; events only")
                    self._why = why
                    self._stop.wait(delay)
                    delay = min(self.RETRY_MAX, delay * 2)
                    continue
            try:
                if self._remap.is_set():
                    self._remap.clear()
                    self._prepare()
                try:
                    rec = self._q.get(timeout=0.2)
                except queue.Empty:
                    self._idle()
                    continue
                try:
                    self._send(rec)
                    rec.t_sent = time.monotonic()
                    rec.sent = True
                    self.sent += 1
                except BackendDownError as e:  # this command refused, device still fine
                    rec.t_sent, rec.sent, rec.error = time.monotonic(), False, str(e)
                    self.failed += 1
            except Exception as e:
                self.failed += 1
                self._up, self._why = False, f"{type(e).__name__}: {e}"
                self._warn(f"pulse backend {self.name} failed: {self._why}; reconnecting")
                self._disconnect()
                self._fail_queued()

    def _fail_queued(self) -> None:
        while True:
            try:
                rec = self._q.get_nowait()
            except queue.Empty:
                return
            rec.sent, rec.error = False, self._why
            self.dropped += 1

    def _stats(self) -> dict:
        return {
            "backend": self.name,
            "commanded": self.commanded,
            "sent": self.sent,
            "failed": self.failed,
            "dropped (down or queue full)": self.dropped,
            "connects": self.connects,
            "queue depth": self._q.qsize(),
        }

    def status(self) -> tuple[int, str, dict]:
        st = self._stats()
        if not self._up:
            return ERROR, f"{self.name} pulse output degraded: {self._why}; events only", st
        return OK, f"{self.name} pulse output ready", st

    # subclass hooks (output thread only)
    def _connect(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        pass

    def _prepare(self) -> None:
        pass

    def _send(self, rec: PulseRecord) -> None:
        raise NotImplementedError

    def _idle(self) -> None:
        pass


class PigpioBackend(_ThreadedBackend):
    name = "pigpio"

    def __init__(
        self, widthmap: WidthMap, gpio: int = 18, host="localhost", port=8888, logger=None
    ):
        super().__init__(widthmap, logger)
        self.gpio, self.host, self.port = int(gpio), host, int(port)
        self._pi = None
        self.waves: dict[int, int] = {}

    def _connect(self) -> None:
        import pigpio

        pigpio.exceptions = True
        pi = pigpio.pi(self.host, self.port, show_errors=False)
        if not pi.connected:
            raise BackendDownError(f"pigpiod not reachable at {self.host}:{self.port}")
        self._pi = pi
        pi.set_mode(self.gpio, pigpio.OUTPUT)
        pi.write(self.gpio, 0)
        self._prepare()

    def _prepare(self) -> None:
        """One wave per possible width, built before any event needs it."""
        import pigpio

        pi = self._pi
        pi.wave_clear()
        self.waves = {}
        bit = 1 << self.gpio
        for w in self.widthmap.widths():
            pi.wave_add_generic([pigpio.pulse(bit, 0, w), pigpio.pulse(0, bit, 0)])
            self.waves[w] = pi.wave_create()

    def _send(self, rec: PulseRecord) -> None:
        import pigpio

        wid = self.waves.get(rec.width_us)
        if wid is None:  # mapping changed under us: prepare now (output thread, not the reader)
            self._prepare()
            wid = self.waves.get(rec.width_us)
            if wid is None:
                raise BackendDownError(f"no wave for {rec.width_us} us")
        self._pi.wave_send_using_mode(wid, pigpio.WAVE_MODE_ONE_SHOT_SYNC)

    def _disconnect(self) -> None:
        pi, self._pi = self._pi, None
        if pi is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to release
                pi.stop()

    def _stats(self) -> dict:
        st = super()._stats()
        st.update({"pigpiod": f"{self.host}:{self.port}", "gpio": self.gpio,
                   "waves prepared": len(self.waves)})  # fmt: skip
        return st


class SerialOffloadBackend(_ThreadedBackend):
    """Frames of offload.py to a microcontroller; replies are counted, never waited for."""

    name = "serial"
    PING_PERIOD = 1.0

    def __init__(self, widthmap: WidthMap, port: str, baud: int = 115200, logger=None):
        super().__init__(widthmap, logger)
        self.port, self.baud = port, int(baud)
        self._ser = None
        self._seq = 0
        self._parser = offload.reply_parser()
        self.replies = {"ok": 0, "busy": 0, "bad": 0, "bad crc": 0, "unmatched": 0}
        self.recent: collections.deque[offload.Reply] = collections.deque(maxlen=256)
        self._awaiting: dict[int, int] = {}  # seq -> type of a command not answered yet
        self.last_reply = 0.0
        self._last_ping = 0.0

    def _connect(self) -> None:
        import serial

        if not self.port:
            raise BackendDownError("pulse_port is empty")
        try:
            # a device path or a pyserial URL (socket://host:port for a board behind a bridge)
            self._ser = serial.serial_for_url(
                self.port, baudrate=self.baud, timeout=0, write_timeout=0.05
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise BackendDownError(f"cannot open {self.port}: {e}") from None

    def _disconnect(self) -> None:
        s, self._ser = self._ser, None
        if s is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to release
                s.close()

    def _write(self, frame: bytes) -> None:
        import serial

        try:
            self._ser.write(frame)
        except serial.SerialTimeoutException:
            raise BackendDownError("write timed out (MCU not reading)") from None

    def _command(self, kind: int, width_us: int = 0, amplitude: float = 0.0) -> None:
        self._seq = (self._seq + 1) & 0xFF
        self._awaiting[self._seq] = kind
        self._write(offload.encode_command(kind, self._seq, width_us, amplitude))

    def _send(self, rec: PulseRecord) -> None:
        self._command(offload.PULSE, rec.width_us, rec.amplitude)
        self._read_replies()

    def _idle(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.PING_PERIOD:
            self._last_ping = now
            self._command(offload.PING)
        self._read_replies()

    def _read_replies(self) -> None:
        data = self._ser.read(4096)
        if not data:
            return
        for fr in self._parser.feed(data):
            try:
                self._book(offload.decode_reply(fr))
            except offload.OffloadFrameError:  # CRC holds but not a reply: answers nothing
                self.replies["unmatched"] += 1
        self.replies["bad crc"] = self._parser.bad

    @property
    def unanswered(self) -> int:
        """Commands written whose reply has not arrived (lost, corrupted, or in flight)."""
        return len(self._awaiting)

    def _book(self, r: offload.Reply) -> None:
        """Counts a reply by status; one that answers no command in flight is `unmatched`."""
        self.recent.append(r)
        self.last_reply = time.monotonic()
        if self._awaiting.pop(r.seq, None) != r.type:
            self.replies["unmatched"] += 1
            return
        key = {offload.STATUS_OK: "ok", offload.STATUS_BUSY: "busy"}.get(r.status, "bad")
        self.replies[key] += 1

    def _stats(self) -> dict:
        st = super()._stats()
        st["port"] = self.port
        st.update({f"replies {k}": v for k, v in self.replies.items()})
        st["last reply age (s)"] = (
            f"{time.monotonic() - self.last_reply:.1f}" if self.last_reply else "never"
        )
        return st


@dataclass(frozen=True)
class BackendSettings:
    """Where the pulse output goes: pigpiod's address and GPIO, or the offload MCU's port."""

    gpio: int = 18
    host: str = "localhost"
    port: int = 8888
    pulse_port: str = ""
    pulse_baud: int = 115200


def make_backend(
    kind: str, widthmap: WidthMap, settings: BackendSettings, logger=None
) -> PulseBackend:
    s = settings
    if kind == "none":
        return NoneBackend(widthmap)
    if kind == "pigpio":
        return PigpioBackend(widthmap, s.gpio, s.host, s.port, logger)
    if kind == "serial":
        return SerialOffloadBackend(widthmap, s.pulse_port, s.pulse_baud, logger)
    raise ValueError(f"unknown pulse backend {kind!r}; one of {BACKENDS}")
