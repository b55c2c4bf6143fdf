"""foxglove_gateway end to end: rclpy publishers -> gateway process -> independent JS client."""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from sensorhub_common import qos
from sensorhub_testing.ros import status_values

pytestmark = pytest.mark.integration

QUIET = {"topics_deny": ["/rosout", "/parameter_events"]}


def _stamped(m, frame: str):
    m.header.stamp.sec = 1_795_000_000
    m.header.stamp.nanosec = 123_456_789
    m.header.frame_id = frame
    return m


def _pbt_messages():
    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    samples = _stamped(PbtSamples(), "pbt")
    samples.first_index = 2**63 + 7
    samples.sample_rate = 800.0
    samples.values = [0.1, -2.5, 3.14159, 1e-7, 65535.0]
    samples.envelope = [0.2, 2.5, 3.0, 1e30, 0.0]
    samples.baseline = 0.3
    samples.lost_before = 2**64 - 1
    samples.lost_total = 12_345_678_901_234

    event = _stamped(PbtEvent(), "pbt")
    event.peak_index, event.start_index, event.end_index = 2**53 + 1, 2**53 - 3, 2**53 + 9
    event.peak, event.baseline, event.amplitude = 1.1, 0.2, 0.9
    event.width, event.area, event.rise_time = 0.0125, 1.0 / 3.0, 2.5e-4
    event.pulse_backend = "serial"
    event.pulse_width_us = 4_294_967_295
    event.pulse_sent = True
    event.pulse_delay = -1.0
    return samples, event


def _sec110_file():
    from sensorhub_msgs.msg import Sec110File

    f = _stamped(Sec110File(), "sec110")
    f.path = "sec110/2026-11-24/rün_0001.csv"
    f.size = 2**40 + 3
    f.sha256 = "ab" * 32
    f.client_address = "10.0.0.7:50211"
    f.transfer_seconds = 1.25
    return f


def _laser_messages():
    from sensor_msgs.msg import LaserScan

    from sensorhub_msgs.msg import ZoneStatus

    zones = _stamped(ZoneStatus(), "laser")
    zones.names = ["near", "far"]
    zones.occupied = [True, False]
    zones.nearest_range = [0.75, math.inf]
    zones.point_count = [12, 0]

    scan = _stamped(LaserScan(), "laser")
    scan.angle_min, scan.angle_max = -2.0944, 2.0944
    scan.angle_increment = math.radians(1.0)
    scan.time_increment, scan.scan_time = 1.0 / 15 / 360, 1.0 / 15
    scan.range_min, scan.range_max = 0.05, 25.0
    scan.ranges = [0.05 + 0.1 * i for i in range(241)]
    scan.intensities = [float(i % 7) for i in range(241)]
    return zones, scan


def _marker_array():
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray, UVCoordinate

    marker = _stamped(Marker(), "laser")
    marker.ns, marker.id, marker.type, marker.action = "zones", 3, Marker.LINE_STRIP, 0
    marker.pose.orientation.w = 1.0
    marker.scale.x = 0.02
    marker.color = ColorRGBA(r=1.0, g=0.5, b=0.0, a=0.8)
    marker.lifetime.sec, marker.lifetime.nanosec = 2, 500
    marker.points = [Point(x=0.0, y=0.0, z=0.0), Point(x=1.5, y=-0.5, z=0.0)]
    marker.colors = [ColorRGBA(r=0.1, g=0.2, b=0.3, a=1.0)]
    marker.text = "zone near"
    marker.texture.format = "png"
    marker.texture.data = [0, 1, 2, 255]
    marker.uv_coordinates = [UVCoordinate(u=0.25, v=0.75)]
    marker.mesh_file.filename = "zone.stl"
    marker.mesh_file.data = [9, 8, 7]
    return MarkerArray(markers=[marker, Marker(ns="empty", action=Marker.DELETEALL)])


def _diagnostic_array():
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    diag = _stamped(DiagnosticArray(), "")
    diag.status = [
        DiagnosticStatus(
            level=DiagnosticStatus.WARN,
            name="decode_test: pulse",
            message="ok-ish",
            hardware_id="pbt0",
            values=[KeyValue(key="lost", value="3"), KeyValue(key="rate", value="800")],
        )
    ]
    return diag


