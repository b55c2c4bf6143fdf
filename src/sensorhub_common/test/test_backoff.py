"""The shared retry delay grows, caps and resets."""

import pytest

from sensorhub_common.backoff import ExponentialBackoff


def test_grows_caps_and_resets():
    b = ExponentialBackoff(0.2, 1.0)
    assert [b.failed(10.0) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.next_try == 11.0
    b.reset()
    assert b.failed(0.0) == 0.2 and b.next_try == 0.2


def test_zero_first_delay_still_grows():
    b = ExponentialBackoff(0.0, 1.0, factor=10)
    assert [b.failed(0.0) for _ in range(4)] == [0.0, 0.01, 0.1, 1.0]


@pytest.mark.parametrize(("lo", "hi", "factor"), [(-1, 1, 2), (2, 1, 2), (0.1, 1, 0.5)])
def test_bad_settings_are_refused(lo, hi, factor):
    with pytest.raises(ValueError, match="backoff needs"):
        ExponentialBackoff(lo, hi, factor)
