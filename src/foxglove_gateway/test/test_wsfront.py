"""The WebSocket front without ROS: framing, frame scanning, the client limit and splicing.

(Over 500 lines: every test here runs the front against the same fake SDK upstream.)"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time

import pytest

from foxglove_gateway.handshake import parse_request_head, refusal
from foxglove_gateway.page import PageServer
from foxglove_gateway.wsframes import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    FrameScanner,
    ServerStream,
    accept_key,
    encode_frame,
)
from foxglove_gateway.wsfront import ClientLimitFront, FrontConfig, FrontLimits

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _upgrade(key: str = KEY, proto: str = "foxglove.sdk.v1") -> bytes:
    return (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {proto}\r\n\r\n"
    ).encode()


def _data_frame(sub: int, payload: bytes) -> bytes:
    return encode_frame(0x2, bytes([1]) + struct.pack("<IQ", sub, 0) + payload)


def test_accept_key_rfc6455_example():
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_scanner_handles_any_chunking_and_masks():
    frames = [
        encode_frame(0x1, json.dumps({"op": "subscribe"}).encode(), mask=b"\x01\x02\x03\x04"),
        _data_frame(7, b"x" * 300),  # 16-bit length
        _data_frame(8, b"y" * 70000),  # 64-bit length
        encode_frame(0x2, b"\x02" + b"t" * 8),  # a time message, not message data
        encode_frame(0x9, b""),
    ]
    stream = b"HTTP/1.1 101 Switching Protocols\r\nX: y\r\n\r\n" + b"".join(frames)
    expected = [
        (0x1, True, json.dumps({"op": "subscribe"}).encode()),
        (0x2, True, bytes([1]) + struct.pack("<I", 7)),
        (0x2, True, bytes([1]) + struct.pack("<I", 8)),
        (0x2, True, b"\x02tttt"),
        (0x9, True, b""),
    ]
    for step in (1, 2, 3, 7, 64, 1000, len(stream)):
        got: list = []
        sc = FrameScanner(lambda o, f, p, got=got: got.append((o, f, p)), 5, skip_http_head=True)
        for i in range(0, len(stream), step):
            sc.feed(stream[i : i + step])
        assert got == expected, step


def test_server_stream_finds_every_frame_end_in_any_chunking():
    """The SDK->client side follows frame lengths only: every boundary found, text frames
    whole, whatever the read sizes (no per-message parsing, yet a safe place for the front's
    own ping/close frames)."""
    frames = [
        encode_frame(0x1, json.dumps({"op": "advertise", "channels": []}).encode()),
        _data_frame(7, b"x" * 300),  # 16-bit length
        _data_frame(8, b"y" * 70000),  # 64-bit length
        encode_frame(0x2, b""),  # empty payload
        encode_frame(0x1, b'{"op":"status"}'),
    ]
    head = b"HTTP/1.1 101 Switching Protocols\r\nX: y\r\n\r\n"
    stream = head + b"".join(frames)
    ends, pos = [len(head)], len(head)
    for fr in frames:
        pos += len(fr)
        ends.append(pos)
    for step in (1, 2, 3, 7, 64, 1000, len(stream)):
        texts: list = []
        found: list = []
        ss = ServerStream(texts.append)
        for i in range(0, len(stream), step):
            chunk = stream[i : i + step]
            ss.walk(memoryview(chunk), lambda p, i=i, found=found: found.append(i + p))
            assert ss.at_boundary == (i + len(chunk) in ends), (step, i)
        assert found == ends, step
        assert ss.frames == len(frames)
        assert texts == [json.dumps({"op": "advertise", "channels": []}).encode(),
                         b'{"op":"status"}'], step  # fmt: skip


def test_refusal_is_a_handshake_status_and_close():
    headers = parse_request_head(_upgrade()).headers
    data = refusal(headers, "too many")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Protocol: foxglove.sdk.v1" in head
    got = []
    FrameScanner(lambda o, f, p: got.append((o, p)), 200).feed(rest)
    assert got[0][0] == 0x1
    assert json.loads(got[0][1]) == {
        "op": "status",
        "level": 2,
        "message": "too many",
        "id": "client-limit",
    }


class _FakeUpstream:
    """Answers the upgrade with 101, then sends `frames` and echoes nothing; records requests."""

    def __init__(self, frames: bytes):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.frames = frames
        self.received = []
        self.bytes_after_head = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        self.received.append(buf)
        self.bytes_after_head += len(buf.split(b"\r\n\r\n", 1)[1])
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + self.frames)
        try:
            while chunk := conn.recv(65536):
                self.bytes_after_head += len(chunk)
        except OSError:
            pass


def _recv_until(sock, n: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _ask(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """One request on a new connection: the whole reply (the front closes after it)."""
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(request)
        return _recv_until(s, 100_000, timeout=timeout)
    finally:
        s.close()


def _start_front(upstream_port: int, max_clients: int, offered_of=None, layout_file="", **limits):
    """A started front on a free port; ``limits`` are FrontLimits fields."""
    config = FrontConfig(
        host="127.0.0.1",
        port=0,
        upstream_port=upstream_port,
        limits=FrontLimits(max_clients=max_clients, **limits),
        layout_file=layout_file,
        page=PageServer("test front", assets=None),  # as without lab_page
    )
    f = ClientLimitFront(config, offered_of=offered_of, log=lambda s: None)
    f.start()
    return f


@pytest.fixture
def front():
    made = []

    def make(frames: bytes, max_clients: int, upstream=_FakeUpstream, **kw):
        up = upstream(frames)
        f = _start_front(up.port, max_clients, **kw)
        made.append((f, up))
        return f, up

    yield make
    for f, up in made:
        f.stop()
        up.sock.close()


def test_front_splices_counts_and_refuses_beyond_the_limit(front, wait):
    frames = b"".join(_data_frame(1, os.urandom(100)) for _ in range(5))
    offered = {42: 10}
    f, up = front(frames, 1, offered_of=lambda ch: offered.get(ch, 0))
    a = socket.create_connection(("127.0.0.1", f.port))
    a.sendall(_upgrade())
    sub = json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": 42}]})
    a.sendall(encode_frame(0x1, sub.encode(), mask=b"abcd"))
    got = _recv_until(a, len(b"HTTP/1.1 101 Switching Protocols\r\n\r\n") + len(frames))
    assert got.endswith(frames)  # byte for byte
    wait(lambda: f.active == 1, 5, what="one active client")
    wait(lambda: f.snapshot().clients[0].frames == 5, 5, what="5 server frames counted")
    # the client's subscribe frame is read by the front's own loop, independently of the frames
    # coming down: its subscription (and offered baseline) must be in before `offered` changes
    wait(lambda: f.snapshot().clients[0].subscriptions == 1, 5, what="the subscription seen")
    offered[42] = 15  # the gateway logged 5 more on channel 42 since the subscription
    c = f.snapshot().clients[0]
    assert c.subscriptions == 1  # from the client's subscribe frame
    assert (c.delivered, c.offered, c.delivered_pct) == (5, 5, 100.0)
    assert c.bytes == len(b"HTTP/1.1 101 Switching Protocols\r\n\r\n") + len(frames)

    b = socket.create_connection(("127.0.0.1", f.port))
    b.sendall(_upgrade())
    # read to the close: the front lingers up to 2 s after its close frame, so allow far more
    reply = _recv_until(b, 10_000, timeout=30.0)
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    got = []
    FrameScanner(lambda o, fin, p: got.append((o, p)), 200).feed(rest)
    assert b"server full: 1/1 clients" in got[0][1]
    assert got[1][0] == 0x8
    assert struct.unpack(">H", got[1][1][:2])[0] == CLOSE_TRY_AGAIN_LATER
    assert got[1][1][2:] == b"server full: 1/1 clients"
    assert f.snapshot().refused_total == 1
    assert len(up.received) == 1  # the refused client never reached the SDK server

    a.close()
    wait(lambda: f.active == 0, 5, what="client slot freed")
    c2 = socket.create_connection(("127.0.0.1", f.port))
    c2.sendall(_upgrade())
    assert _recv_until(c2, 12).startswith(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[:12])
    wait(lambda: len(up.received) == 2, 5, what="second client spliced")
    c2.close()
    b.close()


class _RecordingUpstream(_FakeUpstream):
    """Keeps every byte after the request head."""

    def _serve(self, conn):
        self.after_head = b""
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        self.received.append(data)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        self.after_head = data.split(b"\r\n\r\n", 1)[1]
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                self.after_head += chunk


def test_frames_sent_with_the_upgrade_reach_the_sdk_in_order(front, wait):
    """Bytes the front read past the request head (one segment with it) go upstream first."""
    f, up = front(b"", 1, upstream=_RecordingUpstream)
    subs = [
        {"op": "subscribe", "subscriptions": [{"id": i, "channelId": 40 + i}]} for i in range(3)
    ]
    frames = b"".join(encode_frame(0x1, json.dumps(m).encode(), mask=b"abcd") for m in subs)
    s = socket.create_connection(("127.0.0.1", f.port))
    s.sendall(_upgrade() + frames)
    wait(lambda: getattr(up, "after_head", b"") == frames, 5, what="the frames upstream, whole")
    wait(lambda: f.snapshot().clients[0].subscriptions == 3, 5, what="all three subscriptions")
    s.close()


def test_front_answers_a_broken_upgrade_with_a_hint(front):
    f, _ = front(b"", 1)
    broken = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    reply = _ask(f.port, broken, timeout=3.0)  # no Sec-WebSocket-Key
    assert reply.startswith(b"HTTP/1.1 426")
    assert b"Foxglove" in reply


def test_front_without_the_lab_page_says_which_package_is_missing(front):
    f, _ = front(b"", 1)
    reply = _ask(f.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3.0)
    assert reply.startswith(b"HTTP/1.1 503")
    assert b"lab_page" in reply and b"ws://" in reply
    assert _ask(f.port, b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")


class _RacyUpstream(_FakeUpstream):
    """Advertises channel 42 when ``advertise``; answers the first subscribe with the SDK's
    "Unknown channel ID" status."""

    advertise = True

    def _serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        adv = {"op": "advertise", "channels": [{"id": 42, "topic": "/t", "encoding": "cdr"}]}
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
            + (encode_frame(0x1, json.dumps(adv).encode()) if self.advertise else b"")
        )
        subs = []
        sc = FrameScanner(lambda o, f, p: subs.append(json.loads(p)) if o == 1 else None)
        sc.feed(buf.split(b"\r\n\r\n", 1)[1])
        answered = False
        conn.settimeout(5.0)
        try:
            while len(subs) < 2:
                if subs and not answered:
                    status = {"op": "status", "level": 2, "message": "Unknown channel ID: 42"}
                    conn.sendall(encode_frame(0x1, json.dumps(status).encode()))
                    answered = True
                chunk = conn.recv(4096)
                if not chunk:
                    break
                sc.feed(chunk)
        except OSError:
            pass
        self.received.append(subs)


def test_front_repeats_a_subscribe_the_sdk_could_not_resolve(wait):
    up = _RacyUpstream(b"")
    f = _start_front(up.port, 2)
    try:
        a = socket.create_connection(("127.0.0.1", f.port))
        a.sendall(_upgrade())
        sub = {"op": "subscribe", "subscriptions": [{"id": 3, "channelId": 42}]}
        frame = encode_frame(0x1, json.dumps(sub).encode(), mask=b"wxyz")
        a.sendall(frame[:5])  # a client frame split across reads must stay whole upstream
        time.sleep(0.1)
        a.sendall(frame[5:])
        wait(lambda: up.received, 10, what="upstream saw two subscribes")
        assert up.received[0] == [sub, sub]
        wait(lambda: f.snapshot().clients[0].resubscribed == 1, 5, what="figure")
        a.close()
    finally:
        f.stop()
        up.sock.close()


class _SilentRacyUpstream(_RacyUpstream):
    advertise = False


def test_front_does_not_repeat_a_subscribe_to_a_channel_never_advertised(front, wait):
    f, up = front(b"", 2, upstream=_SilentRacyUpstream)
    a = socket.create_connection(("127.0.0.1", f.port))
    a.sendall(_upgrade())
    sub = {"op": "subscribe", "subscriptions": [{"id": 3, "channelId": 42}]}
    a.sendall(encode_frame(0x1, json.dumps(sub).encode(), mask=b"wxyz"))
    wait(
        lambda: [c.unknown_subscribes for c in f.snapshot().clients] == [1],
        10,
        what="the decision not to repeat",
    )
    assert f.snapshot().clients[0].resubscribed == 0
    a.close()
    wait(lambda: up.received, 10, what="upstream connection ended")
    assert up.received[0] == [sub]  # one subscribe, so the client got one error


def _read_frames(sock, until_close: bool = True, timeout: float = 10.0) -> list:
    """(opcode, payload) of server frames after the 101 head, until a close frame or EOF."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return []
        data += chunk
    got: list = []
    sc = FrameScanner(lambda o, fin, p: got.append((o, p)), 200)
    sc.feed(data.split(b"\r\n\r\n", 1)[1])
    while not (until_close and any(o == 0x8 for o, _ in got)):
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        sc.feed(chunk)
    return got


