"""SOPAS CoLa-B (binary) and CoLa-A (ASCII) framing and typed command fields. No ROS.

CoLa-B: ``02 02 02 02`` + uint32 length L + L payload bytes + XOR checksum of the payload.
CoLa-A: STX (0x02) + printable ASCII + ETX (0x03); numbers are hex tokens, strings are
``<hex length> <chars>``, signed numbers may also come as ``+123``/``-123`` decimals.

The :class:`Framer` takes bytes in any split, finds both kinds of frames in one stream (the
device's dialect can change under a connection after ``EIHstCola``), resynchronises after
garbage and never buffers more than ``max_payload`` + a header: an absurd length field is
counted and skipped, never allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"\x02\x02\x02\x02"
STX, ETX = 0x02, 0x03
BINARY, ASCII = "B", "A"
DIALECT_NAMES = {BINARY: "CoLa-B", ASCII: "CoLa-A"}
DEFAULT_MAX_PAYLOAD = 65536

# SOPAS error codes of an sFA reply (SICK's names, without the common prefix).
SOPAS_ERRORS = {
    0: "OK",
    1: "METHODIN_ACCESSDENIED",
    2: "METHODIN_UNKNOWNINDEX",
    3: "VARIABLE_UNKNOWNINDEX",
    4: "LOCALCONDITIONFAILED",
    5: "INVALID_DATA",
    6: "UNKNOWN_ERROR",
    7: "BUFFER_OVERFLOW",
    8: "BUFFER_UNDERFLOW",
    9: "ERROR_UNKNOWN_TYPE",
    10: "VARIABLE_WRITE_ACCESSDENIED",
    11: "UNKNOWN_CMD_FOR_NAMESERVER",
    12: "UNKNOWN_COLA_COMMAND",
    13: "METHODIN_SERVER_BUSY",
    14: "FLEX_OUT_OF_BOUNDS",
    15: "EVENTREG_UNKNOWNINDEX",
    16: "COLA_A_VALUE_OVERFLOW",
    17: "COLA_A_INVALID_CHARACTER",
    18: "OSAI_NO_MESSAGE",
    19: "OSAI_NO_ANSWER_MESSAGE",
    20: "INTERNAL",
    21: "HubAddressCorrupted",
    22: "HubAddressDecoding",
    23: "HubAddressAddressExceeded",
    24: "HubAddressBlankExpected",
    25: "AsyncMethodsAreSuppressed",
    26: "ComplexArraysNotSupported",
}


class ColaError(ValueError):
    """Base of every protocol error of this package."""


class FieldError(ColaError):
    """A command's fields do not match what the command carries (short, bad token...)."""


class SopasError(ColaError):
    """The device answered sFA; ``code`` and ``name`` say why."""

    def __init__(self, code: int, context: str = ""):
        self.code = code
        self.name = SOPAS_ERRORS.get(code, f"error {code}")
        super().__init__(f"{context + ': ' if context else ''}sFA {self.name} ({code})")


@dataclass
class Frame:
    """One complete frame as the framer hands it out: its dialect and unframed payload."""

    dialect: str
    payload: bytes


def checksum(payload: bytes) -> int:
    """XOR of all payload bytes (CoLa-B)."""
    if not payload:
        return 0
    return int(np.bitwise_xor.reduce(np.frombuffer(payload, np.uint8)))


def frame_b(payload: bytes) -> bytes:
    return MAGIC + struct.pack(">I", len(payload)) + payload + bytes([checksum(payload)])


def frame_a(payload: bytes) -> bytes:
    return b"\x02" + payload + b"\x03"


def frame(dialect: str, payload: bytes) -> bytes:
    """The payload in its dialect's envelope: STX/ETX (CoLa-A) or magic, length, XOR (CoLa-B)."""
    return frame_b(payload) if dialect == BINARY else frame_a(payload)


@dataclass
class FramerStats:
    frames: int = 0  # complete frames handed out
    discarded_bytes: int = 0  # bytes skipped while looking for a frame start
    checksum_errors: int = 0  # CoLa-B frames whose XOR checksum did not match
    truncated: int = 0  # frames cut short by the start of the next one
    oversized: int = 0  # length fields of 0 or beyond max_payload (never allocated)
    ascii_garbage: int = 0  # CoLa-A frames holding bytes outside printable ASCII

    @property
    def malformed(self) -> int:
        return self.checksum_errors + self.truncated + self.oversized + self.ascii_garbage


_PRINTABLE = bytes(range(0x20, 0x7F))
_NONPRINT_TABLE = bytes(0 if 0x20 <= b < 0x7F else 1 for b in range(256))


