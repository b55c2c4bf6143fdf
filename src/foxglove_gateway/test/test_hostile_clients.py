"""The gateway against hostile clients: raw sockets sending oversized frames, going silent,
subscribing to what does not exist, offering an old subprotocol; a pathological regex set."""

from __future__ import annotations

import contextlib

import pytest

from sensorhub_common import qos
from sensorhub_testing.ros import status_values

pytestmark = pytest.mark.integration

QUIET = {"topics_deny": ["/rosout", "/parameter_events"]}


class RawClient:
    """A WebSocket client on a plain socket, to send what no library would."""

    def __init__(self, url: str, proto: str | None = "foxglove.sdk.v1"):
        import socket

        host, port = url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.frames: list[tuple[int, bytes]] = []
        self.closed = False
        head = (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Protocol: {proto}\r\n" if proto else "")
            + "\r\n"
        )
        self.sock.sendall(head.encode())

    def response(self) -> bytes:
        data = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def start_reading(self) -> None:
        """Collect the server's frames in a thread (the 101 head is skipped)."""
        import threading

        from foxglove_gateway.wsframes import FrameScanner

        sc = FrameScanner(lambda o, fin, p: self.frames.append((o, p)), 5, skip_http_head=True)

        def run():
            try:
                while chunk := self.sock.recv(65536):
                    sc.feed(chunk)
            except OSError:
                pass
            self.closed = True

        threading.Thread(target=run, daemon=True).start()

    def json_ops(self, op: str) -> list[dict]:
        import json

        out = []
        for o, p in list(self.frames):
            if o == 0x1:
                msg = json.loads(p)
                if msg.get("op") == op:
                    out.append(msg)
        return out

    def close_code(self) -> int | None:
        import struct

        for o, p in list(self.frames):
            if o == 0x8 and len(p) >= 2:
                return struct.unpack(">H", p[:2])[0]
        return None

    def send_text(self, text: str) -> None:
        from foxglove_gateway.wsframes import encode_frame

        self.sock.sendall(encode_frame(0x1, text.encode(), mask=b"\x01\x02\x03\x04"))

    def close(self) -> None:
        self.sock.close()


def _diag_clients(diags):
    return status_values(diags[-3:], "foxglove_gateway: clients")


def test_oversized_client_frames_get_1009_in_bounded_memory(ros_node, gateway, js, tools, wait):
    import struct

    import psutil
    from diagnostic_msgs.msg import DiagnosticArray

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    gw, url = gateway(max_message_kib=256, **QUIET)
    tools.wait_listening(url, gw, wait)
    rss0 = psutil.Process(gw.pid).memory_info().rss
    huge = RawClient(url)  # a header claiming 2**62 bytes, then data
    huge.start_reading()
    wait(lambda: huge.json_ops("serverInfo"), 20, what="serverInfo")
    try:
        huge.sock.sendall(bytes([0x82, 0xFF]) + struct.pack(">Q", 2**62) + b"mask")
        for _ in range(64):  # 64 MiB offered; the gateway stops reading after the header
            huge.sock.sendall(b"\0" * (1 << 20))
    except OSError:
        pass
    wait(lambda: huge.closed, 30, what="connection closed by the gateway")
    assert huge.close_code() == 1009
    big = RawClient(url)  # a frame just over the limit
    big.start_reading()
    wait(lambda: big.json_ops("serverInfo"), 20, what="serverInfo")
    from foxglove_gateway.wsframes import encode_frame

    with contextlib.suppress(OSError):
        big.sock.sendall(encode_frame(0x2, b"\1" * (257 * 1024), mask=b"abcd"))
    wait(lambda: big.closed, 30, what="second connection closed")
    assert big.close_code() == 1009
    rss1 = psutil.Process(gw.pid).memory_info().rss
    assert rss1 - rss0 < 32 * 1024 * 1024, f"gateway grew by {(rss1 - rss0) / 1e6:.0f} MB"

    def counted():
        v = _diag_clients(diags)
        return v is not None and v["closed too big (1009)"] == "2" and v["clients"] == "0"

    wait(counted, 15, what="diagnostics: 2 closed with 1009, no client left")
    ok = js("js-after", url, mode="decode", duration=30)  # everyone else is fine
    wait(lambda: ok.events("serverInfo"), 20, what="a normal client still served")


