"""The WebSocket front without ROS: framing, frame scanning, the client limit and splicing."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import pytest

from foxglove_gateway.wsfront import (
    CLOSE_TRY_AGAIN_LATER,
    ClientLimitFront,
    FrameScanner,
    accept_key,
    encode_frame,
    parse_request_head,
    refusal,
)

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


def test_refusal_is_a_handshake_status_and_close():
    _, _, headers = parse_request_head(_upgrade())
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
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + self.frames)
        try:
            while conn.recv(4096):
                pass
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


@pytest.fixture
def front():
    made = []

    def make(frames: bytes, max_clients: int, offered=None):
        up = _FakeUpstream(frames)
        f = ClientLimitFront(
            "127.0.0.1", 0, up.port, max_clients, offered_of=offered, log=lambda s: None
        )
        f.start()
        made.append((f, up))
        return f, up

    yield make
    for f, up in made:
        f.stop()
        up.sock.close()


def test_front_splices_counts_and_refuses_beyond_the_limit(front, wait):
    frames = b"".join(_data_frame(1, os.urandom(100)) for _ in range(5))
    offered = {42: 10}
    f, up = front(frames, 1, offered=lambda ch: offered.get(ch, 0))
    a = socket.create_connection(("127.0.0.1", f.port))
    a.sendall(_upgrade())
    sub = json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": 42}]})
    a.sendall(encode_frame(0x1, sub.encode(), mask=b"abcd"))
    got = _recv_until(a, len(b"HTTP/1.1 101 Switching Protocols\r\n\r\n") + len(frames))
    assert got.endswith(frames)  # byte for byte
    wait(lambda: f.active == 1, 5, what="one active client")
    offered[42] = 15  # the gateway logged 5 more on channel 42 since the subscription
    wait(lambda: f.snapshot().clients[0]["delivered"] == 5, 5, what="5 deliveries counted")
    c = f.snapshot().clients[0]
    assert c["subscriptions"] == 1
    assert c["offered"] == 5
    assert c["delivered_pct"] == 100.0

    b = socket.create_connection(("127.0.0.1", f.port))
    b.sendall(_upgrade())
    reply = _recv_until(b, 10_000, timeout=3.0)
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    got = []
    FrameScanner(lambda o, fin, p: got.append((o, p)), 200).feed(rest)
    assert b"client limit reached (1 connected)" in got[0][1]
    assert got[1][0] == 0x8
    assert struct.unpack(">H", got[1][1][:2])[0] == CLOSE_TRY_AGAIN_LATER
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


def test_front_answers_plain_http_with_a_hint(front):
    f, _ = front(b"", 1)
    s = socket.create_connection(("127.0.0.1", f.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = _recv_until(s, 100_000, timeout=3.0)
    assert reply.startswith(b"HTTP/1.1 426")
    assert b"Foxglove" in reply
    s.close()


class _RacyUpstream(_FakeUpstream):
    """Answers the first subscribe with the SDK's "Unknown channel ID" status."""

    def _serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
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
    f = ClientLimitFront("127.0.0.1", 0, up.port, 2, log=lambda s: None)
    f.start()
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
        wait(lambda: f.snapshot().clients[0]["resubscribed"] == 1, 5, what="figure")
        a.close()
    finally:
        f.stop()
        up.sock.close()
