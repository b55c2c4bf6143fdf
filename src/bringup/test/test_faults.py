"""Fault tests of the whole sim graph under `sensorhub up`: real processes, real DDS.

* kill -9 of each node in turn: respawned, the PBT index goes on (every gap is
  booked in lost_before), the recording has only the recorder's own outage, and SIGTERM of the
  whole graph leaves complete MCAP files (summary written; read with the `mcap` library).
* sensor faults at once: serial unplug/replug and a garbage flood (pbt_sim), TiM240 TCP drops
  (tim240_sim), SEC110 uploads cut mid-way (sec110_sim): nothing restarts, PBT data keeps
  flowing, and each fault shows in /diagnostics.
* data disk nearly full (a small tmpfs as data root; needs root): reported by sec110_ftp,
  mcap_recorder and system_monitor, the graph keeps running.

Each test copies the installed graph (free ports, data root in tmp_path); conftest gives the run
its own ROS_DOMAIN_ID. Waits are on conditions with generous deadlines (a loaded 2-core CI box).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sensorhub_testing import tmpfs
from sensorhub_testing.installed import require_sensorhub

pytestmark = pytest.mark.integration

SENSORHUB = require_sensorhub(
    "pbt_driver", "foxglove_gateway", "tim240_bridge", "sec110_ftp", "system_monitor"
)

STARTUP = 90.0  # a loaded 2-core box starts ten rclpy processes slowly
DEADLINE = 60.0  # any single condition after start-up
DISCOVERY_GAP = 5 * 800  # slots: a respawned publisher's batches before DDS matched it


def node_entry(data: dict, name: str) -> dict:
    return next(n for n in data["nodes"] if n["name"] == name)


def up(procs, graph: Path, data: Path, *extra: str):
    argv = [SENSORHUB, "up", "--graph", graph, "--profile", "sim", "--data-root", data]
    return procs.start("sensorhub", [*argv, "--no-color", *extra])


def state(data: Path) -> dict:
    try:
        return json.loads((data / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}


def nodes(data: Path) -> dict[str, dict]:
    return {n["name"]: n for n in state(data).get("nodes", [])}


def all_running(data: Path):
    n = nodes(data)
    return n if n and all(v["state"] == "running" for v in n.values()) else None


class Listener:
    """/pbt/samples (recorder QoS: every batch) and /diagnostics of the graph, kept in lists."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray

        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtSamples

        self.lock = threading.Lock()
        # first_index, n, lost_before, lost_total, receive time
        self.batches: list[tuple[int, int, int, int, float]] = []
        self.diags: list[tuple[float, str, int, str, dict]] = []  # t, name, level, msg, values
        node.create_subscription(
            PbtSamples, "/pbt/samples", self._b, qos.recorder(qos.pbt_samples(0.05))
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._d, qos.DIAGNOSTICS)

    def _b(self, m) -> None:
        with self.lock:
            self.batches.append(
                (m.first_index, len(m.values), m.lost_before, m.lost_total, time.monotonic())
            )

    def _d(self, m) -> None:
        t = time.monotonic()
        with self.lock:
            for s in m.status:
                lvl = s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")
                kv = {v.key: v.value for v in s.values}
                self.diags.append((t, s.name, lvl, s.message, kv))

    def samples_after(self, t: float) -> int:
        with self.lock:
            return sum(b[1] for b in self.batches if b[4] > t)

    def status(self, name: str, pred, since: float = 0.0):
        """The first /diagnostics status called `name` since `since` for which pred(level,
        message, values) holds, or None."""
        with self.lock:
            for t, n, lvl, msg, kv in self.diags:
                if t >= since and n == name and pred(lvl, msg, kv):
                    return (lvl, msg, kv)
        return None

    def names(self) -> set[str]:
        with self.lock:
            return {d[1] for d in self.diags}