def test_silent_clients_are_dropped_and_free_their_slots(ros_node, gateway, js, tools, wait):
    from diagnostic_msgs.msg import DiagnosticArray

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    gw, url = gateway(max_clients=2, ping_interval=0.5, ping_timeout=1.0, **QUIET)
    tools.wait_listening(url, gw, wait)
    silent = [RawClient(url) for _ in range(2)]  # upgrade, then never answer
    for s in silent:
        s.start_reading()
    wait(lambda: all(s.json_ops("serverInfo") for s in silent), 20, what="both admitted")
    wait(lambda: all(s.closed for s in silent), 30, what="silent clients dropped")
    assert [s.close_code() for s in silent] == [1001, 1001]
    assert all(any(o == 0x9 for o, _ in s.frames) for s in silent)  # they were pinged
    client = js("js-after", url, mode="decode", duration=60)  # ws answers pings itself
    wait(lambda: client.events("serverInfo"), 20, what="a new client gets a slot")
    n0 = len(diags)
    # well past ping_interval + ping_timeout: four more diagnostics periods
    wait(lambda: len(diags) >= n0 + 4, 30, what="four diagnostics periods")
    assert not client.events("close")
    v = _diag_clients(diags)
    assert v["clients"] == "1" and v["closed no pong"] == "2"


def test_subscribing_to_an_unknown_channel_gives_one_error(ros_node, gateway, tools, wait):
    import json

    from diagnostic_msgs.msg import DiagnosticArray

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    c = RawClient(url)
    c.start_reading()
    wait(lambda: c.json_ops("serverInfo"), 20, what="serverInfo")
    sub = {"op": "subscribe", "subscriptions": [{"id": 1, "channelId": 987654}]}
    c.send_text(json.dumps(sub))

    def figure():
        v = _diag_clients(diags) or {}
        return any("1 unknown channel subscribes" in val for val in v.values())

    wait(figure, 20, what="the gateway decided not to retry")
    n0 = len(diags)
    wait(lambda: len(diags) >= n0 + 2, 15, what="two more diagnostics periods")
    errors = [m for m in c.json_ops("status") if "Unknown channel ID" in m["message"]]
    assert len(errors) == 1, errors
    c.close()


def test_pathological_regex_parameter_is_refused(ros_node, gateway, js, tools, wait):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from std_msgs.msg import String

    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    cli = ros_node.create_client(SetParameters, "/foxglove_gateway/set_parameters")
    assert cli.wait_for_service(timeout_sec=20)
    value = ParameterValue(
        type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["(.*.*.*.*)*x"]
    )
    fut = cli.call_async(
        SetParameters.Request(parameters=[Parameter(name="topics_allow", value=value)])
    )
    wait(fut.done, 20, what="the set call answered")
    (result,) = fut.result().results
    assert not result.successful
    assert "topics_allow" in result.reason and "nested quantifier" in result.reason
    pub = ros_node.create_publisher(String, "/t/after", 10)
    client = js("js-after", url, mode="decode", duration=60)

    def got():
        pub.publish(String(data="still here"))
        return any(e["data"] == {"data": "still here"} for e in client.events("message"))

    wait(got, 30, interval=0.3, what="the gateway still forwards")


def test_client_offering_only_the_old_subprotocol_is_told_what_is_supported(
    gateway, js, tools, wait
):
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    raw = RawClient(url, proto="foxglove.websocket.v1")
    reply = raw.response().decode()
    assert reply.startswith("HTTP/1.1 400")
    assert "foxglove.sdk.v1" in reply and "offered: foxglove.websocket.v1" in reply
    old = js("js-old", url, mode="decode", subprotocol="foxglove.websocket.v1", duration=30)
    wait(lambda: old.events("error") or old.events("close"), 20, what="the npm client refused")
    assert not old.events("serverInfo")
    assert "400" in str(old.events("error") + old.events("close"))
