"""The public WebSocket front: client limit, TLS, hardening and the layout (no rclpy).

The foxglove SDK server has no connect callback and no client limit, so it listens on a loopback
port and this asyncio front owns the public one. Per connection the front reads the HTTP request
and decides there: connections still in the request are capped (a burst waits for a slot, a
pile-up beyond that gets 503), plain HTTP gets a hint
(426) or, for ``GET /layout.json``, the layout file; an upgrade with no supported subprotocol
gets 400 naming it; one beyond ``max_clients`` is answered by the front itself (handshake, a
Foxglove ``status`` error the app shows, then close code 1013 with the same reason). Any other
upgrade is spliced to the SDK server over its own loopback connection.

The splice runs in protocol callbacks (issue 17: the stream/coroutine proxy cost as much CPU as
the SDK). Client frames, small and few, are parsed: the message size limit (close 1009 before a
byte of an oversized payload is held), subscriptions, liveness (ping/pong). Server bytes are
written through as they come; only the frame lengths are followed, so the front's own ping and
close frames go in between two server frames, and the few text frames (advertisements, status)
are read for the "Unknown channel ID" workaround. Nothing is copied or decoded per message.

Isolation: each client has its own upstream connection and the front stops reading upstream
while the client's write buffer is above ``HIGH_WATER``. A stalled client therefore fills its
own socket buffers, then the SDK's per-client backlog, where the SDK drops that client's oldest
data; the others are untouched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# What the SDK server speaks (foxglove-sdk 0.30 has no foxglove.websocket.v1): a client that
# offers neither gets an HTTP 400 naming it, instead of the SDK's bare 400.
SUBPROTOCOLS = ("foxglove.sdk.v1",)
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
HIGH_WATER = 64 * 1024
# Socket buffers between the SDK and a client are kept small, so a slow client's data waits in
# the SDK's per-client backlog (which drops the oldest) instead of going stale in the kernel.
UPSTREAM_RCVBUF = 128 * 1024
DOWNSTREAM_SNDBUF = 256 * 1024
MAX_HEAD = 16 * 1024
MAX_CONTROL_TEXT = 1024 * 1024
MAX_LAYOUT = 4 * 1024 * 1024  # GET /layout.json: a Foxglove layout is a few 10 kB


# ---------------------------------------------------------------- WebSocket framing helpers


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


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
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def parse_request_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, lower-cased headers) of an HTTP/1.1 request head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 3:
        raise ValueError(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if sep:
            k = k.strip().lower()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    return parts[0], parts[1], headers


def is_websocket_upgrade(headers: dict[str, str]) -> bool:
    return "websocket" in headers.get("upgrade", "").lower() and "sec-websocket-key" in headers


def choose_subprotocol(headers: dict[str, str]) -> str | None:
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    return next((p for p in SUBPROTOCOLS if p in offered), None)


def refusal(headers: dict[str, str], reason: str) -> bytes:
    """Handshake + Foxglove status error + close 1013: the app shows the reason to the user."""
    proto = choose_subprotocol(headers)
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}",
    ]
    if proto:
        lines.append(f"Sec-WebSocket-Protocol: {proto}")
    status = json.dumps({"op": "status", "level": 2, "message": reason, "id": "client-limit"})
    close_reason = reason.encode()[:120]  # control frames carry at most 125 bytes
    return (
        ("\r\n".join(lines) + "\r\n\r\n").encode()
        + encode_frame(0x1, status.encode())
        + encode_frame(0x8, struct.pack(">H", CLOSE_TRY_AGAIN_LATER) + close_reason)
    )


def http_response(code: int, text: str, body: str, extra: str = "") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + data


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
            if self._in_head:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > MAX_HEAD:
                        self.broken = True
                    return
                del self._buf[: end + 4]
                self._buf_abs += end + 4
                self.boundary = self._buf_abs
                self._in_head = False
            self._parse_buffer()

    def _parse_buffer(self) -> None:
        buf = self._buf
        while True:
            if len(buf) < 2:
                return
            b0, b1 = buf[0], buf[1]
            fin, opcode = bool(b0 & 0x80), b0 & 0x0F
            masked = bool(b1 & 0x80)
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from(">H", buf, 2)[0]
                hlen = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from(">Q", buf, 2)[0]
                hlen = 10
            total = length if opcode else self._message_len + length
            if self.max_message and opcode < 0x8 and total > self.max_message:
                self.oversize = total
                self.broken = True
                buf.clear()
                return
            mask = b""
            if masked:
                if len(buf) < hlen + 4:
                    return
                mask = bytes(buf[hlen : hlen + 4])
                hlen += 4
            if opcode == 0x1 and length <= MAX_CONTROL_TEXT:
                want = length
            elif opcode == 0x2:
                want = min(length, self._binary_prefix)
            elif opcode >= 0x8 and length <= 125:  # control frames: close code and reason
                want = length
            else:
                want = 0
            if len(buf) < hlen + want:
                return
            prefix = bytes(buf[hlen : hlen + want])
            if mask and prefix:
                prefix = bytes(b ^ mask[i % 4] for i, b in enumerate(prefix))
            if opcode < 0x8:  # control frames may sit between the fragments of a message
                self._message_len = 0 if fin else total
            try:
                self._on_frame(opcode, fin, prefix)
            except Exception:  # figures are best effort; forwarding never depends on them
                pass
            avail = len(buf) - hlen
            if avail >= length:
                del buf[: hlen + length]
                self._buf_abs += hlen + length
                self.boundary = self._buf_abs
            else:
                self._skip = length - avail
                buf.clear()
                return


# ---------------------------------------------------------------- per-client figures


@dataclass
# ---------------------------------------------------------------- per-client figures


@dataclass
class ClientStats:
    """What one connected client asked for and got (ints under the GIL, read by any thread)."""

    id: int
    peer: str
    connected_at: float
    subscriptions: dict[int, int] = field(default_factory=dict)  # subscription id -> channel id
    offered_base: dict[int, int] = field(default_factory=dict)  # subscription id -> offered then
    offered_closed: int = 0  # offered on subscriptions since removed
    messages_down: int = 0  # binary (message data) frames forwarded
    frames_down: int = 0  # server frames forwarded (messages, advertisements, status)
    bytes_down: int = 0
    pending_bytes: int = 0  # in the front's write buffer towards this client
    resubscribed: int = 0  # subscribes repeated after the SDK's "Unknown channel ID"
    unknown_subscribes: int = 0  # subscribes to channels never (or long ago) advertised
    last_rx: float = 0.0  # monotonic time of the last bytes from the client

    def offered(self, offered_of: Callable[[int], int]) -> int:
        """Messages the gateway logged on this client's channels while it was subscribed."""
        now = sum(
            max(0, offered_of(ch) - self.offered_base.get(sub, 0))
            for sub, ch in list(self.subscriptions.items())
        )
        return self.offered_closed + now