def index_gaps(batches) -> list[tuple[int, int, int]]:
    """(gap, lost_before, unseen) wherever consecutive batches (first, n, lost_before,
    lost_total, ...) are not contiguous. `unseen`: slots of the gap that the driver did not
    book as lost (lost_total is a running total, so it covers batches this reader missed):
    > 0 only where published batches never reached this reader."""
    out = []
    for a, b in itertools.pairwise(batches):
        end = a[0] + a[1]
        if b[0] != end:
            out.append((b[0] - end, b[2], (b[0] - end) - (b[3] - a[3])))
    return out


def read_bag_batches(bags: Path) -> tuple[list[tuple[int, int, int, int]], list[str], int]:
    """Recorded /pbt/samples (first, n, lost_before, lost_total) sorted, files lacking a
    summary, number of files."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtSamples

    out, bad, files = [], [], 0
    for f in sorted(bags.rglob("*.mcap")):
        files += 1
        with open(f, "rb") as fh:
            r = make_reader(fh)
            if r.get_summary() is None:
                bad.append(f.name)
            for _, _ch, msg in r.iter_messages(topics=["/pbt/samples"]):
                m = deserialize_message(msg.data, PbtSamples)
                out.append((m.first_index, len(m.values), m.lost_before, m.lost_total))
    return sorted(set(out)), bad, files


def test_kill9_each_node_then_sigterm_leaves_complete_mcap(
    procs, ros_node, tmp_path, wait, graph_copy
):
    data = tmp_path / "data"
    sup = up(procs, graph_copy(), data, "--record", "--role", "sensors")
    lis = Listener(ros_node)
    wait(lambda: all_running(data), STARTUP, what="the sensors graph running")
    assert "mcap_recorder" in nodes(data) or "rosbag2_recorder" in nodes(data)
    wait(lambda: lis.samples_after(0) > 800, DEADLINE, what="/pbt/samples flowing")
    # the driver saves its index once per second: before the first save a restart begins at 0
    wait(
        (data / "run" / "pbt_driver.state.json").exists,
        DEADLINE,
        what="the driver's first saved state",
    )

    recorder_outages = []
    kills = {}
    first = ["pbt_driver", "pbt_sim", "mcap_recorder"]  # the data path, then every other node
    for victim in first + sorted(set(nodes(data)) - set(first)):
        if victim not in nodes(data):
            continue
        before = wait(lambda: all_running(data), DEADLINE, what="all running")[victim]
        t_kill = time.monotonic()
        os.kill(before["pid"], signal.SIGKILL)
        kills[victim] = t_kill
        wait(
            lambda v=victim, b=before: (
                (n := all_running(data)) and n[v]["pid"] != b["pid"] and n[v]["restarts"] >= 1
            ),
            DEADLINE,
            what=f"{victim} respawned",
        )
        t_back = time.monotonic()
        wait(
            lambda t=t_back: lis.samples_after(t) > 800,
            DEADLINE,
            what=f"PBT samples flowing again after kill -9 of {victim}",
        )
        if victim == "mcap_recorder":
            recorder_outages.append((t_kill, time.monotonic()))
    # a few seconds of data after the last restart (the recorder is subscribing again)
    t_end_live = time.monotonic() + 5.0
    wait(lambda: lis.samples_after(t_end_live) > 3 * 800, DEADLINE, what="8 s more of samples")

    with lis.lock:
        seen = sorted(set(lis.batches))
    (tmp_path / "seen.json").write_text(json.dumps({"kills": kills, "batches": seen}))
    # The index continued through every kill: first_index only grows (no index used twice),
    # and each jump is booked as lost by the driver (after a SIGKILL it may book more). A
    # respawned driver's first batches reach no one until DDS has matched its new publisher
    # (volatile topic), so the driver's kill may leave up to DISCOVERY_GAP slots unseen here.
    firsts = [b[0] for b in seen]
    assert len(firsts) == len(set(firsts)) and firsts == sorted(firsts), "index went back"
    gaps = index_gaps(seen)
    assert any(lb > 0 for _, lb, _ in gaps), "the outages left no booked gap"
    unseen = [u for _, _, u in gaps if u > 0]
    assert len(unseen) <= 1 and all(u <= DISCOVERY_GAP for u in unseen), (gaps, kills)

    # SIGTERM of the whole graph: an ordered stop, every MCAP file complete.
    t_term = time.monotonic()
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.popen.wait(60) == 0, sup.output()[-3000:]
    rec, incomplete, files = read_bag_batches(data / "bags")
    assert files >= 1 and not incomplete, f"MCAP files without a summary: {incomplete}"
    # The recording has the driver's booked gaps, its respawn's discovery gap and the
    # recorder's own outage, nothing else.
    unseen = [u for _, _, u in index_gaps(rec) if u > 0]
    assert len(unseen) <= 1 + len(recorder_outages), index_gaps(rec)
    # Nothing the live subscriber saw after the recorder came back is missing from the bag.
    t_rec_back = max((t for _, t in recorder_outages), default=0.0)
    with lis.lock:
        # until 2 s before SIGTERM: batches still in flight then, and those the driver
        # publishes after the recorder stopped (it stops first), are not the recorder's loss
        after = {(b[0], b[1]) for b in lis.batches if t_rec_back + 5.0 < b[4] < t_term - 2.0}
    assert after, "no live batches after the recorder came back"
    missing = after - {(b[0], b[1]) for b in rec}
    assert not missing, f"{len(missing)} batches seen live are not in the recording"


def test_sensor_faults_are_reported_and_the_graph_keeps_running(
    procs, ros_node, tmp_path, wait, graph_copy
):
    def faults(g):
        sim = node_entry(g, "pbt_sim")
        # unplugs every 15 s (some land after start-up) and a garbage flood from 2 s on
        sim["args"] = [
            *sim["args"],
            "--disconnect-at",
            "15",
            "30",
            "45",
            "60",
            "75",
            "--disconnect-for",
            "3",
            "--garbage-every",
            "0.01",
            "--garbage-bytes",
            "48",
        ]
        tim = node_entry(g, "tim240_sim")
        tim["args"] = [*tim["args"], "--drop-every", "6"]
        sec = node_entry(g, "sec110_sim")
        sec["args"] = [*sec["args"], "--interval", "1", "--abort-fraction", "0.5"]

    data = tmp_path / "data"
    up(procs, graph_copy(faults), data, "--role", "sensors")
    lis = Listener(ros_node)
    running = wait(lambda: all_running(data), STARTUP, what="the sensors graph running")
    wait(lambda: lis.samples_after(0) > 400, DEADLINE, what="/pbt/samples flowing")

    def seen(name, pred, what):
        return wait(lambda: lis.status(name, pred), DEADLINE + 30, what=what)

    error, ok = 2, 0
    # serial unplug and replug: the port goes down, then receives again
    down = seen(
        "pbt_driver: serial port",
        lambda lvl, m, kv: lvl == error,
        "pbt_driver reporting the unplugged port",
    )
    t_down = time.monotonic()
    seen(
        "pbt_driver: serial port",
        lambda lvl, m, kv: lvl == ok and int(kv["disconnects"]) >= 1,
        "pbt_driver reporting the port back after the replug",
    )
    # garbage flood: bad bytes counted and reported
    seen(
        "pbt_driver: losses",
        lambda lvl, m, kv: int(kv.get("discarded bytes (resync)", 0)) > 0 and lvl >= 1,
        "pbt_driver reporting the garbage",
    )
    # TiM240 TCP drops: the bridge reports the lost connection and reconnects
    seen(
        "tim240_bridge: device",
        lambda lvl, m, kv: int(kv["connection losses"]) >= 1,
        "tim240_bridge counting a dropped connection",
    )
    seen(
        "tim240_bridge: device",
        lambda lvl, m, kv: lvl == ok and int(kv["connection losses"]) >= 1,
        "tim240_bridge streaming again after a drop",
    )
    # an FTP client aborting mid-upload
    seen(
        "sec110_ftp: uploads",
        lambda lvl, m, kv: int(kv["uploads incomplete"]) >= 1,
        "sec110_ftp reporting an incomplete upload",
    )
    seen(
        "sec110_ftp: uploads",
        lambda lvl, m, kv: int(kv["files announced"]) >= 1,
        "sec110_ftp still announcing complete files",
    )

    # the graph kept running: no restart anywhere, PBT data still flowing
    t = time.monotonic()
    wait(lambda: lis.samples_after(t) > 400, DEADLINE, what="PBT samples after the faults")
    now = nodes(data)
    assert {n: v["pid"] for n, v in now.items()} == {n: v["pid"] for n, v in running.items()}
    assert all(v["state"] == "running" and v["restarts"] == 0 for v in now.values()), now
    assert down[1], "an unplugged port needs a message a person understands"
    assert t_down > 0


def test_data_disk_nearly_full_is_reported_and_the_graph_keeps_running(
    procs, ros_node, tmp_path, wait, graph_copy
):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the data disk")

    def small_disk(g):
        node_entry(g, "sec110_ftp")["parameters"]["min_free_bytes"] = 16_000_000
        rec = node_entry(g, "mcap_recorder")
        rec["parameters"].update(disk_warn_mib=24, disk_reserve_mib=8)
        sec = node_entry(g, "sec110_sim")
        sec["args"] = [*sec["args"], "--interval", "1"]

    with tmpfs(tmp_path / "data", 64) as data:
        sup = up(procs, graph_copy(small_disk), data, "--record", "--role", "sensors")
        try:
            lis = Listener(ros_node)
            running = wait(lambda: all_running(data), STARTUP, what="the sensors graph running")
            wait(lambda: lis.samples_after(0) > 400, DEADLINE, what="/pbt/samples flowing")
            wait(
                lambda: lis.status("sec110_ftp: disk", lambda lvl, m, kv: lvl == 0),
                DEADLINE,
                what="sec110_ftp disk OK before the disk fills",
            )
            st = os.statvfs(data)
            fill = st.f_bavail * st.f_frsize - 2 * 1024 * 1024  # leave 2-3 MiB
            with open(data / "filler.bin", "wb") as f:
                f.truncate(0)
                block = b"\0" * (1 << 20)
                for _ in range(max(0, fill) >> 20):
                    f.write(block)
            t_full = time.monotonic()
            for name, level, what in (
                ("sec110_ftp: disk", 2, "sec110_ftp refusing uploads"),
                ("system_monitor: disk", 1, "system_monitor reporting the data disk"),
            ):
                wait(
                    lambda n=name, lv=level: lis.status(n, lambda lvl, m, kv: lvl >= lv, t_full),
                    DEADLINE,
                    what=what,
                )
            # The recorder's first /diagnostics may reach this listener only now (1 Hz, DDS
            # discovery on a loaded machine): wait for it rather than expect it already.
            wait(
                lambda: any(n.startswith("mcap_recorder:") for n in lis.names()),
                DEADLINE,
                what="mcap_recorder publishing diagnostics",
            )
            wait(
                lambda: any(
                    lis.status(n, lambda lvl, m, kv: lvl >= 1, t_full)
                    for n in lis.names()
                    if n.startswith("mcap_recorder:")
                ),
                DEADLINE,
                what="mcap_recorder reporting the nearly full disk",
            )
            t = time.monotonic()
            wait(lambda: lis.samples_after(t) > 400, DEADLINE, what="PBT samples on a full disk")
            now = nodes(data)
            assert all(v["state"] == "running" for v in now.values()), now
            assert {n: v["pid"] for n, v in now.items()} == {
                n: v["pid"] for n, v in running.items()
            }
        finally:
            sup.stop()
