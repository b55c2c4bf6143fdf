"""Bags in ``data/`` were written by an earlier recorder: they still read and repair.

``pbt_0.mcap`` and ``pbt_1.mcap`` are the two split files of bag ``pbt`` (``pbt_metadata.yaml``
its metadata.yaml): 24 PbtSamples and 6 PbtEvent messages, 15 per file, three zstd chunks each.
``pbt_1_cut.mcap`` is ``pbt_1.mcap`` cut inside its third chunk, as a killed recorder leaves it.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import yaml
from rclpy.serialization import deserialize_message

from mcap_recorder.mcapfile import is_finished, mcap_files, summarize
from mcap_recorder.repair import repair_bag, salvage_messages
from sensorhub_msgs.msg import PbtEvent, PbtSamples

DATA = Path(__file__).parent / "data"
SAMPLES, EVENTS = "/pbt/samples", "/pbt/events"


def _bag(tmp_path: Path, second: str) -> Path:
    bag = tmp_path / "pbt"
    bag.mkdir()
    shutil.copy(DATA / "pbt_0.mcap", bag / "pbt_0.mcap")
    shutil.copy(DATA / second, bag / "pbt_1.mcap")
    shutil.copy(DATA / "pbt_metadata.yaml", bag / "metadata.yaml")
    return bag


def _metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def _topic_counts(info: dict) -> dict:
    return {
        t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]
    }


def test_an_earlier_bag_reads_with_exact_counts(tmp_path):
    bag = _bag(tmp_path, "pbt_1.mcap")
    files = mcap_files(bag)
    assert [f.name for f in files] == ["pbt_0.mcap", "pbt_1.mcap"]
    assert all(is_finished(f) for f in files)
    summaries = [summarize(f) for f in files]
    assert [s.count for s in summaries] == [15, 15]
    assert [{t.name: t.count for t in s.topics.values()} for s in summaries] == [
        {SAMPLES: 12, EVENTS: 3}
    ] * 2
    types = {t.name: t.type for t in summaries[0].topics.values()}
    assert types == {
        SAMPLES: "sensorhub_msgs/msg/PbtSamples",
        EVENTS: "sensorhub_msgs/msg/PbtEvent",
    }
    messages = [(c.topic, m) for f in files for c, m in salvage_messages(f)]
    samples = [deserialize_message(m.data, PbtSamples) for t, m in messages if t == SAMPLES]
    events = [deserialize_message(m.data, PbtEvent) for t, m in messages if t == EVENTS]
    assert [s.first_index for s in samples] == [i * 8 for i in range(24)]
    assert [e.peak_index for e in events] == [i * 8 + 3 for i in range(3, 24, 4)]
    assert _metadata(bag)["message_count"] == 30


def test_an_earlier_bag_repairs_as_nothing_to_do(tmp_path):
    bag = _bag(tmp_path, "pbt_1.mcap")
    reports = repair_bag(bag)
    assert [r.action for r in reports] == ["ok", "ok"]
    info = _metadata(bag)
    assert info["message_count"] == 30
    assert _topic_counts(info) == {SAMPLES: 24, EVENTS: 6}
    assert info["relative_file_paths"] == ["pbt_0.mcap", "pbt_1.mcap"]


def test_an_earlier_file_cut_mid_chunk_repairs_to_its_intact_chunks(tmp_path):
    bag = _bag(tmp_path, "pbt_1_cut.mcap")
    cut = bag / "pbt_1.mcap"
    assert not is_finished(cut)
    assert Counter(c.topic for c, _ in salvage_messages(cut)) == {SAMPLES: 7, EVENTS: 1}
    reports = repair_bag(bag)
    assert [(r.action, r.messages) for r in reports] == [("ok", 0), ("repaired", 8)]
    assert reports[1].lost_bytes == 150
    assert is_finished(cut)
    assert summarize(cut).count == 8
    info = _metadata(bag)
    assert info["message_count"] == 23
    assert _topic_counts(info) == {SAMPLES: 19, EVENTS: 4}
    samples = [
        deserialize_message(m.data, PbtSamples).first_index
        for f in mcap_files(bag)
        for c, m in salvage_messages(f)
        if c.topic == SAMPLES
    ]
    assert samples == [i * 8 for i in range(19)]
