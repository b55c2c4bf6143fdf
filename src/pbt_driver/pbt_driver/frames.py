"""Sample frame decoders (ascii lines and the binary frame), no ROS: bytes in, samples out.

Decoders never raise on bad input: a serial line is noisy by nature, so every bad byte is
*counted* (discarded bytes, malformed frames) and the stream goes on. :func:`parse_ascii_line`
and :func:`parse_binary_frame` raise :class:`MalformedFrameError` for one frame, so the reason
is testable.

Binary frame (little endian, 10 bytes; see README "Binary frame format")::

    A5 5A | seq u16 | value f32 | crc16 u16      crc = CRC-16/CCITT-FALSE over seq+value
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

SYNC = b"\xa5\x5a"
FRAME_LEN = 10
SEQ_MODULUS = 1 << 16
ASCII_LAYOUTS = ("value", "seq,value", "time_us,value")
# Largest finite float32: PbtSamples/PbtEvent carry float32, so a value beyond it (finite in
# float64, e.g. 1e39) would become +-inf on the wire and poison every filter downstream.
F32_MAX = 3.4028234663852886e38  # float(numpy.finfo(numpy.float32).max)
_FRAME = struct.Struct("<2sHfH")


class FrameError(ValueError):
    """Base of the decoder's typed errors."""