class Framer:
    """Byte stream -> frames of either dialect; everything else is counted and dropped."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD):
        self.max_payload = max_payload
        self.max_ascii = max_payload
        self.buf = bytearray()
        self.stats = FramerStats()

    def reset(self) -> None:
        """Forget a partial frame (on reconnect): its bytes count as discarded."""
        self.stats.discarded_bytes += len(self.buf)
        self.buf.clear()

    @property
    def pending(self) -> int:
        return len(self.buf)

    def _drop(self, n: int) -> None:
        self.stats.discarded_bytes += n
        del self.buf[:n]

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out: list[Frame] = []
        buf = self.buf
        while buf:
            i = buf.find(b"\x02")
            if i < 0:
                self._drop(len(buf))
                break
            if i:
                self._drop(i)
            if len(buf) < 2:
                break
            step = self._binary_frame if buf[1] == STX else self._ascii_frame
            if not step(buf, out):
                break
        return out

    def _binary_frame(self, buf: bytearray, out: list[Frame]) -> bool:
        """At ``02 02``: a CoLa-B frame to out, or the bytes it rules out dropped. False when
        the frame is not complete yet."""
        st = self.stats
        if len(buf) < 8:
            if buf[: min(4, len(buf))] != MAGIC[: min(4, len(buf))]:
                self._drop(1)
                return True
            return False
        if buf[:4] != MAGIC:
            self._drop(1)
            return True
        (n,) = struct.unpack_from(">I", buf, 4)
        if n == 0 or n > self.max_payload:
            st.oversized += 1
            self._drop(1)  # 1 byte: a real frame may start inside (02 02 02 02 02)
            return True
        end = 8 + n + 1
        if len(buf) < end:
            # A new frame start inside what we wait for means this one was cut short.
            j = buf.find(MAGIC, 1)
            if j > 0:
                st.truncated += 1
                self._drop(j)
                return True
            return False
        payload = bytes(buf[8 : 8 + n])
        if checksum(payload) != buf[8 + n]:
            j = buf.find(MAGIC, 1, end)
            if j > 0:
                st.truncated += 1
                self._drop(j)
            else:
                st.checksum_errors += 1
                self._drop(end)
            return True
        del buf[:end]
        st.frames += 1
        out.append(Frame(BINARY, payload))
        return True

    def _ascii_frame(self, buf: bytearray, out: list[Frame]) -> bool:
        """At STX + not STX: a CoLa-A frame (printable bytes up to ETX) to out, or the bytes it
        rules out dropped. False when the frame is not complete yet."""
        st = self.stats
        if buf[1] != 0x73:  # CoLa-A frames start with a command type: s..
            self._drop(1)
            return True
        j = buf.find(b"\x03", 1)
        limit = j if j >= 0 else len(buf)
        body = bytes(buf[1:limit])
        bad = body.translate(None, _PRINTABLE)
        if bad:
            k = next(idx for idx, b in enumerate(body) if _NONPRINT_TABLE[b])
            if body[k] == STX:
                st.truncated += 1
            else:
                st.ascii_garbage += 1
            self._drop(1 + k)
            return True
        if j < 0:
            if len(buf) > self.max_ascii + 2:
                st.oversized += 1
                self._drop(len(buf))
            return False
        if j - 1 > self.max_ascii:
            st.oversized += 1
            self._drop(j + 1)
            return True
        del buf[: j + 1]
        st.frames += 1
        out.append(Frame(ASCII, body))
        return True


# -- commands --------------------------------------------------------------------------------

_KINDS = {"u8": ">B", "u16": ">H", "u32": ">I", "i8": ">b", "i16": ">h", "i32": ">i"}
_BITS = {"u8": 8, "u16": 16, "u32": 32, "i8": 8, "i16": 16, "i32": 32}


def split_command(dialect: str, payload: bytes) -> tuple[str, str, bytes]:
    """(type, name, argument bytes) of a payload; `sFA` has no name (name '')."""
    if len(payload) < 3:
        raise FieldError(f"payload too short for a command: {payload[:20]!r}")
    ctype = payload[:3].decode("ascii", "replace")
    if ctype == "sFA":
        rest = payload[3:]
        if rest[:1] == b" ":
            rest = rest[1:]
        return ctype, "", rest
    if payload[3:4] != b" ":
        raise FieldError(f"no space after the command type: {payload[:20]!r}")
    k = payload.find(b" ", 4)
    if k < 0:
        return ctype, payload[4:].decode("ascii", "replace"), b""
    return ctype, payload[4:k].decode("ascii", "replace"), payload[k + 1 :]


def encode_fields(dialect: str, kinds, values) -> bytes:
    if len(kinds) != len(values):
        raise FieldError(f"{len(kinds)} fields, {len(values)} values")
    if dialect == BINARY:
        parts = []
        for k, v in zip(kinds, values, strict=True):
            if k == "str":
                b = v.encode("latin-1")
                parts.append(struct.pack(">H", len(b)) + b)
            else:
                parts.append(struct.pack(_KINDS[k], int(v)))
        return b"".join(parts)
    toks = []
    for k, v in zip(kinds, values, strict=True):
        if k == "str":
            toks.append(f"{len(v):X} {v}")
        elif k.startswith("i"):
            toks.append(f"{int(v) & ((1 << _BITS[k]) - 1):X}")
        else:
            toks.append(f"{int(v):X}")
    return " ".join(toks).encode("ascii")


def _hex_token(tok: bytes, kind: str) -> int:
    try:
        if tok[:1] in (b"+", b"-"):
            v = int(tok, 10)
        else:
            v = int(tok, 16)
            if kind.startswith("i"):
                bits = _BITS[kind]
                if v >= 1 << (bits - 1):
                    v -= 1 << bits
    except ValueError:
        raise FieldError(f"not a number token: {tok[:20]!r}") from None
    return v


def decode_fields(dialect: str, kinds, data: bytes) -> list:
    out = []
    if dialect == BINARY:
        off = 0
        try:
            for k in kinds:
                if k == "str":
                    (n,) = struct.unpack_from(">H", data, off)
                    off += 2
                    if off + n > len(data):
                        raise FieldError("string runs past the end")
                    out.append(data[off : off + n].decode("latin-1"))
                    off += n
                else:
                    fmt = _KINDS[k]
                    (v,) = struct.unpack_from(fmt, data, off)
                    off += struct.calcsize(fmt)
                    out.append(v)
        except struct.error as e:
            raise FieldError(f"short fields: {e}") from None
        return out
    pos = 0
    for k in kinds:
        while pos < len(data) and data[pos] == 0x20:
            pos += 1
        end = data.find(b" ", pos)
        end = len(data) if end < 0 else end
        tok = data[pos:end]
        if not tok:
            raise FieldError(f"missing field ({k})")
        if k == "str":
            n = _hex_token(tok, "u16")
            s = data[end + 1 : end + 1 + n]
            if len(s) != n:
                raise FieldError("string runs past the end")
            out.append(s.decode("latin-1"))
            pos = end + 1 + n
        else:
            out.append(_hex_token(tok, k))
            pos = end
    return out


def command(dialect: str, ctype: str, name: str, kinds=(), values=()) -> bytes:
    """A whole framed command."""
    head = f"{ctype} {name}".encode("ascii")
    args = encode_fields(dialect, kinds, values) if kinds else b""
    payload = head + b" " + args if kinds else head
    return frame(dialect, payload)


def sfa(dialect: str, code: int) -> bytes:
    if dialect == BINARY:
        return frame_b(b"sFA" + struct.pack(">H", code))
    return frame_a(f"sFA {code:X}".encode("ascii"))


def sfa_code(dialect: str, rest: bytes) -> int:
    if dialect == BINARY:
        if len(rest) >= 2:
            return struct.unpack_from(">H", rest)[0]
        return rest[0] if rest else 6
    try:
        return int(rest.strip() or b"6", 16)
    except ValueError:
        return 6


# Fields of the TiM240 start-up dialogue: name -> (request kinds, reply kinds) per command type.
# LMDscandatacfg: output channel, 0, remission, resolution (1 = 16 bit), unit, encoder, 0,
# position, device name, comment, time, output interval.
SCANDATACFG = ("u8",) * 11 + ("u16",)
LMPOUTPUTRANGE = ("u16", "u32", "i32", "i32")
DIALOGUE = {
    ("sRN", "SCdevicestate"): ((), ("u8",)),
    ("sMN", "SetAccessMode"): (("u8", "u32"), ("u8",)),
    ("sWN", "EIHstCola"): (("u8",), ()),
    ("sRN", "FirmwareVersion"): ((), ("str",)),
    ("sRN", "ODoprh"): ((), ("u32",)),
    ("sRN", "ODpwrc"): ((), ("u32",)),
    ("sRN", "LocationName"): ((), ("str",)),
    ("sRN", "LMPoutputRange"): ((), LMPOUTPUTRANGE),
    ("sWN", "LMPoutputRange"): (LMPOUTPUTRANGE, ()),
    ("sWN", "LMDscandatacfg"): (SCANDATACFG, ()),
    ("sRN", "LMDscandatacfg"): ((), SCANDATACFG),
    ("sMN", "Run"): ((), ("u8",)),
    ("sEN", "LMDscandata"): (("u8",), ("u8",)),
}
REPLY_TYPE = {"sRN": "sRA", "sWN": "sWA", "sMN": "sAN", "sEN": "sEA"}
DEVICE_STATES = {0: "busy", 1: "ready", 2: "error", 3: "standby"}
