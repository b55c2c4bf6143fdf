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
OP_PONG = 0xA
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
MAX_HEAD = 16 * 1024  # an HTTP request or response head
MAX_CONTROL_TEXT = 1024 * 1024  # text frames read whole (client JSON, server advertisements)
MAX_FRAME_HEADER = 14  # 2 + 8 (64-bit length) + 4 (mask)
MAX_CONTROL_PAYLOAD = 125
MESSAGE_DATA_PREFIX = 13  # Foxglove message data: opcode 1, subscription id u32, log time u64
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


Verdict = bool | bytes  # keep, drop, or replace the frame by these bytes


class ServerStream:
    """The SDK->client byte stream, frame by frame, without copying the frames sent on.

    Only the header lengths are read, so the front knows where a server frame ends and can slip
    its own frames in between. Text frames (server info, advertisements, status: a few per client
    and minute) are collected and handed to ``on_text``. With ``decide(opcode, prefix)`` each
    binary frame (``prefix``: its first :data:`MESSAGE_DATA_PREFIX` bytes, the message data
    header) and each pong (its payload) gets a :data:`Verdict`: a dropped frame leaves no byte,
    a replaced one leaves the replacement. :meth:`forward` returns what to send on; a frame whose
    verdict needs bytes of the next read is held until then (at most a header and its prefix)."""

    MAX_TEXT = MAX_CONTROL_TEXT

    def __init__(
        self,
        on_text: Callable[[bytes], None],
        decide: Callable[[int, bytes], Verdict] | None = None,
    ):
        self._on_text = on_text
        self._decide = decide
        self.in_head = True  # the SDK's HTTP 101 response comes first
        self._head_tail = b""
        self._hdr = bytearray()
        self._need = 0  # payload bytes of the current frame still to pass
        self._want = 0  # of those, prefix bytes still needed for the verdict
        self._prefix = bytearray()
        self._opcode = 0
        self._text: bytearray | None = None
        self._held = bytearray()  # earlier bytes of a frame still without a verdict
        self._dropping = False  # the current frame's payload is not sent on
        self.cut = False  # set by ``on_boundary``: nothing after that boundary is sent
        self.frames = 0
        self.binary = 0  # binary (message data) frames sent on
        self.dropped = 0  # frames dropped by their verdict
        # per call of forward(): the view, the pieces out, the start of the run being sent on
        # (None inside a dropped frame) and where the current frame began in the view (-1: in
        # an earlier read)
        self._mv = memoryview(b"")
        self._out: list = []
        self._run: int | None = 0
        self._fs = -1

    @property
    def at_boundary(self) -> bool:
        return not self.in_head and not self._need and not self._hdr

    def walk(self, mv: memoryview, on_boundary: Callable[[int], None] | None = None) -> list:
        """:meth:`forward` for a caller that only wants the frame ends (``on_boundary(pos)``)."""
        return self.forward(mv, on_boundary)

    def forward(self, mv: memoryview, on_boundary=None) -> list:
        """Advance over ``mv``; returns the pieces (views and bytes) to send on, in order. With
        ``on_boundary``, it is called with each offset in ``mv`` where a frame (or the HTTP head)
        ends, and the bytes it returns (if any) are sent on there."""
        self._mv, self._out, self._fs = mv, [], -1
        self._run = None if self._held or self._dropping else 0
        pos = self._pass_head(mv, on_boundary) if self.in_head else 0
        n = len(mv)
        while pos < n and not self.cut:
            if self._want:
                pos = self._take_prefix(mv, pos, on_boundary)
            elif self._need:
                pos = self._pass_payload(mv, pos, on_boundary)
            else:
                pos = self._take_header(mv, pos, on_boundary)
        return self._finish(min(pos, n))

    def _finish(self, end: int) -> list:
        out, run = self._out, self._run
        if self._hdr or self._want:  # a frame without its verdict yet: hold its bytes
            start = 0 if self._held else self._fs
            if run is not None and start > run:
                out.append(self._mv[run:start])
            self._held += self._mv[start:end]
        elif run is not None and end > run:
            out.append(self._mv[run:end])
        self._mv = memoryview(b"")
        return out

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
        self._boundary(pos, on_boundary)
        return pos

    def _pass_payload(self, mv: memoryview, pos: int, on_boundary) -> int:
        k = min(len(mv) - pos, self._need)
        if self._text is not None and len(self._text) < self.MAX_TEXT:
            self._text += mv[pos : pos + k]
        pos += k
        self._need -= k
        if not self._need:
            self._frame_done(pos, on_boundary)
        return pos

    def _take_header(self, mv: memoryview, pos: int, on_boundary) -> int:
        h = self._hdr
        if not h:
            self._fs = pos
        take = min(len(mv) - pos, MAX_FRAME_HEADER - len(h))
        h += mv[pos : pos + take]
        size = header_size(h)
        if size is None or len(h) < size:
            return pos + take
        length = payload_length(h)
        opcode = self._opcode = h[0] & 0x0F
        pos += take - (len(h) - size)  # bytes after the header belong to the payload
        h.clear()
        self._text = bytearray() if opcode == OP_TEXT else None
        self._need = length
        self._want = self._prefix_len(opcode, length)
        if self._want:
            self._prefix.clear()
            return pos
        self._verdict(True)
        if not length:
            self._frame_done(pos, on_boundary)
        return pos

    def _prefix_len(self, opcode: int, length: int) -> int:
        """Payload bytes ``decide`` needs before the frame goes on (0: none, it goes on)."""
        if self._decide is None:
            return 0
        if opcode == OP_BINARY:
            return min(length, MESSAGE_DATA_PREFIX)
        return length if opcode == OP_PONG and length <= MAX_CONTROL_PAYLOAD else 0

    def _take_prefix(self, mv: memoryview, pos: int, on_boundary) -> int:
        k = min(len(mv) - pos, self._want)
        self._prefix += mv[pos : pos + k]
        pos += k
        self._want -= k
        self._need -= k
        if not self._want:
            verdict: Verdict = True
            with contextlib.suppress(Exception):  # a failing decision must not stop the stream
                verdict = self._decide(self._opcode, bytes(self._prefix))
            self._verdict(verdict)
            if not self._need:
                self._frame_done(pos, on_boundary)
        return pos

    def _verdict(self, verdict: Verdict) -> None:
        """Send the current frame on (its held bytes first), or drop it, or replace it."""
        if verdict is True:
            if self._held:
                self._out.append(bytes(self._held))
                self._held.clear()
                self._run = 0
            self.binary += self._opcode == OP_BINARY
            return
        if self._held:
            self._held.clear()
        elif self._run is not None and self._fs > self._run:
            self._out.append(self._mv[self._run : self._fs])
        self._run = None
        self._dropping = True
        if verdict is False:
            self.dropped += 1
        elif verdict:
            self._out.append(verdict)

    def _frame_done(self, pos: int, on_boundary) -> None:
        self.frames += 1
        text = self._text
        if text is not None:
            self._text = None
            with contextlib.suppress(Exception):  # figures and the workaround are best effort
                self._on_text(bytes(text))
        if self._dropping:
            self._dropping = False
            self._run = pos
        self._boundary(pos, on_boundary)

    def _boundary(self, pos: int, on_boundary) -> None:
        if on_boundary is None:
            return
        extra = on_boundary(pos)
        if extra or self.cut:
            run = self._run
            if run is not None and pos > run:
                self._out.append(self._mv[run:pos])
            if extra:
                self._out.append(extra)
            self._run = None if self.cut else pos
