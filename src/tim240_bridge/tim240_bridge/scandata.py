"""LMDscandata telegrams: decode and encode (CoLa-B and CoLa-A), geometry of the scanner types.

No ROS. Layout in ``shared/data/tim/README.md`` (big-endian; the payload starts with
``sSN LMDscandata ``). :func:`decode` raises :class:`ScanDataError` on anything that does not
add up, so a caller can count and skip it.
"""

from __future__ import annotations

import math
import struct
import threading
from dataclasses import dataclass, field

import numpy as np

from tim240_bridge.cola import BINARY, ColaError

PREFIX = b"sSN LMDscandata "


class ScanDataError(ColaError):
    """A telegram that claims to be LMDscandata but does not decode."""


class RefusedTelegramError(ScanDataError):
    """A telegram that decodes but describes a scan no TiM-family scanner sends.

    ``reason`` is short and stable (``"angle step 0"``, ``"DIST scale NaN"``...) so refusals
    can be counted per reason; the message adds the offending values.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ScannerType:
    """Per-type geometry as sick_scan_xd uses it: the angle shift from telegram to ROS frame."""

    name: str
    angle_shift_deg: float
    range_min: float
    range_max: float
    frequency: float  # expected scan rate [Hz]


SCANNER_TYPES = {
    t.name: t
    for t in (
        ScannerType("sick_tim_240", 0.0, 0.05, 10.0, 15.0),
        ScannerType("sick_tim_5xx", -90.0, 0.05, 25.0, 15.0),
        ScannerType("sick_tim_7xx", -90.0, 0.05, 25.0, 15.0),
        ScannerType("sick_tim_7xxS", -90.0, 0.05, 25.0, 15.0),
        ScannerType("sick_lms_1xx", -90.0, 0.5, 20.0, 50.0),
    )
}


@dataclass
class Channel:
    name: str
    scale: float
    offset: float
    start_angle: int  # 1/10000 deg, telegram frame
    step: int  # 1/10000 deg
    values: np.ndarray  # uint16 or uint8
    bits: int


@dataclass
class Scan:
    version: int = 1
    device: int = 1
    serial: int = 0
    status: tuple = (0, 0)
    telegram_counter: int = 0
    scan_counter: int = 0
    time_since_power_up_us: int = 0
    time_of_transmission_us: int = 0
    inputs: int = 0
    outputs: int = 0
    reserved: int = 0
    scan_frequency: int = 1500  # 1/100 Hz
    measurement_frequency: int = 54  # 100 Hz
    encoders: list = field(default_factory=list)  # [(position, speed)]
    channels16: list = field(default_factory=list)
    channels8: list = field(default_factory=list)
    # Trailer: flags and contents we understand; raw bytes kept for a faithful binary re-encode.
    time: tuple | None = None  # (year, month, day, hour, minute, second, us)
    trailer: bytes = b"\x00\x00" * 3 + b"\x00\x00" + b"\x00\x00"

    def channel(self, prefix: str) -> Channel | None:
        for c in (*self.channels16, *self.channels8):
            if c.name.startswith(prefix):
                return c
        return None

    @property
    def scan_frequency_hz(self) -> float:
        return self.scan_frequency / 100.0

    @property
    def measurement_frequency_hz(self) -> float:
        return self.measurement_frequency * 100.0


def is_scandata(payload: bytes) -> bool:
    return payload.startswith(PREFIX)


# -- binary ---------------------------------------------------------------------------------

_HEAD = struct.Struct(">HHIBBHHIIHHHII")  # from payload offset 16 to 52
_CHAN = struct.Struct(">5sffiHH")


def _decode_b(p: bytes) -> Scan:
    mv = memoryview(p)
    try:
        h = _HEAD.unpack_from(p, 16)
        off = 16 + _HEAD.size
        s = Scan(
            version=h[0], device=h[1], serial=h[2], status=(h[3], h[4]),
            telegram_counter=h[5], scan_counter=h[6], time_since_power_up_us=h[7],
            time_of_transmission_us=h[8], inputs=h[9], outputs=h[10], reserved=h[11],
            scan_frequency=h[12], measurement_frequency=h[13],
        )  # fmt: skip
        (nenc,) = struct.unpack_from(">H", p, off)
        off += 2
        if nenc > 16:
            raise ScanDataError(f"{nenc} encoders")
        for _ in range(nenc):
            s.encoders.append(struct.unpack_from(">IH", p, off))
            off += 6
        for bits, dest in ((16, s.channels16), (8, s.channels8)):
            (nch,) = struct.unpack_from(">H", p, off)
            off += 2
            if nch > 8:
                raise ScanDataError(f"{nch} {bits}-bit channels")
            for _ in range(nch):
                name, scale, offset, start, step, count = _CHAN.unpack_from(p, off)
                off += _CHAN.size
                nbytes = count * bits // 8
                if off + nbytes > len(p):
                    raise ScanDataError(f"channel {name!r}: {count} values run past the end")
                dt = ">u2" if bits == 16 else "u1"
                vals = np.frombuffer(mv[off : off + nbytes], dtype=dt)
                off += nbytes
                dest.append(
                    Channel(name.decode("ascii", "replace"), scale, offset, start, step, vals,
                            bits)
                )  # fmt: skip
        s.trailer = bytes(p[off:])
        s.time = _parse_trailer_b(s.trailer)
    except struct.error as e:
        raise ScanDataError(f"telegram too short: {e}") from None
    return s


def _parse_trailer_b(t: bytes):
    """The time block if present; other optional blocks are skipped (kept raw in the Scan)."""
    try:
        off = 0
        (pos,) = struct.unpack_from(">H", t, off)
        off += 2
        if pos:
            off += 6 * 4 + 1 + 1 + 1  # x, y, z, rot x/y/z, rotation type, transmit name flag..
            return None  # rarely used; not needed for our geometry
        for _ in range(2):  # device name, comment
            (flag,) = struct.unpack_from(">H", t, off)
            off += 2
            if flag:
                n = t[off]
                off += 1 + n
        (tflag,) = struct.unpack_from(">H", t, off)
        off += 2
        if tflag:
            return struct.unpack_from(">HBBBBBI", t, off)
    except (struct.error, IndexError):
        return None
    return None


def _encode_b(s: Scan) -> bytes:
    parts = [
        PREFIX,
        _HEAD.pack(
            s.version, s.device, s.serial, s.status[0], s.status[1], s.telegram_counter,
            s.scan_counter, s.time_since_power_up_us & 0xFFFFFFFF,
            s.time_of_transmission_us & 0xFFFFFFFF, s.inputs, s.outputs, s.reserved,
            s.scan_frequency, s.measurement_frequency,
        ),
        struct.pack(">H", len(s.encoders)),
    ]  # fmt: skip
    for e in s.encoders:
        parts.append(struct.pack(">IH", *e))
    for bits, chans in ((16, s.channels16), (8, s.channels8)):
        parts.append(struct.pack(">H", len(chans)))
        for c in chans:
            parts.append(_CHAN.pack(c.name.encode("ascii")[:5].ljust(5), c.scale, c.offset,
                                    c.start_angle, c.step, len(c.values)))  # fmt: skip
            dt = ">u2" if bits == 16 else "u1"
            parts.append(np.asarray(c.values).astype(dt, copy=False).tobytes())
    parts.append(s.trailer)
    return b"".join(parts)


def trailer_bytes(time: tuple | None) -> bytes:
    """position 0, name 0, comment 0, time block (flag 1 + fields, or 0), event 0."""
    t = b"\x00\x00" * 3
    if time is None:
        t += b"\x00\x00"
    else:
        t += b"\x00\x01" + struct.pack(">HBBBBBI", *time)
    return t + b"\x00\x00"


# -- ASCII ----------------------------------------------------------------------------------


def _float_hex(tok: bytes) -> float:
    return struct.unpack(">f", struct.pack(">I", int(tok, 16)))[0]


def _hex_float(v: float) -> str:
    return f"{struct.unpack('>I', struct.pack('>f', v))[0]:08X}"


def _signed(tok: bytes, bits: int = 32) -> int:
    if tok[:1] in (b"+", b"-"):
        return int(tok, 10)
    v = int(tok, 16)
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _decode_a(p: bytes) -> Scan:
    toks = p.split()
    try:
        it = 2  # sSN, LMDscandata
        u = [int(t, 16) for t in toks[it : it + 15]]
        s = Scan(
            version=u[0], device=u[1], serial=u[2], status=(u[3], u[4]),
            telegram_counter=u[5], scan_counter=u[6], time_since_power_up_us=u[7],
            time_of_transmission_us=u[8], inputs=(u[9] << 8) | u[10],
            outputs=(u[11] << 8) | u[12], reserved=u[13], scan_frequency=u[14],
        )  # fmt: skip
        it += 15
        s.measurement_frequency = int(toks[it], 16)
        nenc = int(toks[it + 1], 16)
        it += 2
        if nenc > 16:
            raise ScanDataError(f"{nenc} encoders")
        for _ in range(nenc):
            s.encoders.append((int(toks[it], 16), int(toks[it + 1], 16)))
            it += 2
        for bits, dest in ((16, s.channels16), (8, s.channels8)):
            nch = int(toks[it], 16)
            it += 1
            if nch > 8:
                raise ScanDataError(f"{nch} {bits}-bit channels")
            for _ in range(nch):
                name = toks[it].decode("ascii", "replace")
                scale, offset = _float_hex(toks[it + 1]), _float_hex(toks[it + 2])
                start = _signed(toks[it + 3])
                step = int(toks[it + 4], 16)
                count = int(toks[it + 5], 16)
                it += 6
                vt = toks[it : it + count]
                if len(vt) != count:
                    raise ScanDataError(f"channel {name}: {count} values run past the end")
                dt = np.uint16 if bits == 16 else np.uint8
                vals = np.array([int(t, 16) for t in vt], dtype=np.int64)
                if vals.size and (vals.min() < 0 or vals.max() >= 1 << bits):
                    raise ScanDataError(f"channel {name}: value out of range")
                dest.append(Channel(name, scale, offset, start, step, vals.astype(dt), bits))
                it += count
        rest = toks[it:]
        flags = []
        j = 0
        while j < len(rest) and len(flags) < 5:
            f = int(rest[j], 16)
            flags.append(f)
            j += 1
            if len(flags) == 4 and f:
                y, mo, d, h, mi, sec, us = (int(x, 16) for x in rest[j : j + 7])
                s.time = (y, mo, d, h, mi, sec, us)
                j += 7
            elif f and len(flags) != 4:
                break  # position/name/comment/event contents: not needed
        s.trailer = trailer_bytes(s.time)
    except (IndexError, ValueError) as e:
        raise ScanDataError(f"bad CoLa-A LMDscandata: {e}") from None
    return s


def _encode_a(s: Scan) -> bytes:
    h = [
        s.version, s.device, s.serial, s.status[0], s.status[1], s.telegram_counter,
        s.scan_counter, s.time_since_power_up_us & 0xFFFFFFFF,
        s.time_of_transmission_us & 0xFFFFFFFF, s.inputs >> 8, s.inputs & 0xFF,
        s.outputs >> 8, s.outputs & 0xFF, s.reserved, s.scan_frequency,
        s.measurement_frequency, len(s.encoders),
    ]  # fmt: skip
    toks = ["sSN", "LMDscandata", *(f"{v:X}" for v in h)]
    for pos, speed in s.encoders:
        toks += [f"{pos:X}", f"{speed:X}"]
    for chans in (s.channels16, s.channels8):
        toks.append(f"{len(chans):X}")
        for c in chans:
            toks += [
                c.name,
                _hex_float(c.scale),
                _hex_float(c.offset),
                f"{c.start_angle & 0xFFFFFFFF:X}",
                f"{c.step:X}",
                f"{len(c.values):X}",
            ]
            toks += [f"{int(v):X}" for v in np.asarray(c.values).tolist()]
    toks += ["0", "0", "0"]
    if s.time is None:
        toks.append("0")
    else:
        toks += ["1", *(f"{v:X}" for v in s.time)]
    toks.append("0")
    return " ".join(toks).encode("ascii")


def decode(dialect: str, payload: bytes) -> Scan:
    if not payload.startswith(PREFIX):
        raise ScanDataError(f"not an LMDscandata telegram: {payload[:20]!r}")
    s = _decode_b(payload) if dialect == BINARY else _decode_a(payload)
    if s.channel("DIST") is None:
        raise ScanDataError("no DIST channel")
    return s


def encode(dialect: str, s: Scan) -> bytes:
    """The payload (unframed)."""
    return _encode_b(s) if dialect == BINARY else _encode_a(s)


# -- plausibility ---------------------------------------------------------------------------

# What a telegram of the TiM family may describe (angles in 1/10000 deg, telegram frame). A TiM240
# sends 241 points at 1 deg over +-120 deg at 15 Hz, 0.05..10 m (sick_scan_xd: 241 shots, 1 deg,
# 15 Hz, no angle shift); the envelope also admits its siblings (TiM5xx/7xx: 811 points at 1/3 deg
# over 270 deg; LMS1xx: 0.5 or 0.25 deg at 25/50 Hz), so their captures still replay, and
# nothing beyond: a wrong step, start or scale would publish a scan that looks fine and is not.
STEP_MIN = 1000  # 0.1 deg
STEP_MAX = 10000  # 1 deg
FOV_MAX = 2700000  # 270 deg
START_MAX = 1800000  # |start angle| <= 180 deg
SCALE_MIN, SCALE_MAX = 0.1, 10.0  # mm per count: 1 on a TiM, 1 or 2 on an LMS
OFFSET_MAX = 1.0  # [m]
FREQ_MIN, FREQ_MAX = 100, 10000  # scan frequency field, 1/100 Hz (1..100 Hz)


def _check_number(what: str, v: float, lo: float, hi: float) -> None:
    if math.isnan(v):
        raise RefusedTelegramError(f"{what} NaN")
    if math.isinf(v):
        raise RefusedTelegramError(f"{what} infinite")
    if what.endswith("scale factor") and v <= 0:
        raise RefusedTelegramError(f"{what} <= 0", f"{v:g}")
    if not lo <= v <= hi:
        raise RefusedTelegramError(f"{what} out of range", f"{v:g}, allowed {lo:g}..{hi:g}")


def _check_angles(c: Channel) -> None:
    step, start, n = c.step, c.start_angle, len(c.values)
    if not math.isfinite(step):
        raise RefusedTelegramError("angle step not finite")
    if step == 0:
        raise RefusedTelegramError("angle step 0")
    if step < 0:
        raise RefusedTelegramError("angle step negative", f"{step * 1e-4:g} deg")
    if not STEP_MIN <= step <= STEP_MAX:
        raise RefusedTelegramError("angle step out of range", f"{step * 1e-4:g} deg, allowed "
                              f"{STEP_MIN * 1e-4:g}..{STEP_MAX * 1e-4:g}")  # fmt: skip
    if not -START_MAX <= start <= START_MAX:
        raise RefusedTelegramError("start angle out of range", f"{start * 1e-4:g} deg")
    if n == 0:
        raise RefusedTelegramError("no points")
    most = FOV_MAX // step + 1
    if n > most:
        raise RefusedTelegramError("more points than the field of view holds",
                              f"{n} at {step * 1e-4:g} deg, at most {most}")  # fmt: skip


def check_telegram(s: Scan) -> None:
    """Raise :class:`RefusedTelegramError` unless the telegram's geometry and scaling are ones a
    TiM-family scanner sends (see the envelope above); a decoded telegram is otherwise taken
    at its word."""
    d = s.channel("DIST")
    _check_angles(d)
    _check_number("scale factor", d.scale, SCALE_MIN, SCALE_MAX)
    _check_number("offset", d.offset, -OFFSET_MAX, OFFSET_MAX)
    r = s.channel("RSSI")
    if r is not None and not (math.isfinite(r.scale) and math.isfinite(r.offset)):
        raise RefusedTelegramError("intensity scaling not finite", f"{r.scale:g}, {r.offset:g}")
    if not FREQ_MIN <= s.scan_frequency <= FREQ_MAX:
        raise RefusedTelegramError("scan frequency out of range", f"{s.scan_frequency_hz:g} Hz")


class Refusals:
    """Refused telegrams per reason, in all and since the last :meth:`take_window` (one
    diagnostics period). The driver thread adds, the diagnostics take: hence the lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self.total: dict[str, int] = {}
        self._window: dict[str, int] = {}
        self._prev: set[str] = set()  # reasons of the previous window
        self.last = ""  # message of the newest refusal

    def add(self, e: RefusedTelegramError) -> bool:
        """Count one; True when its reason is new, i.e. in neither this window nor the one
        before (worth one log line: a lasting fault is logged once, a recurring one again)."""
        with self._lock:
            self.total[e.reason] = self.total.get(e.reason, 0) + 1
            n = self._window.get(e.reason, 0)
            self._window[e.reason] = n + 1
            self.last = str(e)
            return n == 0 and e.reason not in self._prev

    def take_window(self) -> dict[str, int]:
        """Counts per reason since the last call; starts the next window."""
        with self._lock:
            w, self._window = self._window, {}
            self._prev = set(w)
        return w

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self.total.values())

    @staticmethod
    def describe(counts: dict[str, int]) -> str:
        """``refused 15 telegrams: angle step 0`` (several reasons: each with its count)."""
        n = sum(counts.values())
        if len(counts) == 1:
            return f"refused {n} telegram{'s' * (n != 1)}: {next(iter(counts))}"
        parts = ", ".join(f"{r} ({k})" for r, k in sorted(counts.items(), key=lambda x: -x[1]))
        return f"refused {n} telegrams: {parts}"


