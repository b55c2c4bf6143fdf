"""The pbt_driver node: parameters, publishers, diagnostics around the reader thread.

(Over 500 lines: the PARAMS table, ~100 of them, lives beside the node for `sensorhub docs`.)

Thin on purpose: acquisition.Reader does the work on its own (SCHED_FIFO) thread and calls back
here to publish. Batches and events are published from that thread (rclpy publish is thread-safe
and does not block on keep-last history); nothing runs per sample in the executor.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rclpy.duration import Duration
from rclpy.node import Node

from pbt_driver.acquisition import AcqConfig, Reader, ReaderCallbacks, ReaderStats
from pbt_driver.detector import (
    MAX_GAP_BRIDGE,
    MAX_LEVEL,
    MAX_SECONDS,
    MAX_WIDTH_S,
    DetectorConfigError,
    DetectorParams,
    Event,
)
from pbt_driver.frames import ASCII_LAYOUTS, F32_MAX
from pbt_driver.pulse import BACKENDS, BackendSettings, make_backend
from pbt_driver.widthmap import WidthMap, WidthMapError
from sensorhub_common import diagnostics as diag
from sensorhub_common import qos, scheduling
from sensorhub_common.params import Param, ParamSet
from sensorhub_common.runner import fatal, run_node

FATAL_ACK_S = 1.0  # s: the last batches' delivery before a crash ends the process
STATE_FIRST_PERIOD_S = 0.1  # s: until the first state file is written
STATE_PERIOD_S = 1.0  # s: then the state file is rewritten this often
DETECTOR_KEYS = tuple(DetectorParams.__dataclass_fields__)
WIDTH_KEYS = {
    "pulse_mode": "mode",
    "pulse_width_us": "width_us",
    "pulse_width_min_us": "min_us",
    "pulse_width_max_us": "max_us",
    "pulse_amp_lo": "amp_lo",
    "pulse_amp_hi": "amp_hi",
    "pulse_width_step_us": "step_us",
}


def _cpu_check(v: str) -> str | None:
    try:
        scheduling.parse_cpu_list(v)
    except ValueError as e:
        return str(e)
    return None


PARAMS = [
    # acquisition (read-only: a restart reopens the port cleanly)
    Param("port", "/dev/ttyUSB0", "Serial device; prefer /dev/serial/by-id/... names",
          read_only=True),
    Param("baud", 115200, "Baud rate", min=50, max=4_000_000, read_only=True),
    Param("frame_format", "ascii", "'ascii' (one value per line) or 'binary' (README frame)",
          choices=("ascii", "binary"), read_only=True),
    Param("ascii_layout", "value", "ascii columns: 'value', 'seq,value' or 'time_us,value'",
          choices=ASCII_LAYOUTS, read_only=True),
    Param("ascii_seq_modulus", 0, "Wrap of the ascii sequence column (0 = never wraps)",
          min=0, read_only=True),
    Param("max_line", 64, "ascii lines longer than this are discarded as overlong", min=8,
          max=4096, read_only=True),
    Param("sample_rate", 800.0, "Nominal sample rate [Hz]", min=1.0, max=1e6, read_only=True),
    Param("batch_size", 40, "Samples per PbtSamples message", min=1, max=100_000,
          read_only=True),
    Param("timing_gap_tolerance", 0.02,
          "Without sequence numbers: silence [s] beyond the latency that counts as lost samples",
          min=0.0, max=10.0, read_only=True),
    Param("reopen_backoff_min", 0.2, "First reopen delay after the port went down [s]",
          min=0.01, max=60.0, read_only=True),
    Param("reopen_backoff_max", 5.0, "Longest reopen delay [s]", min=0.01, max=600.0,
          read_only=True),
    Param("frame_id", "pbt", "header.frame_id of samples and events", read_only=True),
    Param("value_min", -F32_MAX,
          "Samples below this are malformed ('out_of_range'); default: float32's range",
          min=-F32_MAX, max=F32_MAX, read_only=True),
    Param("value_max", F32_MAX,
          "Samples above this are malformed ('out_of_range'); default: float32's range",
          min=-F32_MAX, max=F32_MAX, read_only=True),
    Param("state_file", "",
          "Where the sample index is saved (1 Hz and at exit) so a restart goes on counting and "
          "books the slots lost while down ('' = start from index 0)", read_only=True),
    Param("resume_max_age", 300.0, "A saved state older than this [s] is not resumed",
          min=0.0, max=86_400.0, read_only=True),
    # detector (run-time changeable)
    Param("threshold", 20.0, "Event starts when envelope - baseline exceeds this [units]",
          min=0.0, max=MAX_LEVEL),
    Param("hysteresis", 5.0, "Event ends below threshold - hysteresis [units]", min=0.0,
          max=MAX_LEVEL),
    Param("baseline_tau", 2.0, "Baseline EMA time constant (idle samples only) [s]", min=1e-6,
          max=MAX_SECONDS),
    Param("attack_tau", 0.0, "Envelope attack time constant [s] (0 = instant)", min=0.0,
          max=MAX_SECONDS),
    Param("release_tau", 0.002, "Envelope release time constant [s]", min=0.0,
          max=MAX_SECONDS),
    Param("min_width", 0.0025, "Shorter events are rejected [s]", min=0.0, max=MAX_WIDTH_S),
    Param("max_width", 1.0, "Longer events are dropped and the baseline re-taken [s]",
          min=1e-6, max=MAX_WIDTH_S),
    Param("dead_time", 0.005, "No new event for this long after one ends [s]", min=0.0,
          max=MAX_WIDTH_S),
    Param("confirm_samples", 2,
          "Peak confirmed after this many samples not exceeding it (pulse delay floor)",
          min=0, max=10_000),
    Param("gap_bridge", 4,
          "Missing slots bridged (interpolated) inside an event; a longer gap closes it flagged",
          min=0, max=MAX_GAP_BRIDGE),
    # pulse output
    Param("pulse_backend", "none", "'none', 'pigpio' (DMA waves) or 'serial' (MCU offload)",
          choices=BACKENDS, read_only=True),
    Param("pulse_on", "peak", "Command the pulse at peak confirmation ('peak') or event end",
          choices=("peak", "close")),
    Param("pulse_mode", "fixed", "Width mapping: 'fixed' or 'linear' in the amplitude",
          choices=("fixed", "linear")),
    Param("pulse_width_us", 100, "Fixed pulse width [us]", min=1, max=1_000_000),
    Param("pulse_width_min_us", 50, "Linear: width at pulse_amp_lo and below [us]", min=1,
          max=1_000_000),
    Param("pulse_width_max_us", 1000, "Linear: width at pulse_amp_hi and above [us]", min=1,
          max=1_000_000),
    Param("pulse_amp_lo", 0.0, "Linear: amplitude mapped to the minimum width [units]",
          min=-MAX_LEVEL, max=MAX_LEVEL),
    Param("pulse_amp_hi", 1000.0, "Linear: amplitude mapped to the maximum width [units]",
          min=-MAX_LEVEL, max=MAX_LEVEL),
    Param("pulse_width_step_us", 10, "Linear: width resolution (one prepared wave per step)",
          min=1, max=1_000_000),
    Param("pulse_gpio", 18, "pigpio: BCM GPIO of the pulse output", min=0, max=53,
          read_only=True),
    Param("pigpio_host", "localhost", "pigpio: pigpiod host", read_only=True),
    Param("pigpio_port", 8888, "pigpio: pigpiod port", min=1, max=65535, read_only=True),
    Param("pulse_port", "", "serial: offload MCU port (device path or pyserial URL, e.g. "
          "socket://host:port)", read_only=True),
    Param("pulse_baud", 115200, "serial: offload baud rate", min=50, max=4_000_000,
          read_only=True),
    # scheduling
    Param("rt_priority", 80, "SCHED_FIFO priority of the reader thread (0 = normal)", min=0,
          max=99, read_only=True),
    Param("rt_cpus", "", "CPUs for the reader thread, e.g. '3' (empty = no pinning)",
          read_only=True, check=_cpu_check),
    Param("lock_memory", False, "mlockall(MCL_CURRENT) after start-up", read_only=True),
]  # fmt: skip


def detector_params(v: dict) -> DetectorParams:
    return DetectorParams(**{k: v[k] for k in DETECTOR_KEYS})


def width_map(v: dict) -> WidthMap:
    return WidthMap(**{f: v[k] for k, f in WIDTH_KEYS.items()})


def cross_check(v: dict) -> str | None:
    if not v["value_min"] < v["value_max"]:
        return "value_min must be < value_max"
    try:
        detector_params(v).check()
        width_map(v).check()
    except (DetectorConfigError, WidthMapError) as e:
        return str(e)
    return None


def _crash_injector(tick):
    """Fault injection for tests of the respawn path: PBT_DRIVER_CRASH_AFTER_SAMPLES=N makes the
    reader thread raise once it has received N samples (unset: tick itself, no cost)."""
    n = int(os.environ.get("PBT_DRIVER_CRASH_AFTER_SAMPLES", "0") or 0)
    if n <= 0:
        return tick
    seen = [0]

    def crashing_tick(k: int) -> None:
        tick(k)
        seen[0] += k
        if seen[0] >= n:
            raise RuntimeError(f"injected crash after {seen[0]} samples")

    return crashing_tick


def _add_all(stat, rows) -> None:
    for k, x in rows:
        stat.add(k, x)


def _loss_rows(r: ReaderStats, resumed: str) -> tuple:
    """The loss counters, each under the name the README's loss table uses."""
    ds, cs = r.decoder, r.clock
    return (
        ("lost samples total", cs.lost), ("lost: sequence gaps", cs.seq_lost),
        ("lost: timing gaps", cs.timing_lost), ("lost: reconnects", cs.reconnect_lost),
        ("lost: while restarting", cs.restart_lost),
        ("lost: before the last restart", cs.prior_lost),
        ("malformed lines that were not slots", cs.not_slots),
        ("silences held", cs.holds), ("silences late, not lost", cs.late_not_lost),
        ("held now (samples)", r.holding), ("resume", resumed),
        ("discarded bytes (resync)", ds.discarded_bytes),
        ("malformed frames", ds.malformed_total),
    )  # fmt: skip


