"""One admitted client's relay to the SDK server, in protocol callbacks.

A stream/coroutine proxy costs as much CPU as the SDK itself, so a chunk is handled here in a
callback, with no copy and no coroutine. Client -> SDK bytes are parsed frame by frame
and forwarded at frame boundaries only, so the front can add a frame of its own (a repeated
subscribe). SDK -> client bytes are written through as they come; only the frame lengths are
followed, so a ping or close frame of the front goes in between two server frames.

Priorities: while the client's write buffer is above ``DROP_WATER`` (a slow client), message
data of its droppable (high-rate) channels is dropped here and everything else goes on, so a
phone on weak Wi-Fi loses scope and scan frames, not events or files. Only above
``CLIENT_HIGH_WATER``
(a client that barely reads) the front stops reading upstream: that client then fills its own
SDK backlog, where the SDK drops its oldest data; the others are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from foxglove_gateway.clients import ClientStats, ClientTracker
from foxglove_gateway.wsframes import CLOSE_TOO_BIG, close_frame

HIGH_WATER = 64 * 1024  # client -> SDK
DROP_WATER = 64 * 1024  # SDK -> client: droppable frames are dropped above this
CLIENT_HIGH_WATER = 1024 * 1024  # SDK -> client: the front stops reading upstream above this
# Socket buffers between the SDK and a client are kept small, so a slow client's data waits in
# the SDK's per-client backlog (which drops the oldest) instead of going stale in the kernel.
UPSTREAM_RCVBUF = 128 * 1024
DOWNSTREAM_SNDBUF = 256 * 1024
CLOSE_LINGER_S = 2.0  # after our close frame, time for the client to read it


async def connect_upstream(port: int) -> socket.socket:
    """A small-buffered loopback connection to the SDK server (raises OSError)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RCVBUF)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def tune_downstream(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, DOWNSTREAM_SNDBUF)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Side(asyncio.Protocol):
    """One socket of a spliced connection; hands everything to the :class:`Splice`."""

    def __init__(self, splice: Splice, upstream: bool):
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


class Splice:
    """Client <-> SDK bytes of one connection (see the module docstring).

    ``on_too_big(reason)`` is told when a client message over the limit closes the connection.
    """

    def __init__(
        self,
        stats: ClientStats,
        client_t,
        tracker: ClientTracker,
        on_too_big: Callable[[str], None],
    ):
        self.stats = stats
        self.client_t = client_t
        self.up_t: asyncio.Transport | None = None
        self.tracker = tracker
        tracker.inject_up = self.inject_up
        self._on_too_big = on_too_big
        self.held = bytearray()  # bytes of a client frame not yet complete
        self.sent_up = 0
        self.pending_up: list[bytes] = []
        self.down_inject: list[bytes] = []
        self.closing = False  # a close frame of ours is queued: nothing after it
        self.close_sent = False
        self.done = asyncio.get_running_loop().create_future()

    def attach_upstream(self, up_t: asyncio.Transport, head: bytes) -> None:
        """The SDK connection is up: the request head as received, then what the client sent
        meanwhile."""
        self.up_t = up_t
        up_t.write(head)
        self._forward_up()

    # -- client -> SDK
    def from_client(self, data: bytes) -> None:
        if self.close_sent or self.closing:
            return  # read and dropped while the close is under way
        self.stats.last_rx = time.monotonic()
        up = self.tracker.up
        up.feed(data)
        if up.oversize:
            self._close_too_big(up.oversize, up.max_message)
            return
        self.held += data
        self._forward_up()

    def _forward_up(self) -> None:
        """Complete client frames to the SDK, then frames of our own waiting for a boundary."""
        if self.up_t is None:
            return
        held = self.held
        cut = self.tracker.up.boundary - self.sent_up
        if cut > 0:
            self.up_t.write(bytes(held[:cut]))
            del held[:cut]
            self.sent_up += cut
        if not held and self.pending_up:
            for frame in self.pending_up:
                self.up_t.write(frame)
            self.pending_up.clear()

    def _close_too_big(self, size: int, limit: int) -> None:
        reason = f"message too big: {size} bytes (limit {limit})"
        self._on_too_big(reason)
        self.held.clear()
        self.send_down(close_frame(CLOSE_TOO_BIG, reason), close=True)

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
        tracker = self.tracker
        down = tracker.down
        tracker.backed_up = self.client_t.get_write_buffer_size() >= DROP_WATER
        mv = memoryview(data)
        pieces = down.forward(mv, self._boundary if self.down_inject else None)
        if len(pieces) == 1 and isinstance(pieces[0], memoryview) and len(pieces[0]) == len(mv):
            self.client_t.write(data)  # the common case: the read goes on whole
        elif pieces:
            self.client_t.write(b"".join(pieces))
        if self.close_sent:
            self._after_close()
        st.frames_down = down.frames
        st.messages_down = down.binary
        st.pending_bytes = self.client_t.get_write_buffer_size()

    def _boundary(self, _pos: int) -> bytes | None:
        """Our waiting frames, at the first server frame end (nothing after a close of ours)."""
        if not self.down_inject or self.close_sent:
            return None
        frames = self._take_injected()
        if self.close_sent:
            self.tracker.down.cut = True
        return frames

    def send_down(self, frame: bytes, close: bool = False) -> None:
        """Ping or close for the client: at once between server frames, else at the next end
        of a server frame."""
        if self.closing:
            return
        self.closing = close
        self.down_inject.append(frame)
        if self.tracker.down.at_boundary:
            self.client_t.write(self._take_injected())
            if self.close_sent:
                self._after_close()

    def _take_injected(self) -> bytes:
        frames = b"".join(self.down_inject)
        self.down_inject.clear()
        if self.closing:
            self.close_sent = True
        return frames

    def _after_close(self) -> None:
        """Our close frame is out: stop the SDK side, then give the client a moment to read it
        (closing with unread input would reset the connection and could lose the frame)."""
        if self.up_t is not None:
            self.up_t.close()
        asyncio.get_running_loop().call_later(CLOSE_LINGER_S, self.finish)

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
        self.close_transports()
        if not self.done.done():
            self.done.set_result(None)

    def abort(self) -> None:
        for t in (self.up_t, self.client_t):
            if t is not None:
                t.abort()
        if not self.done.done():
            self.done.set_result(None)

    def close_transports(self) -> None:
        for t in (self.up_t, self.client_t):
            if t is not None and not t.is_closing():
                t.close()
