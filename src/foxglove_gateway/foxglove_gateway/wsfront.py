"""The public WebSocket front: client limit, TLS, hardening, the layout and the lab page.

The foxglove SDK server has no connect callback and no client limit, so it listens on a loopback
port and this asyncio front owns the public one. Per connection the front reads the HTTP request
and decides there: connections still in the request are capped (a burst waits for a slot, a
pile-up beyond that gets 503, and a page request holds its slot until its answer is written).
Plain HTTP gets the lab page's files and ``/config.json`` (:mod:`foxglove_gateway.page`), the
layout at ``GET /layout.json``, or a hint (426) when it looks like a broken upgrade; an upgrade
(on any path) with no supported subprotocol gets 400 naming it; one beyond ``max_clients`` is
answered by the front itself (handshake, a Foxglove ``status`` error the app shows, then close
code 1013 "server full: N/M clients"). Any other upgrade is relayed to the SDK server over its
own loopback connection (:mod:`foxglove_gateway.relay`), with the front's pings.

Modules: :mod:`~foxglove_gateway.wsframes` (frame codec and scanners),
:mod:`~foxglove_gateway.handshake` (HTTP answers), :mod:`~foxglove_gateway.clients` (per-client
figures and frame verdicts), :mod:`~foxglove_gateway.replay` (retained messages for late
subscribers), :mod:`~foxglove_gateway.relay` (the splice).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foxglove_gateway.clients import ClientFigures, ClientStats, ClientTracker
from foxglove_gateway.handshake import (
    LAYOUT_PATH,
    Request,
    bad_gateway,
    bad_request,
    choose_subprotocol,
    layout_response,
    parse_request_head,
    refusal,
    too_many_handshakes,
    unsupported_subprotocol,
    upgrade_required,
    websocket_ish,
)
from foxglove_gateway.page import PageServer
from foxglove_gateway.relay import (
    CLIENT_HIGH_WATER,
    CLOSE_LINGER_S,
    HIGH_WATER,
    Side,
    Splice,
    connect_upstream,
    tune_downstream,
)
from foxglove_gateway.replay import RetainedOf
from foxglove_gateway.wsframes import (
    CLOSE_GOING_AWAY,
    MAX_HEAD,
    OP_PING,
    close_frame,
    encode_frame,
)

REFUSED_READ_S = 2.0  # a refused client gets this long to read the close frame
PING_PAYLOAD = b"sensorhub"


@dataclass
class FrontLimits:
    """What the node may change at run time: the loop thread reads it per connection and tick,
    so the node replaces it whole (one attribute store)."""

    max_clients: int = 60
    max_message_bytes: int = 1024 * 1024  # client -> server, 0 = unlimited
    ping_interval: float = 5.0  # 0 = no pings, no timeout
    ping_timeout: float = 10.0
    max_handshakes: int = 64  # connections in the HTTP request at once
    handshake_timeout: float = 10.0
    # topics whose message data a backed-up client loses first (read per subscription)
    drop_first: Callable[[str], bool] = field(default=lambda _topic: False)


@dataclass
class FrontConfig:
    host: str
    port: int  # 0 = any; the bound port is ClientLimitFront.port after start()
    upstream_port: int  # the SDK server's loopback port
    limits: FrontLimits = field(default_factory=FrontLimits)
    ssl_context: ssl.SSLContext | None = None
    name: str = "foxglove_gateway"  # in the front's own answers
    layout_file: str = ""  # served at GET /layout.json ('' = 404)
    page: PageServer | None = None  # the lab page (None: lab_page's installed files)


@dataclass
class FrontTotals:
    """Counts since start (ints under the GIL: written in the loop thread, read by any)."""

    accepted_total: int = 0
    refused_total: int = 0  # beyond max_clients
    too_big_total: int = 0  # clients closed with 1009
    ping_timeout_total: int = 0  # clients closed for not answering pings
    handshake_refused_total: int = 0  # connections beyond max_handshakes (503)
    bad_subprotocol_total: int = 0  # upgrades without foxglove.sdk.v1 (400)
    layout_served_total: int = 0
    page_served_total: int = 0  # lab page files and /config.json (200 and 304)


@dataclass(kw_only=True)
class FrontSnapshot(FrontTotals):
    active: int
    max_clients: int
    clients: list[ClientFigures]
    handshaking: int = 0
    handshake_waiting: int = 0


class HandshakeGate:
    """Caps the connections still in the HTTP request, so idle sockets cannot pile up. A burst
    beyond the cap (a class opening its tabs at once on a busy Pi) waits for a slot, up to the
    timeout; only a pile-up of as many again is refused at once. Loop thread only."""

    def __init__(self):
        self.inside = 0
        self.waiting = 0
        self._freed: asyncio.Event | None = None  # made in the loop thread

    async def enter(self, cap: int, timeout: float) -> bool:
        if self.inside >= cap and not await self._wait(cap, timeout):
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1
        if self._freed is not None:
            self._freed.set()

    async def _wait(self, cap: int, timeout: float) -> bool:
        """Wait (at most ``timeout``) until fewer than ``cap`` are inside; False at once when
        ``cap`` others are already waiting."""
        if self.waiting >= cap:
            return False
        if self._freed is None:
            self._freed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting += 1
        try:
            while self.inside >= cap:
                left = deadline - loop.time()
                if left <= 0:
                    return False
                self._freed.clear()
                try:
                    await asyncio.wait_for(self._freed.wait(), left)
                except asyncio.TimeoutError:
                    return False
            return True
        finally:
            self.waiting -= 1


async def _reply(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _buffered(reader: asyncio.StreamReader) -> bytes:
    """What the stream read past the request head. Its transport feeds another protocol now, so
    the stream has ended for good: saying so lets ``read()`` hand over the buffer at once."""
    reader.feed_eof()
    return await reader.read()


class ClientLimitFront:
    """Public listener in its own thread and asyncio loop; see the module docstring."""

    def __init__(
        self,
        config: FrontConfig,
        offered_of: Callable[[int], int] | None = None,
        log: Callable[[str], None] = print,
        retained_of: RetainedOf | None = None,
    ):
        self.config = config
        self.port = config.port
        self.limits = config.limits
        self.offered_of = offered_of or (lambda _ch: 0)
        self.retained_of = retained_of
        self.log = log
        self.totals = FrontTotals()
        self._clients: dict[int, ClientStats] = {}
        self._next_id = 1
        self._gate = HandshakeGate()
        self.page = config.page or PageServer(config.name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def name(self) -> str:
        return self.config.name

    # -- lifecycle (called from the node's thread)

    def start(self, timeout: float = 10.0) -> int:
        """Bind and serve; returns the bound port (useful with port 0). Raises on bind errors."""
        ready: dict = {}
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready, started), name="ws-front", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("WebSocket front did not start")
        if "error" in ready:
            raise ready["error"]
        self.port = ready["port"]
        return self.port

    def _run(self, ready: dict, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(self._listen())
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

    async def _listen(self) -> asyncio.Server:
        c = self.config
        return await asyncio.start_server(
            self._handle,
            c.host,
            c.port,
            ssl=c.ssl_context,
            reuse_address=True,
            limit=MAX_HEAD * 2,
        )

    def stop(self, timeout: float = 3.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        with contextlib.suppress(Exception):
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0)

    # -- figures (any thread)

    @property
    def active(self) -> int:
        return len(self._clients)

    def snapshot(self) -> FrontSnapshot:
        now = time.monotonic()
        clients = [c.figures(now, self.offered_of) for c in list(self._clients.values())]
        return FrontSnapshot(
            active=len(clients),
            max_clients=self.limits.max_clients,
            clients=clients,
            handshaking=self._gate.inside,
            handshake_waiting=self._gate.waiting,
            **dataclasses.asdict(self.totals),
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
        """Read the request within the handshake cap, then answer it or admit the client."""
        limits = self.limits
        if not await self._gate.enter(limits.max_handshakes, limits.handshake_timeout):
            self.totals.handshake_refused_total += 1
            await _reply(writer, too_many_handshakes(self.name, limits.max_handshakes))
            return
        try:
            request = await self._read_request(reader, limits.handshake_timeout)
            port = (writer.get_extra_info("sockname") or ("", self.port))[1]
            answer = bad_request() if request is None else self._answer_plain(request, port)
            if answer is not None:  # written within the slot: a slow reader holds only its own
                await self._send_answer(writer, answer, limits.handshake_timeout)
                return
        finally:
            self._gate.leave()
        if len(self._clients) >= self.limits.max_clients:
            await self._refuse(reader, writer, request, peer)
        else:
            await self._admit(reader, writer, request, peer)

    @staticmethod
    async def _read_request(reader, timeout: float) -> Request | None:
        """The request head, or None when it is malformed, too long or too slow."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=timeout)
            return parse_request_head(head)
        except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            return None

    @staticmethod
    async def _send_answer(writer: asyncio.StreamWriter, answer: bytes, timeout: float) -> None:
        """Write a complete answer; a client that does not read it in time is cut off."""
        try:
            await asyncio.wait_for(_reply(writer, answer), timeout)
        except asyncio.TimeoutError:
            writer.transport.abort()

    def _answer_plain(self, request: Request, port: int) -> bytes | None:
        """The front's own answer to anything but a supported upgrade (None: an upgrade)."""
        if request.is_upgrade:
            if choose_subprotocol(request.headers) is None:
                self.totals.bad_subprotocol_total += 1
                return unsupported_subprotocol(self.name, request.headers)
            return None
        if request.path == LAYOUT_PATH:
            response, served = layout_response(request.method, self.config.layout_file, self.name)
            self.totals.layout_served_total += served
            return response
        if websocket_ish(request.headers):
            return upgrade_required(self.name)
        served = self.page.served_total
        response = self.page.answer(request, port)
        self.totals.page_served_total += self.page.served_total - served
        return response

    async def _refuse(self, reader, writer, request: Request, peer: str) -> None:
        """An upgrade beyond max_clients: handshake, status error and close by the front."""
        self.totals.refused_total += 1
        reason = f"server full: {len(self._clients)}/{self.limits.max_clients} clients"
        status = f"{self.name}: {reason}; close another viewer's tab or try again later"
        self.log(f"refused {peer}: {reason}")
        await _reply(writer, refusal(request.headers, status, reason))
        # give the client a moment to read the close frame before the TCP close
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1024), timeout=REFUSED_READ_S)

    async def _admit(self, reader, writer, request: Request, peer: str) -> None:
        cid = self._next_id
        self._next_id += 1
        stats = ClientStats(cid, peer, time.monotonic())
        stats.last_rx = stats.connected_at
        self._clients[cid] = stats
        self.totals.accepted_total += 1
        try:
            up_sock = await connect_upstream(self.config.upstream_port)
        except OSError as e:
            del self._clients[cid]
            await _reply(writer, bad_gateway(e))
            return
        tune_downstream(writer.get_extra_info("socket"))
        limits = self.limits
        tracker = ClientTracker(
            stats,
            self.offered_of,
            max_message=limits.max_message_bytes,
            retained_of=self.retained_of,
            droppable=self._drop_first,
        )
        self.log(
            f"client {cid} connected from {peer} ({len(self._clients)}/{self.limits.max_clients})"
        )
        try:
            await self._relay(reader, writer, up_sock, request.head, tracker)
        finally:
            self._clients.pop(cid, None)
            self.log(f"client {cid} ({peer}) disconnected")

    async def _relay(self, reader, writer, up_sock, head: bytes, tracker: ClientTracker) -> None:
        """Hand both sockets to protocol callbacks (:class:`Splice`) until either side ends."""
        stats = tracker.stats
        client_t = writer.transport
        splice = Splice(stats, client_t, tracker, lambda r: self._closed_too_big(stats, r))
        client_t.set_write_buffer_limits(high=CLIENT_HIGH_WATER)
        client_t.set_protocol(Side(splice, upstream=False))
        leftover = await _buffered(reader)
        if leftover:
            splice.from_client(leftover)
        up_t, _ = await asyncio.get_running_loop().create_connection(
            lambda: Side(splice, upstream=True), sock=up_sock
        )
        up_t.set_write_buffer_limits(high=HIGH_WATER)
        splice.attach_upstream(up_t, head)
        keepalive = None
        if self.limits.ping_interval > 0:
            keepalive = asyncio.create_task(self._keepalive(splice))
        try:
            await splice.done
        except asyncio.CancelledError:
            splice.abort()
            raise
        finally:
            if keepalive is not None:
                keepalive.cancel()
            splice.close_transports()

    def _drop_first(self, topic: str) -> bool:
        return self.limits.drop_first(topic)  # the limits of the moment, not of the connect

    def _closed_too_big(self, stats: ClientStats, reason: str) -> None:
        self.totals.too_big_total += 1
        self.log(f"client {stats.id} ({stats.peer}): {reason}; closing (1009)")

    async def _keepalive(self, splice: Splice) -> None:
        """Ping a quiet client; close one that sent nothing for interval + timeout (a silent or
        stalled client must not hold a slot forever)."""
        pinged = False
        while not splice.closing:
            interval, timeout = self.limits.ping_interval, self.limits.ping_timeout
            await asyncio.sleep(min(interval, timeout) / 4)
            idle = time.monotonic() - splice.stats.last_rx
            if idle < interval:
                pinged = False
            elif idle >= interval + timeout:
                await self._drop_silent(splice, timeout)
                return
            elif not pinged:
                splice.send_down(encode_frame(OP_PING, PING_PAYLOAD))
                pinged = True

    async def _drop_silent(self, splice: Splice, timeout: float) -> None:
        stats = splice.stats
        self.totals.ping_timeout_total += 1
        reason = f"no pong within {timeout:g} s"
        self.log(f"client {stats.id} ({stats.peer}): {reason}; closing")
        splice.send_down(close_frame(CLOSE_GOING_AWAY, reason), close=True)
        # a client that does not read at all never lets the close frame out
        await asyncio.sleep(CLOSE_LINGER_S)
        if not splice.close_sent:
            splice.abort()
