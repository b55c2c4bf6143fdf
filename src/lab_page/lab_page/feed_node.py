"""lab_feed: the lab page's topics at page rates, for any WebSocket server (ours or
foxglove_bridge).

Follows each configured topic (raw CDR, QoS matched to its publishers, :mod:`sensorhub_common.
discovery`) and republishes its newest message at most at the configured rate under the node's
namespace (``/tim240/scan_filtered`` -> ``/lab/tim240/scan_filtered``), reliable and transient
local, so a late page gets the last state at once. The page prefers these topics and falls back
to the originals when no feed runs. The rules are in :mod:`lab_page.feed`.
"""

from __future__ import annotations

import socket
import time

from rclpy.node import Node

from lab_page.feed import Throttle, check_feeds, parse_feeds
from sensorhub_common import diagnostics as diag
from sensorhub_common import qos
from sensorhub_common.discovery import DISCOVERY_PERIOD, TopicFollower, import_message
from sensorhub_common.params import Param, ParameterError, ParamSet
from sensorhub_common.runner import run_node

DEFAULT_FEEDS = [
    "/tim240/scan_filtered=2.0",
    "/tim240/zones=4.0",
    "/tim240/markers=0.2",
    "/diagnostics_agg=0.33",
    "/pbt/event_history=1.0",
]
FLUSH_HZ = 20.0  # pending messages leave at most this much after their token is due

PARAMS = [
    Param("feeds", DEFAULT_FEEDS, "'/topic=HZ': relay the topic's newest message at most HZ "
          "times a second, under this node's namespace", check=check_feeds, item_type=str,
          read_only=True),
    DISCOVERY_PERIOD,
]  # fmt: skip


class LabFeedNode(Node):
    def __init__(self, **kwargs):
        super().__init__("lab_feed", **kwargs)
        self.params = ParamSet(self, PARAMS)
        v = self.params.snapshot()
        self.rates = parse_feeds(v["feeds"])
        self.outputs = {t: self.resolve_topic_name(t.lstrip("/")) for t in self.rates}
        loops = [t for t, out in self.outputs.items() if out == t]
        if loops:
            raise ParameterError(
                f"lab_feed: {', '.join(loops)} would be republished onto itself; run the node "
                "in a namespace (the graph uses /lab)"
            )
        self.follower = TopicFollower(
            self, self.rates.__contains__, 1, self._on_new, self._on_message, self._on_gone
        )
        self.create_timer(v["discovery_period"], self.follower.refresh)
        self.create_timer(1.0 / FLUSH_HZ, self._flush)
        self.diag = diag.Updater(self, hardware_id=f"lab page feed on {socket.gethostname()}")
        self.diag.add("feeds", self._diag_feeds)
        self.follower.refresh()
        self.get_logger().info(
            "relaying "
            + ", ".join(
                f"{t} -> {self.outputs[t]} at <= {hz:g} Hz" for t, hz in self.rates.items()
            )
        )

    # -- the follower's callbacks
    def _on_new(self, name: str, type_name: str, _infos):
        pub = self.create_publisher(import_message(type_name), self.outputs[name], qos.WEB_VIEW)
        return {"pub": pub, "throttle": Throttle(self.rates[name])}

    def _on_message(self, tr, data: bytes, _info) -> None:
        out = tr.data["throttle"].offer(data, time.monotonic())
        if out is not None:
            tr.data["pub"].publish(out)

    def _on_gone(self, tr) -> None:
        self.destroy_publisher(tr.data["pub"])

    def _flush(self) -> None:
        now = time.monotonic()
        for tr in self.follower.topics.values():
            out = tr.data["throttle"].due(now)
            if out is not None:
                tr.data["pub"].publish(out)

    # -- diagnostics
    def _diag_feeds(self, stat) -> None:
        missing = [t for t in self.rates if t not in self.follower.topics]
        if missing:
            stat.summary(diag.WARN, f"no publisher yet: {', '.join(missing)}")
        else:
            stat.summary(diag.OK, f"relaying {len(self.rates)} topic(s)")
        for t, hz in self.rates.items():
            tr = self.follower.topics.get(t)
            th = tr.data["throttle"] if tr is not None else None
            stat.add(
                f"{t} (<= {hz:g} Hz)",
                f"{th.received} in, {th.sent} out" if th else "not published",
            )
        for t, why in self.follower.skipped.items():
            stat.add(f"{t} skipped", why)


def main(args=None) -> None:
    run_node(LabFeedNode, args=args)


if __name__ == "__main__":
    main()
