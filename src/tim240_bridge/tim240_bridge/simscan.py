"""What the emulated TiM240 measures, and the telegram it sends for it. No ROS, no sockets.

Two sources of beams: the synthesized room (:class:`Scene`) and a capture of another SICK scanner
seen through a TiM240's geometry (:class:`Replay`). A TiM240 beam takes the captured beam nearest
to it in the ROS frame (the capture's scanner type gives its angle shift; the TiM240's is 0), so a
TiM781S capture of 811 points over -45..225 deg becomes the TiM240's 241 points over +-120 deg at
1 deg with the captured values; beams the capture does not cover have no echo (0).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from tim240_bridge import scandata as sd

# The TiM240's scan in 1/10000 deg (telegram frame = ROS frame).
START, STOP, STEP = -1200000, 1200000, 10000


@dataclass(frozen=True)
class Beams:
    """One scan's measurements at the requested angles."""

    dist_mm: np.ndarray  # uint16, 0 = no echo
    rssi16: np.ndarray | None  # remission on the 16-bit scale; None when the source has none


class Scene:
    """Sensor at the origin looking along +x; rectangular room; one round object moving on
    x = object_x between y = -object_span and +object_span."""

    def __init__(self, args, rng: np.random.Generator):
        self.a = args
        self.rng = rng

    def object_y(self, t: float) -> float:
        a = self.a
        if a.no_object:
            return math.nan
        if a.object_speed <= 0:
            return a.object_y
        span = a.object_span
        period = 4 * span / a.object_speed
        ph = (t % period) / period
        return -span + 4 * span * ph if ph < 0.5 else 3 * span - 4 * span * ph

    def ranges(self, t: float, angles_deg: np.ndarray) -> np.ndarray:
        a = self.a
        th = np.radians(angles_deg)
        c, s = np.cos(th), np.sin(th)
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(c > 1e-12, a.room_front / c, np.where(c < -1e-12, -a.room_back / c,
                          np.inf))  # fmt: skip
            ty = np.where(s > 1e-12, a.room_half_width / s,
                          np.where(s < -1e-12, -a.room_half_width / s, np.inf))  # fmt: skip
        d = np.minimum(tx, ty)
        oy = self.object_y(t)
        if math.isfinite(oy):
            cx, cy, r = a.object_x, oy, a.object_radius
            b = c * cx + s * cy
            disc = b * b - (cx * cx + cy * cy - r * r)
            with np.errstate(invalid="ignore"):
                hit = b - np.sqrt(disc)
            ok = (disc >= 0) & (hit > 0)
            d = np.where(ok, np.minimum(d, hit), d)
        if a.noise > 0:
            d = d + self.rng.normal(0.0, a.noise, d.shape)
        mm = np.clip(np.round(d * 1000.0), 0, 65535)
        mm[d > 10.0 * 1.2] = 0  # beyond reach: no echo
        if a.invalid_rate > 0:
            mm[self.rng.random(mm.shape) < a.invalid_rate] = 0
        return mm.astype(np.uint16)

    def beams(self, t: float, angles: np.ndarray) -> Beams:
        """At ``angles`` (1/10000 deg); remission falls with the square of the range."""
        mm = self.ranges(t, angles * 1e-4)
        with np.errstate(divide="ignore"):
            rssi = np.where(mm > 0, 60000.0 / np.maximum(mm / 1000.0, 0.3) ** 2, 0)
        return Beams(mm, rssi)


