"""mcap_recorder end to end: rclpy publishers -> recorder process -> files read by mcap/rosbags."""

from __future__ import annotations

import os
import re
import signal
import subprocess
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
        exe = executable("mcap_recorder", "mcap_recorder")
        return procs.start(name, [exe, "--ros-args", "--params-file", pf])

    return start


def _following(proc, topics, wait):
    def ok():
        assert proc.alive(), proc.output()[-3000:]
        out = proc.output()
        return all(f"following {t} " in out for t in topics)

    wait(ok, 30, what=f"recorder following {topics}")


def _first_file(tmp_path: Path, wait) -> None:
    """The recorder logs "following" before it opens its first file (it subscribes first)."""
    bags = tmp_path / "data" / "bags"
    wait(lambda: list(bags.glob("*/*.mcap")), 30, what="the recorder's first file")


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

    from mcap_recorder.repair import salvage_messages
    from sensorhub_msgs.msg import PbtEvent, PbtSamples, Sec110File

    pub_s = ros_node.create_publisher(PbtSamples, "/pbt/samples", qos.pbt_samples(0.05))
    pub_e = ros_node.create_publisher(PbtEvent, "/pbt/events", qos.PBT_EVENTS)
    pub_f = ros_node.create_publisher(Sec110File, "/sec110/files", qos.SEC110_FILES)
    for i in range(10):  # before the recorder exists: transient local brings them in
        pub_e.publish(PbtEvent(peak_index=i))
    rec = recorder(compression="lz4")
    _following(rec, ["/pbt/samples", "/pbt/events", "/sec110/files"], wait)
    # matched: discovery of the new subscription reached the publishers (/pbt/samples keeps only
    # the last 100 of the 150 batches for a late match)
    wait(
        lambda: all(p.get_subscription_count() > 0 for p in (pub_s, pub_e, pub_f)),
        30,
        what="the recorder's subscriptions matched by the publishers",
    )
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

    def on_disk():  # everything published, and the recorder's own diagnostics, in the file
        n: dict[str, int] = {}
        for ch, _ in salvage_messages(_files(_bag_dir(tmp_path / "data"))[0]):
            n[ch.topic] = n.get(ch.topic, 0) + 1
        want = {"/pbt/samples": 150, "/pbt/events": 40, "/sec110/files": 3, "/diagnostics": 1}
        return all(n.get(t, 0) >= k for t, k in want.items())

    wait(on_disk, 30, what="every published message recorded")
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


def _record_seq(ros_node, start, wait, n: int, period: float):
    """A publisher on /t/seq, a recorder from ``start()`` following it, then 0..n-1 published."""
    from sensorhub_msgs.msg import PbtSamples

    pub = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    rec = start()
    _following(rec, ["/t/seq"], wait)
    time.sleep(0.5)
    for i in range(n):
        pub.publish(PbtSamples(first_index=i))
        time.sleep(period)
    return rec


def test_sigkill_leaves_a_readable_file(ros_node, recorder, tmp_path, wait):
    from mcap_recorder.repair import salvage_messages

    n = 60
    rec = _record_seq(
        ros_node, lambda: recorder(chunk_interval=0.2, topics_allow=["/t/.*"]), wait, n, 0.05
    )
    # every chunk on disk (chunk_interval + tick period once the recorder has the messages)
    bag = _bag_dir(tmp_path / "data")
    wait(lambda: _salvaged(_files(bag)[0], "/t/seq") >= n, 30, what=f"{n} messages on disk")
    rec.popen.send_signal(signal.SIGKILL)
    rec.popen.wait(10)
    (f,) = _files(_bag_dir(tmp_path / "data"))
    got = [m for ch, m in salvage_messages(f) if ch.topic == "/t/seq"]
    assert len(got) == n
    assert [m.sequence for m in got] == list(range(n))


