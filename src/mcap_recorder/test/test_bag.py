"""The rosbag2-layout MCAP bag writer (no ROS graph): contents, compression, splits, crashes."""

from __future__ import annotations

import shutil
import time

import pytest
from rclpy.serialization import deserialize_message, serialize_message

from mcap_recorder.bag import BagSettings, BagWriter, SplitPolicy
from mcap_recorder.repair import salvage_messages
from sensorhub_common.schema import build_ros2msg
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


def _bag(tmp_path, clock=None, **settings) -> BagWriter:
    bag = BagWriter(tmp_path / "rec", BagSettings(**settings), clock=clock or time.monotonic)
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


def _kill(bag: BagWriter) -> None:
    """What SIGKILL leaves: the file as written so far, no footer, no metadata update."""
    bag._stream.abandon()
    bag._writer = None
    bag._stream = None
    bag.closed = True


def _events(n0: int, n: int) -> list[bytes]:
    return [serialize_message(PbtEvent(peak_index=i)) for i in range(n0, n0 + n)]


@pytest.mark.parametrize("cut", ["at a chunk end", "inside a chunk", "header only"])
def test_repair_makes_a_torn_file_a_finished_indexed_mcap(tmp_path, cut):
    from mcap.reader import make_reader
    from rosbags.rosbag2 import Reader

    from mcap_recorder.mcapfile import is_finished
    from mcap_recorder.repair import repair_bag

    clock = FakeClock()
    bag = _bag(tmp_path, chunk_size=4096, chunk_interval_s=0.5, clock=clock)
    n = 0 if cut == "header only" else 120
    for i in range(n):
        clock.t += 0.05
        bag.write(0, _samples(i), 1_700_000_000_000_000_000 + i)
        bag.tick()
    path = bag.current_file
    _kill(bag)
    if cut == "inside a chunk":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size - 100)
    salvaged = len(list(salvage_messages(path)))
    assert not is_finished(path)
    with open(path, "rb") as f, pytest.raises(Exception):  # noqa: B017 - any reader error
        make_reader(f).get_summary().statistics  # noqa: B018
    reports = repair_bag(bag.directory)
    if cut == "header only":
        assert reports[0].action == "removed"
        assert not bag.directory.exists()  # no empty bag left behind
        return
    assert reports[0].action == "repaired" and reports[0].messages == salvaged
    assert salvaged >= 100
    assert is_finished(path)
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        r = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = r.get_summary()
        assert summary.statistics.message_count == salvaged
        assert summary.chunk_indexes  # indexed
        got = [m.first_index // 40 for _, _, _, m in r.iter_decoded_messages()]
    assert got == list(range(salvaged))
    with Reader(bag.directory) as rb:  # metadata.yaml from the repaired file
        assert rb.message_count == salvaged
        assert {c.topic: c.msgcount for c in rb.connections}["/pbt/samples"] == salvaged
    assert not list(bag.directory.glob("*.repair"))


def test_a_resumed_bag_holds_each_transient_local_message_once(tmp_path):
    from rosbags.rosbag2 import Reader

    from mcap_recorder.mcapfile import summarize
    from mcap_recorder.repair import repair_bag

    clock = FakeClock()
    bag = _bag(tmp_path, chunk_size=1 << 20, chunk_interval_s=0.2, clock=clock)
    first = _events(0, 10)
    for i, data in enumerate(first):
        clock.t += 0.1
        assert bag.write(1, data, 1_000 + i, publish_time_ns=500 + i, dedupe=True)
        bag.tick()
    # the same message delivered twice in one run (resubscription) is written once
    assert not bag.write(1, first[-1], 99_999, publish_time_ns=509, dedupe=True)
    _kill(bag)

    again = BagWriter(bag.directory, resume=True, clock=clock)
    again.add_topic("/pbt/events", EVENTS, build_ros2msg(EVENTS), [])
    # transient local after the restart: the publisher's last 5 again, then 3 new ones
    for i in range(5, 10):
        assert not again.write(0, first[i], 2_000 + i, publish_time_ns=500 + i, dedupe=True)
    for i, data in enumerate(_events(10, 3)):
        assert again.write(0, data, 3_000 + i, publish_time_ns=600 + i, dedupe=True)
    assert again.deduplicated == 5
    assert again.files[-1].path.endswith("_1.mcap")  # a new file in the same bag
    prior = [f.path for f in again.files[:-1]]
    repair_bag(bag.directory, skip={again.files[-1].path})
    again.adopt([summarize(bag.directory / p) for p in prior])
    again.close()
    with Reader(bag.directory) as r:
        assert r.message_count == 13
        peaks = sorted(deserialize_message(raw, PbtEvent).peak_index for _, _, raw in r.messages())
    assert peaks == list(range(13))


def test_pausing_on_a_full_disk_leaves_finished_files_only(tmp_path):
    from mcap_recorder.mcapfile import is_finished

    bag = _bag(tmp_path, chunk_size=4096)
    bag.write(0, _samples(0), 1)
    bag.close_file()  # the reserve is reached: finish the file
    assert not bag.is_open
    assert not bag.write(0, _samples(1), 2)  # refused, counted by the node
    bag.open_file()  # space is back
    bag.close_file()  # nothing written: the empty file is removed again
    bag.open_file()
    bag.write(0, _samples(2), 3)
    bag.close()
    files = sorted(bag.directory.glob("*.mcap"))
    assert [f.name for f in files] == ["rec_0.mcap", "rec_2.mcap"]
    assert all(is_finished(f) for f in files)
    assert [f.path for f in bag.files] == ["rec_0.mcap", "rec_2.mcap"]


def test_enospc_mid_file_stops_it_and_repair_keeps_what_reached_the_disk(small_disk):
    import os

    from mcap_recorder.mcapfile import is_disk_full, is_finished
    from mcap_recorder.repair import repair_bag

    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave about 300 KiB
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        f.write(b"\0" * (free - 300 * 1024))
    bag = BagWriter(small_disk / "rec", BagSettings(compression="none", chunk_size=32 * 1024))
    bag.add_topic("/pbt/samples", SAMPLES, build_ros2msg(SAMPLES), QOS)
    written = 0
    with pytest.raises(OSError) as err:
        for i in range(10_000):
            m = PbtSamples(first_index=i, values=[float(i)] * 2000)
            bag.write(0, serialize_message(m), 1_700_000_000_000_000_000 + i)
            written += 1
    assert is_disk_full(err.value)
    bag.abandon_file()
    assert bag.torn == ["rec_0.mcap"] and not bag.is_open
    filler.unlink()  # space is back: repair what is on disk
    (report,) = repair_bag(bag.directory)
    assert report.action == "repaired" and 0 < report.messages <= written
    assert is_finished(bag.directory / "rec_0.mcap")
    (msgs,) = _read_all(bag.directory)
    assert [m.first_index for _, m in msgs] == list(range(report.messages))