# -- geometry -------------------------------------------------------------------------------


@dataclass
class ScanGeometry:
    """What a LaserScan needs, computed from one telegram (no ROS types)."""

    angle_min: float
    angle_max: float
    angle_increment: float
    time_increment: float
    scan_time: float
    range_min: float
    range_max: float
    ranges: np.ndarray  # float32, REP 117 applied
    intensities: np.ndarray  # float32, empty when not wanted / no RSSI
    first_index: int  # index of the first kept point in the telegram


def to_geometry(
    s: Scan,
    scanner: ScannerType,
    min_ang: float = -math.pi,
    max_ang: float = math.pi,
    range_min: float = 0.0,
    range_max: float = math.inf,
    intensity: bool = True,
) -> ScanGeometry:
    """Angles in the ROS frame (telegram + scanner shift), cropped to [min_ang, max_ang].

    REP 117: no echo (value 0) -> +inf, closer than range_min -> -inf, beyond range_max -> +inf.
    Raises :class:`RefusedTelegramError` for a telegram :func:`check_telegram` refuses.
    """
    check_telegram(s)
    d = s.channel("DIST")
    rmin = max(range_min, scanner.range_min)
    rmax = min(range_max, scanner.range_max)
    step = math.radians(d.step * 1e-4)
    a0 = math.radians(d.start_angle * 1e-4 + scanner.angle_shift_deg)
    n = len(d.values)
    lo = 0 if min_ang <= a0 else math.ceil((min_ang - a0) / step - 1e-4) if step > 0 else 0
    hi = n - 1
    if step > 0 and a0 + (n - 1) * step > max_ang:
        hi = math.floor((max_ang - a0) / step + 1e-4)
    lo, hi = max(0, lo), min(n - 1, hi)
    if hi < lo:
        raise ScanDataError("no point of the scan lies within [min_ang, max_ang]")
    raw = d.values[lo : hi + 1]
    r = raw.astype(np.float32) * np.float32(d.scale * 0.001) + np.float32(d.offset)
    r[raw == 0] = np.inf
    r[(r < rmin) & (raw != 0)] = -np.inf
    r[r > rmax] = np.inf
    inten = np.zeros(0, np.float32)
    if intensity:
        c = s.channel("RSSI")
        if c is not None and len(c.values) == n:
            inten = c.values[lo : hi + 1].astype(np.float32) * np.float32(c.scale) + np.float32(
                c.offset
            )
    freq = s.scan_frequency_hz
    mfreq = s.measurement_frequency_hz
    return ScanGeometry(
        angle_min=a0 + lo * step,
        angle_max=a0 + hi * step,
        angle_increment=step,
        time_increment=1.0 / mfreq if mfreq > 0 else 0.0,
        scan_time=1.0 / freq if freq > 0 else 0.0,
        range_min=rmin,
        range_max=rmax,
        ranges=r,
        intensities=inten,
        first_index=lo,
    )