def graph_messages():
    """One message of every type the graph publishes, with values that catch decoding slips:
    uint64 beyond 2**53, float32 rounding, +inf, bytes, unicode, nested arrays."""
    samples, event = _pbt_messages()
    zones, scan = _laser_messages()
    return {
        "/pbt/samples": (samples, qos.pbt_samples(0.05)),
        "/pbt/events": (event, qos.PBT_EVENTS),
        "/sec110/files": (_sec110_file(), qos.SEC110_FILES),
        "/tim240/zones": (zones, qos.DIAGNOSTICS),
        "/tim240/scan_filtered": (scan, qos.SCAN),
        "/tim240/markers": (_marker_array(), qos.DIAGNOSTICS),
        "/diagnostics": (_diagnostic_array(), qos.DIAGNOSTICS),
    }


def test_js_client_decodes_every_graph_type_field_for_field(ros_node, gateway, js, tools, wait):
    msgs = graph_messages()
    pubs = {t: ros_node.create_publisher(type(m), t, q) for t, (m, q) in msgs.items()}
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    client = js("js-decode", url, mode="decode", duration=60)
    want = {t: tools.msg_plain(m) for t, (m, _) in msgs.items()}

    def matched() -> set[str]:
        ok = set()
        for ev in client.events("message"):
            t = ev["topic"]
            if (
                t in want
                and t not in ok
                and tools.js_plain(type(msgs[t][0]), ev["data"]) == want[t]
            ):
                ok.add(t)
        return ok

    def publish_until_all_match():
        for t, (m, _) in msgs.items():
            pubs[t].publish(m)
        return matched() == set(want)

    try:
        wait(publish_until_all_match, 45, interval=0.3, what="every type decoded equal")
    except AssertionError:
        got = {}
        for ev in client.events("message"):
            got[ev["topic"]] = tools.js_plain(type(msgs[ev["topic"]][0]), ev["data"])
        for t in set(want) - matched():
            print(f"{t}:\n  published {want[t]}\n  decoded   {got.get(t)}")
        print([e for e in client.events() if e["event"] in ("schemaError", "decodeError")])
        raise
    adv = {e["topic"]: e for e in client.events("advertise")}
    for t, (m, _) in msgs.items():
        assert adv[t]["schemaEncoding"] == "ros2msg"
        assert adv[t]["encoding"] == "cdr"
        assert adv[t]["schemaName"] == f"{type(m).__module__.split('.')[0]}/msg/{type(m).__name__}"
    assert "/rosout" not in adv  # topics_deny
    assert client.events("open")[0]["protocol"] == "foxglove.sdk.v1"


def test_client_beyond_the_limit_is_refused_with_a_reason(ros_node, gateway, js, tools, wait):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    gw, url = gateway(max_clients=2, **QUIET)
    tools.wait_listening(url, gw, wait)
    first = js("js-first", url, mode="count", duration=120)
    second = js("js-second", url, mode="count", duration=120)
    wait(lambda: first.events("serverInfo") and second.events("serverInfo"), 20,
         what="two clients admitted")  # fmt: skip
    third = js("js-third", url, mode="decode", duration=30)
    wait(lambda: third.events("close"), 20, what="third client closed")
    status = third.events("status")
    assert status and status[0]["level"] == 2
    assert "server full: 2/2 clients" in status[0]["message"]
    close = third.events("close")[0]
    assert close["code"] == 1013
    assert close["reason"] == "server full: 2/2 clients"
    assert not third.events("serverInfo")  # never reached the SDK server
    assert not first.events("close") and not second.events("close")  # untouched

    def diag_ok():
        v = status_values(diags[-3:], "foxglove_gateway: clients")
        return v is not None and v["clients"] == "2" and v["refused total"] == "1" and v

    v = wait(diag_ok, 15, what="diagnostics: 2 clients, 1 refused")
    assert sum(k.startswith("client ") for k in v) == 2  # per-client delivery figures
    newest = next(st for arr in reversed(diags) for st in arr.status
                  if st.name == "foxglove_gateway: clients")  # fmt: skip
    assert newest.level == DiagnosticStatus.WARN and newest.message == "2/2 clients"
    first.finish()  # one leaves: the next one is admitted
    fourth = js("js-fourth", url, mode="decode", duration=30)
    wait(lambda: fourth.events("serverInfo") or fourth.events("close"), 20, what="the fourth")
    assert fourth.events("serverInfo") and not fourth.events("close")


