"""The public WebSocket front: client limit, TLS and per-client delivery figures (no rclpy).

The foxglove SDK server has no connect callback and no client limit, so it listens on a loopback
port and this asyncio front owns the public one. Per connection the front reads the HTTP request;
a WebSocket upgrade beyond ``max_clients`` is answered by the front itself (handshake, a Foxglove
``status`` error the app shows, then close code 1013 "try again later" with the same reason), any
other upgrade is spliced byte for byte to the SDK server over its own loopback connection.

Isolation: each client has its own upstream connection and the front only reads from upstream
while the client's write buffer is below ``HIGH_WATER``. A stalled client therefore fills its own
socket buffers, then the SDK's per-client backlog, where the SDK drops that client's oldest data;
the others are untouched.

Figures: the front scans frame headers (both directions, without copying payloads) to learn each
client's subscriptions (client ``subscribe``/``unsubscribe`` text frames) and count the message
data frames delivered per subscription, against what the gateway offered on those channels.
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
SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")
CLOSE_TRY_AGAIN_LATER = 1013
HIGH_WATER = 64 * 1024
# Socket buffers between the SDK and a client are kept small, so a slow client's data waits in
# the SDK's per-client backlog (which drops the oldest) instead of going stale in the kernel.
UPSTREAM_RCVBUF = 128 * 1024
DOWNSTREAM_SNDBUF = 256 * 1024
MAX_HEAD = 16 * 1024
MAX_CONTROL_TEXT = 1024 * 1024
OP_MESSAGE_DATA = 0x01  # server binary opcode of a subscription message


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


def http_response(code: int, text: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


class FrameScanner:
    """Incremental frame-header scanner; calls ``on_frame(opcode, fin, prefix)`` per frame.

    ``prefix`` is the unmasked start of the payload: the whole payload for text frames up to
    ``MAX_CONTROL_TEXT`` (client JSON) and for control frames, the first ``binary_prefix`` bytes
    of binary frames, and nothing else (payloads are skipped, not copied). With
    ``skip_http_head`` the bytes up to the first blank line (the server's 101 response) are
    passed over first.
    """

    def __init__(
        self,
        on_frame: Callable[[int, bool, bytes], None],
        binary_prefix: int = 0,
        skip_http_head: bool = False,
    ):
        self._on_frame = on_frame
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
class ClientStats:
    """What one connected client asked for and got (thread-safe enough: ints under the GIL)."""

    id: int
    peer: str
    connected_at: float
    subscriptions: dict[int, int] = field(default_factory=dict)  # subscription id -> channel id
    offered_base: dict[int, int] = field(default_factory=dict)  # subscription id -> offered then
    delivered_by_sub: dict[int, int] = field(default_factory=dict)
    offered_closed: int = 0  # offered on subscriptions since removed
    delivered_closed: int = 0
    frames_down: int = 0
    bytes_down: int = 0
    pending_bytes: int = 0  # in the front's write buffer towards this client
    resubscribed: int = 0  # subscribes repeated after the SDK's "Unknown channel ID"

    def delivered(self) -> int:
        return self.delivered_closed + sum(self.delivered_by_sub.values())

    def offered(self, offered_of: Callable[[int], int]) -> int:
        now = sum(
            max(0, offered_of(ch) - self.offered_base.get(sub, 0))
            for sub, ch in list(self.subscriptions.items())
        )
        return self.offered_closed + now


class _ClientTracker:
    """Feeds a ClientStats from the two frame scanners of one proxied connection, and repairs
    subscriptions the SDK refused as "Unknown channel ID".

    foxglove-sdk 0.30 can send a new channel's advertisement before the server can resolve the
    channel, so a client that subscribes at once (Foxglove does) sometimes gets "Unknown channel
    ID" and never any data on that topic. The tracker then sends the same subscribe again on the
    client's behalf (masked, between client frames), at most ``MAX_RESUBSCRIBE`` times.
    """

    MAX_RESUBSCRIBE = 5
    RESUBSCRIBE_DELAY_S = 0.05

    def __init__(self, stats: ClientStats, offered_of: Callable[[int], int]):
        self.stats = stats
        self._offered_of = offered_of
        self.up = FrameScanner(self._client_frame)
        self.down = FrameScanner(self._server_frame, binary_prefix=5, skip_http_head=True)
        self.up_writer: asyncio.StreamWriter | None = None
        self.up_at_boundary = True  # no partial client frame held back
        self.pending_inject: list[bytes] = []
        self._retries: dict[int, int] = {}

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
                s.delivered_by_sub.setdefault(sid, 0)
        elif msg.get("op") == "unsubscribe":
            for sid in msg.get("subscriptionIds", []):
                self._drop(int(sid))

    def _drop(self, sid: int) -> None:
        s = self.stats
        ch = s.subscriptions.pop(sid, None)
        if ch is not None:
            s.offered_closed += max(0, self._offered_of(ch) - s.offered_base.pop(sid, 0))
        s.delivered_closed += s.delivered_by_sub.pop(sid, 0)

    def _server_frame(self, opcode: int, fin: bool, prefix: bytes) -> None:
        s = self.stats
        s.frames_down += 1
        if opcode == 0x2 and len(prefix) == 5 and prefix[0] == OP_MESSAGE_DATA:
            sid = int.from_bytes(prefix[1:5], "little")
            if sid in s.delivered_by_sub:
                s.delivered_by_sub[sid] += 1
        elif opcode == 0x1 and fin and b"Unknown channel ID" in prefix:
            msg = json.loads(prefix)
            if msg.get("op") != "status":
                return
            text = str(msg.get("message", ""))
            if text.startswith("Unknown channel ID: "):
                self._resubscribe(int(text.rsplit(" ", 1)[1]))

    def _resubscribe(self, channel_id: int) -> None:
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
        """Write a client frame upstream now if no client frame is half sent, else queue it."""
        w = self.up_writer
        if w is None or w.is_closing():
            return
        self.stats.resubscribed += 1
        if self.up_at_boundary:
            w.write(frame)
        else:
            self.pending_inject.append(frame)


@dataclass
class FrontSnapshot:
    active: int
    max_clients: int
    accepted_total: int
    refused_total: int
    clients: list[dict]


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
    ):
        self.host = host
        self.port = port
        self.upstream_port = upstream_port
        self.max_clients = int(max_clients)
        self.ssl_context = ssl_context
        self.offered_of = offered_of or (lambda _ch: 0)
        self.log = log
        self.name = name
        self._clients: dict[int, ClientStats] = {}
        self._next_id = 1
        self.accepted_total = 0
        self.refused_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

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
            delivered = c.delivered()
            clients.append(
                {
                    "id": c.id,
                    "peer": c.peer,
                    "connected_s": round(now - c.connected_at, 1),
                    "subscriptions": len(c.subscriptions),
                    "offered": offered,
                    "delivered": delivered,
                    "delivered_pct": 100.0 * delivered / offered if offered else 100.0,
                    "bytes": c.bytes_down,
                    "pending_bytes": c.pending_bytes,
                    "resubscribed": c.resubscribed,
                }
            )
        return FrontSnapshot(
            len(clients), self.max_clients, self.accepted_total, self.refused_total, clients
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

    async def _serve(self, reader, writer, peer: str) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10.0)
            _method, _target, headers = parse_request_head(head)
        except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            writer.write(http_response(400, "Bad Request", "bad or slow HTTP request\n"))
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
            up_r, up_w = await asyncio.open_connection(sock=up_sock, limit=MAX_HEAD * 2)
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
        writer.transport.set_write_buffer_limits(high=HIGH_WATER)
        tracker = _ClientTracker(stats, self.offered_of)
        self.log(f"client {cid} connected from {peer} ({len(self._clients)}/{self.max_clients})")
        try:
            up_w.write(head)  # the request head as received; frames follow it
            await self._splice(reader, writer, up_r, up_w, tracker)
        finally:
            self._clients.pop(cid, None)
            with contextlib.suppress(Exception):
                up_w.close()
            self.log(f"client {cid} ({peer}) disconnected")

    async def _splice(self, reader, writer, up_r, up_w, tracker: _ClientTracker) -> None:
        stats = tracker.stats

        tracker.up_writer = up_w
        held = bytearray()  # bytes of a client frame not yet complete
        sent = 0

        async def client_to_server():
            # Forwarded frame by frame, so the tracker can slip a frame in between.
            nonlocal sent
            while data := await reader.read(65536):
                tracker.up.feed(data)
                held.extend(data)
                cut = tracker.up.boundary - sent
                if cut > 0:
                    up_w.write(bytes(held[:cut]))
                    del held[:cut]
                    sent += cut
                tracker.up_at_boundary = not held
                if not held and tracker.pending_inject:
                    for frame in tracker.pending_inject:
                        up_w.write(frame)
                    tracker.pending_inject.clear()
                await up_w.drain()

        async def server_to_client():
            while data := await up_r.read(65536):
                tracker.down.feed(data)
                stats.bytes_down += len(data)
                writer.write(data)
                stats.pending_bytes = writer.transport.get_write_buffer_size()
                # Back-pressure: stop reading upstream while this client is behind.
                await writer.drain()
                stats.pending_bytes = writer.transport.get_write_buffer_size()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
