"""ros2msg schema building from .msg files (pure, no ROS graph)."""

from __future__ import annotations

import pytest

from sensorhub_common.schema import (
    SEPARATOR,
    SchemaCache,
    SchemaError,
    build_ros2msg,
    dependencies,
    split_type,
)

GRAPH_TYPES = [
    "sensorhub_msgs/msg/PbtSamples",
    "sensorhub_msgs/msg/PbtEvent",
    "sensorhub_msgs/msg/Sec110File",
    "sensorhub_msgs/msg/ZoneStatus",
    "sensor_msgs/msg/LaserScan",
    "visualization_msgs/msg/MarkerArray",
    "diagnostic_msgs/msg/DiagnosticArray",
]


def _sections(text: str) -> list[str]:
    return [line[5:] for line in text.splitlines() if line.startswith("MSG: ")]


def test_split_type():
    assert split_type("std_msgs/msg/Header") == ("std_msgs", "Header")
    assert split_type("std_msgs/Header") == ("std_msgs", "Header")
    for bad in ("Header", "a/b/c/d", "pkg/srv/X", "pkg/1x"):
        with pytest.raises(SchemaError):
            split_type(bad)


def test_pbt_samples_schema_has_two_part_headers():
    text = build_ros2msg("sensorhub_msgs/msg/PbtSamples")
    assert text.startswith("# A batch of consecutive PBT")
    assert _sections(text) == ["std_msgs/Header", "builtin_interfaces/Time"]
    assert f"\n{SEPARATOR}\nMSG: std_msgs/Header\n" in text
    assert "std_msgs/msg/Header" not in text.replace("std_msgs/Header header", "")
    assert len(SEPARATOR) == 80


def test_marker_array_pulls_every_dependency_once():
    secs = _sections(build_ros2msg("visualization_msgs/msg/MarkerArray"))
    assert len(secs) == len(set(secs))
    for dep in (
        "visualization_msgs/Marker",
        "std_msgs/Header",
        "builtin_interfaces/Time",
        "builtin_interfaces/Duration",
        "geometry_msgs/Pose",
        "std_msgs/ColorRGBA",
        "sensor_msgs/CompressedImage",
        "visualization_msgs/MeshFile",
    ):
        assert dep in secs


def test_dependency_parsing_rules():
    text = """# comment with pkg/Type in it
Header header
uint8 CONST=3
string<=10 bounded
int32[4] fixed
Other[] same_pkg  # trailing comment
other_pkg/msg/Thing[<=3] bounded_seq
time stamp
"""
    assert dependencies(text, "mine") == [
        "std_msgs/Header",
        "mine/Other",
        "other_pkg/Thing",
        "builtin_interfaces/Time",
    ]


def test_custom_prefix_and_missing_dependency(tmp_path):
    msg = tmp_path / "share" / "demo" / "msg"
    msg.mkdir(parents=True)
    (msg / "A.msg").write_text("B b\nB[] more\n")
    (msg / "B.msg").write_text("float64 x")  # no trailing newline
    text = build_ros2msg("demo/msg/A", [tmp_path])
    assert text == f"B b\nB[] more\n{SEPARATOR}\nMSG: demo/B\nfloat64 x\n"
    (msg / "C.msg").write_text("demo/Missing m\n")
    cache = SchemaCache([tmp_path])
    for _ in range(2):  # remembered, raised again
        with pytest.raises(SchemaError, match="Missing"):
            cache.get("demo/msg/C")


@pytest.mark.parametrize("type_name", GRAPH_TYPES)
def test_schema_decodes_rclpy_cdr_with_mcap_ros2(type_name):
    """The schema text must decode what rclpy serializes (independent decoder: mcap-ros2)."""
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.serialization import serialize_message

    from sensorhub_common.discovery import import_message

    cls = import_message(type_name)
    msg = cls()
    if hasattr(msg, "header"):
        msg.header.frame_id = "frame"
    else:  # MarkerArray
        from visualization_msgs.msg import Marker

        msg.markers = [Marker(ns="zones", text="frame")]
    text = build_ros2msg(type_name)
    schema = Schema(id=1, name=type_name, encoding="ros2msg", data=text.encode())
    decode = DecoderFactory().decoder_for("cdr", schema)
    decoded = decode(serialize_message(msg))
    if hasattr(msg, "header"):
        assert decoded.header.frame_id == "frame"
    else:
        assert decoded.markers[0].ns == "zones"
        assert decoded.markers[0].text == "frame"