def _close_code(frames) -> int | None:
    for o, p in frames:
        if o == 0x8:
            return struct.unpack(">H", p[:2])[0]
    return None


@pytest.mark.parametrize("how", ["huge header", "too long", "fragments"])
def test_front_closes_an_oversized_client_message_with_1009(front, wait, how):
    f, up = front(b"", 2, max_message_bytes=64 * 1024)
    s = socket.create_connection(("127.0.0.1", f.port))
    s.sendall(_upgrade())
    mask = b"abcd"
    if how == "huge header":  # claims 2**62 bytes, then sends some
        frame = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 2**62) + mask + b"x" * 100_000
    elif how == "too long":
        frame = encode_frame(0x2, b"y" * 70_000, mask=mask)
    else:  # three 30 KiB fragments of one message
        part = encode_frame(0x2, b"z" * 30_000, mask=mask)
        frame = bytes([part[0] & 0x7F]) + part[1:]  # not FIN
        cont = bytes([0x00]) + part[1:]  # continuation, not FIN
        frame = frame + cont + cont
    try:
        s.sendall(frame)
    except OSError:
        pass  # the front may close before everything is sent
    frames = _read_frames(s)
    assert _close_code(frames) == CLOSE_TOO_BIG
    reason = next(p for o, p in frames if o == 0x8)[2:]
    assert b"message too big" in reason and b"65536" in reason
    wait(lambda: f.snapshot().too_big_total == 1 and f.active == 0, 10, what="counted, freed")
    if how != "fragments":
        assert up.bytes_after_head == 0  # nothing of the frame reached the SDK server
    s.close()


