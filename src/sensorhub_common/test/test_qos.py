"""The QoS profiles are exactly the table in docs/design.md."""

import pytest
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, ReliabilityPolicy

from sensorhub_common import qos

R, BE = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
VOL, TL = DurabilityPolicy.VOLATILE, DurabilityPolicy.TRANSIENT_LOCAL


@pytest.mark.parametrize(
    ("profile", "reliability", "depth", "durability"),
    [
        (qos.pbt_samples(0.05), R, 100, TL),
        (qos.PBT_EVENTS, R, 1000, TL),
        (qos.SCAN, BE, 5, VOL),
        (qos.SEC110_FILES, R, 100, TL),
        (qos.DIAGNOSTICS, R, 10, VOL),
    ],
    ids=["pbt_samples", "pbt_events", "scan", "sec110_files", "diagnostics"],
)
def test_table(profile, reliability, depth, durability):
    assert profile.reliability == reliability
    assert profile.history == HistoryPolicy.KEEP_LAST
    assert profile.depth == depth
    assert profile.durability == durability


def test_pbt_samples_deadline_is_two_batch_periods_and_liveliness_automatic_1s():
    p = qos.pbt_samples(0.05)
    assert p.deadline == Duration(nanoseconds=100_000_000)
    assert p.liveliness == LivelinessPolicy.AUTOMATIC
    assert p.liveliness_lease_duration == Duration(seconds=1)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_pbt_samples_rejects_bad_period(bad):
    with pytest.raises(ValueError, match="batch period"):
        qos.pbt_samples(bad)


def test_viewer_is_best_effort_copy_and_recorder_never_requires_deadline():
    v = qos.viewer(qos.PBT_EVENTS)
    assert v.reliability == BE and v.durability == VOL
    assert qos.PBT_EVENTS.reliability == R  # the original is untouched
    rec = qos.recorder(qos.pbt_samples(0.05))
    assert rec.reliability == R and rec.deadline == Duration() and rec.depth >= 100


def test_live_is_reliable_volatile_and_matches_the_samples_publisher():
    p = qos.live(qos.pbt_samples(0.05))
    assert p.reliability == R and p.durability == VOL and p.depth >= 100
