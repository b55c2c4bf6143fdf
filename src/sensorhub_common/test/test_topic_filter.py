"""Topic allow/deny matching, rate rules and the rate limiter (pure)."""

from __future__ import annotations

import pytest

from sensorhub_common import topic_filter as tf


def test_filter_full_match_and_deny_wins():
    f = tf.TopicFilter(["/pbt/.*", "/diagnostics"], ["/pbt/debug.*"])
    assert f("/pbt/samples")
    assert f("/diagnostics")
    assert not f("/diagnostics_agg")  # full match, not prefix
    assert not f("/pbt/debug_raw")
    assert not f("/scan")


def test_empty_strings_mean_none():
    assert not tf.TopicFilter([""])("/x")
    assert tf.TopicFilter([".*"], [""])("/x")
    assert tf.parse_rate_rules([""]) == []


def test_bad_patterns_are_reported():
    assert tf.check_patterns(["/ok", "(unclosed"]) is not None
    assert tf.check_patterns([".*", ""]) is None
    assert "TOPIC_REGEX=HZ" in tf.check_rate_rules(["/pbt/samples"])
    assert "not a number" in tf.check_rate_rules(["/a=fast"])
    assert ">= 0" in tf.check_rate_rules(["/a=-1"])
    assert tf.check_rate_rules(["/a=5", "/b.*=0.5"]) is None


def test_rate_rules_first_match_wins():
    rules = tf.parse_rate_rules(["/pbt/samples=10", "/pbt/.*=2", "/scan=0"])
    assert tf.max_rate_for(rules, "/pbt/samples") == 10
    assert tf.max_rate_for(rules, "/pbt/events") == 2
    assert tf.max_rate_for(rules, "/scan") == 0
    assert tf.max_rate_for(rules, "/other") == 0


def _run(cap: float, in_hz: float, seconds: float, jitter: float = 0.0) -> list[float]:
    import random

    rnd = random.Random(1)
    lim = tf.RateLimiter(cap)
    passed = []
    n = int(in_hz * seconds)
    for i in range(n):
        t = i / in_hz + (rnd.uniform(-jitter, jitter) if jitter else 0.0)
        if lim.allow(t):
            passed.append(t)
    return passed


@pytest.mark.parametrize("cap", [1.0, 5.0, 7.0, 10.0])
def test_limiter_average_is_at_most_the_cap(cap):
    out = _run(cap, 20.0, 60.0)
    assert len(out) <= cap * 60.0 + 1.5
    assert len(out) >= 0.95 * cap * 60.0  # and it does not under-deliver without jitter


def test_limiter_never_bursts_in_any_window():
    out = _run(5.0, 100.0, 20.0, jitter=0.004)
    for i, t in enumerate(out):
        window = [x for x in out[i:] if x < t + 1.0]
        assert len(window) <= 5 + 1.5


def test_limiter_keeps_the_average_under_jitter():
    out = _run(10.0, 20.0, 60.0, jitter=0.01)
    assert 0.95 * 600 <= len(out) <= 600 + 1.5


def test_limiter_above_input_rate_passes_everything():
    assert len(_run(50.0, 20.0, 10.0)) == 200


def test_limiter_rejects_bad_rate():
    with pytest.raises(ValueError):
        tf.RateLimiter(0)


@pytest.mark.parametrize(
    "pattern",
    ["(.*.*.*.*)*x", "(/[a-z]+)*", "(ab|a)*x", "(a)\\1", ".*a.*b.*c.*d", "x" * 300],
)
def test_pathological_patterns_are_refused_with_the_reason(pattern):
    err = tf.check_patterns(["/ok/.*", pattern])
    assert err is not None and repr(pattern)[:40] in err and "refused" in err
    assert tf.check_rate_rules([f"{pattern}=5"]) is not None  # rate patterns too


@pytest.mark.parametrize(
    "pattern", ["/pbt/.*", "/(pbt|tim240)/.*", ".*scan.*", "[a-z]{2,5}", "(?:/ns)?/x.*"]
)
def test_ordinary_patterns_pass(pattern):
    assert tf.check_patterns([pattern]) is None


def test_filter_matches_each_topic_once():
    f = tf.TopicFilter(["/pbt/.*"], ["/pbt/debug.*"])
    for _ in range(100):
        assert f("/pbt/samples")
        assert not f("/pbt/debug")
    assert f.matches_run == 2
    assert not f("/" + "a" * 300)  # over MAX_TOPIC_LEN: never matched


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a+)+", "nested quantifier"),
        ("((a)?b+)*", "nested quantifier"),
        ("(?x) ( a + ) +", "nested quantifier"),
        ("(?:x|y.)+", "alternation"),
        ("(a|a)*", "alternation"),
        ("(?P<n>a)(?P=n)", "backreference"),
        ("(a)(?(1)b|c)", "backreference"),
        ("a{17}b{3,}c*d+", "open-ended"),
    ],
)
def test_risky_structure_is_refused_however_it_is_written(pattern, reason):
    err = tf.check_patterns([pattern])
    assert err is not None and reason in err


@pytest.mark.parametrize(
    "pattern",
    [
        "[(+)]+",  # brackets and quantifiers inside a class are members
        "\\(a+\\)+",  # escaped brackets are characters, not a group
        "[]+*]+",  # a ']' first in a class is a member
        "\\012+",  # octal escape, not a backreference
        "a{x}+",  # '{' that is no quantifier is a literal
        "a{16}b*c*d*",  # {m,n} up to 16 is bounded
        "(a|b|\\d)*",  # one character per branch: a set
        "(ab|ac)*",  # re matches it as a(?:b|c)
        "(?x) a  +  # (a+)+ is a comment here",
    ],
)
def test_escapes_and_character_classes_are_not_structure(pattern):
    assert tf.check_patterns([pattern]) is None
