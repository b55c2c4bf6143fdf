"""mcap_recorder: record the graph's topics to ``data_root/bags/`` as rosbag2-layout MCAP.

Reliable subscriptions (transient local where the publishers offer it) so reliable topics are
recorded completely; raw CDR bytes go untouched into a :class:`~foxglove_gateway.bag.BagWriter`.
SIGINT/SIGTERM finish the file (summary + footer) through ``on_shutdown``.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

from rclpy.node import Node

from foxglove_gateway.bag import COMPRESSIONS, BagWriter, SplitPolicy
from foxglove_gateway.discovery import TopicFollower, offered_qos_dicts
from foxglove_gateway.schema import SchemaCache
from foxglove_gateway.topics import TopicFilter, check_patterns
from sensorhub_common import paths
from sensorhub_common.diagnostics import OK, Updater
from sensorhub_common.params import Param, ParamSet
from sensorhub_common.runner import spin_node

SPECS = [
    Param("data_root", "", "Data root (empty: $SENSORHUB_DATA_ROOT, then ./data)", read_only=True),
    Param(
        "bag_prefix",
        "sensorhub",
        "Bag directory name prefix (a timestamp is appended)",
        read_only=True,
    ),
    Param(
        "topics_allow",
        [".*"],
        "Regexes (full match): topics to record",
        check=check_patterns,
        item_type=str,
    ),
    Param(
        "topics_deny",
        [""],
        "Regexes (full match): topics never recorded, wins over allow",
        check=check_patterns,
        item_type=str,
    ),
    Param("compression", "zstd", "Chunk compression", choices=tuple(COMPRESSIONS), read_only=True),
    Param("chunk_size_kib", 1024, "Chunk size before compression [KiB]", 4, 65536, read_only=True),
    Param(
        "chunk_interval",
        1.0,
        "Finish a chunk at least this often [s]: most a kill can lose",
        0.05,
        600.0,
        read_only=True,
    ),
    Param(
        "split_size_mib",
        1024,
        "Start a new file at this size [MiB] (0 = never)",
        0,
        1 << 20,
        read_only=True,
    ),
    Param(
        "split_duration",
        3600.0,
        "Start a new file after this long [s] (0 = never)",
        0.0,
        1e7,
        read_only=True,
    ),
    Param("discovery_period", 1.0, "Seconds between topic discovery passes", 0.1, 60.0),
    Param(
        "subscription_depth",
        1000,
        "Queue depth of each ROS subscription",
        1,
        100000,
        read_only=True,
    ),
]


class RecorderNode(Node):
    def __init__(self):
        super().__init__("mcap_recorder")
        self.params = ParamSet(self, SPECS, on_change=self._on_change)
        p = self.params.snapshot()
        self._filter = TopicFilter(
            [x for x in p["topics_allow"] if x], [x for x in p["topics_deny"] if x]
        )
        root = paths.data_root(p["data_root"])
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = root / "bags" / f"{p['bag_prefix']}_{stamp}"
        n = 1
        while directory.exists():
            directory = root / "bags" / f"{p['bag_prefix']}_{stamp}-{n}"
            n += 1
        self.bag = BagWriter(
            directory,
            compression=p["compression"],
            chunk_size=p["chunk_size_kib"] * 1024,
            chunk_interval_s=p["chunk_interval"],
            split=SplitPolicy(p["split_size_mib"] * 1024 * 1024, p["split_duration"]),
        )
        self.get_logger().info(f"recording to {directory}")
        self.schemas = SchemaCache()
        self.follower = TopicFollower(
            self,
            self._wanted,
            p["subscription_depth"],
            self._on_new,
            self._on_message,
            lambda tr: None,
        )
        self.updater = Updater(self)
        self.updater.add("recording", self._diag)
        self._tick = self.create_timer(0.25, self.bag.tick)
        self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)
        self.follower.refresh()

    def _wanted(self, topic: str) -> bool:
        return self._filter(topic)  # looked up per call: parameters may replace the filter

    def _on_change(self, changed: dict) -> None:
        p = self.params.snapshot()
        self._filter = TopicFilter(
            [x for x in p["topics_allow"] if x], [x for x in p["topics_deny"] if x]
        )
        if "discovery_period" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)

    def _on_new(self, name: str, type_name: str, infos) -> dict:
        # A topic that vanishes and comes back keeps its bag topic (one channel per topic).
        for tid, t in enumerate(self.bag.topics):
            if t.name == name and t.type == type_name:
                return {"tid": tid}
        schema = self.schemas.get(type_name)
        return {"tid": self.bag.add_topic(name, type_name, schema, offered_qos_dicts(infos))}

    def _on_message(self, tr, data: bytes, info) -> None:
        recv = info.get("received_timestamp") if isinstance(info, dict) else None
        src = info.get("source_timestamp") if isinstance(info, dict) else None
        log_time = recv or time.time_ns()
        self.bag.write(tr.data["tid"], data, log_time, src or log_time)

    def _diag(self, stat) -> None:
        b = self.bag
        stat.summary(OK, f"recording {len(self.follower.topics)} topics")
        stat.add("bag", str(b.directory))
        stat.add("file", b.files[-1].path)
        stat.add("files", len(b.files))
        stat.add("messages", b.message_count)
        for t in b.topics:
            stat.add(t.name, t.count)

    def on_shutdown(self) -> None:
        self.bag.close()
        # stderr, not the ROS logger: the context is already shut down (no /rosout)
        print(
            f"mcap_recorder: closed {self.bag.directory} ({self.bag.message_count} messages, "
            f"{len(self.bag.files)} files)",
            file=sys.stderr,
            flush=True,
        )


def main(args=None) -> None:
    sys.exit(spin_node(RecorderNode, args=args))


if __name__ == "__main__":
    main()
