"""The reader thread: port -> decoder -> clock -> detector -> batches and events. No ROS.

The node passes callbacks (publish a batch, confirm a peak, publish an event); this module knows
nothing about messages, so the bench and tests can drive it without DDS. Everything here runs on
one thread that blocks in poll(); the only cross-thread traffic is reading counters and swapping
in new detector parameters (an atomic reference assignment).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pbt_driver.detector import Detector, DetectorParams, DetectorStats, Event
from pbt_driver.frames import DecoderStats, make_decoder
from pbt_driver.timing import ClockStats, SampleClock
from pbt_driver.transport import PortDownError, SerialTransport
from sensorhub_common.backoff import ExponentialBackoff

IDLE_AT_OPEN_S = 0.1  # port silent this long after open: its first byte starts a line


@dataclass
class AcqConfig:
    port: str = "/dev/ttyUSB0"
    baud: int = 115200
    frame_format: str = "ascii"
    ascii_layout: str = "value"
    ascii_seq_modulus: int = 0
    max_line: int = 64
    sample_rate: float = 800.0
    batch_size: int = 40
    timing_gap_tolerance: float = 0.02
    value_min: float = -3.4028234663852886e38
    value_max: float = 3.4028234663852886e38
    reopen_backoff_min: float = 0.2
    reopen_backoff_max: float = 5.0


def _ignore(*_args) -> None:
    pass


@dataclass
class ReaderCallbacks:
    """What the reader thread calls out to; all run on the reader thread."""

    on_batch: Callable  # (first_index, values, envelope, baseline, lost_before)
    on_confirm: Callable[[Event], None]  # a peak was confirmed: time to command a pulse
    on_event: Callable[[Event], None]  # an event closed
    on_port: Callable[[bool, str], None] = _ignore  # port up/down, with a message
    on_start: Callable[[], None] = _ignore  # first thing on the thread (scheduling)
    tick: Callable[[int], None] = _ignore  # n samples received
    on_fatal: Callable[[str], None] = _ignore  # the thread died: the process must end


@dataclass(frozen=True)
class ReaderStats:
    """A copy of the reader's counters, taken from any thread (diagnostics)."""

    port_up: bool
    port_message: str
    port: str
    device: str
    low_latency: str
    opens: int
    disconnects: int
    samples: int
    last_data: float  # monotonic time of the last sample (0: none yet)
    next_index: int
    holding: int  # samples held while a silence is judged
    overruns: int
    uart_counters: bool  # the port reports overruns (a pty does not)
    flushed_on_open: int
    pending_at_open: int
    baseline: float | None
    envelope: float
    detector_healthy: bool
    decoder: DecoderStats = field(default_factory=DecoderStats)
    clock: ClockStats = field(default_factory=ClockStats)
    detector: DetectorStats = field(default_factory=DetectorStats)


class Batcher:
    """Collects values and envelope; emits full batches and the partial one before a gap.

    The batch is built in Python lists (an append per sample is cheaper than a numpy store)
    and handed over as float32 ``array('f')``, the type PbtSamples' float32[] fields hold, so
    the message takes it without a conversion and the driver needs no numpy."""

    def __init__(self, size: int, emit: Callable):
        self.size = size
        self._v: list[float] = []
        self._e: list[float] = []
        self.first = 0
        self.lost_before = 0
        self._baseline = 0.0
        self._emit = emit

    @property
    def n(self) -> int:
        return len(self._v)

    def gap(self, lost: int) -> None:
        self.flush()
        self.lost_before += lost

    def add_one(self, index: int, value: float, env: float, baseline: float) -> None:
        v = self._v
        if not v:
            self.first = index
        v.append(value)
        self._e.append(env)
        self._baseline = baseline
        if len(v) == self.size:
            self.flush(baseline)

    def add(self, first_index: int, values, env, baseline: float) -> None:
        i = 0
        total = len(values)
        while i < total:
            if not self._v:
                self.first = first_index + i
            k = min(self.size - len(self._v), total - i)
            self._v.extend(values[i : i + k])
            self._e.extend(env[i : i + k])
            i += k
            if len(self._v) == self.size:
                self.flush(baseline)
        self._baseline = baseline

    def report_gap(self, next_index: int, baseline: float | None) -> None:
        """A gap with no sample after it (yet): an empty batch that carries lost_before."""
        self.flush(baseline)
        if self.lost_before:
            b = baseline if baseline is not None else self._baseline
            self._emit(next_index, array("f"), array("f"), b, self.lost_before)
            self.lost_before = 0

    def flush(self, baseline: float | None = None) -> None:
        if not self._v:
            return
        b = baseline if baseline is not None else self._baseline
        values, env = array("f", self._v), array("f", self._e)
        self._v, self._e = [], []
        self._emit(self.first, values, env, b, self.lost_before)
        self.lost_before = 0


