"""Late viewers, subscribe on demand and slow clients, through the real gateway process."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time

import pytest

from foxglove_gateway.wsframes import FrameScanner, encode_frame
from sensorhub_common import qos

pytestmark = pytest.mark.integration

QUIET = {"topics_deny": ["/rosout", "/parameter_events"]}


def _file(n: int):
    from sensorhub_msgs.msg import Sec110File

    return Sec110File(path=f"sec110/run_{n:04d}.csv", size=n)


def _event(n: int):
    from sensorhub_msgs.msg import PbtEvent

    return PbtEvent(peak_index=n)


def _got(client, topic: str, field: str) -> list[int]:
    return [int(e["data"][field]) for e in client.events("message") if e["topic"] == topic]


def test_late_viewer_gets_every_retained_message_once_and_in_order(
    ros_node, gateway, js, tools, wait
):
    from sensorhub_msgs.msg import PbtEvent, Sec110File

    files = ros_node.create_publisher(Sec110File, "/sec110/files", qos.SEC110_FILES)
    events = ros_node.create_publisher(PbtEvent, "/pbt/events", qos.PBT_EVENTS)
    for n in range(1, 6):
        files.publish(_file(n))  # landed before the gateway and any viewer
    events.publish(_event(0))
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    # the first viewer: the gateway subscribes on demand and DDS hands over the history
    first = js("js-first", url, mode="decode", topics="/sec110/files|/pbt/events", duration=120)
    wait(lambda: len(_got(first, "/sec110/files", "size")) >= 5, 30, what="history, 1st viewer")
    files.publish(_file(6))
    wait(lambda: len(_got(first, "/sec110/files", "size")) >= 6, 30, what="a live file")
    assert _got(first, "/sec110/files", "size") == [1, 2, 3, 4, 5, 6]

    # a second viewer while events flow: the retained ones from the gateway, then live ones
    stop = threading.Event()
    sent = [0]

    def publish_events():
        while not stop.is_set() and sent[0] < 2000:
            sent[0] += 1
            events.publish(_event(sent[0]))
            stop.wait(0.01)

    pub = threading.Thread(target=publish_events, daemon=True)
    pub.start()
    wait(lambda: sent[0] >= 150, 30, what="events flowing")
    late = js("js-late", url, mode="decode", topics="/sec110/files|/pbt/events", duration=120)
    wait(lambda: len(_got(late, "/pbt/events", "peak_index")) >= 150, 60, what="late events")
    stop.set()
    pub.join(10)
    last = sent[0]
    wait(lambda: last in _got(late, "/pbt/events", "peak_index"), 30, what="the last event")
    assert _got(late, "/sec110/files", "size") == [1, 2, 3, 4, 5, 6]
    got = _got(late, "/pbt/events", "peak_index")
    assert got == list(range(got[0], last + 1)), "events lost, repeated or out of order"
    assert got[0] < last - 100  # it got the retained ones, not only the live ones


def _gateway_subscribed(ros_node, topic: str) -> bool:
    return any(
        i.node_name == "foxglove_gateway" for i in ros_node.get_subscriptions_info_by_topic(topic)
    )


def test_the_gateway_subscribes_only_while_a_client_watches(ros_node, gateway, js, tools, wait):
    from sensorhub_msgs.msg import PbtSamples

    pub = ros_node.create_publisher(PbtSamples, "/pbt/samples", qos.pbt_samples(0.05))
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    probe = js("js-probe", url, mode="count", topics="^$", duration=60)  # subscribes to nothing
    wait(lambda: any(e["topic"] == "/pbt/samples" for e in probe.events("advertise")), 30,
         what="/pbt/samples advertised")  # fmt: skip
    assert not _gateway_subscribed(ros_node, "/pbt/samples")  # advertised, not subscribed

    viewer = js("js-viewer", url, mode="count", topics="/pbt/samples", duration=60, progress=0.2)

    def flowing():
        pub.publish(PbtSamples())
        return viewer.last_stamp("/pbt/samples") >= 0

    wait(lambda: _gateway_subscribed(ros_node, "/pbt/samples"), 30, what="gateway subscribed")
    wait(flowing, 30, interval=0.1, what="samples reaching the viewer")
    viewer.finish()
    wait(lambda: not _gateway_subscribed(ros_node, "/pbt/samples"), 30, what="unsubscribed")
    assert probe.proc.alive()  # a connected client that watches nothing holds nothing


def test_always_subscribed_topics_are_held_and_served_at_once(ros_node, gateway, js, tools, wait):
    """A topic named by always_subscribed is subscribed with no client; its retained message
    reaches a client that subscribes later without a new ROS subscription being made."""
    from sensorhub_msgs.msg import PbtSamples, Sec110File

    files = ros_node.create_publisher(Sec110File, "/sec110/files", qos.SEC110_FILES)
    ros_node.create_publisher(PbtSamples, "/pbt/samples", qos.pbt_samples(0.05))
    files.publish(_file(1))
    gw, url = gateway(always_subscribed=["/sec110/files"], **QUIET)
    tools.wait_listening(url, gw, wait)
    wait(lambda: _gateway_subscribed(ros_node, "/sec110/files"), 60, what="held with no client")
    assert not _gateway_subscribed(ros_node, "/pbt/samples")  # the others stay on demand
    files.publish(_file(2))
    viewer = js("js-late", url, mode="decode", topics="/sec110/files", duration=60)
    wait(lambda: _got(viewer, "/sec110/files", "size") == [1, 2], 60, what="both files, in order")
    viewer.finish()
    assert _gateway_subscribed(ros_node, "/sec110/files")  # still held after the client left


class SlowClient:
    """A raw WebSocket client that reads ``rate`` bytes per second (a phone on weak Wi-Fi)."""

    def __init__(self, url: str, topics: list[str], rate: int):
        host, port = url.removeprefix("ws://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: foxglove.sdk.v1\r\n\r\n".encode()
        )
        self.topics, self.rate = topics, rate
        self.subs: dict[int, str] = {}  # subscription id -> topic
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self.slow = True
        self.scanner = FrameScanner(self._frame, binary_prefix=13, skip_http_head=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _frame(self, opcode: int, _fin: bool, prefix: bytes) -> None:
        if opcode == 0x2 and prefix[:1] == b"\x01":
            topic = self.subs.get(int.from_bytes(prefix[1:5], "little"))
            if topic:
                self.counts[topic] += 1
        elif opcode == 0x1:
            msg = json.loads(prefix)
            if msg.get("op") == "advertise":
                self._subscribe(msg["channels"])

    def _subscribe(self, channels: list[dict]) -> None:
        subs = []
        for ch in channels:
            if ch["topic"] in self.topics:
                sid = len(self.subs) + 1
                self.subs[sid] = ch["topic"]
                subs.append({"id": sid, "channelId": ch["id"]})
        if subs:
            body = json.dumps({"op": "subscribe", "subscriptions": subs}).encode()
            self.sock.sendall(encode_frame(0x1, body, mask=os.urandom(4)))

    def _read(self) -> None:
        chunk = 2048
        try:
            while data := self.sock.recv(chunk if self.slow else 1 << 20):
                self.scanner.feed(data)
                if self.slow:
                    time.sleep(chunk / self.rate)  # the slowness under test, not a wait
        except OSError:
            pass


def test_slow_client_keeps_every_event_and_file_and_loses_scope_frames(
    ros_node, gateway, tools, wait
):
    from sensorhub_msgs.msg import PbtEvent, PbtSamples, Sec110File

    samples = ros_node.create_publisher(PbtSamples, "/pbt/samples", qos.pbt_samples(0.05))
    events = ros_node.create_publisher(PbtEvent, "/pbt/events", qos.PBT_EVENTS)
    files = ros_node.create_publisher(Sec110File, "/sec110/files", qos.SEC110_FILES)
    gw, url = gateway(ping_interval=0.0, **QUIET)  # the raw client answers no pings
    tools.wait_listening(url, gw, wait)
    client = SlowClient(url, ["/pbt/samples", "/pbt/events", "/sec110/files"], rate=100_000)
    wait(lambda: len(client.subs) == 3, 30, what="slow client subscribed")
    events.publish(_event(0))  # transient local: reaches the gateway's on-demand subscription
    files.publish(_file(0))

    def flowing():
        samples.publish(PbtSamples())  # volatile: lost until the gateway's reader matched
        return all(client.counts.values())

    wait(flowing, 30, interval=0.1, what="every topic flowing")
    wait(lambda: client.counts["/pbt/events"] == 1 and client.counts["/sec110/files"] == 1, 10,
         what="one event and one file")  # fmt: skip
    base = dict(client.counts)
    big = PbtSamples(values=[1.0] * 2048, envelope=[2.0] * 2048)  # 16 KiB: 800 KiB/s at 50 Hz
    n_events = n_files = n_samples = 0
    for i in range(400):
        samples.publish(big)
        n_samples += 1
        if i % 4 == 0:
            events.publish(_event(i))
            n_events += 1
        if i % 40 == 0:
            files.publish(_file(i))
            n_files += 1
        time.sleep(0.02)  # the publishers' rate
    client.slow = False  # drain what the gateway still holds for it
    want = {"/pbt/events": base["/pbt/events"] + n_events,
            "/sec110/files": base["/sec110/files"] + n_files}  # fmt: skip
    wait(lambda: all(client.counts[t] >= n for t, n in want.items()), 60, what="all kept")
    got_samples = client.counts["/pbt/samples"] - base["/pbt/samples"]
    print("slow client:", client.counts, "samples published", n_samples)
    assert {t: client.counts[t] for t in want} == want  # every event and file, once
    assert got_samples < 0.8 * n_samples  # the high-rate frames went first
    client.sock.close()
