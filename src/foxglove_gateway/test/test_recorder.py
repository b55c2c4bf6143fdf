"""mcap_recorder end to end: rclpy publishers -> recorder process -> files read by mcap/rosbags."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml

from sensorhub_common import qos

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder(procs, tmp_path, tools):
    from sensorhub_common.paths import executable

    def start(name: str = "recorder", **params):
        params.setdefault("data_root", str(tmp_path / "data"))
        params.setdefault("topics_deny", ["/rosout", "/parameter_events"])
        pf = tools.params_file(tmp_path / f"{name}.yaml", "/**", params)
        exe = executable("foxglove_gateway", "mcap_recorder")
        return procs.start(name, [exe, "--ros-args", "--params-file", pf])

    return start


def _following(proc, topics, wait):
    def ok():
        assert proc.alive(), proc.output()[-3000:]
        out = proc.output()
        return all(f"following {t} " in out for t in topics)

    wait(ok, 30, what=f"recorder following {topics}")


def _bag_dir(root: Path) -> Path:
    (d,) = list((root / "bags").iterdir())
    return d


def _files(bag: Path) -> list[Path]:
    return sorted(bag.glob("*.mcap"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def _decoded(path: Path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(path, "rb") as f:
        r = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(c.topic, m) for _, c, _, m in r.iter_decoded_messages(log_time_order=False)]


def _raw(path: Path, topic: str) -> list[bytes]:
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        return [m.data for _, _, m in make_reader(f).iter_messages(topics=[topic])]


def test_counts_equal_published_and_files_decode(ros_node, recorder, tmp_path, wait, tools):
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    from sensorhub_msgs.msg import PbtEvent, PbtSamples, Sec110File

    pub_s = ros_node.create_publisher(PbtSamples, "/pbt/samples", qos.pbt_samples(0.05))
    pub_e = ros_node.create_publisher(PbtEvent, "/pbt/events", qos.PBT_EVENTS)
    pub_f = ros_node.create_publisher(Sec110File, "/sec110/files", qos.SEC110_FILES)
    for i in range(10):  # before the recorder exists: transient local brings them in
        pub_e.publish(PbtEvent(peak_index=i))
    rec = recorder(compression="lz4")
    _following(rec, ["/pbt/samples", "/pbt/events", "/sec110/files"], wait)
    time.sleep(0.5)  # matched: discovery of the new subscription reached the publishers
    samples = []
    for i in range(150):
        m = PbtSamples(first_index=i * 40, sample_rate=800.0, values=[float(i)] * 40)
        m.header.stamp.sec = i
        pub_s.publish(m)
        samples.append(m)
        if i % 5 == 0:
            pub_e.publish(PbtEvent(peak_index=1000 + i, pulse_backend="serial"))
        if i % 50 == 0:
            pub_f.publish(Sec110File(path=f"sec110/f{i}.csv", size=2**40 + i))
        time.sleep(0.01)
    time.sleep(1.0)
    assert rec.stop() == 0, rec.output()[-3000:]

    bag = _bag_dir(tmp_path / "data")
    (f,) = _files(bag)
    msgs = _decoded(f)
    by_topic: dict[str, list] = {}
    for t, m in msgs:
        by_topic.setdefault(t, []).append(m)
    assert [m.first_index for m in by_topic["/pbt/samples"]] == [i * 40 for i in range(150)]
    raw7 = deserialize_message(_raw(f, "/pbt/samples")[7], PbtSamples)  # CDR as published
    assert tools.msg_plain(raw7) == tools.msg_plain(samples[7])
    assert sorted(m.peak_index for m in by_topic["/pbt/events"]) == list(range(10)) + [
        1000 + i for i in range(0, 150, 5)
    ]
    assert [m.size for m in by_topic["/sec110/files"]] == [2**40, 2**40 + 50, 2**40 + 100]
    assert "/diagnostics" in by_topic  # standard types recorded too

    with Reader(bag) as r:
        counts = {c.topic: c.msgcount for c in r.connections}
        assert counts["/pbt/samples"] == 150
        assert counts["/pbt/events"] == 40
        assert r.message_count == len(msgs)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == [f.name]
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    qos_meta = topics["/pbt/events"]["topic_metadata"]["offered_qos_profiles"][0]
    assert qos_meta["durability"] == "transient_local"
    assert qos_meta["reliability"] == "reliable"


def test_sigkill_leaves_a_readable_file(ros_node, recorder, tmp_path, wait):
    from foxglove_gateway.bag import salvage_messages
    from sensorhub_msgs.msg import PbtSamples

    pub = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    rec = recorder(chunk_interval=0.2, topics_allow=["/t/.*"])
    _following(rec, ["/t/seq"], wait)
    time.sleep(0.5)
    n = 60
    for i in range(n):
        pub.publish(PbtSamples(first_index=i))
        time.sleep(0.05)
    time.sleep(1.0)  # > chunk_interval + tick period: every chunk is on disk
    rec.popen.send_signal(signal.SIGKILL)
    rec.popen.wait(10)
    (f,) = _files(_bag_dir(tmp_path / "data"))
    got = [m for ch, m in salvage_messages(f) if ch.topic == "/t/seq"]
    assert len(got) == n
    assert [m.sequence for m in got] == list(range(n))


def test_split_files_have_no_gaps_or_duplicates(ros_node, recorder, tmp_path, wait):
    from rosbags.highlevel import AnyReader

    from sensorhub_msgs.msg import PbtSamples

    pub = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    rec = recorder(split_duration=1.0, topics_allow=["/t/.*"])
    _following(rec, ["/t/seq"], wait)
    time.sleep(0.5)
    n = 100
    for i in range(n):
        pub.publish(PbtSamples(first_index=i))
        time.sleep(0.04)
    time.sleep(1.0)
    rec.popen.send_signal(signal.SIGTERM)
    assert rec.popen.wait(15) == 0, rec.output()[-3000:]
    bag = _bag_dir(tmp_path / "data")
    files = _files(bag)
    assert len(files) >= 3
    per_file = [[m.first_index for t, m in _decoded(f) if t == "/t/seq"] for f in files]
    assert [i for chunk in per_file for i in chunk] == list(range(n))
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == [f.name for f in files]
    with AnyReader([bag]) as r:  # the split files read as one bag, types from the schemas
        assert {c.topic: c.msgcount for c in r.connections}["/t/seq"] == n
        seq = [
            r.deserialize(raw, c.msgtype).first_index
            for c, _, raw in r.messages()
            if c.topic == "/t/seq"
        ]
        assert seq == list(range(n))
