"""Parameters: typed defaults with descriptors, validated at start-up and at run time."""

import pytest
import rclpy
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter

from sensorhub_common.params import Param, ParameterError, ParamSet

PARAMS = [
    Param("threshold", 50.0, "Event threshold above baseline [counts]", min=0.0),
    Param("batch_size", 40, "Samples per batch", min=1, max=4000),
    Param("format", "ascii", "Frame format", choices=("ascii", "binary")),
    Param("enabled", True, "Publish events"),
    Param("topics", [], "Topics", item_type=str),
    Param(
        "port", "/dev/ttyUSB0", "Serial port", check=lambda v: None if v else "must not be empty"
    ),
]


def _cross(v):
    if v["format"] == "binary" and v["batch_size"] > 1000:
        return "binary format needs batch_size <= 1000"
    return None


@pytest.fixture
def node_factory():
    ctxs = []

    def make(overrides=()):
        ctx = rclpy.Context()
        rclpy.init(context=ctx, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        ctxs.append(ctx)
        return rclpy.create_node("p", context=ctx, parameter_overrides=list(overrides))

    yield make
    for c in ctxs:
        rclpy.try_shutdown(context=c)


def test_declares_with_descriptors_and_defaults(node_factory):
    node = node_factory()
    changes = []
    ps = ParamSet(node, PARAMS, _cross, on_change=changes.append)
    assert ps["threshold"] == 50.0 and ps["topics"] == []
    d = node.describe_parameter("batch_size")
    assert d.description == "Samples per batch" and d.type == ParameterType.PARAMETER_INTEGER
    assert d.integer_range[0].from_value == 1 and d.integer_range[0].to_value == 4000
    assert "one of ascii, binary" in node.describe_parameter("format").additional_constraints
    assert node.describe_parameter("topics").dynamic_typing
    assert node.set_parameters([Parameter("topics", value=["/a", "/b"])])[0].successful
    r = node.set_parameters([Parameter("topics", value=[1, 2])])[0]
    assert not r.successful and "expected a list of str" in r.reason


def test_runtime_validation(node_factory):
    node = node_factory()
    changes = []
    ps = ParamSet(node, PARAMS, _cross, on_change=changes.append)
    r = node.set_parameters([Parameter("threshold", value=-1.0)])[0]
    assert not r.successful and "threshold" in r.reason and "minimum" in r.reason
    r = node.set_parameters([Parameter("format", value="hex")])[0]
    assert not r.successful and "'hex' is not one of" in r.reason
    r = node.set_parameters([Parameter("port", value="")])[0]
    assert not r.successful and r.reason == "port: must not be empty"
    assert node.set_parameters([Parameter("batch_size", value=2000)])[0].successful
    r = node.set_parameters([Parameter("format", value="binary")])[0]
    assert not r.successful and "batch_size <= 1000" in r.reason
    # float parameters accept integers (YAML "75")
    assert node.set_parameters([Parameter("threshold", value=75)])[0].successful
    assert ps["threshold"] == 75.0 and isinstance(ps["threshold"], float)
    assert changes[-1] == {"threshold": 75.0}
    assert ps["format"] == "ascii"


def test_bad_startup_value_names_node_and_parameter(node_factory):
    node = node_factory([Parameter("batch_size", value=0)])
    with pytest.raises(ParameterError, match=r"/p: batch_size: .*out of range"):
        ParamSet(node, PARAMS)


def test_bad_startup_cross_check(node_factory):
    node = node_factory([Parameter("format", value="binary"), Parameter("batch_size", value=2000)])
    with pytest.raises(ParameterError, match="batch_size <= 1000"):
        ParamSet(node, PARAMS, _cross)