class _ServerStream:
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
        n = len(mv)
        pos = 0
        if self.in_head:
            probe = self._head_tail + bytes(mv[: min(n, MAX_HEAD)])
            end = probe.find(b"\r\n\r\n")
            if end < 0:
                self._head_tail = probe[-3:]
                return
            pos = end + 4 - len(self._head_tail)
            self.in_head = False
            self._head_tail = b""
            if on_boundary is not None:
                on_boundary(pos)
        while pos < n:
            need = self._need
            if need:
                k = n - pos if n - pos < need else need
                if self._text is not None and len(self._text) < self.MAX_TEXT:
                    self._text += mv[pos : pos + k]
                pos += k
                self._need = need - k
                if not self._need:
                    self._frame_done(on_boundary, pos)
                continue
            h = self._hdr
            take = min(n - pos, 14 - len(h))
            h += mv[pos : pos + take]
            if len(h) < 2:
                pos += take
                continue
            length = h[1] & 0x7F
            hlen = 2 + (4 if h[1] & 0x80 else 0)
            if length == 126:
                hlen += 2
            elif length == 127:
                hlen += 8
            if len(h) < hlen:
                pos += take
                continue
            if length == 126:
                length = struct.unpack_from(">H", h, 2)[0]
            elif length == 127:
                length = struct.unpack_from(">Q", h, 2)[0]
            opcode = h[0] & 0x0F
            pos += take - (len(h) - hlen)  # bytes after the header belong to the payload
            h.clear()
            self._text = bytearray() if opcode == 0x1 else None
            if opcode == 0x2:
                self.binary += 1
            self._need = length
            if not length:
                self._frame_done(on_boundary, pos)

    def _frame_done(self, on_boundary, pos: int) -> None:
        self.frames += 1
        text = self._text
        if text is not None:
            self._text = None
            try:
                self._on_text(bytes(text))
            except Exception:  # figures and the workaround are best effort
                pass
        if on_boundary is not None:
            on_boundary(pos)


