"""The wheels path's stand-in for ``ros2 bag record`` (PyPI has no rosbag2), slot ``recorder``.

Records the graph's topics to ``data_root/bags/`` as rosbag2-layout MCAP.
Reliable subscriptions (transient local where the publishers offer it) so reliable topics are
recorded completely; raw CDR bytes go untouched into a :class:`~mcap_recorder.bag.BagWriter`.
SIGINT/SIGTERM finish the file (summary + footer) through ``on_shutdown``.

Restarts and full disks:

- A recorder restarted after a crash continues the newest bag when it is unfinished and younger
  than ``resume_window``: new files get the next indexes, transient-local messages already in
  the bag are not written again, and the unfinished files are repaired in a background thread
  (recording starts first). Older unfinished bags are repaired too.
- Free space is checked every half second and after every chunk: below ``disk_reserve_mib`` the
  file is finished cleanly (footer, metadata) and recording pauses (ERROR in diagnostics, the
  messages are counted as dropped); it resumes by itself, in a new file of the same bag, once
  the reserve is free again. A write that still fails with ENOSPC is handled the same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from rclpy.node import Node

from mcap_recorder.bag import BagSettings, BagWriter, SplitPolicy
from mcap_recorder.mcapfile import (
    COMPRESSIONS,
    disk_free_bytes,
    is_disk_full,
    mcap_files,
    summarize,
)
from mcap_recorder.repair import bag_is_unfinished, repair_bag, repair_file
from sensorhub_common import paths
from sensorhub_common.diagnostics import ERROR, OK, WARN, Updater
from sensorhub_common.discovery import (
    DISCOVERY_PERIOD,
    TopicFollower,
    follow_filter,
    follow_params,
    offered_qos_dicts,
)
from sensorhub_common.params import Param, ParamSet
from sensorhub_common.runner import run_node
from sensorhub_common.schema import SchemaCache

MIB = 1024 * 1024
TICK_S = 0.1  # flush/split timer; a chunk is flushed this much before chunk_interval
SPACE_CHECK_S = 0.5
FAST_DISCOVERY_S = 3.0  # after start, discover every TICK_S (restart cost)
REPAIR_DELAY_S = 2.0  # repairs start after recording has restarted


def _reserve_check(values: dict) -> str | None:
    need = 2 * values["chunk_size_kib"] * 1024
    if values["disk_reserve_mib"] * MIB < need:
        return (
            f"disk_reserve_mib ({values['disk_reserve_mib']}) must hold two chunks "
            f"(2 x chunk_size_kib = {need / MIB:.1f} MiB): the file must still be finishable"
        )
    if values["disk_warn_mib"] < values["disk_reserve_mib"]:
        return "disk_warn_mib must be >= disk_reserve_mib"
    return None


PARAMS = [
    Param("data_root", "", "Data root (empty: $SENSORHUB_DATA_ROOT, then ./data)", read_only=True),
    Param(
        "bag_prefix",
        "sensorhub",
        "Bag directory name prefix (a timestamp is appended)",
        read_only=True,
    ),
    *follow_params("record"),
    Param("compression", "zstd", "Chunk compression", choices=tuple(COMPRESSIONS), read_only=True),
    Param(
        "chunk_size_kib",
        1024,
        "Chunk size before compression [KiB]",
        min=4,
        max=65536,
        read_only=True,
    ),
    Param(
        "chunk_interval",
        1.0,
        "Finish a chunk at least this often [s]: most a kill can lose",
        min=0.05,
        max=600.0,
        read_only=True,
    ),
    Param(
        "split_size_mib",
        1024,
        "Start a new file at this size [MiB] (0 = never)",
        min=0,
        max=1 << 20,
        read_only=True,
    ),
    Param(
        "split_duration",
        3600.0,
        "Start a new file after this long [s] (0 = never)",
        min=0.0,
        max=1e7,
        read_only=True,
    ),
    DISCOVERY_PERIOD,
    Param(
        "subscription_depth",
        1000,
        "Queue depth of each ROS subscription",
        min=1,
        max=100000,
        read_only=True,
    ),
    Param("disk_warn_mib", 512, "Free space below this: WARN [MiB]", min=1, max=1 << 30),
    Param(
        "disk_reserve_mib",
        64,
        "Free space kept: below it the file is finished and recording pauses [MiB]",
        min=1,
        max=1 << 30,
    ),
    Param(
        "resume_window",
        300.0,
        "Continue an unfinished bag written to this recently [s] (0 = always a new bag)",
        min=0.0,
        max=1e7,
        read_only=True,
    ),
]


def _bag_settings(p: dict) -> BagSettings:
    return BagSettings(
        compression=p["compression"],
        chunk_size=p["chunk_size_kib"] * 1024,
        chunk_interval_s=p["chunk_interval"],
        split=SplitPolicy(max_bytes=p["split_size_mib"] * MIB, max_duration_s=p["split_duration"]),
        tick_period_s=TICK_S,
    )


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("mcap_recorder", **kwargs)
        self.params = ParamSet(self, PARAMS, cross_check=_reserve_check, on_change=self._on_change)
        p = self.params.snapshot()
        self._filter = follow_filter(p)
        self.bags_root = paths.data_root(p["data_root"]) / "bags"
        self.bags_root.mkdir(parents=True, exist_ok=True)
        directory, resume, others = self._choose_bag(p)
        self.bag = BagWriter(directory, _bag_settings(p), resume=resume, open_now=False)
        prior = [f.path for f in self.bag.files]  # a resumed bag's files, repaired below
        self.state = "starting"
        self.free = disk_free_bytes(self.bags_root)
        self.dropped = 0  # messages not recorded because no file was open (disk full)
        self.repaired: list[str] = []
        self.repair_errors: list[str] = []
        self._space_checked = 0.0
        self._size_at_check = 0
        self.get_logger().info(
            f"{'continuing' if resume else 'recording to'} {directory}"
            + (f" ({len(self.bag.files)} files there)" if resume else "")
        )
        # Repairs run beside recording: recording restarts first (restart cost).
        self._repairs_done: list = []
        self._repair_lock = threading.Lock()
        self._repair_thread = threading.Thread(
            target=self._repair_worker,
            args=(directory if resume else None, prior, others, p["compression"]),
            name="bag-repair",
            daemon=True,
        )
        self._repair_thread.start()

        self.schemas = SchemaCache()
        self.follower = TopicFollower(
            self, self._wanted, p["subscription_depth"], self._on_new, self._on_message
        )
        self.updater = Updater(self, hardware_id=f"MCAP recorder on {os.uname().nodename}")
        self.updater.add("recording", self._diag)
        self._tick = self.create_timer(TICK_S, self._on_tick)
        self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)
        self._started = time.monotonic()
        self._fast = self.create_timer(TICK_S, self._fast_discovery)
        # Subscribe first, then open the file (importing mcap's writer): DDS matches the
        # publishers meanwhile and keeps what arrives in the readers' history (restart cost).
        self.follower.refresh()
        self._check_space(force=True)

    # -- which bag

    def _choose_bag(self, p: dict) -> tuple[Path, bool, list[Path]]:
        """(directory, resume?, other unfinished bags to repair)."""
        prefix = p["bag_prefix"] + "_"
        bags = sorted(
            (d for d in self.bags_root.iterdir() if d.is_dir() and d.name.startswith(prefix)),
            key=lambda d: d.stat().st_mtime,
        )
        unfinished = [d for d in bags if bag_is_unfinished(d)]
        if p["resume_window"] > 0 and bags and bags[-1] in unfinished:
            newest = bags[-1]
            files = mcap_files(newest)
            last = max((f.stat().st_mtime for f in files), default=newest.stat().st_mtime)
            if time.time() - last <= p["resume_window"]:
                return newest, True, [d for d in unfinished if d != newest]
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = self.bags_root / f"{p['bag_prefix']}_{stamp}"
        n = 1
        while directory.exists():
            directory = self.bags_root / f"{p['bag_prefix']}_{stamp}-{n}"
            n += 1
        return directory, False, unfinished

    def _repair_worker(self, resumed: Path | None, prior: list[str], others, compression):
        # After the first discovery burst and at a lower priority: restarting recording
        # quickly matters more than repairing (the GIL is shared with the executor).
        time.sleep(REPAIR_DELAY_S)
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        summaries = []
        if resumed is not None:
            for name in prior:
                path = resumed / name
                try:
                    rep = repair_file(path, compression)
                    if rep.action == "repaired":
                        self._note_repair(f"{path}: {rep.messages} messages")
                    if path.exists():
                        summaries.append(summarize(path))
                except Exception as e:
                    self._note_repair(f"{path}: {type(e).__name__}: {e}", error=True)
        with self._repair_lock:
            self._repairs_done.append(summaries)
        for d in others:
            try:
                reps = repair_bag(d, compression)
                n = sum(r.action in ("repaired", "removed") for r in reps)
                if n:
                    self._note_repair(f"{d}: {n} files repaired")
            except Exception as e:
                self._note_repair(f"{d}: {type(e).__name__}: {e}", error=True)

    def _note_repair(self, text: str, error: bool = False) -> None:
        with self._repair_lock:
            (self.repair_errors if error else self.repaired).append(text)
        if error:
            self.get_logger().error(f"repair failed: {text}")
        else:
            self.get_logger().info(f"repaired {text}")

    def _adopt_repairs(self) -> None:
        with self._repair_lock:
            done, self._repairs_done = self._repairs_done, []
        for summaries in done:
            self.bag.adopt(summaries)

    # -- topics

    def _wanted(self, topic: str) -> bool:
        return self._filter(topic)  # looked up per call: parameters may replace the filter

    def _on_change(self, changed: dict) -> None:
        p = self.params.snapshot()
        self._filter = follow_filter(p)
        if "discovery_period" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)

    def _fast_discovery(self) -> None:
        if time.monotonic() - self._started > FAST_DISCOVERY_S:
            self.destroy_timer(self._fast)
            return
        self.follower.refresh()

    def _on_new(self, name: str, type_name: str, infos) -> dict:
        # A topic that vanishes and comes back keeps its bag topic (one channel per topic).
        tid = self.bag.topic_id(name, type_name)
        if tid is None:
            schema = self.schemas.get(type_name)
            tid = self.bag.add_topic(name, type_name, schema, offered_qos_dicts(infos))
        return {"tid": tid}

    def _on_message(self, tr, data: bytes, info) -> None:
        if not self.bag.is_open:
            self.dropped += 1
            return
        recv = info.get("received_timestamp") if isinstance(info, dict) else None
        src = info.get("source_timestamp") if isinstance(info, dict) else None
        log_time = recv or time.time_ns()
        try:
            # transient local: a new subscription gets the publishers' history again
            self.bag.write(
                tr.data["tid"],
                data,
                log_time,
                src or log_time,
                dedupe="transient_local" in tr.qos_key,
            )
        except OSError as e:
            self._io_error(e)
            return
        if self.bag.file_size - self._size_at_check >= self.bag.settings.chunk_size:
            self._check_space(force=True)

    # -- disk

    def _on_tick(self) -> None:
        self._adopt_repairs()
        self._check_space()
        try:
            self.bag.tick()
        except OSError as e:
            self._io_error(e)

    def _check_space(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._space_checked < SPACE_CHECK_S:
            return
        self._space_checked = now
        self._size_at_check = self.bag.file_size
        p = self.params.snapshot()
        reserve = p["disk_reserve_mib"] * MIB
        try:
            self.free = disk_free_bytes(self.bags_root)
        except OSError:
            return
        if self.bag.is_open and self.free < reserve:
            self.get_logger().error(
                f"disk nearly full ({self.free / MIB:.1f} MiB free, reserve "
                f"{p['disk_reserve_mib']} MiB): finishing {self.bag.current_file} and pausing"
            )
            try:
                self.bag.close_file()
            except OSError as e:
                self.get_logger().error(f"could not finish the file: {e}")
                self.bag.abandon_file()
            self.state = "paused: disk full"
        elif not self.bag.is_open and not self.bag.closed:
            margin = max(2 * self.bag.settings.chunk_size, MIB)
            if self.free >= reserve + margin:
                try:
                    self.bag.open_file()
                except OSError as e:
                    self._io_error(e)
                    return
                if self.state != "starting":
                    self.get_logger().info(
                        f"{self.free / MIB:.1f} MiB free again: recording to "
                        f"{self.bag.current_file}"
                    )
                self.state = "recording"
            elif self.state == "starting":
                self.state = "waiting for space"
                self.get_logger().error(
                    f"not recording: {self.free / MIB:.1f} MiB free, reserve "
                    f"{p['disk_reserve_mib']} MiB; starts by itself when space is freed"
                )

    def _io_error(self, e: OSError) -> None:
        what = "disk full" if is_disk_full(e) else f"write error: {e}"
        self.get_logger().error(f"{what}: stopped writing {self.bag.current_file}; pausing")
        self.bag.abandon_file()
        self.state = f"paused: {what}"
        self._space_checked = time.monotonic()  # retry after SPACE_CHECK_S

    # -- diagnostics

    def _diag(self, stat) -> None:
        b = self.bag
        p = self.params.snapshot()
        free_mib = self.free / MIB
        if not b.is_open:
            stat.summary(
                ERROR,
                f"NOT recording ({self.state}): {free_mib:.0f} MiB free, reserve "
                f"{p['disk_reserve_mib']} MiB; resumes by itself",
            )
        elif free_mib < p["disk_warn_mib"]:
            stat.summary(
                WARN,
                f"disk nearly full: {free_mib:.0f} MiB free (warn below {p['disk_warn_mib']} MiB)",
            )
        else:
            stat.summary(OK, f"recording {len(self.follower.topics)} topics")
        stat.add("state", self.state)
        stat.add("bag", str(b.directory))
        stat.add("file", str(b.current_file) if b.is_open else "")
        stat.add("files", len(b.files))
        stat.add("messages", b.message_count)
        stat.add("free MiB", f"{free_mib:.1f}")
        stat.add("warn MiB", p["disk_warn_mib"])
        stat.add("reserve MiB", p["disk_reserve_mib"])
        stat.add("dropped (not recording)", self.dropped)
        stat.add("duplicates skipped", b.deduplicated)
        with self._repair_lock:
            stat.add("repaired", len(self.repaired))
            if self.repair_errors:
                stat.add("repair errors", "; ".join(self.repair_errors[-3:]))
        for t in b.topics:
            stat.add(t.name, t.count)

    def on_shutdown(self) -> None:
        self._repair_thread.join(10.0)
        self._adopt_repairs()
        try:
            self.bag.close()
        except OSError as e:
            print(f"mcap_recorder: could not finish the file: {e}", file=sys.stderr)
            self.bag.abandon_file()
        # stderr, not the ROS logger: the context is already shut down (no /rosout)
        print(
            f"mcap_recorder: closed {self.bag.directory} ({self.bag.message_count} messages, "
            f"{len(self.bag.files)} files, {self.bag.deduplicated} duplicates skipped, "
            f"{self.dropped} dropped while not recording)",
            file=sys.stderr,
            flush=True,
        )


def main(args=None) -> None:
    run_node(RecorderNode, args=args)


if __name__ == "__main__":
    main()