def test_rate_cap_limits_only_the_capped_topic(ros_node, gateway, js, tools, wait):
    from sensorhub_msgs.msg import PbtSamples

    cap = 4.0
    gw, url = gateway(max_rates=[f"/t/capped={cap:g}"], **QUIET)
    pubs = {
        t: ros_node.create_publisher(PbtSamples, t, qos.pbt_samples(0.05))
        for t in ("/t/capped", "/t/free")
    }
    tools.wait_listening(url, gw, wait)
    client = js("js-count", url, mode="count", duration=90, progress=0.25)

    pub_time = {}
    i = 0

    def publish_one():
        nonlocal i
        m = PbtSamples(first_index=i)
        m.header.stamp.sec = i  # the client reads the stamp straight from the CDR bytes
        for p in pubs.values():
            p.publish(m)
        pub_time[i] = time.monotonic()
        i += 1

    # at 20 Hz until the client receives both topics, then a measured stretch at 20 Hz
    wait(lambda: len(client.events("advertise")) >= 2, 20, what="topics advertised")
    deadline = time.monotonic() + 60
    while min(client.last_stamp("/t/free"), client.last_stamp("/t/capped")) < 0:
        assert time.monotonic() < deadline, "the client never received both topics"
        publish_one()
        time.sleep(0.05)  # the publishing rate, not a wait
    for _ in range(160):
        publish_one()
        time.sleep(0.05)
    wait(lambda: client.last_stamp("/t/free") >= i - 1, 30, what="the last message at the client")
    client.finish()
    (counts,) = client.events("counts")
    capped = sorted(int(s.split(".")[0]) for s in counts["topics"]["/t/capped"]["stamps"])
    free = sorted(int(s.split(".")[0]) for s in counts["topics"]["/t/free"]["stamps"])
    # the uncapped topic: every message from the first one the client got (reliable path)
    assert free == list(range(free[0], i))
    span = pub_time[capped[-1]] - pub_time[capped[0]]
    assert len(capped) <= cap * span + 1.5 + 1  # token bucket bound + arrival jitter
    window = pub_time[free[-1]] - pub_time[free[0]]
    assert len(capped) >= 0.5 * cap * window  # decimated, not starved
    assert len(free) > 3 * len(capped)


def test_stalled_client_does_not_reduce_what_others_receive(ros_node, gateway, js, tools, wait):
    from diagnostic_msgs.msg import DiagnosticArray

    from sensorhub_msgs.msg import PbtSamples

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    # A stalled client answers no ping: with the defaults (5 s + 10 s) it would be closed before
    # a slow machine reaches the checks below, which need it still connected
    gw, url = gateway(client_backlog=32, ping_interval=60.0, ping_timeout=60.0, **QUIET)
    pub = ros_node.create_publisher(PbtSamples, "/t/big", qos.pbt_samples(0.05))
    tools.wait_listening(url, gw, wait)
    healthy = js("js-healthy", url, mode="count", duration=90, progress=0.25)
    # `first <= 5` below needs the healthy client subscribed before the first message (it
    # subscribes on the advertisement): its node process may start late on a loaded machine.
    # The stalled client starts only then: it must see /t/big advertised before it stops reading
    wait(
        lambda: any(e["topic"] == "/t/big" for e in healthy.events("advertise")),
        20,
        what="the healthy client subscribing to /t/big",
    )
    stalled = js("js-stalled", url, mode="stall", stall_after=2, duration=90)
    wait(lambda: stalled.events("stalled"), 20, what="stalled client paused")
    m = PbtSamples()
    # 16 KiB per message at 50 Hz: enough to fill the stalled client's path within a second,
    # small enough to stay one UDP datagram (this test is about the gateway, not DDS fragments)
    m.values = [1.0] * 2048
    m.envelope = [2.0] * 2048
    n = 0
    for n in range(1, 301):
        m.header.stamp.sec = n
        pub.publish(m)
        time.sleep(0.02)

    def stalled_lost():
        v = status_values(diags[-3:], "foxglove_gateway: clients")
        figs = [val for k, val in (v or {}).items() if k.startswith("client ")]
        return any("%" in f and not f.split("(")[1].startswith("100.0%") for f in figs) and figs

    wait(lambda: healthy.last_stamp("/t/big") >= n, 30, what="the healthy client's last message")

    def web_subscribers():  # counted by the SDK's own subscribe callbacks
        v = status_values(diags[-3:], "foxglove_gateway: topics") or {}
        return "2 web subscribers" in v.get("/t/big", "")

    wait(web_subscribers, 30, what="both clients counted as /t/big web subscribers")
    healthy.finish()
    (counts,) = healthy.events("counts")
    got = sorted(int(s.split(".")[0]) for s in counts["topics"]["/t/big"]["stamps"])
    print("healthy client got", len(got), "of", n, "first", got[:3], "last", got[-3:])
    figs = wait(stalled_lost, 30, what="the stalled client's own delivery below 100%")
    print("per-client figures:", figs)
    first = got[0]
    assert got == list(range(first, n + 1)), "the healthy client lost messages"
    assert first <= 5


