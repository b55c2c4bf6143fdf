"""The rosbag2-layout MCAP bag writer (no ROS graph): contents, compression, splits, crashes."""

from __future__ import annotations

import shutil

import pytest
from rclpy.serialization import serialize_message

from foxglove_gateway.bag import BagWriter, SplitPolicy, salvage_messages
from foxglove_gateway.schema import build_ros2msg
from sensorhub_msgs.msg import PbtEvent, PbtSamples

SAMPLES = "sensorhub_msgs/msg/PbtSamples"
EVENTS = "sensorhub_msgs/msg/PbtEvent"
QOS = [
    {
        "history": "keep_last",
        "depth": 100,
        "reliability": "reliable",
        "durability": "volatile",
        "deadline": {"sec": 0, "nsec": 100000000},
        "lifespan": {"sec": 2147483647, "nsec": 4294967295},
        "liveliness": "automatic",
        "liveliness_lease_duration": {"sec": 1, "nsec": 0},
        "avoid_ros_namespace_conventions": False,
    }
]


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _samples(i: int) -> bytes:
    m = PbtSamples(first_index=i * 40, sample_rate=800.0)
    m.header.stamp.sec = 1_700_000_000 + i
    m.values = [float(i)] * 40
    m.envelope = [0.5] * 40
    return serialize_message(m)


def _bag(tmp_path, **kw) -> BagWriter:
    bag = BagWriter(tmp_path / "rec", **kw)
    bag.add_topic("/pbt/samples", SAMPLES, build_ros2msg(SAMPLES), QOS)
    bag.add_topic("/pbt/events", EVENTS, build_ros2msg(EVENTS), [])
    return bag


def _read_all(bag_dir):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = []
    for f in sorted(bag_dir.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1])):
        with open(f, "rb") as fh:
            r = make_reader(fh, decoder_factories=[DecoderFactory()])
            out.append([(c.topic, m) for _, c, _, m in r.iter_decoded_messages()])
    return out


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_contents_profile_and_compression(tmp_path, compression):
    from mcap.reader import make_reader

    bag = _bag(tmp_path, compression=compression, chunk_size=4096)
    for i in range(200):
        bag.write(0, _samples(i), 1_700_000_000_000_000_000 + i)
    ev = PbtEvent(peak_index=2**63 + 5, peak=1.5, pulse_backend="serial")
    bag.write(1, serialize_message(ev), 1_700_000_000_500_000_000)
    bag.close()
    (f,) = list(bag.directory.glob("*.mcap"))
    with open(f, "rb") as fh:
        r = make_reader(fh)
        assert r.get_header().profile == "ros2"
        summary = r.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        assert len(summary.chunk_indexes) > 1
        assert {c.compression for c in summary.chunk_indexes} == {compression}
        assert summary.statistics.message_count == 201
        assert "offered_qos_profiles" in summary.channels[1].metadata
    (msgs,) = _read_all(bag.directory)
    samples = [m for t, m in msgs if t == "/pbt/samples"]
    assert [s.first_index for s in samples] == [i * 40 for i in range(200)]
    (event,) = [m for t, m in msgs if t == "/pbt/events"]
    assert event.peak_index == 2**63 + 5 and event.pulse_backend == "serial"


def test_rosbags_reads_the_bag_directory(tmp_path):
    from rosbags.rosbag2 import Reader

    clock = FakeClock()
    bag = _bag(tmp_path, split=SplitPolicy(max_duration_s=1.0), clock=clock)
    for i in range(50):
        clock.t += 0.1
        bag.write(0, _samples(i), 1_700_000_000_000_000_000 + i * 100_000_000)
    bag.close()
    assert len(bag.files) in (5, 6)  # 0.1 s steps summed in floating point
    with Reader(bag.directory) as r:
        assert r.message_count == 50
        conns = {c.topic: c for c in r.connections}
        assert conns["/pbt/samples"].msgcount == 50
        assert conns["/pbt/samples"].msgtype == SAMPLES
        assert len(list(r.messages())) == 50


@pytest.mark.parametrize("policy", ["size", "duration"])
def test_split_has_no_gaps_or_duplicates(tmp_path, policy):
    clock = FakeClock()
    split = SplitPolicy(max_bytes=8 * 1024) if policy == "size" else SplitPolicy(max_duration_s=2)
    bag = _bag(tmp_path, chunk_size=2048, split=split, clock=clock)
    for i in range(500):
        clock.t += 0.05
        bag.write(0, _samples(i), 1_700_000_000_000_000_000 + i)
        if i % 7 == 0:
            bag.tick()
    bag.close()
    files = _read_all(bag.directory)
    assert len(files) >= 3
    assert all(files), "no empty files"
    seq = [m.first_index // 40 for f in files for _, m in f]
    assert seq == list(range(500))


def test_idle_duration_split_does_not_leave_empty_files(tmp_path):
    clock = FakeClock()
    bag = _bag(tmp_path, split=SplitPolicy(max_duration_s=1.0), clock=clock)
    for _ in range(10):
        clock.t += 1.0
        bag.tick()
    bag.write(0, _samples(0), 1)
    bag.close()
    assert len(bag.files) == 1


def test_a_killed_writer_loses_at_most_the_chunk_in_progress(tmp_path):
    clock = FakeClock()
    bag = _bag(tmp_path, chunk_size=1 << 20, chunk_interval_s=0.5, clock=clock)
    for i in range(100):
        clock.t += 0.05
        bag.write(0, _samples(i), 1_700_000_000_000_000_000 + i)
        bag.tick()
    # "kill": copy the file as it is on disk now, without close()
    torn = tmp_path / "torn.mcap"
    shutil.copy(bag.current_file, torn)
    got = [m for _, m in salvage_messages(torn)]
    assert 100 - len(got) <= 10  # at most one chunk interval (0.5 s at 20 Hz) lost
    assert len(got) >= 90
    with open(torn, "ab") as f:  # a torn record at the tail is tolerated too
        f.write(b"\x05\xff\xff\x00")
    assert len(list(salvage_messages(torn))) == len(got)
    bag.close()
