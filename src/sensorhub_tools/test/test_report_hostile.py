"""`sensorhub report` on bags built to mislead it: our topic with another type, our type name
with another definition, a flood of undecodable messages, a record claiming 2^60 bytes. Each
is named (topic, schema found and expected; count and first error; the corrupt record), never a
traceback; a report left without a plot because of it exits 2."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from rclpy.serialization import serialize_message

from mcap_recorder.mcapfile import LIBRARY, MCAP_MAGIC
from sensorhub_common.schema import build_ros2msg
from sensorhub_tools.report import read_bags

SAMPLES = "sensorhub_msgs/msg/PbtSamples"
ZONES = "sensorhub_msgs/msg/ZoneStatus"
STRING = "std_msgs/msg/String"
T0_NS = 1_700_000_000_000_000_000


def report(bag: Path, out: Path) -> subprocess.CompletedProcess:
    from sensorhub_common.paths import executable

    argv = [executable("sensorhub_tools", "sensorhub"), "report", bag, "--out", out]
    return subprocess.run([*map(str, argv), "--no-progress"], capture_output=True, text=True)


def mcap_of(path: Path, topics) -> Path:
    """A finished ros2 MCAP written with the mcap library: (topic, schema name, definition,
    payloads) per topic, whatever they say."""
    from mcap.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="ros2", library="test")
        for topic, name, definition, payloads in topics:
            sid = w.register_schema(name, "ros2msg", definition.encode())
            cid = w.register_channel(topic, "cdr", sid)
            for i, data in enumerate(payloads):
                w.add_message(cid, T0_NS + i * 50_000_000, data, T0_NS + i * 50_000_000)
        w.finish()
    return path


def strings(n: int) -> list[bytes]:
    from std_msgs.msg import String

    return [serialize_message(String(data=f"s{i}")) for i in range(n)]


def zones(n: int) -> list[bytes]:
    from sensorhub_msgs.msg import ZoneStatus

    msgs = []
    for i in range(n):
        m = ZoneStatus(names=["door"], occupied=[i % 2 == 0], nearest_range=[1.5])
        m.header.stamp.sec = T0_NS // 1_000_000_000 + i
        msgs.append(serialize_message(m))
    return msgs


def test_our_type_name_with_another_definition_is_named_and_exits_2(tmp_path):
    bag = mcap_of(tmp_path / "b.mcap", [("/pbt/samples", SAMPLES, "int32 x\n", strings(50))])
    r = report(bag, tmp_path / "out")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "/pbt/samples: recorded as sensorhub_msgs/msg/PbtSamples with another definition" in (
        r.stderr
    )
    assert "(fields: int32 x)" in r.stderr and "uint64 first_index" in r.stderr
    assert "nothing could be plotted because of bad input" in r.stderr


def test_another_type_on_our_topic_is_skipped_while_the_rest_is_reported(tmp_path):
    bag = mcap_of(
        tmp_path / "b.mcap",
        [
            ("/pbt/samples", STRING, build_ros2msg(STRING), strings(50)),
            ("/tim240/zones", ZONES, build_ros2msg(ZONES), zones(20)),
        ],
    )
    r = report(bag, tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    said = (
        "/pbt/samples: recorded with schema 'std_msgs/msg/String', expected "
        "'sensorhub_msgs/msg/PbtSamples': not analysed"
    )
    assert f"note: {said}" in r.stdout
    assert said.replace("'", "&#x27;") in (tmp_path / "out" / "report.html").read_text()
    assert (tmp_path / "out" / "zones.png").is_file() and "(1 plots" in r.stdout


def test_a_flood_of_undecodable_messages_is_counted_and_exits_2(tmp_path):
    # 20 000 messages stand for the hostile case's million: the same path, which keeps one
    # counter and the first error per topic, never an entry per message
    n = 20_000
    garbage = [b"\x00\x01\x00\x00" + struct.pack("<I", i) for i in range(n)]
    bag = mcap_of(
        tmp_path / "b.mcap", [("/pbt/samples", SAMPLES, build_ros2msg(SAMPLES), garbage)]
    )
    rec = read_bags([bag], progress=False)
    assert rec.undecodable == {"/pbt/samples": n} and not rec.msgs.get("/pbt/samples")
    assert list(rec.decode_error) == ["/pbt/samples"]
    r = report(bag, tmp_path / "out")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"/pbt/samples: {n} messages could not be decoded (first error: " in r.stdout
    assert "nothing could be plotted because of bad input" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_record_claiming_two_to_the_sixty_bytes_is_named_corrupt(tmp_path):
    bag = tmp_path / "huge.mcap"
    profile, library = b"ros2", LIBRARY.encode()
    header = struct.pack("<I", len(profile)) + profile + struct.pack("<I", len(library)) + library
    at = len(MCAP_MAGIC) + 9 + len(header)
    with open(bag, "wb") as f:
        f.write(MCAP_MAGIC + b"\x01" + struct.pack("<Q", len(header)) + header)
        f.write(b"\x05" + struct.pack("<Q", 1 << 60) + b"\x00" * 64)  # a message of 2^60 bytes
    size = bag.stat().st_size
    r = report(bag, tmp_path / "out")
    assert r.returncode == 2, r.stdout + r.stderr
    said = (
        f"{bag}: corrupt: a MESSAGE record at byte {at} claims {1 << 60} bytes, more than the "
        f"whole file ({size} bytes)"
    )
    assert said in r.stderr and "Traceback" not in r.stderr
