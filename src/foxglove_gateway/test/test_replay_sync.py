"""What the replay of retained messages relies on in foxglove-sdk (fails when the SDK changes)."""

from __future__ import annotations

import base64
import json
import os
import socket

import foxglove
import pytest

from foxglove_gateway.wsframes import FrameScanner, encode_frame


@pytest.fixture
def sdk():
    ctx = foxglove.Context()
    server = foxglove.start_server(host="127.0.0.1", port=0, context=ctx)
    channel = foxglove.Channel(
        "/probe",
        message_encoding="cdr",
        schema=foxglove.Schema(name="std_msgs/msg/Empty", encoding="ros2msg", data=b""),
        context=ctx,
    )
    yield server, channel
    server.stop()


class _Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n\r\n".encode()
        )
        self.frames: list = []
        self.scanner = FrameScanner(
            lambda o, _f, p: self.frames.append((o, p)), binary_prefix=13, skip_http_head=True
        )

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=os.urandom(4)))

    def until(self, pred):
        while True:
            for i, f in enumerate(self.frames):
                if pred(f):
                    del self.frames[: i + 1]
                    return f
            data = self.sock.recv(65536)
            assert data, "the SDK closed the connection"
            self.scanner.feed(data)


def test_replay_sync_the_sdk_pongs_only_after_registering_the_subscribe(sdk):
    """The front pings the SDK right after a client's subscribe and takes the pong as 'the
    subscription is registered': a message logged at the pong must reach the subscriber."""
    server, channel = sdk
    c = _Conn(server.port)
    _, adv = c.until(lambda f: f[0] == 0x1 and b'"advertise"' in f[1])
    cid = json.loads(adv)["channels"][0]["id"]
    for sid in range(1, 31):
        sub = {"op": "subscribe", "subscriptions": [{"id": sid, "channelId": cid}]}
        c.send(0x1, json.dumps(sub).encode())
        c.send(0x9, b"sync-%d" % sid)
        c.until(lambda f, sid=sid: f == (0xA, b"sync-%d" % sid))
        channel.log(b"\x00\x01\x00\x00", log_time=sid)
        _, data = c.until(lambda f: f[0] == 0x2)
        assert int.from_bytes(data[1:5], "little") == sid
        assert int.from_bytes(data[5:13], "little") == sid
        c.send(0x1, json.dumps({"op": "unsubscribe", "subscriptionIds": [sid]}).encode())
    c.sock.close()
