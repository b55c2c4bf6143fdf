"""Serial pulse-offload protocol (host -> microcontroller), no ROS; see README and firmware/.

Command, host -> MCU, 14 bytes, little endian::

    'P' 'B' | type u8 | seq u8 | width_us u32 | amplitude f32 | crc16 u16 (over type..amplitude)

Reply, MCU -> host, 7 bytes: ``'B' 'P' | type|0x80 | seq | status u8 | crc16 (type..status)``.
The host never waits for a reply (it only counts them), so a silent MCU cannot stall the driver.
Both ends resync the same way: a candidate frame whose CRC fails gives up only its first byte,
and the next sync is searched for in the bytes after it (a stray sync in noise never swallows
the real frame that follows).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pbt_driver.frames import crc16

CMD_SYNC = b"PB"
REPLY_SYNC = b"BP"
CMD_LEN = 14
REPLY_LEN = 7
PULSE, PING = 0x01, 0x02
STATUS_OK, STATUS_BUSY, STATUS_BAD = 0, 1, 2
_CMD = struct.Struct("<BBIf")


class OffloadFrameError(ValueError):
    """Not a valid command or reply frame."""


@dataclass(frozen=True)
class Command:
    type: int
    seq: int
    width_us: int
    amplitude: float


def encode_command(kind: int, seq: int, width_us: int = 0, amplitude: float = 0.0) -> bytes:
    body = _CMD.pack(kind, seq & 0xFF, int(width_us), float(amplitude))
    return CMD_SYNC + body + struct.pack("<H", crc16(body))


def _body(frame: bytes, sync: bytes, length: int) -> bytes:
    """The bytes between sync and CRC of a frame whose length, sync and CRC hold."""
    if len(frame) != length or frame[:2] != sync:
        raise OffloadFrameError(f"bad length or sync (want {length} bytes from {sync!r})")
    body = frame[2:-2]
    if crc16(body) != struct.unpack_from("<H", frame, length - 2)[0]:
        raise OffloadFrameError("bad crc")
    return body


def decode_command(frame: bytes) -> Command:
    return Command(*_CMD.unpack(_body(frame, CMD_SYNC, CMD_LEN)))


@dataclass(frozen=True)
class Reply:
    type: int  # the command's type (the 0x80 reply bit removed)
    seq: int
    status: int


def decode_reply(frame: bytes) -> Reply:
    kind, seq, status = _body(frame, REPLY_SYNC, REPLY_LEN)
    if not kind & 0x80:
        raise OffloadFrameError(f"type 0x{kind:02x} lacks the reply bit 0x80")
    return Reply(kind & 0x7F, seq, status)


def encode_reply(kind: int, seq: int, status: int) -> bytes:
    body = bytes([kind | 0x80, seq & 0xFF, status & 0xFF])
    return REPLY_SYNC + body + struct.pack("<H", crc16(body))


class StreamParser:
    """Splits a byte stream into frames of one kind (commands or replies) whose CRC holds.

    A candidate that fails its CRC is counted in ``bad`` and only its first byte is dropped: the
    search for the next sync starts inside it.
    """

    def __init__(self, sync: bytes, length: int):
        self.sync, self.length = sync, length
        self._buf = b""
        self.bad = 0

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data
        out = []
        while True:
            i = buf.find(self.sync)
            if i < 0:
                buf = buf[-1:] if buf.endswith(self.sync[:1]) else b""
                break
            if len(buf) - i < self.length:
                buf = buf[i:]
                break
            frame = buf[i : i + self.length]
            body = frame[2:-2]
            if crc16(body) == struct.unpack("<H", frame[-2:])[0]:
                out.append(frame)
                buf = buf[i + self.length :]
            else:
                self.bad += 1
                buf = buf[i + 1 :]  # the real frame may start inside this false one
        self._buf = buf
        return out


def reply_parser() -> StreamParser:
    return StreamParser(REPLY_SYNC, REPLY_LEN)


def command_parser() -> StreamParser:
    return StreamParser(CMD_SYNC, CMD_LEN)