def test_front_pings_and_drops_a_silent_client(front, wait):
    f, _up = front(b"", 1, ping_interval=0.3, ping_timeout=0.6)
    silent = socket.create_connection(("127.0.0.1", f.port))
    silent.sendall(_upgrade())
    frames = _read_frames(silent)
    assert frames[0][0] == 0x9  # a ping first
    assert _close_code(frames) == CLOSE_GOING_AWAY
    assert b"no pong" in next(p for o, p in frames if o == 0x8)
    wait(lambda: f.active == 0 and f.snapshot().ping_timeout_total == 1, 10, what="slot freed")

    # a client that answers the pings stays
    alive = socket.create_connection(("127.0.0.1", f.port))
    alive.sendall(_upgrade())
    pings = []

    def on_frame(o, fin, p):
        if o == 0x9:
            pings.append(p)
            alive.sendall(encode_frame(0xA, p, mask=b"pong"))

    alive.settimeout(10.0)
    head = b""
    while b"\r\n\r\n" not in head:
        head += alive.recv(4096)
    sc = FrameScanner(on_frame, 0)
    sc.feed(head.split(b"\r\n\r\n", 1)[1])
    while len(pings) < 6:  # 6 pings answered: well past interval + timeout
        chunk = alive.recv(4096)
        assert chunk, "the front closed a client that answers pings"
        sc.feed(chunk)
    assert f.active == 1 and f.snapshot().ping_timeout_total == 1
    silent.close()
    alive.close()


