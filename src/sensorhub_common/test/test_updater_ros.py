"""A real Updater publishes REP 107 DiagnosticArrays on /diagnostics over DDS."""

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter

from sensorhub_common import qos
from sensorhub_common.diagnostics import (
    WARN,
    FrequencyStatus,
    FrequencyStatusParam,
    Updater,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher_node():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = rclpy.create_node("diag_source", context=ctx)
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    yield node, ex
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def test_updater_round_trip(publisher_node, ros_node, wait):
    node, ex = publisher_node
    got = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", got.append, qos.DIAGNOSTICS)
    up = Updater(node, period=0.2, hardware_id="pty:/dev/pbt")
    freq = FrequencyStatus(FrequencyStatusParam({"min": 100.0, "max": 100.0}), name="sample rate")
    up.add(freq)
    up.add("link", lambda s: (s.summary(WARN, "port down, retrying"), s.add("retries", 3)))
    up.add("broken", lambda s: 1 / 0)

    def statuses():
        ex.spin_once(timeout_sec=0.05)
        names = {s.name: s for a in got for s in a.status}
        return names if "diag_source: link" in names else None

    names = wait(statuses, timeout=20, what="a DiagnosticArray from the Updater")
    link = names["diag_source: link"]
    assert link.level == b"\x01" and link.message == "port down, retrying"
    assert link.hardware_id == "pty:/dev/pbt"
    assert [(kv.key, kv.value) for kv in link.values] == [("retries", "3")]
    rate = names["diag_source: sample rate"]
    assert rate.level == b"\x02" and rate.message == "No events recorded."
    broken = names["diag_source: broken"]
    assert broken.level == b"\x02" and "ZeroDivisionError" in broken.message

    # the period is a validated parameter
    res = node.set_parameters([Parameter(Updater.PERIOD_PARAM, value=-1.0)])
    assert not res[0].successful
    assert node.set_parameters([Parameter(Updater.PERIOD_PARAM, value=0.5)])[0].successful
    assert up.period == 0.5


@pytest.mark.parametrize("bad", [float("inf"), 1e300, 1e-9, 0.0, float("nan"), 61.0])
def test_period_bounds_refused_and_old_timer_kept(publisher_node, bad):
    node, ex = publisher_node
    up = Updater(node, period=0.2, hardware_id="x")
    got = []
    node.create_subscription(DiagnosticArray, "/diagnostics", got.append, qos.DIAGNOSTICS)
    res = node.set_parameters([Parameter(Updater.PERIOD_PARAM, value=bad)])
    assert not res[0].successful
    assert up.period == 0.2
    # the old timer still fires: updates keep coming after the refused set
    n0 = len(got)
    for _ in range(200):
        ex.spin_once(timeout_sec=0.05)
        if len(got) >= n0 + 2:
            break
    assert len(got) >= n0 + 2


def test_period_limits_accepted(publisher_node):
    node, _ = publisher_node
    up = Updater(node, period=1.0)
    for v in (0.1, 60.0, 1.0):
        assert node.set_parameters([Parameter(Updater.PERIOD_PARAM, value=v)])[0].successful
        assert up.period == v