class _ClientTracker:
    """Client frames (parsed: size limit, subscriptions, keepalive) and the few server text
    frames of one connection; repairs subscriptions the SDK refused as "Unknown channel ID".

    foxglove-sdk 0.30 can send a new channel's advertisement before the server can resolve the
    channel, so a client that subscribes at once (Foxglove does) sometimes gets "Unknown channel
    ID" and never any data on that topic. The tracker then sends the same subscribe again on the
    client's behalf (masked, between client frames), at most ``MAX_RESUBSCRIBE`` times, and only
    for a channel advertised less than ``RECENT_ADVERTISE_S`` ago: a subscription to a channel
    that was never advertised (or long ago) is a client error, answered once by the SDK.
    """

    MAX_RESUBSCRIBE = 5
    RESUBSCRIBE_DELAY_S = 0.05
    RECENT_ADVERTISE_S = 2.0

    def __init__(
        self,
        stats: ClientStats,
        offered_of: Callable[[int], int],
        max_message: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stats = stats
        self._offered_of = offered_of
        self._clock = clock
        self.up = FrameScanner(self._client_frame, max_message=max_message)
        self.down = _ServerStream(self._server_text)
        self.inject_up: Callable[[bytes], None] | None = None
        self._retries: dict[int, int] = {}
        self.advertised_at: dict[int, float] = {}  # channel id -> when the client saw it

    def _client_frame(self, opcode: int, fin: bool, prefix: bytes) -> None:
        if opcode != 0x1 or not fin:
            return
        msg = json.loads(prefix)
        s = self.stats
        if msg.get("op") == "subscribe":
            for sub in msg.get("subscriptions", []):
                sid, ch = int(sub["id"]), int(sub["channelId"])
                s.subscriptions[sid] = ch
                s.offered_base[sid] = self._offered_of(ch)
        elif msg.get("op") == "unsubscribe":
            for sid in msg.get("subscriptionIds", []):
                ch = s.subscriptions.pop(int(sid), None)
                if ch is not None:
                    base = s.offered_base.pop(int(sid), 0)
                    s.offered_closed += max(0, self._offered_of(ch) - base)

    def _server_text(self, payload: bytes) -> None:
        head = payload[:64]
        if b'"advertise"' in head:
            msg = json.loads(payload)
            if msg.get("op") == "advertise":
                now = self._clock()
                for ch in msg.get("channels", []):
                    self.advertised_at[int(ch["id"])] = now
        elif b'"unadvertise"' in head:
            msg = json.loads(payload)
            for cid in msg.get("channelIds", []):
                self.advertised_at.pop(int(cid), None)
        elif b"Unknown channel ID" in payload:
            msg = json.loads(payload)
            if msg.get("op") != "status":
                return
            text = str(msg.get("message", ""))
            if text.startswith("Unknown channel ID: "):
                self._resubscribe(int(text.rsplit(" ", 1)[1]))

    def _resubscribe(self, channel_id: int) -> None:
        seen = self.advertised_at.get(channel_id)
        if seen is None or self._clock() - seen > self.RECENT_ADVERTISE_S:
            self.stats.unknown_subscribes += 1  # the client's own mistake: no retry
            return
        for sid, ch in list(self.stats.subscriptions.items()):
            if ch != channel_id or self._retries.get(sid, 0) >= self.MAX_RESUBSCRIBE:
                continue
            self._retries[sid] = self._retries.get(sid, 0) + 1
            body = json.dumps(
                {"op": "subscribe", "subscriptions": [{"id": sid, "channelId": ch}]}
            ).encode()
            frame = encode_frame(0x1, body, mask=os.urandom(4))
            asyncio.get_running_loop().call_later(self.RESUBSCRIBE_DELAY_S, self._inject, frame)

    def _inject(self, frame: bytes) -> None:
        if self.inject_up is not None:
            self.stats.resubscribed += 1
            self.inject_up(frame)


@dataclass
class FrontSnapshot:
    active: int
    max_clients: int
    accepted_total: int
    refused_total: int
    clients: list[dict]
    too_big_total: int = 0
    ping_timeout_total: int = 0
    handshake_refused_total: int = 0
    bad_subprotocol_total: int = 0
    handshaking: int = 0
    layout_served_total: int = 0
    handshake_waiting: int = 0


# ---------------------------------------------------------------- the splice


class _Side(asyncio.Protocol):
    """One socket of a spliced connection; hands everything to the _Splice."""

    def __init__(self, splice: _Splice, upstream: bool):
        self.splice = splice
        self.upstream = upstream

    def data_received(self, data: bytes) -> None:
        if self.upstream:
            self.splice.from_server(data)
        else:
            self.splice.from_client(data)

    def eof_received(self):
        self.splice.finish()
        return False

    def connection_lost(self, exc) -> None:
        self.splice.finish()

    # the other side's reading follows this side's write buffer (back-pressure)
    def pause_writing(self) -> None:
        self.splice.pause(self.upstream)

    def resume_writing(self) -> None:
        self.splice.resume(self.upstream)


class _Splice:
    """Client <-> SDK bytes in protocol callbacks (no coroutine, no stream buffer per chunk).

    Client -> SDK: parsed frame by frame (size limit, subscriptions, liveness) and forwarded at
    frame boundaries only, so the front can add a frame of its own (a repeated subscribe).
    SDK -> client: written through as it comes; only the frame lengths are followed, so a ping
    or close frame of the front goes in between two server frames.
    """

    def __init__(self, front: ClientLimitFront, stats: ClientStats, client_t, tracker):
        self.front = front
        self.stats = stats
        self.client_t = client_t
        self.up_t: asyncio.Transport | None = None
        self.tracker = tracker
        tracker.inject_up = self.inject_up
        self.held = bytearray()  # bytes of a client frame not yet complete
        self.sent_up = 0
        self.pending_up: list[bytes] = []
        self.down_inject: list[bytes] = []
        self.closing = False  # a close frame of ours is queued: nothing after it
        self.close_sent = False
        self.done = asyncio.get_running_loop().create_future()

    # -- client -> SDK
    def from_client(self, data: bytes) -> None:
        if self.close_sent or self.closing:
            return  # read and dropped while the close is under way
        st = self.stats
        st.last_rx = time.monotonic()
        up = self.tracker.up
        up.feed(data)
        if up.oversize:
            front = self.front
            front.too_big_total += 1
            reason = f"message too big: {up.oversize} bytes (limit {front.max_message_bytes})"
            front.log(f"client {st.id} ({st.peer}): {reason}; closing (1009)")
            self.held.clear()
            self.send_down(_close_frame(CLOSE_TOO_BIG, reason), close=True)
            return
        held = self.held
        held += data
        cut = up.boundary - self.sent_up
        if cut > 0 and self.up_t is not None:
            self.up_t.write(bytes(held[:cut]))
            del held[:cut]
            self.sent_up += cut
        if not held and self.pending_up and self.up_t is not None:
            for frame in self.pending_up:
                self.up_t.write(frame)
            self.pending_up.clear()

    def inject_up(self, frame: bytes) -> None:
        """A client frame of the front's own: now if no client frame is half sent, else next."""
        if self.up_t is None or self.up_t.is_closing():
            return
        if self.held:
            self.pending_up.append(frame)
        else:
            self.up_t.write(frame)

    # -- SDK -> client
    def from_server(self, data: bytes) -> None:
        if self.close_sent:
            return
        st = self.stats
        st.bytes_down += len(data)
        down = self.tracker.down
        if not self.down_inject:
            down.walk(memoryview(data))
            self.client_t.write(data)
        else:
            mv = memoryview(data)
            start = [0]

            def boundary(pos: int) -> None:
                if self.down_inject and not self.close_sent:
                    self.client_t.write(mv[start[0] : pos])
                    start[0] = pos
                    self._write_injected()

            down.walk(mv, boundary)
            if not self.close_sent and start[0] < len(data):
                self.client_t.write(mv[start[0] :])
        st.frames_down = down.frames
        st.messages_down = down.binary
        st.pending_bytes = self.client_t.get_write_buffer_size()

    def send_down(self, frame: bytes, close: bool = False) -> None:
        """Ping or close for the client: at once between server frames, else at the next end
        of a server frame."""
        if self.closing:
            return
        self.closing = close
        self.down_inject.append(frame)
        if self.tracker.down.at_boundary:
            self._write_injected()

    def _write_injected(self) -> None:
        for frame in self.down_inject:
            self.client_t.write(frame)
        self.down_inject.clear()
        if self.closing:
            self.close_sent = True
            self._after_close()

    def _after_close(self) -> None:
        """Our close frame is out: stop the SDK side, then give the client a moment to read it
        (closing with unread input would reset the connection and could lose the frame)."""
        if self.up_t is not None:
            self.up_t.close()
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, self.finish)

    # -- flow control and the end
    def pause(self, upstream_full: bool) -> None:
        t = self.client_t if upstream_full else self.up_t
        if t is not None and not t.is_closing():
            t.pause_reading()

    def resume(self, upstream_full: bool) -> None:
        t = self.client_t if upstream_full else self.up_t
        if t is not None and not t.is_closing():
            t.resume_reading()
        if not upstream_full:
            self.stats.pending_bytes = self.client_t.get_write_buffer_size()

    def finish(self) -> None:
        if self.closing and not self.close_sent:
            return  # the close frame still waits for the end of a server frame (timeout)
        for t in (self.up_t, self.client_t):
            if t is not None and not t.is_closing():
                t.close()
        if not self.done.done():
            self.done.set_result(None)

    def abort(self) -> None:
        for t in (self.up_t, self.client_t):
            if t is not None:
                t.abort()
        if not self.done.done():
            self.done.set_result(None)