class MalformedFrameError(FrameError):
    """One frame/line could not be decoded; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ConfigError(FrameError):
    """Unknown format or layout."""


# numpy is imported where binary frames are handled, not at module import: an ascii driver
# never loads it (about 9 MB of private memory per process).


def _crc_table() -> list[int]:
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


_CRC_LIST = _crc_table()
_CRC_NP = None


def _crc_np():
    global _CRC_NP
    if _CRC_NP is None:
        import numpy as np

        _CRC_NP = np.array(_CRC_LIST, dtype=np.uint16)
    return _CRC_NP


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection/xorout): '123456789'->29B1."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_LIST[((crc >> 8) ^ b) & 0xFF]
    return crc


def crc16_rows(rows):
    """CRC of every row of an (n, k) uint8 numpy array at once: one table lookup per column."""
    import numpy as np

    table = _crc_np()
    crc = np.full(rows.shape[0], 0xFFFF, dtype=np.uint16)
    for j in range(rows.shape[1]):
        idx = ((crc >> 8) ^ rows[:, j]) & 0xFF
        crc = ((crc << 8) & 0xFFFF) ^ table[idx]
    return crc


def encode_binary(seq: int, value: float) -> bytes:
    """One binary frame (used by the simulator and by firmware tests)."""
    body = struct.pack("<Hf", seq & 0xFFFF, value)
    return SYNC + body + struct.pack("<H", crc16(body))


def encode_binary_block(seqs, values) -> bytes:
    """Many frames at once (the simulator at tens of kHz); numpy arrays or sequences."""
    import numpy as np

    n = len(values)
    a = np.empty((n, FRAME_LEN), dtype=np.uint8)
    a[:, 0], a[:, 1] = 0xA5, 0x5A
    a[:, 2:4] = (np.asarray(seqs) & 0xFFFF).astype("<u2").view(np.uint8).reshape(n, 2)
    a[:, 4:8] = np.asarray(values, dtype="<f4").view(np.uint8).reshape(n, 4)
    crc = crc16_rows(a[:, 2:8])
    a[:, 8] = crc & 0xFF
    a[:, 9] = crc >> 8
    return a.tobytes()


def _bad_value(value: float, lo: float, hi: float) -> MalformedFrameError:
    if not math.isfinite(value):
        return MalformedFrameError("non_finite", repr(value))
    return MalformedFrameError("out_of_range", f"{value!r} not in [{lo:g}, {hi:g}]")


def parse_binary_frame(
    frame: bytes, lo: float = -F32_MAX, hi: float = F32_MAX
) -> tuple[int, float]:
    """Decode exactly one 10-byte frame or raise MalformedFrameError."""
    if len(frame) != FRAME_LEN:
        raise MalformedFrameError("length", f"{len(frame)} bytes")
    sync, seq, value, crc = _FRAME.unpack(frame)
    if sync != SYNC:
        raise MalformedFrameError("sync")
    if crc16(frame[2:8]) != crc:
        raise MalformedFrameError("crc")
    if not lo <= value <= hi:
        raise _bad_value(value, lo, hi)
    return seq, value


def parse_ascii_line(
    line: bytes, layout: str = "value", lo: float = -F32_MAX, hi: float = F32_MAX
) -> tuple[int | None, float]:
    """'v', 'seq,v' or 'us v' (comma or blanks) -> (key or None, value); or MalformedFrameError.

    Values outside [lo, hi] (default: what a float32 can carry) are 'out_of_range', NaN/inf
    'non_finite'."""
    cols = line.replace(b",", b" ").split()
    want = 1 if layout == "value" else 2
    if len(cols) != want:
        raise MalformedFrameError("columns", f"{len(cols)} columns, layout {layout!r}")
    try:
        value = float(cols[-1])
    except ValueError:
        raise MalformedFrameError("non_numeric", repr(cols[-1][:16])) from None
    if not lo <= value <= hi:
        raise _bad_value(value, lo, hi)
    if want == 1:
        return None, value
    try:
        key = int(cols[0])
    except ValueError:
        raise MalformedFrameError("non_numeric", repr(cols[0][:16])) from None
    if key < 0:
        raise MalformedFrameError("negative_key", str(key))
    return key, value


@dataclass
class Decoded:
    """Samples of one feed(): values, and keys (seq, line number or time in us) when known."""

    values: list[float] = field(default_factory=list)
    keys: list[int] | None = None


@dataclass
class DecoderStats:
    bytes_in: int = 0
    discarded_bytes: int = 0  # bytes that were not part of a good frame (garbage, bad frames)
    discarded_at_open: int = 0  # partial frame/line at (re)open: expected, not a fault
    frames: int = 0
    malformed: dict[str, int] = field(default_factory=dict)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def bad(self, reason: str) -> None:
        self.malformed[reason] = self.malformed.get(reason, 0) + 1


class _StreamDecoder:
    """What both decoders share: a partial frame/line kept between reads, dropped at reopen."""

    stats: DecoderStats
    _pending: bytes

    def reset(self) -> None:
        """Forget a partial frame/line (port reopened)."""
        if self._pending:
            self.stats.discarded_at_open += len(self._pending)
        self._pending = b""
        self._restart()

    def _restart(self) -> None:
        raise NotImplementedError


class AsciiDecoder(_StreamDecoder):
    """One sample per line. With layout 'value' the key is a line counter, so a malformed line
    becomes a one-sample gap (the sensor sends one line per sample) instead of vanishing."""

    key_kind = "line"

    def __init__(
        self,
        layout: str = "value",
        max_line: int = 64,
        value_min: float = -F32_MAX,
        value_max: float = F32_MAX,
    ):
        if layout not in ASCII_LAYOUTS:
            raise ConfigError(f"unknown ascii layout {layout!r}; one of {ASCII_LAYOUTS}")
        self.layout = layout
        self.max_line = int(max_line)
        self.lo, self.hi = value_range(value_min, value_max)
        self.key_kind = {"value": "line", "seq,value": "seq", "time_us,value": "time_us"}[layout]
        self.stats = DecoderStats()
        self._pending = b""
        self._overlong = False  # inside a line already longer than max_line
        self._line_no = 0
        self._first = True  # the first (partial) line after open/resync is not a sample slot

    def _restart(self) -> None:
        self._overlong = False
        self._first = True

    def at_line_start(self) -> None:
        """The next byte starts a line (the port was idle since open): nothing to discard."""
        if not self._pending:
            self._first = False

    def feed_one(self, data) -> float | None:
        """The common read at low latency: exactly one whole, good 'value' line. Its value, with
        the counts feed() would make; None, with nothing consumed, for anything else (then
        feed() takes the same bytes). Same result as feed(), fewer steps."""
        n = len(data)
        if (
            n < 2
            or n > self.max_line + 1
            or self._pending
            or self._first
            or self._overlong
            or self.key_kind != "line"
            or data[n - 1] != 10  # b"\n"
        ):
            return None
        raw = bytes(data)
        if raw.find(b"\n", 0, n - 1) >= 0:
            return None
        cols = raw.split()
        if len(cols) != 1:
            return None
        try:
            value = float(cols[0])
        except ValueError:
            return None
        if not self.lo <= value <= self.hi:
            return None
        st = self.stats
        st.bytes_in += n
        st.frames += 1
        self._line_no += 1
        return value

    @property
    def line_no(self) -> int:
        """Lines counted so far: the key of the last 'value' sample."""
        return self._line_no

    def feed(self, data) -> Decoded:
        st = self.stats
        st.bytes_in += len(data)
        buf = self._pending + data if self._pending else bytes(data)
        lines = buf.split(b"\n")
        tail = lines.pop()
        out = Decoded(keys=[])
        values, keys = out.values, out.keys
        layout, max_line, lo, hi = self.layout, self.max_line, self.lo, self.hi
        line_kind = self.key_kind == "line"
        for raw in lines:
            if self._first:
                # Opened mid-line: the fragment is not a whole sample; not a loss either.
                self._first = False
                self._overlong = False
                st.discarded_at_open += len(raw) + 1
                continue
            self._line_no += 1
            if self._overlong or len(raw) > max_line:
                self._overlong = False
                st.discarded_bytes += len(raw) + 1
                st.bad("overlong")
                continue
            line = raw.strip()
            if not line:
                self._line_no -= 1  # blank line (e.g. CRLF doubled): not a sample slot
                st.discarded_bytes += len(raw) + 1
                continue
            try:
                key, value = parse_ascii_line(line, layout, lo, hi)
            except MalformedFrameError as e:
                st.discarded_bytes += len(raw) + 1
                st.bad(e.reason)
                continue
            st.frames += 1
            values.append(value)
            keys.append(self._line_no if line_kind else key)
        if len(tail) > max_line:
            st.discarded_bytes += len(tail)
            self._overlong = True
            tail = b""
        self._pending = tail
        return out


class BinaryDecoder(_StreamDecoder):
    """Fixed 10-byte frames; aligned runs are checked with numpy, resync by searching the sync."""

    key_kind = "seq"
    seq_modulus = SEQ_MODULUS

    def __init__(self, value_min: float = -F32_MAX, value_max: float = F32_MAX):
        self.lo, self.hi = value_range(value_min, value_max)
        self._bounded = (self.lo, self.hi) != (-F32_MAX, F32_MAX)
        self.stats = DecoderStats()
        self._pending = b""
        self._resyncing = False  # a bad CRC was counted; more until the next good frame are not
        self._synced = False  # no good frame yet since (re)open: discards are alignment

    def _restart(self) -> None:
        self._resyncing = False
        self._synced = False

    def at_line_start(self) -> None:
        """Frames carry their own sync: nothing to decide."""

    def _discard(self, n: int) -> None:
        if self._synced:
            self.stats.discarded_bytes += n
        else:
            self.stats.discarded_at_open += n

    def feed(self, data) -> Decoded:
        import numpy as np

        self.stats.bytes_in += len(data)
        buf = self._pending + bytes(data)
        a = np.frombuffer(buf, dtype=np.uint8)
        n = len(buf)
        pos = 0
        vals: list = []
        seqs: list = []
        while n - pos >= FRAME_LEN:
            if buf[pos] != 0xA5 or buf[pos + 1] != 0x5A:
                nxt = buf.find(SYNC, pos + 1)
                if nxt < 0:
                    keep = n - 1 if buf[n - 1] == 0xA5 else n
                    self._discard(keep - pos)
                    pos = keep
                    break
                self._discard(nxt - pos)
                pos = nxt
                continue
            pos = self._aligned_run(a, pos, vals, seqs)
        self._pending = buf[pos:]
        if not vals:
            return Decoded(keys=[])
        v = np.concatenate(vals) if len(vals) > 1 else vals[0]
        s = np.concatenate(seqs) if len(seqs) > 1 else seqs[0]
        return Decoded(values=v.astype(np.float64).tolist(), keys=s.tolist())

    def _aligned_run(self, a, pos: int, vals: list, seqs: list) -> int:
        """Frames from a sync at pos, checked at once: the good ones up to the first bad sync or
        CRC go to vals/seqs. Returns the position after them (one byte on at a bad CRC)."""
        import numpy as np

        m = (len(a) - pos) // FRAME_LEN
        block = a[pos : pos + m * FRAME_LEN].reshape(m, FRAME_LEN)
        sync_ok = (block[:, 0] == 0xA5) & (block[:, 1] == 0x5A)
        k = m if sync_ok.all() else int(np.argmin(sync_ok))
        block = block[:k]
        crc = block[:, 8].astype(np.uint16) | (block[:, 9].astype(np.uint16) << 8)
        crc_ok = crc16_rows(block[:, 2:8]) == crc
        j = k if crc_ok.all() else int(np.argmin(crc_ok))
        if j:
            self._accept(block[:j], vals, seqs)
            pos += j * FRAME_LEN
        if j < k:
            # Sync present but CRC wrong: count it once per resync, drop one byte and search
            # again (the corrupted frame's own bytes may hold a sync pattern).
            if not self._resyncing and self._synced:
                self.stats.bad("crc")
                self._resyncing = True
            self._discard(1)
            pos += 1
        return pos

    def _accept(self, good, vals: list, seqs: list) -> None:
        """Frames with a good CRC: values outside the accepted range are malformed."""
        import numpy as np

        st = self.stats
        v = np.ascontiguousarray(good[:, 4:8]).view("<f4").reshape(-1)
        s = np.ascontiguousarray(good[:, 2:4]).view("<u2").reshape(-1)
        ok = np.isfinite(v)
        if not ok.all():
            self._reject(int((~ok).sum()), "non_finite")
            v, s = v[ok], s[ok]
        if self._bounded:
            ok = (v >= self.lo) & (v <= self.hi)
            if not ok.all():
                self._reject(int((~ok).sum()), "out_of_range")
                v, s = v[ok], s[ok]
        vals.append(v)
        seqs.append(s)
        st.frames += len(v)
        self._resyncing = False
        self._synced = True

    def _reject(self, n: int, reason: str) -> None:
        st = self.stats
        st.malformed[reason] = st.malformed.get(reason, 0) + n
        st.discarded_bytes += n * FRAME_LEN


def value_range(value_min: float, value_max: float) -> tuple[float, float]:
    """The accepted value interval: the user's bounds, never wider than float32's finite range."""
    lo, hi = max(-F32_MAX, float(value_min)), min(F32_MAX, float(value_max))
    if not lo <= hi:
        raise ConfigError(f"value_min {value_min} must be <= value_max {value_max}")
    return lo, hi


def make_decoder(
    frame_format: str,
    ascii_layout: str = "value",
    max_line: int = 64,
    value_min: float = -F32_MAX,
    value_max: float = F32_MAX,
):
    if frame_format == "ascii":
        return AsciiDecoder(ascii_layout, max_line, value_min, value_max)
    if frame_format == "binary":
        return BinaryDecoder(value_min, value_max)
    raise ConfigError(f"unknown frame format {frame_format!r}; 'ascii' or 'binary'")