def test_split_files_have_no_gaps_or_duplicates(ros_node, recorder, tmp_path, wait):
    from rosbags.highlevel import AnyReader

    n = 100
    rec = _record_seq(
        ros_node, lambda: recorder(split_duration=1.0, topics_allow=["/t/.*"]), wait, n, 0.04
    )
    bag = _bag_dir(tmp_path / "data")
    wait(
        lambda: sum(_salvaged(f, "/t/seq") for f in _files(bag)) >= n,
        30,
        what=f"{n} messages on disk",
    )
    rec.popen.send_signal(signal.SIGTERM)
    assert rec.popen.wait(15) == 0, rec.output()[-3000:]
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


def _salvaged(path: Path, topic: str) -> int:
    from mcap_recorder.repair import salvage_messages

    return sum(ch.topic == topic for ch, _ in salvage_messages(path))


def _check_bag_with_standard_readers(bag: Path) -> dict[str, list]:
    """Every file finished and indexed (mcap), metadata.yaml counts exact (rosbags)."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    from mcap_recorder.mcapfile import is_finished
    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    files = _files(bag)
    total = 0
    for f in files:
        assert is_finished(f), f"{f.name} has no footer"
        with open(f, "rb") as fh:
            r = make_reader(fh)
            summary = r.get_summary()
            assert summary.chunk_indexes and summary.statistics.message_count > 0, f.name
            total += summary.statistics.message_count
            assert sum(1 for _ in r.iter_messages()) == summary.statistics.message_count
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == [f.name for f in files]
    assert meta["message_count"] == total
    assert sum(f["message_count"] for f in meta["files"]) == total
    by_topic: dict[str, list] = {}
    cls = {"/t/events": PbtEvent, "/t/seq": PbtSamples}
    with AnyReader([bag]) as r:
        assert r.message_count == total
        for c, _, raw in r.messages():
            if c.topic in cls:
                by_topic.setdefault(c.topic, []).append(deserialize_message(raw, cls[c.topic]))
    for t in meta["topics_with_message_count"]:
        name = t["topic_metadata"]["name"]
        if name in by_topic:
            assert t["message_count"] == len(by_topic[name]), name
    return by_topic


def test_killed_recorder_resumes_its_bag_repaired_and_without_duplicates(
    ros_node, recorder, tmp_path, wait
):
    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    pub_e = ros_node.create_publisher(PbtEvent, "/t/events", qos.PBT_EVENTS)
    pub_s = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    params = dict(chunk_interval=0.2, topics_allow=["/t/.*"])
    rec = recorder("recorder", **params)
    _following(rec, ["/t/events", "/t/seq"], wait)
    for i in range(20):
        pub_e.publish(PbtEvent(peak_index=i))
        pub_s.publish(PbtSamples(first_index=i))
    _first_file(tmp_path, wait)
    bag = _bag_dir(tmp_path / "data")
    first = _files(bag)[0]
    wait(lambda: _salvaged(first, "/t/events") == 20, 30, what="20 events on disk")
    rec.popen.send_signal(signal.SIGKILL)
    rec.popen.wait(10)

    # the restarted recorder gets all 20 events and sample batches again (transient local) and
    # must skip those it has
    rec2 = recorder("recorder2", **params)
    _following(rec2, ["/t/events", "/t/seq"], wait)
    assert f"continuing {bag}" in rec2.output()
    for i in range(20, 30):
        pub_e.publish(PbtEvent(peak_index=i))
        pub_s.publish(PbtSamples(first_index=i))

    def second_file_has_all():
        files = _files(bag)
        return len(files) >= 2 and _salvaged(files[-1], "/t/events") == 10

    wait(second_file_has_all, 30, what="10 new events in the new file")
    rec2.popen.send_signal(signal.SIGTERM)
    assert rec2.popen.wait(15) == 0, rec2.output()[-3000:]
    # every event again (transient local), and the sample batches the first recorder had on
    # disk (samples are transient local too: a late subscriber must not lose them)
    skipped = int(re.search(r"(\d+) duplicates skipped", rec2.output()).group(1))
    assert 20 <= skipped <= 40
    assert [p.name for p in (tmp_path / "data" / "bags").iterdir()] == [bag.name]  # one bag

    by_topic = _check_bag_with_standard_readers(bag)
    assert sorted(m.peak_index for m in by_topic["/t/events"]) == list(range(30))
    assert sorted(m.first_index for m in by_topic["/t/seq"]) == list(range(30))


def test_bag_repair_command_makes_a_killed_bag_readable(ros_node, recorder, tmp_path, wait):
    from sensorhub_common.paths import executable
    from sensorhub_msgs.msg import PbtSamples

    pub = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    rec = recorder(chunk_interval=0.2, topics_allow=["/t/.*"])
    _following(rec, ["/t/seq"], wait)
    for i in range(40):
        pub.publish(PbtSamples(first_index=i))
    _first_file(tmp_path, wait)
    bag = _bag_dir(tmp_path / "data")
    (f,) = _files(bag)
    wait(lambda: _salvaged(f, "/t/seq") == 40, 30, what="40 messages on disk")
    rec.popen.send_signal(signal.SIGKILL)
    rec.popen.wait(10)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] < 40 + 50  # written while recording (at most 5 s old)

    r = subprocess.run(
        [executable("sensorhub_tools", "sensorhub"), "bag", "repair", str(bag)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired" in r.stdout and "metadata.yaml rewritten" in r.stdout
    by_topic = _check_bag_with_standard_readers(bag)
    assert [m.first_index for m in by_topic["/t/seq"]] == list(range(40))
    again = subprocess.run(
        [executable("sensorhub_tools", "sensorhub"), "bag", "repair", str(bag)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_full_disk_pauses_cleanly_and_resumes(ros_node, recorder, small_disk, wait):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from sensorhub_msgs.msg import PbtSamples

    diags = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, qos.DIAGNOSTICS)
    filler = small_disk / "filler"
    filler.write_bytes(os.urandom(2 * 1024 * 1024))
    pub = ros_node.create_publisher(PbtSamples, "/t/seq", qos.pbt_samples(0.05))
    rec = recorder(
        data_root=str(small_disk),
        topics_allow=["/t/.*"],
        compression="none",
        chunk_size_kib=64,
        disk_reserve_mib=2,
        disk_warn_mib=5,
    )
    _following(rec, ["/t/seq"], wait)
    sent = 0

    def status():
        for arr in reversed(diags[-5:]):
            for s in arr.status:
                if s.name == "mcap_recorder: recording":
                    return s
        return None

    def publish_until(level):
        nonlocal sent
        assert rec.alive(), rec.output()[-3000:]
        m = PbtSamples(first_index=sent)
        m.values = list(os.urandom(8 * 1024))  # 8 Ki float32 = 32 KiB, ~640 KB/s
        pub.publish(m)
        sent += 1
        s = status()
        return s is not None and s.level == level and s

    wait(lambda: publish_until(DiagnosticStatus.WARN), 60, what="WARN: disk nearly full")
    s = wait(lambda: publish_until(DiagnosticStatus.ERROR), 60, what="ERROR: not recording")
    assert "NOT recording" in s.message and "resumes by itself" in s.message
    assert rec.alive()
    bag = _bag_dir(small_disk)
    (first,) = _files(bag)
    from mcap_recorder.mcapfile import is_finished

    assert is_finished(first)  # finished cleanly before the disk was full

    filler.unlink()  # space comes back (4 MiB free: above the reserve, below the warning)
    wait(lambda: len(_files(bag)) == 2, 30, what="recording resumed in a new file")

    def recording_again():
        s = status()
        return s is not None and s.level == DiagnosticStatus.WARN and "nearly full" in s.message

    wait(recording_again, 30, what="WARN (recording) instead of ERROR")
    for i in range(5):
        pub.publish(PbtSamples(first_index=10_000 + i))
    wait(lambda: _salvaged(_files(bag)[1], "/t/seq") >= 5, 30, what="recorded after resuming")
    rec.popen.send_signal(signal.SIGTERM)
    assert rec.popen.wait(15) == 0, rec.output()[-3000:]
    by_topic = _check_bag_with_standard_readers(bag)  # no empty files, exact metadata
    got = [m.first_index for m in by_topic["/t/seq"]]
    assert got == sorted(got) and len(set(got)) == len(got)
    assert list((small_disk / "bags").iterdir()) == [bag]