# ---------------------------------------------------------------- the front server


class ClientLimitFront:
    """Public listener in its own thread and asyncio loop; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        upstream_port: int,
        max_clients: int,
        ssl_context: ssl.SSLContext | None = None,
        offered_of: Callable[[int], int] | None = None,
        log: Callable[[str], None] = print,
        name: str = "foxglove_gateway",
        max_message_bytes: int = 1024 * 1024,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
        max_handshakes: int = 16,
        handshake_timeout: float = 10.0,
        layout_file: str = "",
    ):
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self.max_clients = int(max_clients)
        self.ssl_context = ssl_context
        self.offered_of = offered_of or (lambda _ch: 0)
        self.log = log
        self.name = name
        self.layout_file = layout_file  # served at GET /layout.json ('' = 404)
        self._clients: dict[int, ClientStats] = {}
        self._next_id = 1
        self.accepted_total = 0
        self.refused_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.max_message_bytes = int(max_message_bytes)  # client -> server, 0 = unlimited
        self.ping_interval = float(ping_interval)  # 0 = no pings, no timeout
        self.ping_timeout = float(ping_timeout)
        self.max_handshakes = int(max_handshakes)
        self.handshake_timeout = float(handshake_timeout)
        self._handshaking = 0
        self._handshake_waiting = 0  # connections waiting for a handshake slot
        self._handshake_freed: asyncio.Event | None = None  # made in the loop thread
        self.too_big_total = 0  # clients closed with 1009
        self.ping_timeout_total = 0  # clients closed for not answering pings
        self.handshake_refused_total = 0  # connections beyond max_handshakes
        self.bad_subprotocol_total = 0  # upgrades without foxglove.sdk.v1
        self.layout_served_total = 0

    # -- lifecycle (called from the node's thread)

    def start(self, timeout: float = 10.0) -> int:
        """Bind and serve; returns the bound port (useful with port 0). Raises on bind errors."""
        ready: dict = {}
        started = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle,
                        self.host,
                        self.port,
                        ssl=self.ssl_context,
                        reuse_address=True,
                        limit=MAX_HEAD * 2,
                    )
                )
                ready["port"] = self._server.sockets[0].getsockname()[1]
            except Exception as e:
                ready["error"] = e
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="ws-front", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("WebSocket front did not start")
        if "error" in ready:
            raise ready["error"]
        self.port = ready["port"]
        return self.port

    def stop(self, timeout: float = 3.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def shutdown():
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        with contextlib.suppress(Exception):
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- figures (any thread)

    @property
    def active(self) -> int:
        return len(self._clients)

    def snapshot(self) -> FrontSnapshot:
        clients = []
        now = time.monotonic()
        for c in list(self._clients.values()):
            offered = c.offered(self.offered_of)
            delivered = c.messages_down
            clients.append(
                {
                    "id": c.id,
                    "peer": c.peer,
                    "connected_s": round(now - c.connected_at, 1),
                    "subscriptions": len(c.subscriptions),
                    "offered": offered,
                    "delivered": delivered,
                    "delivered_pct": min(100.0, 100.0 * delivered / offered) if offered else 100.0,
                    "frames": c.frames_down,
                    "bytes": c.bytes_down,
                    "pending_bytes": c.pending_bytes,
                    "resubscribed": c.resubscribed,
                    "unknown_subscribes": c.unknown_subscribes,
                }
            )
        return FrontSnapshot(
            len(clients),
            self.max_clients,
            self.accepted_total,
            self.refused_total,
            clients,
            self.too_big_total,
            self.ping_timeout_total,
            self.handshake_refused_total,
            self.bad_subprotocol_total,
            self._handshaking,
            self.layout_served_total,
            self._handshake_waiting,
        )

    # -- connection handling (loop thread)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        peer_s = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            await self._serve(reader, writer, peer_s)
        except (asyncio.CancelledError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception as e:
            self.log(f"client {peer_s}: {type(e).__name__}: {e}")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handshake_slot(self) -> bool:
        """Wait (at most handshake_timeout) until fewer than max_handshakes connections are in
        the HTTP request; False at once when max_handshakes others are already waiting."""
        if self._handshake_waiting >= self.max_handshakes:
            return False
        if self._handshake_freed is None:
            self._handshake_freed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handshake_timeout
        self._handshake_waiting += 1
        try:
            while self._handshaking >= self.max_handshakes:
                left = deadline - loop.time()
                if left <= 0:
                    return False
                self._handshake_freed.clear()
                try:
                    await asyncio.wait_for(self._handshake_freed.wait(), left)
                except asyncio.TimeoutError:
                    return False
            return True
        finally:
            self._handshake_waiting -= 1

    async def _serve(self, reader, writer, peer: str) -> None:
        # Connections still in the HTTP request are capped: idle sockets cannot pile up. A burst
        # beyond the cap (a class opening its tabs at once on a busy Pi) waits for a slot, up to
        # the handshake timeout; only a pile-up of as many again is refused at once.
        if self._handshaking >= self.max_handshakes and not await self._handshake_slot():
            self.handshake_refused_total += 1
            writer.write(
                http_response(
                    503,
                    "Service Unavailable",
                    f"{self.name}: too many connections still in the WebSocket handshake "
                    f"({self.max_handshakes}); try again later\n",
                )
            )
            await writer.drain()
            return
        self._handshaking += 1
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=self.handshake_timeout
            )
            method, target, headers = parse_request_head(head)
        except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            writer.write(http_response(400, "Bad Request", "bad or slow HTTP request\n"))
            await writer.drain()
            return
        finally:
            self._handshaking -= 1
            if self._handshake_freed is not None:
                self._handshake_freed.set()
        if not is_websocket_upgrade(headers) and target.split("?", 1)[0] == "/layout.json":
            writer.write(self._layout_response(method))
            await writer.drain()
            return
        if not is_websocket_upgrade(headers):
            writer.write(
                http_response(
                    426,
                    "Upgrade Required",
                    f"{self.name}: this is a Foxglove WebSocket server. Open Foxglove or "
                    "Lichtblick and connect to ws://<this host>:<port> (Foxglove WebSocket).\n",
                )
            )
            await writer.drain()
            return
        if choose_subprotocol(headers) is None:
            self.bad_subprotocol_total += 1
            offered = headers.get("sec-websocket-protocol", "").strip() or "none"
            writer.write(
                http_response(
                    400,
                    "Bad Request",
                    f"{self.name}: unsupported WebSocket subprotocol (offered: {offered}). "
                    f"This server speaks {', '.join(SUBPROTOCOLS)} only (foxglove-sdk); "
                    "use a current Foxglove or Lichtblick.\n",
                    extra=f"Sec-WebSocket-Protocol: {SUBPROTOCOLS[0]}\r\n",
                )
            )
            await writer.drain()
            return
        if len(self._clients) >= self.max_clients:
            self.refused_total += 1
            reason = (
                f"{self.name}: client limit reached ({self.max_clients} connected); "
                "close another Foxglove tab or try again later"
            )
            self.log(f"refused {peer}: {reason}")
            writer.write(refusal(headers, reason))
            await writer.drain()
            # give the client a moment to read the close frame before the TCP close
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(1024), timeout=2.0)
            return
        cid = self._next_id
        self._next_id += 1
        stats = ClientStats(cid, peer, time.monotonic())
        stats.last_rx = stats.connected_at
        self._clients[cid] = stats
        self.accepted_total += 1
        try:
            up_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RCVBUF)
            up_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up_sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                up_sock, ("127.0.0.1", self.upstream_port)
            )
        except OSError as e:
            up_sock.close()
            del self._clients[cid]
            writer.write(http_response(502, "Bad Gateway", f"upstream unavailable: {e}\n"))
            await writer.drain()
            return
        with contextlib.suppress(OSError):
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, DOWNSTREAM_SNDBUF)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tracker = _ClientTracker(stats, self.offered_of, max_message=self.max_message_bytes)
        self.log(f"client {cid} connected from {peer} ({len(self._clients)}/{self.max_clients})")
        try:
            await self._splice(reader, writer, up_sock, head, tracker)
        finally:
            self._clients.pop(cid, None)
            self.log(f"client {cid} ({peer}) disconnected")

    def _layout_response(self, method: str) -> bytes:
        """GET /layout.json: the layout file, readable by Foxglove/Lichtblick in a browser
        (``layoutUrl``), so it needs CORS; 404 when no ``layout_file`` is set or readable."""
        cors = "Access-Control-Allow-Origin: *\r\n"
        if method not in ("GET", "HEAD"):
            return http_response(405, "Method Not Allowed", "GET only\n", extra=cors)
        path = self.layout_file
        try:
            if not path:
                raise FileNotFoundError("layout_file not set")
            with open(path, "rb") as f:
                body = f.read(MAX_LAYOUT + 1)
            if len(body) > MAX_LAYOUT:
                raise OSError(f"larger than {MAX_LAYOUT} bytes")
        except OSError as e:
            return http_response(404, "Not Found", f"{self.name}: no layout ({e})\n", extra=cors)
        self.layout_served_total += 1
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\n{cors}"
            "Connection: close\r\n\r\n"
        ).encode()
        return head + (body if method == "GET" else b"")

    async def _splice(self, reader, writer, up_sock, head: bytes, tracker) -> None:
        """Hand both sockets to protocol callbacks (_Splice) until either side ends."""
        loop = asyncio.get_running_loop()
        stats = tracker.stats
        client_t = writer.transport
        splice = _Splice(self, stats, client_t, tracker)
        client_side = _Side(splice, upstream=False)
        leftover = bytes(reader._buffer)  # bytes after the head the stream already read
        reader._buffer.clear()
        client_t.set_write_buffer_limits(high=HIGH_WATER)
        client_t.set_protocol(client_side)
        up_t, _ = await loop.create_connection(lambda: _Side(splice, upstream=True), sock=up_sock)
        up_t.set_write_buffer_limits(high=HIGH_WATER)
        splice.up_t = up_t
        up_t.write(head)  # the request head as received; frames follow it
        if leftover:
            splice.from_client(leftover)
        keepalive = None
        if self.ping_interval > 0:
            keepalive = asyncio.create_task(self._keepalive(splice))
        try:
            await splice.done
        except asyncio.CancelledError:
            splice.abort()
            raise
        finally:
            if keepalive is not None:
                keepalive.cancel()
            for t in (up_t, client_t):
                if not t.is_closing():
                    t.close()

    async def _keepalive(self, splice: _Splice) -> None:
        """Ping a quiet client; close one that sent nothing for interval + timeout (a silent or
        stalled client must not hold a slot forever)."""
        stats = splice.stats
        pinged = False
        while not splice.closing:
            interval, timeout = self.ping_interval, self.ping_timeout
            await asyncio.sleep(min(interval, timeout) / 4)
            idle = time.monotonic() - stats.last_rx
            if idle < interval:
                pinged = False
                continue
            if idle >= interval + timeout:
                self.ping_timeout_total += 1
                reason = f"no pong within {timeout:g} s"
                self.log(f"client {stats.id} ({stats.peer}): {reason}; closing")
                splice.send_down(_close_frame(CLOSE_GOING_AWAY, reason), close=True)
                # a client that does not read at all never lets the close frame out
                await asyncio.sleep(2.0)
                if not splice.close_sent:
                    splice.abort()
                return
            if not pinged:
                splice.send_down(encode_frame(0x9, b"sensorhub"))
                pinged = True


def _close_frame(code: int, reason: str) -> bytes:
    return encode_frame(0x8, struct.pack(">H", code) + reason.encode()[:120])
