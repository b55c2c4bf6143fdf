"""The recorder's restart cost, as bench/gateway.py measures it (not a benchmark:
tools/run_bench.sh skips `_*.py`): mcap_recorder killed with SIGKILL under a 20 Hz sequence and
5 Hz events, started again after the graph's respawn delay; what the bag lost and when it
recorded again.
"""

from __future__ import annotations

import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Procs, exe

SEQ_LOAD = r"""
import time, rclpy
from sensorhub_msgs.msg import PbtEvent, PbtSamples
from sensorhub_common import qos
rclpy.init()
n = rclpy.create_node("bench_recorder_load")
ps = n.create_publisher(PbtSamples, "/bench/seq", qos.pbt_samples(0.05))
pe = n.create_publisher(PbtEvent, "/bench/events", qos.PBT_EVENTS)
i = 0
t_next = time.monotonic()
while rclpy.ok():
    now = time.time_ns()
    m = PbtSamples(first_index=i)
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, 1_000_000_000)
    ps.publish(m)
    if i % 4 == 0:
        e = PbtEvent(peak_index=i)
        e.header.stamp = m.header.stamp
        pe.publish(e)
    i += 1
    t_next += 0.05
    time.sleep(max(0.0, t_next - time.monotonic()))
"""


def graph_recorder_respawn_delay() -> float:
    """What the supervisor waits before restarting mcap_recorder (the graph's own setting)."""
    from bringup.backoff import RestartPolicy
    from bringup.graph import load_graph

    g = load_graph(ROOT / "src" / "bringup" / "config" / "graph.yaml")
    return RestartPolicy.from_graph(g.node("mcap_recorder").get("respawn")).delay


def _kill_and_respawn(procs: Procs, argv: list, kills: int, respawn_delay: float):
    """The recorder killed `kills` times, each started again after `respawn_delay`; the epoch
    ns of every kill and every new start."""
    rec = procs.start("recorder_0", argv)
    kill_times, spawn_times = [], []
    time.sleep(6.0)
    for k in range(kills):
        rec.send_signal(signal.SIGKILL)
        kill_times.append(time.time_ns())
        rec.wait(10)
        time.sleep(respawn_delay)
        spawn_times.append(time.time_ns())
        rec = procs.start(f"recorder_{k + 1}", argv)
        time.sleep(6.0)
    rec.send_signal(signal.SIGINT)
    rec.wait(30)
    return kill_times, spawn_times


def _read_bag(bag: Path) -> dict:
    """Sequence stamps (first_index -> header stamp ns), event peaks and unfinished files."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    out = {"seq": {}, "events": [], "unfinished": 0, "files": sorted(bag.glob("*.mcap"))}
    for f in out["files"]:
        with open(f, "rb") as fh:
            r = make_reader(fh)
            if r.get_summary() is None:
                out["unfinished"] += 1
            for _, ch, msg in r.iter_messages():
                if ch.topic == "/bench/seq":
                    m = deserialize_message(msg.data, PbtSamples)
                    out["seq"][m.first_index] = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                elif ch.topic == "/bench/events":
                    out["events"].append(deserialize_message(msg.data, PbtEvent).peak_index)
    return out


def _seconds(ns: int | None) -> float | None:
    return round(ns / 1e9, 3) if ns is not None else None


def _per_kill(stamps: list[int], t_kill: int, t_spawn: int, log: Path) -> dict:
    """Around one kill: publish time lost before it, and when recording resumed."""
    following = _log_time(log, "following /bench/seq")
    before = [t for t in stamps if t < t_kill]
    after = [t for t in stamps if t >= t_kill]
    return {
        "lost_before_kill_s": _seconds(t_kill - before[-1] if before else None),
        "recording_again_after_kill_s": _seconds(after[0] - t_kill if after else None),
        "recording_again_after_spawn_s": _seconds(after[0] - t_spawn if after else None),
        "subscribed_after_spawn_s": _seconds(following - t_spawn if following else None),
    }


def run_recorder_restarts(procs: Procs, tmp: Path, kills: int, respawn_delay: float) -> dict:
    """SIGKILL the recorder ``kills`` times; what the bag lost and when recording resumed."""
    rec_exe = exe("mcap_recorder", "mcap_recorder", optional=True)
    if rec_exe is None:
        return {"error": "mcap_recorder not built"}
    root = tmp / "rec_data"
    pf = tmp / "recorder.yaml"
    pf.write_text(
        "/**:\n  ros__parameters:\n"
        f"    data_root: {root}\n    topics_allow: ['/bench/.*']\n    chunk_interval: 1.0\n"
    )
    load = procs.start("recorder_load", [sys.executable, "-c", SEQ_LOAD])
    argv = [rec_exe, "--ros-args", "--params-file", pf]
    kill_times, spawn_times = _kill_and_respawn(procs, argv, kills, respawn_delay)
    load.send_signal(signal.SIGINT)
    load.wait(10)

    (bag,) = list((root / "bags").iterdir())
    rec = _read_bag(bag)
    stamps = sorted(rec["seq"].values())
    per_kill = [
        _per_kill(stamps, t_kill, t_spawn, tmp / f"recorder_{k + 1}.log")
        for k, (t_kill, t_spawn) in enumerate(zip(kill_times, spawn_times, strict=True))
    ]
    lb = [k["lost_before_kill_s"] for k in per_kill if k["lost_before_kill_s"] is not None]
    ra = [
        k["recording_again_after_kill_s"]
        for k in per_kill
        if k["recording_again_after_kill_s"] is not None
    ]
    events = rec["events"]
    return {
        "kills": kills,
        "respawn_delay_s": respawn_delay,
        "chunk_interval_s": 1.0,
        "bag_dirs": len(list((root / "bags").iterdir())),
        "files": len(rec["files"]),
        "files_without_footer": rec["unfinished"],
        "sequence_recorded": len(rec["seq"]),
        "events_recorded": len(events),
        "events_recorded_twice": len(events) - len(set(events)),
        "max_lost_before_kill_s": max(lb) if lb else None,
        "max_recording_again_after_kill_s": max(ra) if ra else None,
        "median_recording_again_after_kill_s": statistics.median(ra) if ra else None,
        "per_kill": per_kill,
        "goals": {"lost_before_kill_s": 1.0, "recording_again_after_kill_s": 1.0},
    }


def _log_time(path: Path, text: str) -> int | None:
    """Epoch ns of the first ROS log line containing ``text`` ("[INFO] [<epoch s>] ...")."""
    try:
        for line in path.read_text(errors="replace").splitlines():
            if text in line and line.startswith("["):
                return int(float(line.split("[")[2].split("]")[0]) * 1e9)
    except (OSError, ValueError, IndexError):
        pass
    return None
