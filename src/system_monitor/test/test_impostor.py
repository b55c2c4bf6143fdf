"""A second process publishing OK diagnostics under a graph node's name: real processes over
real DDS (pbt_sim -> pbt_driver, an rclpy impostor), watched by system_monitor.

The impostor must not hide the real node: both are named by pid as duplicates, and when the
real one freezes (SIGSTOP) its diagnostics are reported silent although the impostor's flow.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

pytestmark = pytest.mark.integration

EXPECTED = ["name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver"]
START = 90.0  # three rclpy processes on a loaded 2-core box
DETECT = 30.0
NODE = "/PBT/system_monitor: node pbt_driver"
WATCHDOG = "/Host/system_monitor: watchdog"

IMPOSTOR = """
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensorhub_common import qos

rclpy.init()
node = rclpy.create_node("not_the_driver")
pub = node.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS)

def tick():
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [DiagnosticStatus(level=DiagnosticStatus.OK, name="pbt_driver: losses",
                                   message="all fine", hardware_id="serial impostor")]
    pub.publish(arr)

node.create_timer(0.5, tick)
print("publishing", flush=True)
rclpy.spin(node)
"""


def test_a_second_process_under_a_nodes_name_is_named_and_cannot_hide_a_frozen_one(
    graph, ros_node, wait, procs
):
    graph.sim()
    drv = graph.driver()
    graph.monitor(EXPECTED, startup_grace=5.0)
    w = graph.watcher(ros_node)
    wait(lambda: (s := w.get(NODE)) and s[0] == 0, START, what="pbt_driver alive")
    imp = procs.start("impostor", [sys.executable, "-u", "-c", IMPOSTOR])
    dup = f"two processes publish as pbt_driver: pid {drv.pid} (expected), pid {imp.pid}"
    wait(lambda: (s := w.get(NODE)) and s[0] == 2 and dup in s[1], DETECT,
         what="the duplicate named by pid")  # fmt: skip
    wd = wait(lambda: (s := w.get(WATCHDOG)) and dup in s[1] and s, DETECT, what="watchdog")
    assert "alive" not in wd[1]
    values = w.get(NODE)[3]
    assert f"pid {drv.pid} (expected)" in values["diagnostics from"]
    os.kill(drv.pid, signal.SIGSTOP)
    try:

        def frozen():
            s = w.get(NODE)
            return (
                s is not None and s[0] == 3 and "diagnostics silent" in s[1]
                and f"pid {imp.pid} publishes as pbt_driver, not the expected pid {drv.pid}"
                in s[1]
            )  # fmt: skip

        wait(frozen, DETECT, what="the frozen driver stale although the impostor is fresh")
    finally:
        os.kill(drv.pid, signal.SIGCONT)
    imp.stop()
    wait(lambda: (s := w.get(NODE)) and s[0] == 0, START, what="OK once the impostor is gone")