def test_front_caps_connections_still_in_the_handshake(front, wait):
    f, _up = front(b"", 5, max_handshakes=2, handshake_timeout=60.0)
    idle = [socket.create_connection(("127.0.0.1", f.port)) for _ in range(2)]
    wait(lambda: f.snapshot().handshaking == 2, 10, what="two idle handshakes")
    waiting = [socket.create_connection(("127.0.0.1", f.port)) for _ in range(2)]
    wait(lambda: f.snapshot().handshake_waiting == 2, 10, what="two waiting for a slot")
    fifth = socket.create_connection(("127.0.0.1", f.port))
    reply = _recv_until(fifth, 100_000, timeout=5.0)
    assert reply.startswith(b"HTTP/1.1 503")
    assert b"handshake" in reply
    assert f.snapshot().handshake_refused_total == 1
    for s in (*idle, *waiting, fifth):
        s.close()
    wait(lambda: f.snapshot().handshaking == 0, 10, what="every handshake slot freed")
    ok = socket.create_connection(("127.0.0.1", f.port))
    ok.sendall(_upgrade())
    assert _recv_until(ok, 12).startswith(b"HTTP/1.1 101")
    ok.close()


def test_front_lets_a_burst_wait_for_a_handshake_slot(front, wait):
    """More tabs opening at once than max_handshakes: the extra ones wait, none is refused."""
    f, _up = front(b"", 5, max_handshakes=1, handshake_timeout=60.0)
    idle = socket.create_connection(("127.0.0.1", f.port))
    wait(lambda: f.snapshot().handshaking == 1, 10, what="one idle handshake")
    late = socket.create_connection(("127.0.0.1", f.port))
    late.sendall(_upgrade())
    wait(lambda: f.snapshot().handshake_waiting == 1, 10, what="the upgrade waiting")
    idle.close()  # its slot frees: the waiting upgrade goes ahead
    assert _recv_until(late, 12).startswith(b"HTTP/1.1 101")
    assert f.snapshot().handshake_refused_total == 0
    late.close()


