"""`sensorhub bag repair` (the real CLI) on what it must not touch and on a torn bag of ours:
bytes of foreign files unchanged, nothing deleted, the original of a repaired file kept, and
the exit status saying which (0 repaired, 1 nothing to salvage, 2 not ours)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from rclpy.serialization import serialize_message

from mcap_recorder.bag import BagSettings, BagWriter
from mcap_recorder.metadata import METADATA_FILE
from sensorhub_common.schema import build_ros2msg
from sensorhub_msgs.msg import PbtSamples

SAMPLES = "sensorhub_msgs/msg/PbtSamples"


def sensorhub(*args) -> subprocess.CompletedProcess:
    from sensorhub_common.paths import executable

    argv = [executable("sensorhub_tools", "sensorhub"), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def torn_bag(root: Path, n: int = 120) -> tuple[Path, Path]:
    """A bag of ours whose writer was killed mid-file (no footer, cut inside a chunk)."""
    bag = BagWriter(root / "rec", BagSettings(chunk_size=4096), clock=time.monotonic)
    bag.add_topic("/pbt/samples", SAMPLES, build_ros2msg(SAMPLES), [])
    for i in range(n):
        m = PbtSamples(first_index=i * 40, sample_rate=800.0, values=[float(i)] * 40)
        bag.write(0, serialize_message(m), 1_700_000_000_000_000_000 + i)
        bag.tick()
    path = bag.current_file
    bag._stream.abandon()  # what SIGKILL leaves: the file as written so far
    bag._writer = bag._stream = None
    bag.closed = True
    return bag.directory, cut_mid_chunk(path) if n else path


def cut_mid_chunk(path: Path) -> Path:
    """``path`` cut in the middle of its last chunk record."""
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader

    starts, pos = [], 0
    with open(path, "rb") as f, contextlib.suppress(Exception):  # no footer: fails at the end
        for rec in StreamReader(f, emit_chunks=True).records:
            if isinstance(rec, Chunk):
                starts.append((pos, f.tell()))
            pos = f.tell()
    begin, end = starts[-1]
    with open(path, "r+b") as f:
        f.truncate((begin + end) // 2)
    return path


def foreign_mcap(path: Path, profile: str = "x-robot", library: str = "someone else") -> Path:
    """A valid, finished MCAP written by the mcap library, not a ROS 2 bag of ours."""
    from mcap.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f, chunk_size=256)
        w.start(profile=profile, library=library)
        sid = w.register_schema("s", "jsonschema", b"{}")
        cid = w.register_channel("/x", "json", sid)
        for i in range(50):
            w.add_message(cid, i, b'{"n": %d}' % i, i)
        w.finish()
    return path


def torn_copy(path: Path) -> Path:
    """``path`` without its last 100 bytes: unfinished, as a killed writer leaves a file."""
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 100)
    return path


def test_random_bytes_named_mcap_are_left_alone(tmp_path):
    photo = tmp_path / "photo.mcap"
    photo.write_bytes(os.urandom(1000))
    before = sha(photo)
    r = sensorhub("bag", "repair", photo)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not an MCAP file" in r.stdout and str(photo) in r.stdout
    assert sha(photo) == before and sorted(tmp_path.iterdir()) == [photo]


@pytest.mark.parametrize(
    ("profile", "library", "says"),
    [
        ("x-robot", "someone else", "profile 'x-robot', not a ROS 2 bag"),
        ("ros2", "someone else", "written by 'someone else', neither our recorder"),
    ],
)
def test_a_foreign_mcap_given_alone_is_left_alone_finished_or_torn(
    tmp_path, profile, library, says
):
    finished = foreign_mcap(tmp_path / "finished.mcap", profile, library)
    torn = torn_copy(foreign_mcap(tmp_path / "torn.mcap", profile, library))
    hashes = {p: sha(p) for p in (finished, torn)}
    r = sensorhub("bag", "repair", finished, torn)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{finished}: " in r.stdout and f"{torn}: " in r.stdout and says in r.stdout
    assert all(sha(p) == h for p, h in hashes.items())
    assert sorted(tmp_path.iterdir()) == sorted(hashes)  # no backup, no copy left behind


def test_an_mcap_with_our_header_but_foreign_records_is_left_alone(tmp_path):
    """The header is only the first word: a channel of JSON messages is no bag of ours."""
    path = torn_copy(foreign_mcap(tmp_path / "json.mcap", "ros2", "sensorhub mcap_recorder"))
    before = sha(path)
    r = sensorhub("bag", "repair", path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not a bag of ours: a schema of encoding 'jsonschema'" in r.stdout
    assert sha(path) == before and sorted(tmp_path.iterdir()) == [path]


def test_a_foreign_mcap_and_a_random_file_in_a_bag_are_untouched(tmp_path):
    bag, ours = torn_bag(tmp_path)
    other = foreign_mcap(bag / "other_robot.mcap")
    junk = bag / "not_really.mcap"
    junk.write_bytes(os.urandom(3000))
    hashes = {p: sha(p) for p in (other, junk)}
    r = sensorhub("bag", "repair", bag)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "profile 'x-robot', not a ROS 2 bag" in r.stdout
    assert "not_really.mcap: not an MCAP file" in r.stdout
    assert all(sha(p) == h for p, h in hashes.items())
    assert "repaired" in r.stdout  # our own file still repaired
    meta = (bag / METADATA_FILE).read_text()
    assert ours.name in meta and "other_robot" not in meta and "not_really" not in meta


def test_a_torn_bag_is_repaired_verified_and_its_original_kept(tmp_path):
    from mcap.reader import make_reader

    bag, path = torn_bag(tmp_path)
    torn = path.read_bytes()
    r = sensorhub("bag", "repair", bag)
    assert r.returncode == 0, r.stdout + r.stderr
    backup = path.with_name(path.name + ".orig")
    assert f"the original kept as {backup}" in r.stdout
    assert backup.read_bytes() == torn  # exactly what was there
    assert "bytes of torn tail dropped" in r.stdout and " 0 bytes of torn" not in r.stdout
    with open(path, "rb") as f:
        reader = make_reader(f)
        n = reader.get_summary().statistics.message_count
        assert sum(1 for _ in reader.iter_messages()) == n
    assert 100 <= n < 120  # the cut chunk's messages are lost, every other one is there
    assert f"repaired and verified: {n} messages kept" in r.stdout
    again = sensorhub("bag", "repair", bag)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert not list(bag.glob("*.orig1"))  # nothing repaired twice


def test_no_backup_drops_the_original_only_after_the_copy_verified(tmp_path):
    from mcap.reader import make_reader

    bag, path = torn_bag(tmp_path)
    r = sensorhub("bag", "repair", "--no-backup", bag)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired and verified" in r.stdout and "no backup kept" in r.stdout
    assert not list(bag.glob("*.orig*")) and not list(bag.glob("*.repair"))
    with open(path, "rb") as f:
        assert make_reader(f).get_summary().statistics.message_count >= 100


def test_help_documents_the_exit_status():
    r = sensorhub("bag", "repair", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "Exit status: 0 repaired and verified" in text and "2 not a bag of ours" in text


@pytest.mark.parametrize("where", ["bag", "file"])
def test_nothing_to_salvage_is_reported_and_never_removed(tmp_path, where):
    bag, path = torn_bag(tmp_path, n=0)  # a header and nothing else
    listing = sorted(p.name for p in bag.iterdir())
    before = sha(path)
    r = sensorhub("bag", "repair", bag if where == "bag" else path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing to salvage; left as it is" in r.stdout
    assert bag.is_dir() and sha(path) == before
    assert set(listing) <= {p.name for p in bag.iterdir()}  # nothing removed


def test_a_path_that_is_no_bag_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    r = sensorhub("bag", "repair", tmp_path, tmp_path / "missing")
    assert r.returncode == 2
    assert "no bag here" in r.stdout and "no such file or directory" in r.stdout
    assert (tmp_path / "notes.txt").read_text() == "hello"


def test_a_torn_file_of_ros2_bag_is_repaired(tmp_path):
    """ros2 bag's MCAP plugin writes with the C++ library's default name: that is a bag too."""
    from mcap.writer import Writer

    path = tmp_path / "rosbag2_0.mcap"
    with open(path, "wb") as f:
        w = Writer(f, chunk_size=1024)
        w.start(profile="ros2", library="libmcap 1.4.0")
        sid = w.register_schema(SAMPLES, "ros2msg", build_ros2msg(SAMPLES).encode())
        cid = w.register_channel("/pbt/samples", "cdr", sid, {"offered_qos_profiles": ""})
        for i in range(60):
            m = PbtSamples(first_index=i * 40, sample_rate=800.0, values=[float(i)] * 40)
            w.add_message(cid, i, serialize_message(m), i)
        w.finish()
    torn = torn_copy(path).read_bytes()
    r = sensorhub("bag", "repair", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired and verified" in r.stdout
    assert path.with_name(path.name + ".orig").read_bytes() == torn
