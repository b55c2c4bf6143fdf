"""WebSocket frames (RFC 6455) without I/O: encoding, and incremental scanners for both directions.

The front never decodes a message: client frames (small and few) are scanned whole for the size
limit, subscriptions and liveness; of the server's frames only the header lengths are followed,
so the front knows where one ends and nothing is copied per message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8  # opcodes from here on are control frames
OP_PING = 0x9
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
MAX_HEAD = 16 * 1024  # an HTTP request or response head
MAX_CONTROL_TEXT = 1024 * 1024  # text frames read whole (client JSON, server advertisements)
MAX_FRAME_HEADER = 14  # 2 + 8 (64-bit length) + 4 (mask)
MAX_CONTROL_PAYLOAD = 125
MAX_CLOSE_REASON = 120  # bytes: a close frame carries at most 125 with its code
_EXTENDED_LENGTH = {126: (2, ">H"), 127: (8, ">Q")}  # 7-bit length -> (bytes, format)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def _unmask(payload: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One unfragmented frame (server frames unmasked; pass ``mask`` to build client frames)."""
    n = len(payload)
    head = bytearray([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack(">Q", n)
    if mask:
        head += mask
        payload = _unmask(payload, mask)
    return bytes(head) + payload


def close_frame(code: int, reason: str) -> bytes:
    return encode_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode()[:MAX_CLOSE_REASON])


def header_size(buf) -> int | None:
    """Bytes of the frame header starting ``buf`` (mask included); None before two bytes."""
    if len(buf) < 2:
        return None
    extended = _EXTENDED_LENGTH.get(buf[1] & 0x7F, (0, ""))[0]
    return 2 + extended + (4 if buf[1] & 0x80 else 0)


def payload_length(buf) -> int:
    """The payload length in a header whose :func:`header_size` bytes are all in ``buf``."""
    length = buf[1] & 0x7F
    if length in _EXTENDED_LENGTH:
        return struct.unpack_from(_EXTENDED_LENGTH[length][1], buf, 2)[0]
    return length


@dataclass(frozen=True)
class FrameHeader:
    fin: bool
    opcode: int
    length: int  # payload bytes
    size: int  # header bytes, mask included
    mask: bytes  # b"" when unmasked

    @classmethod
    def parse(cls, buf) -> FrameHeader | None:
        """The header at the start of ``buf``, or None while it is incomplete."""
        size = header_size(buf)
        if size is None or len(buf) < size:
            return None
        masked = bool(buf[1] & 0x80)
        return cls(
            fin=bool(buf[0] & 0x80),
            opcode=buf[0] & 0x0F,
            length=payload_length(buf),
            size=size,
            mask=bytes(buf[size - 4 : size]) if masked else b"",
        )


class FrameScanner:
    """Incremental frame-header scanner; calls ``on_frame(opcode, fin, prefix)`` per frame.

    ``prefix`` is the unmasked start of the payload: the whole payload for text frames up to
    ``MAX_CONTROL_TEXT`` (client JSON) and for control frames, the first ``binary_prefix`` bytes
    of binary frames, and nothing else (payloads are skipped, not copied). With
    ``skip_http_head`` the bytes up to the first blank line (the server's 101 response) are
    passed over first.

    With ``max_message`` a frame, or a fragmented message, longer than that stops the scanner
    as soon as its header is read (``oversize`` is set, ``broken`` too): the caller closes the
    connection before a byte of such a payload has to be held.
    """

    def __init__(
        self,
        on_frame: Callable[[int, bool, bytes], None],
        binary_prefix: int = 0,
        skip_http_head: bool = False,
        max_message: int = 0,
    ):
        self._on_frame = on_frame
        self.max_message = max_message  # 0 = unlimited; else frame/message size limit
        self._message_len = 0  # payload bytes of the (possibly fragmented) message so far
        self.oversize = 0  # the size that broke max_message (the scanner stops there)
        self._binary_prefix = binary_prefix
        self._in_head = skip_http_head
        self._buf = bytearray()
        self._buf_abs = 0  # stream offset of _buf[0]
        self._skip = 0  # payload bytes still to pass over
        self.fed = 0  # bytes fed so far
        self.boundary = 0  # stream offset just past the last complete frame (or HTTP head)
        self.broken = False

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        view = memoryview(data)
        pos = 0
        n = len(view)
        base = self.fed
        self.fed += n
        while pos < n:
            if self._skip:
                k = min(self._skip, n - pos)
                pos += k
                self._skip -= k
                if not self._skip:
                    self.boundary = base + pos
                continue
            if not self._buf:
                self._buf_abs = base + pos
            self._buf += view[pos:]
            pos = n
            if self._in_head and not self._pass_http_head():
                return
            self._parse_buffer()

    def _pass_http_head(self) -> bool:
        """Drop the HTTP head from the buffer; False while it is not complete."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            self.broken = len(self._buf) > MAX_HEAD
            return False
        del self._buf[: end + 4]
        self._buf_abs += end + 4
        self.boundary = self._buf_abs
        self._in_head = False
        return True

    def _parse_buffer(self) -> None:
        buf = self._buf
        while (hdr := FrameHeader.parse(buf)) is not None:
            total = self._message_total(hdr)
            if self.max_message and hdr.opcode < OP_CLOSE and total > self.max_message:
                self.oversize = total
                self.broken = True
                buf.clear()
                return
            want = self._prefix_len(hdr)
            if len(buf) < hdr.size + want:
                return
            if hdr.opcode < OP_CLOSE:  # control frames may sit between a message's fragments
                self._message_len = 0 if hdr.fin else total
            self._deliver(hdr, bytes(buf[hdr.size : hdr.size + want]))
            if not self._consume(hdr):
                return

    def _message_total(self, hdr: FrameHeader) -> int:
        return hdr.length if hdr.opcode != OP_CONTINUATION else self._message_len + hdr.length

    def _prefix_len(self, hdr: FrameHeader) -> int:
        """How much of the payload ``on_frame`` gets (see the class docstring)."""
        if hdr.opcode == OP_TEXT and hdr.length <= MAX_CONTROL_TEXT:
            return hdr.length
        if hdr.opcode == OP_BINARY:
            return min(hdr.length, self._binary_prefix)
        if hdr.opcode >= OP_CLOSE and hdr.length <= MAX_CONTROL_PAYLOAD:
            return hdr.length  # close code and reason, ping data
        return 0

    def _deliver(self, hdr: FrameHeader, prefix: bytes) -> None:
        if hdr.mask and prefix:
            prefix = _unmask(prefix, hdr.mask)
        # figures are best effort; forwarding never depends on them
        with contextlib.suppress(Exception):
            self._on_frame(hdr.opcode, hdr.fin, prefix)

    def _consume(self, hdr: FrameHeader) -> bool:
        """Drop the frame from the buffer; False when its payload runs on past the buffer."""
        buf = self._buf
        avail = len(buf) - hdr.size
        if avail < hdr.length:
            self._skip = hdr.length - avail
            buf.clear()
            return False
        del buf[: hdr.size + hdr.length]
        self._buf_abs += hdr.size + hdr.length
        self.boundary = self._buf_abs
        return True


class ServerStream:
    """Frame boundaries of the SDK->client byte stream, without copying it.

    Only the lengths in the frame headers are read, so the front knows where a server frame
    ends and can slip its own ping or close frame in between. Text frames (server info,
    advertisements, status: a few per client and minute) are collected and handed to
    ``on_text``; the binary message frames, nearly all of the bytes, are passed over."""

    MAX_TEXT = MAX_CONTROL_TEXT

    def __init__(self, on_text: Callable[[bytes], None]):
        self._on_text = on_text
        self.in_head = True  # the SDK's HTTP 101 response comes first
        self._head_tail = b""
        self._hdr = bytearray()
        self._need = 0  # payload bytes of the current frame still to pass
        self._text: bytearray | None = None
        self.frames = 0
        self.binary = 0  # message data frames (opcode 2)

    @property
    def at_boundary(self) -> bool:
        return not self.in_head and not self._need and not self._hdr

    def walk(self, mv: memoryview, on_boundary: Callable[[int], None] | None = None) -> None:
        """Advance over ``mv``; with ``on_boundary``, call it with each offset in ``mv`` where a
        frame (or the HTTP head) ends."""
        pos = self._pass_head(mv, on_boundary) if self.in_head else 0
        while pos < len(mv):
            if self._need:
                pos = self._pass_payload(mv, pos, on_boundary)
            else:
                pos = self._take_header(mv, pos, on_boundary)

    def _pass_head(self, mv: memoryview, on_boundary) -> int:
        """Offset in ``mv`` just past the HTTP head (``len(mv)`` while it goes on)."""
        probe = self._head_tail + bytes(mv[: min(len(mv), MAX_HEAD)])
        end = probe.find(b"\r\n\r\n")
        if end < 0:
            self._head_tail = probe[-3:]
            return len(mv)
        pos = end + 4 - len(self._head_tail)
        self.in_head = False
        self._head_tail = b""
        if on_boundary is not None:
            on_boundary(pos)
        return pos

    def _pass_payload(self, mv: memoryview, pos: int, on_boundary) -> int:
        k = min(len(mv) - pos, self._need)
        if self._text is not None and len(self._text) < self.MAX_TEXT:
            self._text += mv[pos : pos + k]
        pos += k
        self._need -= k
        if not self._need:
            self._frame_done(on_boundary, pos)
        return pos

    def _take_header(self, mv: memoryview, pos: int, on_boundary) -> int:
        h = self._hdr
        take = min(len(mv) - pos, MAX_FRAME_HEADER - len(h))
        h += mv[pos : pos + take]
        size = header_size(h)
        if size is None or len(h) < size:
            return pos + take
        length = payload_length(h)
        opcode = h[0] & 0x0F
        pos += take - (len(h) - size)  # bytes after the header belong to the payload
        h.clear()
        self._text = bytearray() if opcode == OP_TEXT else None
        if opcode == OP_BINARY:
            self.binary += 1
        self._need = length
        if not length:
            self._frame_done(on_boundary, pos)
        return pos

    def _frame_done(self, on_boundary, pos: int) -> None:
        self.frames += 1
        text = self._text
        if text is not None:
            self._text = None
            with contextlib.suppress(Exception):  # figures and the workaround are best effort
                self._on_text(bytes(text))
        if on_boundary is not None:
            on_boundary(pos)