def test_client_publish_is_refused_by_default(ros_node, gateway, js, tools, wait):
    from std_msgs.msg import String

    got = []
    ros_node.create_subscription(String, "/client_publish_probe", got.append, 10)
    gw, url = gateway(**QUIET)
    tools.wait_listening(url, gw, wait)
    client = js("js-publish", url, mode="publish", duration=30)
    wait(
        lambda: client.events("published") or client.events("publishError"),
        20,
        what="publish attempt",
    )
    info = client.events("serverInfo")[0]
    assert "clientPublish" not in info["capabilities"]
    wait(lambda: client.events("status"), 10, what="refusal status")
    assert "does not support clientPublish" in client.events("status")[0]["message"]
    time.sleep(2.0)
    assert got == []
    assert ros_node.count_publishers("/client_publish_probe") == 0
    gw.popen.send_signal(signal.SIGTERM)  # a well-behaved long-running process
    assert gw.popen.wait(15) == 0, gw.output()[-3000:]


def test_client_publish_when_enabled(ros_node, gateway, js, tools, wait):
    from std_msgs.msg import String

    got = []
    ros_node.create_subscription(String, "/client_publish_probe", got.append, 10)
    gw, url = gateway(allow_client_publish=True, **QUIET)
    tools.wait_listening(url, gw, wait)
    client = js("js-publish", url, mode="publish", duration=30)
    wait(lambda: client.events("serverInfo"), 20, what="serverInfo")
    assert "clientPublish" in client.events("serverInfo")[0]["capabilities"]
    wait(lambda: got, 20, what="client message on the ROS topic")
    assert got[0].data == "hello"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_tls(ros_node, gateway, js, tools, wait, tmp_path):
    from std_msgs.msg import String

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    pub = ros_node.create_publisher(String, "/t/tls", 10)
    gw, url = gateway(tls_cert=str(cert), tls_key=str(key), **QUIET)
    tools.wait_listening(url, gw, wait)
    wss = js("js-wss", url.replace("ws://", "wss://"), mode="decode", duration=30)

    def got_hello():
        pub.publish(String(data="secret"))
        return any(e["data"] == {"data": "secret"} for e in wss.events("message"))

    wait(got_hello, 30, interval=0.3, what="message over wss://")
    ctx = ssl.create_default_context()  # the lab page's files over https:// on the same port
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    port = int(url.rsplit(":", 1)[1])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20)) as tls:
        tls.sendall(b"GET /config.json HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert json.loads(reply.partition(b"\r\n\r\n")[2]) == {"ws_port": port}
    plain = js("js-plain", url, mode="decode", duration=30)
    wait(lambda: plain.events("close") or plain.events("error"), 20, what="plain ws:// refused")
    assert not plain.events("serverInfo")