@pytest.mark.parametrize("proto", ["foxglove.websocket.v1", None])
def test_front_names_the_supported_subprotocol(front, proto):
    f, up = front(b"", 2)
    req = _upgrade(proto=proto or "x")
    if proto is None:
        req = req.replace(b"Sec-WebSocket-Protocol: x\r\n", b"")
    reply = _ask(f.port, req)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"foxglove.sdk.v1" in body
    assert (proto or "none").encode() in body
    assert f.snapshot().bad_subprotocol_total == 1
    assert up.received == []  # never reached the SDK server


class _TricklingUpstream(_FakeUpstream):
    """Sends big data frames in small pieces with pauses: a ping of the front must never land
    inside one of them."""

    def _serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        data = b"".join(_data_frame(1, bytes([k]) * 5000) for k in range(20))
        try:
            for i in range(0, len(data), 1500):
                conn.sendall(data[i : i + 1500])
                time.sleep(0.01)
            while conn.recv(65536):
                pass
        except OSError:
            pass


def test_pings_go_between_server_frames_never_inside(front, wait):
    f, _up = front(b"", 1, upstream=_TricklingUpstream, ping_interval=0.05, ping_timeout=30.0)
    s = socket.create_connection(("127.0.0.1", f.port))
    s.sendall(_upgrade())
    got = []
    s.settimeout(10.0)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    sc = FrameScanner(lambda o, fin, p: got.append((o, p)), 16)
    sc.feed(data.split(b"\r\n\r\n", 1)[1])
    while sum(1 for o, _ in got if o == 0x2) < 20:
        chunk = s.recv(65536)
        assert chunk
        sc.feed(chunk)
    assert not sc.broken
    data_frames = [p for o, p in got if o == 0x2]
    assert [p[13] for p in data_frames] == list(range(20))  # all there, in order, intact
    assert any(o == 0x9 for o, _ in got)  # and pings in between
    s.close()


def test_layout_json_is_served_with_cors(front, tmp_path):
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"configById": {"Plot!1": {}}}))
    f, up = front(b"", 1, layout_file=str(layout))
    reply = _ask(
        f.port,
        b"GET /layout.json HTTP/1.1\r\nHost: x\r\nOrigin: https://lichtblick.example\r\n\r\n",
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: application/json" in lines
    assert "Access-Control-Allow-Origin: *" in lines
    assert json.loads(body) == {"configById": {"Plot!1": {}}}
    assert f.snapshot().layout_served_total == 1
    assert up.received == []  # answered by the front, never the SDK
    # the WebSocket on the same port still works
    ws = socket.create_connection(("127.0.0.1", f.port))
    ws.sendall(_upgrade())
    assert _recv_until(ws, 12).startswith(b"HTTP/1.1 101")
    ws.close()


@pytest.mark.parametrize("configured", ["", "missing.json"])
def test_layout_json_without_a_layout_is_404(front, tmp_path, configured):
    f, _up = front(b"", 1, layout_file=str(tmp_path / configured) if configured else "")
    reply = _ask(f.port, b"GET /layout.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404")
    assert b"Access-Control-Allow-Origin: *" in reply
