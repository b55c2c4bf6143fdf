"""pbt_sim: a PBT sensor on a pty, at real-time pace, with ground truth and fault injection.

The driver opens the pty slave (or the stable ``--link`` symlink) exactly like a USB serial port.
Signal: baseline + slow drift + Gaussian noise + pulses (Poisson arrivals with a minimum
separation, exponential amplitudes above a minimum, double-exponential shape). Faults are logged
one JSON line each (``--fault-log``) with the sample index they hit, so tests can check that the
driver counted every one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import termios
import time
import tty
from dataclasses import dataclass

import numpy as np

from pbt_driver.frames import FRAME_LEN, encode_binary_block

MALFORMED_LINES = [b"abc", b"nan", b"inf", b"1.2.3", b"-", b"12,34,56", b"9" * 200]


def pulse_shape(rise: float, decay: float):
    """Normalised double exponential (peak 1) and the time of its peak."""
    tp = rise * decay / (decay - rise) * math.log(decay / rise)
    norm = 1.0 / (math.exp(-tp / decay) - math.exp(-tp / rise))

    def f(t: np.ndarray) -> np.ndarray:
        out = np.zeros_like(t)
        m = t >= 0
        out[m] = norm * (np.exp(-t[m] / decay) - np.exp(-t[m] / rise))
        return out

    return f, tp


class Generator:
    """Produces the sample stream in blocks; pulses may straddle blocks."""

    def __init__(self, a, rng: np.random.Generator):
        self.a = a
        self.rng = rng
        self.k = 0
        self.shape, self.tp = pulse_shape(a.rise, a.decay)
        self.pulses: list[tuple[float, float]] = []  # (start time, amplitude)
        self.next_pulse = self._gap() if a.pulse_rate > 0 else math.inf
        self.walk = 0.0

    def _gap(self) -> float:
        a = self.a
        return a.min_separation + self.rng.exponential(max(1e-9, 1.0 / a.pulse_rate))

    def baseline(self, t: np.ndarray) -> np.ndarray:
        a = self.a
        return a.baseline + a.drift * np.sin(2 * math.pi * t / a.drift_period) + self.walk

    def block(self, n: int):
        a = self.a
        rate = a.rate
        ks = np.arange(self.k, self.k + n)
        t = ks / rate
        t_end = (self.k + n) / rate
        while self.next_pulse < t_end:
            amp = min(a.amp_max, a.amp_min + self.rng.exponential(a.amp_mean - a.amp_min))
            self.pulses.append((self.next_pulse, amp))
            self.next_pulse += self._gap()
        self.walk += self.rng.normal(0, a.walk) * math.sqrt(n / rate)
        base = self.baseline(t)
        clean = base.copy()
        truth = []
        keep = []
        for t0, amp in self.pulses:
            clean += amp * self.shape(t - t0)
            kp = math.floor((t0 + self.tp) * rate)
            cand = np.array([kp, kp + 1])
            best = int(cand[np.argmax(self.shape(cand / rate - t0))])
            if self.k <= best < self.k + n:
                i = best - self.k
                peak = float(base[i] + amp * self.shape(np.array([t[i] - t0]))[0])
                truth.append({"index": best, "t": best / rate, "amplitude": amp, "peak": peak})
            if t0 + 12 * a.decay > t_end:
                keep.append((t0, amp))
        self.pulses = keep
        values = clean + self.rng.normal(0, a.noise, n)
        self.k += n
        return values, truth


class Pty:
    """A pty pair; the slave stays open here so the device exists while no driver reads it."""

    def __init__(self, link: str | None):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)
        self.link = link
        if link:
            tmp = f"{link}.tmp{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.name, tmp)
            os.replace(tmp, link)

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def pending(self) -> int:
        """Bytes written but not yet read by the driver."""
        import fcntl

        buf = fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(buf, sys.byteorder)

    def drain(self, timeout: float, idle: float = 0.5) -> None:
        """Wait until the driver has read what was written, at most `timeout` s, and no longer
        than `idle` s without progress (no reader left). Closing first would swallow bytes whose
        faults are already in the fault log."""
        end = time.monotonic() + timeout
        last, t_last = -1, time.monotonic()
        with contextlib.suppress(OSError):
            while (n := self.pending()) and (now := time.monotonic()) < end:
                if n != last:
                    last, t_last = n, now
                elif now - t_last > idle:
                    return
                time.sleep(0.005)

    def close(self, unlink: bool = True) -> None:
        if unlink and self.link:
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(self.link) == self.name:
                    os.unlink(self.link)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class _Run:
    """Where the write loop stands: next sample, the current pty, stall and unplug state."""

    pty: Pty
    t0: float  # monotonic start
    k: int = 0  # next sample to write
    stall_until: float = -1.0  # s after t0 (< 0: no stall)
    stall_burst: bool = False
    stall_k0: int = 0
    disc_until: float = -1.0  # s after t0 (< 0: plugged in)
    disc_k0: int = 0
    disc_idx: int = 0
    next_disc: float = math.inf


class Sim:
    def __init__(self, a):
        self.a = a
        self.rng = np.random.default_rng(a.seed)
        self.frng = np.random.default_rng(None if a.seed is None else a.seed + 1)
        self.gen = Generator(a, self.rng)
        self.stop = False
        self.stats = {"generated": 0, "written": 0, "dropped_no_reader": 0, "faults": {}}
        self.truth = open(a.truth, "w") if a.truth else None  # noqa: SIM115
        self.flog = open(a.fault_log, "w") if a.fault_log else None  # noqa: SIM115
        self.wlog = open(a.write_log, "w") if a.write_log else None  # noqa: SIM115
        self.frames: list[bytes] = []  # encoded, not yet written
        self.first_k = 0  # sample index of frames[0]
        self.t_wall0 = 0.0
        self._next_fault = {}
        self.pending_faults: dict[int, tuple[str, dict]] = {}
        self.any_faults = bool(a.garbage_every or a.malformed_every or a.corrupt_every)

    def encode(self, k: int, v: float) -> bytes:
        a = self.a
        txt = f"{v:.{a.decimals}f}"
        if a.layout == "seq,value":
            txt = f"{k % a.seq_modulus if a.seq_modulus else k},{txt}"
        elif a.layout == "time_us,value":
            txt = f"{round(k / a.rate * 1e6) % (1 << 32)} {txt}"
        return txt.encode() + b"\n"

    def log_fault(self, kind: str, k: int, **kw) -> None:
        self.stats["faults"][kind] = self.stats["faults"].get(kind, 0) + 1
        if self.flog:
            self.flog.write(json.dumps({"fault": kind, "index": k, **kw}) + "\n")
            self.flog.flush()

    def frame_fault(self, kind: str, k: int, **kw) -> None:
        """A fault inside frame k: logged when the frame goes on the wire (not if dropped)."""
        self.pending_faults[k] = (kind, kw)

    def due(self, kind: str, t: float) -> bool:
        period = getattr(self.a, kind.replace("-", "_") + "_every")
        if not period or t < self.a.faults_after:
            return False
        nxt = self._next_fault.get(kind)
        if nxt is None:
            nxt = self._next_fault[kind] = t + self.frng.exponential(period)
        if t >= nxt:
            self._next_fault[kind] = t + max(0.05, self.frng.exponential(period))
            return True
        return False

    def garbage(self, n: int) -> bytes:
        # 0x80..0xFF without the sync byte: never a newline, digit or sync word
        pool = np.array([b for b in range(0x80, 0x100) if b != 0xA5], dtype=np.uint8)
        return bytes(self.frng.choice(pool, n))

    def generate(self, n: int) -> None:
        a = self.a
        values, truth = self.gen.block(n)
        k0 = self.gen.k - n
        if a.format == "binary":
            blob = encode_binary_block(np.arange(k0, k0 + n), values)
            frames = [blob[i : i + FRAME_LEN] for i in range(0, len(blob), FRAME_LEN)]
        else:
            frames = [self.encode(k0 + i, float(v)) for i, v in enumerate(values)]
        if not self.any_faults:
            self.frames += frames
            n = 0
        for i in range(n):
            k = k0 + i
            t = k / a.rate
            fr = frames[i]
            if self.due("garbage", t):
                g = self.garbage(a.garbage_bytes)
                self.frame_fault("garbage", k, bytes=len(g), line_bytes=len(fr))
                fr = g + fr
            elif a.format == "ascii" and self.due("malformed", t):
                bad = MALFORMED_LINES[int(self.frng.integers(len(MALFORMED_LINES)))]
                self.frame_fault("malformed", k, line=bad.decode()[:20], bytes=len(bad) + 1)
                fr = bad + b"\n"
            elif a.format == "binary" and self.due("corrupt", t):
                b = bytearray(fr)
                b[2 + int(self.frng.integers(8))] ^= 1 << int(self.frng.integers(8))
                self.frame_fault("corrupt", k, bytes=len(fr))
                fr = bytes(b)
            self.frames.append(fr)
        if self.truth:
            for ev in truth:
                ev["t"] = self.t_wall0 + ev["t"]
                self.truth.write(json.dumps(ev) + "\n")
            self.truth.flush()

    def run(self) -> int:
        a = self.a
        pty = Pty(a.link)
        print(f"pbt_sim: {pty.name}" + (f" -> {a.link}" if a.link else ""), flush=True)
        rs = _Run(pty=pty, t0=time.monotonic())
        rs.next_disc = a.disconnect_at[0] if a.disconnect_at else math.inf
        self.t_wall0 = time.time()
        try:
            while not self.stop and (a.duration <= 0 or rs.k / a.rate < a.duration):
                self._turn(rs)
        finally:
            self._finish(rs)
        return 0

    def _turn(self, rs: _Run) -> None:
        """Generate up to now, apply an unplug or a stall, write what is due, sleep."""
        a = self.a
        rate = a.rate
        now = time.monotonic() - rs.t0
        k_due = min(int(now * rate) + 1, int(a.duration * rate) if a.duration > 0 else 1 << 62)
        while self.gen.k < k_due:
            self.generate(max(1, int(rate * 0.05)))
        if self._unplugged(rs, now, k_due) or self._stalled(rs, now, k_due):
            return
        self._write_due(rs, k_due)
        nxt = rs.t0 + max(rs.k / rate, now + a.write_period)
        dt = nxt - time.monotonic()
        if dt > 0:
            time.sleep(dt)

    def _unplugged(self, rs: _Run, now: float, k_due: int) -> bool:
        """Unplug when due, replug after --disconnect-for; True while the device is away."""
        a = self.a
        if now >= rs.next_disc and rs.disc_until < 0:
            # unplug: let the driver drain what it has, then pull the device
            rs.pty.drain(0.5)
            rs.pty.close()
            rs.disc_until = now + a.disconnect_for
            self.log_fault("disconnect", rs.k, seconds=a.disconnect_for)
            rs.disc_idx += 1
            at = a.disconnect_at
            rs.next_disc = at[rs.disc_idx] if rs.disc_idx < len(at) else math.inf
            rs.disc_k0 = rs.k
        if rs.disc_until < 0:
            return False
        if now < rs.disc_until:
            self._drop(k_due - rs.k)
            rs.k = k_due
            time.sleep(0.01)
            return True
        rs.disc_until = -1.0
        self.stats.setdefault("disconnect_lost", []).append(rs.k - rs.disc_k0)
        rs.pty = Pty(a.link)
        print(f"pbt_sim: replugged {rs.pty.name}", flush=True)
        return False

    def _stalled(self, rs: _Run, now: float, k_due: int) -> bool:
        """Start a stall when due (drop: samples lost; burst: sent late at once); True while
        it lasts. Logged when it ends."""
        a = self.a
        if rs.stall_until < 0 and self.due("stall", rs.k / a.rate):
            rs.stall_until = now + a.stall_duration
            rs.stall_burst = a.stall_mode == "burst"
            rs.stall_k0 = rs.k
        if rs.stall_until < 0:
            return False
        if now < rs.stall_until:
            if not rs.stall_burst:
                self._drop(k_due - rs.k)
                rs.k = k_due
            time.sleep(0.002)
            return True
        rs.stall_until = -1.0
        n = rs.k - rs.stall_k0 if not rs.stall_burst else 0
        delayed = (k_due - rs.stall_k0) if rs.stall_burst else 0
        self.log_fault("stall", rs.stall_k0, mode=a.stall_mode, dropped=n, delayed=delayed)
        return False

    def _write_due(self, rs: _Run, k_due: int) -> None:
        n = k_due - rs.k
        if n <= 0:
            return
        data = b"".join(self.frames[:n])
        del self.frames[:n]
        self.first_k += n
        t_w = time.time()  # the moment the samples go on the wire
        w = rs.pty.write(data)
        if w < len(data):
            self.stats["dropped_no_reader"] += n  # approximate: partial frames
        else:
            for kk in range(rs.k, rs.k + n):
                f = self.pending_faults.pop(kk, None)
                if f:
                    self.log_fault(f[0], kk, **f[1])
        self.stats["written"] += n
        if self.wlog:
            self.wlog.write(f"{rs.k} {n} {t_w:.6f}\n")
        rs.k = k_due

    def _finish(self, rs: _Run) -> None:
        self.stats["generated"] = self.gen.k
        self.stats["next_index"] = rs.k
        if rs.disc_until < 0:
            rs.pty.drain(2.0)
        rs.pty.close()
        for f in (self.truth, self.flog, self.wlog):
            if f:
                f.close()
        if self.a.stats:
            with open(self.a.stats, "w") as f:
                json.dump(self.stats, f)

    def _drop(self, n: int) -> None:
        for kk in range(self.first_k, self.first_k + n):
            self.pending_faults.pop(kk, None)
        del self.frames[:n]
        self.first_k += n


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="pbt_sim", description=__doc__.splitlines()[0])
    p.add_argument("--link", help="create/replace this symlink to the pty (removed on exit)")
    p.add_argument("--rate", type=float, default=800.0, help="sample rate [Hz]")
    p.add_argument("--format", choices=("ascii", "binary"), default="ascii")
    p.add_argument("--layout", choices=("value", "seq,value", "time_us,value"), default="value")
    p.add_argument("--seq-modulus", type=int, default=0, help="ascii seq wrap (0 = none)")
    p.add_argument("--decimals", type=int, default=2)
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0 = until signalled)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--write-period",
        type=float,
        default=0.0,
        help="seconds between writes (0 = each sample at its time)",
    )
    # signal
    p.add_argument("--baseline", type=float, default=512.0)
    p.add_argument("--drift", type=float, default=10.0, help="sinusoidal drift amplitude")
    p.add_argument("--drift-period", type=float, default=30.0)
    p.add_argument("--walk", type=float, default=0.5, help="random-walk baseline per sqrt(s)")
    p.add_argument("--noise", type=float, default=2.0, help="Gaussian noise sigma")
    p.add_argument("--pulse-rate", type=float, default=10.0, help="mean pulses per second")
    p.add_argument("--min-separation", type=float, default=0.05, help="pulse dead time [s]")
    p.add_argument("--amp-min", type=float, default=40.0)
    p.add_argument("--amp-mean", type=float, default=150.0)
    p.add_argument("--amp-max", type=float, default=2000.0)
    p.add_argument("--rise", type=float, default=0.001, help="pulse rise time constant [s]")
    p.add_argument("--decay", type=float, default=0.006, help="pulse decay time constant [s]")
    # outputs
    p.add_argument("--truth", help="JSON lines: t (wall), index, peak, amplitude per pulse")
    p.add_argument("--fault-log", help="JSON lines: every injected fault")
    p.add_argument("--write-log", help="lines 'first_index count wall_time' per write")
    p.add_argument("--stats", help="JSON summary written at exit")
    # faults (mean seconds between faults; 0 = off)
    p.add_argument("--faults-after", type=float, default=2.0, help="no faults before [s]")
    p.add_argument("--garbage-every", type=float, default=0.0)
    p.add_argument("--garbage-bytes", type=int, default=7)
    p.add_argument("--malformed-every", type=float, default=0.0, help="ascii only")
    p.add_argument("--corrupt-every", type=float, default=0.0, help="binary only: bad CRC")
    p.add_argument("--stall-every", type=float, default=0.0)
    p.add_argument("--stall-duration", type=float, default=0.1)
    p.add_argument("--stall-mode", choices=("drop", "burst"), default="drop")
    p.add_argument(
        "--disconnect-at",
        type=float,
        nargs="*",
        default=[],
        help="seconds after start at which the device is unplugged",
    )
    p.add_argument("--disconnect-for", type=float, default=1.0)
    return p.parse_args(argv)  # fmt: skip


def main(argv=None) -> int:
    a = parse_args(argv)
    sim = None
    stopping = False

    def _stop(signum, frame):
        # A terminal Ctrl-C under ros2 launch arrives twice (the terminal's and launch's): the
        # first one stops the simulator; repeats are ignored, never a KeyboardInterrupt.
        nonlocal stopping
        stopping = True
        # SIG_IGN also covers interpreter shutdown, where Python restores default handlers.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if sim is not None:
            sim.stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    sim = Sim(a)
    sim.stop = stopping
    return sim.run()


if __name__ == "__main__":
    sys.exit(main())