class Reader:
    """Owns the port and the processing chain; run() is the thread body."""

    def __init__(self, cfg: AcqConfig, det_params: DetectorParams, callbacks: ReaderCallbacks):
        self.cfg = cfg
        self.transport = SerialTransport(cfg.port, cfg.baud)
        self.decoder = make_decoder(
            cfg.frame_format, cfg.ascii_layout, cfg.max_line, cfg.value_min, cfg.value_max
        )
        self.clock = SampleClock(
            cfg.sample_rate,
            self.decoder.key_kind,
            self.decoder.seq_modulus if cfg.frame_format == "binary" else cfg.ascii_seq_modulus,
            cfg.timing_gap_tolerance,
        )
        self.detector = Detector(det_params, cfg.sample_rate)
        self._pending_params: DetectorParams | None = None
        cb = callbacks
        self.batcher = Batcher(cfg.batch_size, cb.on_batch)
        self._feed_one = getattr(self.decoder, "feed_one", None)  # ascii only
        self._fast_ok = self._feed_one is not None
        self._on_confirm, self._on_event = cb.on_confirm, cb.on_event
        self._on_port, self._on_start, self._tick = cb.on_port, cb.on_start, cb.tick
        self._on_fatal = cb.on_fatal
        self.backoff = ExponentialBackoff(cfg.reopen_backoff_min, cfg.reopen_backoff_max)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pbt-reader", daemon=True)
        self.port_up = False
        self.port_message = "not opened yet"
        self.opens = 0
        self.disconnects = 0
        self.samples = 0
        self.last_data = 0.0
        self.icount: dict | None = None
        self._icount0: dict | None = None
        self.overruns = 0
        self.error: str = ""
        self._t_open = 0.0
        self._fresh = False  # no byte read since open yet
        self._flushed_at_open = True
        self.first_line_kept = 0  # opens whose first line was whole (port idle at open)
        self.state_wanted = False  # a state snapshot is wanted (taken between reads)
        self.saved_state: dict | None = None
        self._taken_state: dict | None = None  # the snapshot take_state() handed out last
        self.wall_minus_mono = time.time() - time.monotonic()

    # -- control (any thread) -------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        self.transport.close()

    def set_detector_params(self, p: DetectorParams) -> None:
        p.check()
        self._pending_params = p

    def time_of(self, index: int) -> float:
        """Monotonic acquisition time of sample slot index."""
        return self.clock.time_of(index)

    @property
    def lost_total(self) -> int:
        return self.clock.lost_total

    def snapshot(self) -> ReaderStats:
        tr, clock, det, dec = self.transport, self.clock, self.detector, self.decoder.stats
        return ReaderStats(
            port_up=self.port_up, port_message=self.port_message, port=tr.port,
            device=tr.device, low_latency=tr.low_latency, opens=self.opens,
            disconnects=self.disconnects, samples=self.samples, last_data=self.last_data,
            next_index=clock.next_index, holding=clock.holding, overruns=self.overruns,
            uart_counters=self.icount is not None, flushed_on_open=tr.flushed_on_open,
            pending_at_open=tr.pending_at_open, baseline=det.baseline, envelope=det.env,
            detector_healthy=det.healthy, decoder=replace(dec, malformed=dict(dec.malformed)),
            clock=replace(clock.stats), detector=replace(det.stats),
        )  # fmt: skip

    # -- restart state (any thread) ----------------------------------------------------------
    def resume(self, state: dict) -> bool:
        """Go on counting from a previous run's state (before start())."""
        return self.clock.resume(state, self.wall_minus_mono)

    def request_state(self) -> None:
        """Ask for a state snapshot; the reader takes it between two reads."""
        self.state_wanted = True

    def take_state(self) -> dict | None:
        """The newest state snapshot, once (None when there is no new one)."""
        st = self.saved_state
        if st is None or st is self._taken_state:
            return None
        self._taken_state = st
        return st

    def final_state(self) -> dict | None:
        """After stop(): the state to save at exit (None while the thread still runs). After a
        crash, the one the dying thread took."""
        if self.thread.is_alive():
            return None
        if not self.error:
            self._save_state_now()
        return self.saved_state

    def _save_state_now(self) -> None:
        self.saved_state = self.clock.state(self.wall_minus_mono)

    def poll(self, t_now: float) -> None:
        """Let the clock decide what it held or doubted, as time passes without data."""
        self._settle(self.clock.poll(t_now))

    # -- thread body -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._on_start()
            self._loop()
        except BaseException as e:
            import traceback

            traceback.print_exc()
            self.error = f"reader thread crashed: {type(e).__name__}: {e}"
            self.port_up = False
            self.port_message = self.error
            try:  # what was received is published; the state lets a restart count the gap
                self.batcher.flush(self.detector.baseline)
                self._save_state_now()
            except BaseException:
                traceback.print_exc()
            for cb, arg in ((lambda m: self._on_port(False, m), self.error),
                            (self._on_fatal, self.error)):  # fmt: skip
                try:
                    cb(arg)
                except BaseException:
                    traceback.print_exc()

    def _loop(self) -> None:
        tr = self.transport
        period = self.cfg.batch_size / self.cfg.sample_rate
        while not self.stop_event.is_set():
            now = time.monotonic()
            if not tr.is_open:
                if now < self.backoff.next_try:
                    self.stop_event.wait(min(0.1, self.backoff.next_try - now))
                    continue
                try:
                    tr.open(flush=self.clock.kind == "line")
                except PortDownError as e:
                    d = self.backoff.failed(now)
                    self._port(False, f"port down, retrying in {d:.1f} s: {e.strerror}")
                    continue
                self.backoff.reset()
                self.opens += 1
                self.decoder.reset()
                self.clock.reconnected()
                self._t_open = time.monotonic()
                self._fresh = True
                self._flushed_at_open = self.clock.kind == "line" or tr.pending_at_open == 0
                self._icount0 = tr.icount()
                self._port(True, f"open {tr.port} ({tr.device}); low latency: {tr.low_latency}")
            try:
                self._pump(tr, period)
            except PortDownError as e:
                tr.close()
                self.disconnects += 1
                self.backoff.failed()
                self._settle(self.clock.release())
                self.batcher.flush(self.detector.baseline)
                self._port(False, f"port down, retrying: {e.strerror}")

    def _pump(self, tr: SerialTransport, period: float) -> None:
        """The hot loop while the port is open (locals bound once: ~800 turns a second)."""
        wait, read, process, mv, size = tr.wait, tr.read, self.process, tr.mv, len(tr.buf)
        mono, stop = time.monotonic, self.stop_event
        next_icount = 0.0
        clock = self.clock
        while not stop.is_set():
            if not wait(period):
                if clock.undecided:
                    self._settle(clock.poll(mono()))
                if self.batcher.n and mono() - self.last_data > period:
                    self.batcher.flush(self.detector.baseline)
                continue
            n = read(0)
            t_read = mono()
            if self._fresh:
                self._fresh = False
                if self._flushed_at_open and t_read - self._t_open >= IDLE_AT_OPEN_S:
                    # Idle since open: nothing was in flight, the first line is whole.
                    self.decoder.at_line_start()
                    self.first_line_kept += 1
            # A read that did not fill the buffer took everything there was: "drained".
            process(mv[:n], t_read, n < size, tr)
            if t_read >= next_icount:
                next_icount = t_read + 1.0
                self._poll_icount()

    def _port(self, up: bool, msg: str) -> None:
        changed = up != self.port_up or msg != self.port_message
        self.port_up, self.port_message = up, msg
        if changed:
            try:
                self._on_port(up, msg)
            except Exception:  # logging must not kill the reader
                pass

    def _poll_icount(self) -> None:
        ic = self.transport.icount()
        self.icount = ic
        if ic and self._icount0:
            self.overruns = (ic["overrun"] - self._icount0["overrun"]) + (
                ic["buf_overrun"] - self._icount0["buf_overrun"]
            )

    def process(self, data, t_read: float, drained: bool = True, tr=None) -> None:
        """Decode and index one read (a silence may hold samples back: see timing.py).

        A low-latency port delivers one sample per read, 800 times a second: that case takes
        a scalar path (one value through decoder, clock, detector and batch, no lists or
        segments) whenever each stage has nothing else pending; anything else, and every
        bigger read, takes the chunk path. Both leave identical state (test_fastpath.py)."""
        if self._fast_ok:
            x = self._feed_one(data)
            if x is not None:
                self.last_data = t_read
                self.samples += 1
                self._tick(1)
                key = self.decoder.line_no
                i = None
                if self._pending_params is None:
                    i = self.clock.assign_one(x, key, t_read, drained)
                if i is None:
                    self._chunk([x], [key], t_read, drained)
                    return
                det = self.detector
                e, notes = det.process_one(x, i)
                for kind, ev in notes:
                    self._dispatch(kind, ev)
                self.batcher.add_one(i, x, e, det.baseline)
                if self.state_wanted:
                    self.state_wanted = False
                    self._save_state_now()
                return
        dec = self.decoder.feed(data)
        values = dec.values
        if not values:
            return
        self.last_data = t_read
        self.samples += len(values)
        self._tick(len(values))
        self._chunk(values, dec.keys, t_read, drained)

    def _chunk(self, values, keys, t_read: float, drained: bool) -> None:
        segs = self.clock.assign(values, keys, t_read, drained)
        if len(segs) == 1 and not segs[0].lost_before and self._pending_params is None:
            # The common case, inline (no call): one contiguous run of new samples.
            seg = segs[0]
            det = self.detector
            env, notes = det.process(seg.values, seg.first_index)
            for kind, ev in notes:
                self._dispatch(kind, ev)
            self.batcher.add(seg.first_index, seg.values, env, det.baseline)
        else:
            self._consume(segs)
        if self.state_wanted:
            self.state_wanted = False
            self._save_state_now()

    def _settle(self, segs) -> None:
        """Segments released by a decision without new data, and slots booked after the last
        sample (reported at once in an empty batch instead of with a sample that may not come)."""
        self._consume(segs)
        lost = self.clock.take_carry()
        if lost:
            self.batcher.gap(lost)
            for kind, ev in self.detector.gap(lost):
                self._dispatch(kind, ev)
            self.batcher.report_gap(self.clock.next_index, self.detector.baseline)

    def _consume(self, segs) -> None:
        if not segs:
            return
        p = self._pending_params
        if p is not None:
            self._pending_params = None
            self.detector.set_params(p)
        det = self.detector
        for seg in segs:
            if seg.lost_before:
                self.batcher.gap(seg.lost_before)
                for kind, ev in det.gap(seg.lost_before):
                    self._dispatch(kind, ev)
            env, notes = det.process(seg.values, seg.first_index)
            for kind, ev in notes:
                self._dispatch(kind, ev)
            self.batcher.add(seg.first_index, seg.values, env, det.baseline)

    def _dispatch(self, kind: str, ev: Event) -> None:
        if kind == "confirm":
            self._on_confirm(ev)
        else:
            self._on_event(ev)
