"""Every node of the sim graph is in the ROS graph exactly once, as an outside observer sees it.

`ros2 node list`, rqt_graph and Foxglove's connection graph read the graph's node names; two
nodes of one name confuse parameter services and diagnostics identity. The graph is started by
`sensorhub up --profile sim` (the plan's real command lines, remaps included) and watched by an
rclpy node in this test's own process for a window of several seconds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from sensorhub_testing.installed import require_sensorhub

pytestmark = pytest.mark.integration

SENSORHUB = require_sensorhub(
    "pbt_driver", "foxglove_gateway", "system_monitor", "tim240_bridge", "sec110_ftp"
)

STARTUP = 120.0  # the whole sim graph's rclpy processes on a loaded 2-core box
WINDOW = 12.0  # discovery announces and re-announces participants within this
# Nodes of the sim graph the observer must see (the web_view container's members included).
MUST_SEE = {"/pbt/pbt_driver", "/pbt/pbt_scope", "/lab/lab_feed", "/foxglove_gateway",
            "/system_monitor"}  # fmt: skip


def supervisor_running(data: Path) -> bool:
    try:
        st = json.loads((data / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return False
    nodes = st.get("nodes", [])
    return bool(nodes) and all(n["state"] == "running" for n in nodes)


def graph_names(node) -> Counter:
    """Fully qualified node names, each counted as often as the graph lists it."""
    return Counter(
        (ns.rstrip("/") + "/" + name) for name, ns in node.get_node_names_and_namespaces()
    )


def test_every_graph_node_name_is_seen_exactly_once(procs, tmp_path, wait, graph_copy, ros_node):
    data = tmp_path / "data"
    graph = graph_copy()
    argv = [SENSORHUB, "up", "--graph", graph, "--profile", "sim", "--data-root", data]
    procs.start("sensorhub", [*argv, "--no-color"])
    wait(lambda: supervisor_running(data), STARTUP, what="every node of the sim graph running")
    wait(
        lambda: set(graph_names(ros_node)) >= MUST_SEE,
        STARTUP,
        what=f"the observer seeing {sorted(MUST_SEE)}",
    )
    me = ros_node.get_fully_qualified_name()
    most: Counter = Counter()

    def look() -> None:
        for name, n in graph_names(ros_node).items():
            most[name] = max(most[name], n)

    end = time.monotonic() + WINDOW
    wait(lambda: look() or time.monotonic() >= end, WINDOW + 60, interval=0.2,
         what="the observation window")  # fmt: skip
    twice = {name: n for name, n in most.items() if n > 1 and name != me}
    assert not twice, f"node names listed more than once: {twice} (all: {dict(most)})"
    assert set(most) >= MUST_SEE