class PbtDriverNode(Node):
    def __init__(self, **kwargs):
        super().__init__("pbt_driver", **kwargs)
        from sensorhub_msgs.msg import PbtEvent, PbtSamples

        self._Samples, self._Event = PbtSamples, PbtEvent
        self.params = ParamSet(self, PARAMS, cross_check, self._on_change)
        v = self.params.snapshot()
        self.rate = v["sample_rate"]
        self.frame_id = v["frame_id"]
        self.pulse_on = v["pulse_on"]
        self.threshold = float(v["threshold"])  # carried in every batch for viewers
        self.widthmap = width_map(v)
        period = v["batch_size"] / self.rate
        self.pub_samples = self.create_publisher(PbtSamples, "samples", qos.pbt_samples(period))
        self.pub_events = self.create_publisher(PbtEvent, "events", qos.PBT_EVENTS)
        self.sched = scheduling.SchedulingStatus()
        self.publish_drops = 0
        self.batches = 0
        self.events = 0
        self._last_lost = 0
        self._last_bad = 0
        self.backend = make_backend(
            v["pulse_backend"],
            self.widthmap,
            BackendSettings(
                gpio=v["pulse_gpio"],
                host=v["pigpio_host"],
                port=v["pigpio_port"],
                pulse_port=v["pulse_port"],
                pulse_baud=v["pulse_baud"],
            ),
            logger=self.get_logger(),
        )
        self.freq = diag.FrequencyStatus(
            diag.FrequencyStatusParam({"min": self.rate, "max": self.rate}, 0.1, 5),
            "sample rate",
        )
        cfg = AcqConfig(**{k: v[k] for k in AcqConfig.__dataclass_fields__})
        self.reader = Reader(
            cfg,
            detector_params(v),
            ReaderCallbacks(
                on_batch=self._publish_batch,
                on_confirm=self._on_confirm,
                on_event=self._publish_event,
                on_port=self._on_port,
                on_start=self._reader_start,
                tick=_crash_injector(self.freq.tick),  # O(1), thread-safe
                on_fatal=self._fatal,  # the process ends (exit 1): the supervisor respawns it
            ),
        )
        self.state_path = Path(v["state_file"]).expanduser() if v["state_file"] else None
        self.resumed = self._resume(v["resume_max_age"])
        self._last_crossings = self._last_started = 0
        self.diag = diag.Updater(self, hardware_id=f"PBT sensor on {v['port']}")
        self.diag.add("serial port", self._diag_port)
        self.diag.add(self.freq)
        self.diag.add("losses", self._diag_losses)
        self.diag.add("events", self._diag_events)
        self.diag.add("detector", self._diag_detector)
        self.diag.add("pulse output", self._diag_pulse)
        self.diag.add(self.sched)
        if hasattr(self.backend, "thread_setup"):
            self.backend.thread_setup = self._output_thread_start
        self.backend.start()
        self.reader.start()
        if self.state_path is not None:
            # Fast until the first state is on disk: a kill in the first seconds must not let
            # the next start reuse sample indices; then once a second.
            self._state_timer = self.create_timer(STATE_FIRST_PERIOD_S, self._save_state)
        if v["lock_memory"]:
            self.sched.record(scheduling.lock_memory(), "process", self.get_logger())
        self.get_logger().info(
            f"reading {v['port']} ({v['frame_format']}, {self.rate:g} Hz), pulse backend "
            f"{v['pulse_backend']}; publishing {self.pub_samples.topic_name}, "
            f"{self.pub_events.topic_name}"
        )

    # -- restart state (executor thread) ------------------------------------------------------
    def _resume(self, max_age: float) -> str:
        p = self.state_path
        if p is None:
            return "off (state_file not set)"
        try:
            st = json.loads(p.read_text())
            age = time.time() - float(st["saved_wall"])
        except FileNotFoundError:
            return "no saved state: index from 0"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"unreadable state ({e}): index from 0"
        if not 0 <= age <= max_age:
            return f"saved state {age:.0f} s old (> resume_max_age): index from 0"
        if not self.reader.resume(st):
            return "saved state of another stream layout/rate: index from 0"
        msg = f"resumed at index {st['next_index']} (state {age:.1f} s old)"
        self.get_logger().info(msg)
        return msg

    def _save_state(self) -> None:
        """Timer: ask the reader for a fresh snapshot; write the one it took since last time."""
        self.reader.request_state()
        st = self.reader.take_state()
        if st is not None:
            self._write_state(st)

    def _write_state(self, st: dict, final: bool = False) -> None:
        st = dict(st, saved_wall=time.time())
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            tmp.write_text(json.dumps(st))
            os.replace(tmp, self.state_path)
            t = getattr(self, "_state_timer", None)
            if t is not None and not final and t.timer_period_ns < STATE_PERIOD_S * 1e9:
                self.destroy_timer(t)
                self._state_timer = self.create_timer(STATE_PERIOD_S, self._save_state)
        except OSError as e:
            self.get_logger().warning(f"cannot write {self.state_path}: {e}")

    # -- reader-thread callbacks ------------------------------------------------------------
    def _reader_start(self) -> None:
        v = self.params.snapshot()
        res = scheduling.apply_current_thread(v["rt_priority"], v["rt_cpus"] or None)
        self.sched.record(res, "reader thread", self.get_logger())

    def _output_thread_start(self) -> None:
        """The pulse output thread runs just below the reader: a confirmed peak's command is
        written within microseconds, yet it can never delay acquisition."""
        v = self.params.snapshot()
        prio = max(0, v["rt_priority"] - 1)
        res = scheduling.apply_current_thread(prio, v["rt_cpus"] or None)
        self.sched.record(res, "pulse output thread", self.get_logger())

    def _on_port(self, up: bool, msg: str) -> None:
        if up:
            self.get_logger().info(msg)
        else:
            self.get_logger().warning(msg)

    def _stamp(self, t_mono: float):
        t = t_mono + (time.time() - time.monotonic())
        sec = int(t)
        return sec, int((t - sec) * 1e9)

    def _publish_batch(self, first, values, env, baseline, lost_before) -> None:
        m = self._Samples()
        sec, ns = self._stamp(self.reader.time_of(first))
        m.header.stamp.sec, m.header.stamp.nanosec = sec, ns
        m.header.frame_id = self.frame_id
        m.first_index = first
        m.sample_rate = self.rate
        m.values = values
        m.envelope = env
        m.baseline = float(baseline) if baseline is not None else 0.0
        m.lost_before = lost_before
        m.lost_total = self.reader.lost_total
        m.threshold = self.threshold
        try:
            self.pub_samples.publish(m)
            self.batches += 1
        except Exception:
            self.publish_drops += len(values)

    def _on_confirm(self, ev: Event) -> None:
        if self.pulse_on == "peak":
            self._command(ev)

    def _command(self, ev: Event) -> None:
        # At close (pulse_on=close, or a gap) the final peak is known; at confirmation, the
        # peak as it was then (later samples of this chunk may already have moved it).
        confirmed = ev.confirm_index >= 0
        amp = ev.confirm_amplitude if confirmed else ev.amplitude
        peak_i = ev.confirm_peak_index if confirmed else ev.peak_index
        ev.pulse = self.backend.command(self.widthmap.map(amp), amp, self.reader.time_of(peak_i))

    def _publish_event(self, ev: Event) -> None:
        if ev.pulse is None and self.pulse_on == "close":
            self._command(ev)
        m = self._Event()
        sec, ns = self._stamp(self.reader.time_of(ev.peak_index))
        m.header.stamp.sec, m.header.stamp.nanosec = sec, ns
        m.header.frame_id = self.frame_id
        m.peak_index, m.start_index, m.end_index = ev.peak_index, ev.start_index, ev.end_index
        m.peak, m.baseline, m.amplitude = ev.peak, ev.baseline, ev.amplitude
        m.width, m.area, m.rise_time = ev.width, ev.area, ev.rise_time
        m.missing_slots, m.gap_closed = ev.missing_slots, ev.gap_closed
        rec = ev.pulse
        m.pulse_backend = self.backend.name
        if rec is None or rec.backend == "none":
            m.pulse_width_us, m.pulse_sent, m.pulse_delay = 0, False, -1.0
        else:
            # The output thread has normally written it by now; if not, it was handed over.
            m.pulse_width_us = rec.width_us
            m.pulse_sent = bool(rec.sent) if rec.sent is not None else True
            m.pulse_delay = rec.delay
        try:
            self.pub_events.publish(m)
            self.events += 1
        except Exception:
            self.publish_drops += 1

    # -- parameters (executor thread) -------------------------------------------------------
    def _on_change(self, changed: dict) -> None:
        v = self.params.snapshot()
        if any(k in changed for k in DETECTOR_KEYS):
            self.reader.set_detector_params(detector_params(v))
        if any(k in changed for k in WIDTH_KEYS):
            self.widthmap = width_map(v)
            self.backend.set_widthmap(self.widthmap)
        self.pulse_on = v["pulse_on"]
        self.threshold = float(v["threshold"])

    # -- diagnostics (executor thread, ~1 Hz) -----------------------------------------------
    def _diag_port(self, stat) -> None:
        r = self.reader.snapshot()
        if r.port_up:
            stale = time.monotonic() - r.last_data if r.last_data else None
            if stale is None or stale > 1.0:
                stat.summary(diag.WARN, "port open, no data")
            else:
                stat.summary(diag.OK, "port open, receiving")
        else:
            stat.summary(diag.ERROR, r.port_message or "port down, retrying")
        _add_all(stat, (
            ("port", r.port), ("device", r.device), ("state", r.port_message),
            ("low latency", r.low_latency), ("opens", r.opens), ("disconnects", r.disconnects),
            ("samples received", r.samples), ("next sample index", r.next_index),
        ))  # fmt: skip

    def _diag_losses(self, stat) -> None:
        r = self.reader.snapshot()
        ds, cs = r.decoder, r.clock
        lost, bad = cs.lost, ds.malformed_total + ds.discarded_bytes + self.publish_drops
        new_lost, new_bad = lost - self._last_lost, bad - self._last_bad
        self._last_lost, self._last_bad = lost, bad
        if new_lost or new_bad or r.overruns:
            stat.summary(diag.WARN, f"{new_lost} samples lost, {new_bad} bad bytes/frames "
                         "in the last period")  # fmt: skip
        else:
            stat.summary(diag.OK, "no loss in the last period")
        _add_all(stat, _loss_rows(r, self.resumed))
        for k, n in sorted(ds.malformed.items()):
            stat.add(f"malformed: {k}", n)
        _add_all(stat, (
            ("duplicate frames", cs.duplicates), ("sequence resets", cs.key_resets),
            ("serial overruns", r.overruns if r.uart_counters else "n/a (no UART)"),
            ("discarded at (re)open (bytes)", ds.discarded_at_open),
            ("flushed on open (bytes)", r.flushed_on_open),
            ("pending at last open (bytes)", r.pending_at_open),
            ("publish drops", self.publish_drops),
        ))  # fmt: skip

    def _diag_events(self, stat) -> None:
        r = self.reader.snapshot()
        s = r.detector
        stat.summary(diag.OK, f"{s.events} events")
        _add_all(stat, (
            ("events", s.events), ("published", self.events),
            ("rejected (too short)", s.rejected_short), ("dropped (too long)", s.overlong),
            ("aborted by a gap", s.aborted_by_gap), ("closed by a gap (flagged)", s.closed_by_gap),
            ("gaps bridged", s.bridged_gaps), ("slots bridged", s.bridged_slots),
            ("baseline", r.baseline or 0.0),
        ))  # fmt: skip

    def _diag_detector(self, stat) -> None:
        """Health: a finite state, and events starting while the envelope crosses threshold."""
        r = self.reader.snapshot()
        s = r.detector
        crossings, started = s.crossings, s.started
        new_x, new_s = crossings - self._last_crossings, started - self._last_started
        self._last_crossings, self._last_started = crossings, started
        if not r.detector_healthy:
            stat.summary(diag.ERROR, "detector state not finite")
        elif new_x and not new_s:
            stat.summary(diag.WARN, f"envelope crossed the threshold {new_x} times, no event")
        elif s.resets:
            stat.summary(diag.WARN, f"detector reset {s.resets} times (non-finite state)")
        else:
            stat.summary(diag.OK, "healthy")
        _add_all(stat, (
            ("envelope", r.envelope),
            ("baseline", r.baseline if r.baseline is not None else "none yet"),
            ("threshold crossings", crossings), ("events started", started),
            ("state resets", s.resets), ("values held (beyond float32)", s.bad_values),
        ))  # fmt: skip

    def _diag_pulse(self, stat) -> None:
        level, msg, values = self.backend.status()
        stat.summary(level, msg)
        for k, x in values.items():
            stat.add(k, x)
        stat.add("pulse_on", self.pulse_on)

    def _fatal(self, reason: str) -> None:
        """From the dying reader thread: deliver what was already published (subscribers ack
        it, within a second), then end the process. Once the context is shut down DDS drops it,
        and a recorder would miss the last batch before the crash."""
        for pub in (self.pub_samples, self.pub_events):
            try:
                pub.wait_for_all_acked(Duration(seconds=FATAL_ACK_S))
            except Exception:  # never in the way of ending the process
                pass
        fatal(reason)

    def on_shutdown(self) -> None:
        """Called by spin_node before destroy: stop the reader, then the output thread; save
        the index so a restart books the slots lost meanwhile."""
        self.reader.stop()
        st = self.reader.final_state() if self.state_path is not None else None
        if st is not None:
            self._write_state(st, final=True)
        self.backend.close()


def main(args=None) -> None:
    # A waiting reader thread gets the GIL within 0.5 ms instead of the default 5 ms.
    run_node(PbtDriverNode, args=args, switch_interval=0.0005)


if __name__ == "__main__":
    main()
