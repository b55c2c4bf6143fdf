"""Each sensorhub message round-trips through CDR serialization field for field."""

import math

import pytest
from rclpy.serialization import deserialize_message, serialize_message

from sensorhub_msgs.msg import PbtEvent, PbtSamples, Sec110File, ZoneStatus


def _samples():
    m = PbtSamples()
    m.header.stamp.sec, m.header.stamp.nanosec = 1_764_000_000, 123_456_789
    m.header.frame_id = "pbt"
    m.first_index = 2**40 + 7
    m.sample_rate = 800.0
    m.values = [0.5, -1.25, 1024.0]
    m.envelope = [0.0, 0.5, 2.0]
    m.baseline = 12.5
    m.lost_before = 3
    m.lost_total = 2**33
    return m


def _event():
    m = PbtEvent()
    m.header.frame_id = "pbt"
    m.peak_index, m.start_index, m.end_index = 1000, 995, 1010
    m.peak, m.baseline, m.amplitude = 900.5, 100.25, 800.25
    m.width, m.area, m.rise_time = 0.01875, 3.5, 0.00375
    m.pulse_backend, m.pulse_width_us, m.pulse_sent, m.pulse_delay = "pigpio", 250, True, 0.0031
    return m


def _file():
    m = Sec110File()
    m.path = "sec110/2026-11-24/run_0001.csv"
    m.size = 5 * 2**30
    m.sha256 = "ab" * 32
    m.client_address = "127.0.0.1:50123"
    m.transfer_seconds = 1.5
    return m


def _zones():
    m = ZoneStatus()
    m.names = ["front", "door"]
    m.occupied = [True, False]
    m.nearest_range = [0.75, math.inf]
    m.point_count = [12, 0]
    return m


def _fields(msg):
    out = {}
    for name in msg.get_fields_and_field_types():
        v = getattr(msg, name)
        out[name] = (
            _fields(v)
            if hasattr(v, "get_fields_and_field_types")
            else (list(v) if not isinstance(v, (str, bytes, int, float, bool)) else v)
        )
    return out


@pytest.mark.parametrize("make", [_samples, _event, _file, _zones], ids=lambda f: f.__name__)
def test_round_trip(make):
    msg = make()
    data = serialize_message(msg)
    back = deserialize_message(data, type(msg))
    assert _fields(back) == _fields(msg)
    assert back == msg


def test_field_types_are_si_and_wide_enough():
    t = PbtSamples.get_fields_and_field_types()
    assert t["first_index"] == "uint64" and t["lost_before"] == "uint64"
    assert t["values"] == "sequence<float>" and t["envelope"] == "sequence<float>"
    e = PbtEvent.get_fields_and_field_types()
    assert e["width"] == "double" and e["rise_time"] == "double" and e["pulse_delay"] == "double"
    assert Sec110File.get_fields_and_field_types()["size"] == "uint64"