def _nearest(ch: sd.Channel, shift: int, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest beam of ``ch``, whether it covers the angle) per angle; all in
    1/10000 deg, exact integer rounding."""
    a0 = ch.start_angle + shift
    j = (2 * (angles.astype(np.int64) - a0) + ch.step) // (2 * ch.step)
    ok = (j >= 0) & (j < len(ch.values))
    return np.clip(j, 0, max(len(ch.values) - 1, 0)), ok


def resample(scan: sd.Scan, shift_deg: float, angles: np.ndarray) -> Beams:
    """The captured beams nearest to ``angles`` (1/10000 deg, ROS frame) of a telegram whose
    scanner type shifts its angles by ``shift_deg``."""
    shift = round(shift_deg * 1e4)
    d = scan.channel("DIST")
    j, ok = _nearest(d, shift, angles)
    raw = np.asarray(d.values)[j].astype(np.float64)
    mm = np.where(raw > 0, np.round(raw * d.scale + d.offset * 1000.0), 0)
    mm = np.where(ok, np.clip(mm, 0, 65535), 0).astype(np.uint16)
    rssi = None
    c = scan.channel("RSSI")
    if c is not None and len(c.values):
        k, kok = _nearest(c, shift, angles)
        v = np.asarray(c.values)[k].astype(np.float64) * (256.0 if c.bits == 8 else 1.0)
        rssi = np.where(kok, v, 0.0)
    return Beams(mm, rssi)


def coverage_deg(scan: sd.Scan, shift_deg: float) -> tuple[float, float]:
    """First and last beam angle of a telegram in the ROS frame [deg]."""
    d = scan.channel("DIST")
    a0 = d.start_angle * 1e-4 + shift_deg
    return a0, a0 + (len(d.values) - 1) * d.step * 1e-4


class Replay:
    """Captured telegrams in a loop, as recorded or resampled to a TiM240's beams."""

    def __init__(self, scans: list[sd.Scan], scanner: sd.ScannerType):
        if not scans:
            raise ValueError("a replay needs at least one LMDscandata telegram")
        lo, hi = coverage_deg(scans[0], scanner.angle_shift_deg)
        if hi < START * 1e-4 or lo > STOP * 1e-4:
            raise ValueError(
                f"the capture covers {lo:g}..{hi:g} deg as {scanner.name}, outside the "
                f"TiM240's {START * 1e-4:g}..{STOP * 1e-4:g} deg"
            )
        self.scans = scans
        self.shift_deg = scanner.angle_shift_deg
        self.i = 0

    def next(self) -> sd.Scan:
        s = self.scans[self.i % len(self.scans)]
        self.i += 1
        return s

    def recorded(self) -> sd.Scan:
        """The next telegram as recorded (a copy whose counters and clock can be set)."""
        return sd.Scan(**{**self.next().__dict__})

    def beams(self, angles: np.ndarray) -> Beams:
        return resample(self.next(), self.shift_deg, angles)


@dataclass(frozen=True)
class TelegramSpec:
    """What the device puts around the beams: its output range, LMDscandatacfg, rate, serial."""

    start: int  # 1/10000 deg
    step: int
    cfg: tuple  # LMDscandatacfg fields
    rate: float  # scans per second
    serial: int


def _rssi_channel(rssi16: np.ndarray, spec: TelegramSpec) -> tuple[sd.Channel, bool]:
    """The remission channel as LMDscandatacfg asks for it, and whether it is 16-bit."""
    wide = bool(spec.cfg[3])
    if wide:
        values, bits = np.clip(rssi16, 0, 65535).astype(np.uint16), 16
    else:
        values, bits = np.clip(rssi16 / 256, 0, 255).astype(np.uint8), 8
    return sd.Channel("RSSI1", 1.0, 0.0, spec.start, spec.step, values, bits), wide


def telegram(beams: Beams, spec: TelegramSpec) -> sd.Scan:
    """The LMDscandata a TiM240 sends for these beams (counters and device time left at 0)."""
    chans = [sd.Channel("DIST1", 1.0, 0.0, spec.start, spec.step, beams.dist_mm, 16)]
    ch8 = []
    if spec.cfg[2] and beams.rssi16 is not None:
        ch, wide = _rssi_channel(beams.rssi16, spec)
        (chans if wide else ch8).append(ch)
    tm = None
    if spec.cfg[10]:
        lt = time.gmtime()
        tm = (lt.tm_year, lt.tm_mon, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec,
              int((time.time() % 1) * 1e6))  # fmt: skip
    return sd.Scan(
        serial=spec.serial,
        scan_frequency=round(spec.rate * 100),
        measurement_frequency=round(spec.rate * 360 / 100),
        channels16=chans, channels8=ch8, time=tm, trailer=sd.trailer_bytes(tm),
    )  # fmt: skip
