"""Which topics to forward or record, and at what rate: pure logic, no rclpy.

Patterns are Python regular expressions matched against the whole topic name (as
foxglove_bridge's ``topic_whitelist``): ``/pbt/.*`` matches ``/pbt/samples``, ``/pbt`` does not.

Python's ``re`` backtracks, and a pattern such as ``(.*.*)*x`` takes exponential time (the node
would spin in it and answer nothing). Patterns are therefore checked when set
(:func:`pattern_risk`: no quantifier or alternation inside a repeated group, no backreferences,
at most ``MAX_OPEN_QUANTIFIERS`` open-ended quantifiers, so a match is at most cubic in the
topic length), topic names longer than ``MAX_TOPIC_LEN`` never match, and
:class:`TopicFilter` decides each topic once and caches the answer, so repeated discovery passes
and the message path never run a regex.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

try:  # Python >= 3.11
    import re._constants as _sre_c
    import re._parser as _sre_p
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre_c
    import sre_parse as _sre_p

MAX_PATTERN_LEN = 256
MAX_OPEN_QUANTIFIERS = 3
MAX_TOPIC_LEN = 256  # ROS topic names are far shorter; longer ones are never matched
_BIG_REPEAT = 16  # {m,n} with n above this counts as open-ended
_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT}
if hasattr(_sre_c, "POSSESSIVE_REPEAT"):
    _REPEATS.add(_sre_c.POSSESSIVE_REPEAT)


def pattern_risk(pattern: str) -> str | None:
    """Why ``pattern`` could make the backtracking matcher slow, or None when it is safe."""
    if len(pattern) > MAX_PATTERN_LEN:
        return f"longer than {MAX_PATTERN_LEN} characters"
    try:
        tree = _sre_p.parse(pattern)
    except re.error as e:
        return str(e)
    open_ended = 0

    def walk(items, in_repeat: bool) -> str | None:
        nonlocal open_ended
        for op, av in items:
            if op in _REPEATS:
                _lo, hi, body = av
                repeats = hi > 1
                if repeats and in_repeat:
                    return "nested quantifier (a repeated group containing a quantifier)"
                if hi > _BIG_REPEAT:
                    open_ended += 1
                err = walk(body, in_repeat or repeats)
            elif op is _sre_c.SUBPATTERN:
                err = walk(av[-1], in_repeat)
            elif op is _sre_c.BRANCH:
                if in_repeat:
                    return "alternation inside a repeated group"
                err = next((e for alt in av[1] if (e := walk(alt, in_repeat))), None)
            elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
                err = walk(av[1], in_repeat)
            elif op in (_sre_c.GROUPREF, _sre_c.GROUPREF_EXISTS):
                return "backreference"
            elif getattr(_sre_c, "ATOMIC_GROUP", None) is not None and op is _sre_c.ATOMIC_GROUP:
                err = walk(av, in_repeat)
            else:
                err = None
            if err:
                return err
        return None

    err = walk(tree, False)
    if err:
        return err
    if open_ended > MAX_OPEN_QUANTIFIERS:
        return f"more than {MAX_OPEN_QUANTIFIERS} open-ended quantifiers (*, +, {{m,}})"
    return None


def compile_patterns(patterns: Iterable[str], what: str = "pattern") -> list[re.Pattern]:
    """Empty strings are skipped: a ROS parameter file cannot hold an empty string array.

    Raises ValueError for a bad pattern and for one the backtracking matcher could hang on.
    """
    out = []
    for p in patterns:
        if not p:
            continue
        try:
            compiled = re.compile(p)
        except re.error as e:
            raise ValueError(f"bad {what} {p!r}: {e}") from None
        risk = pattern_risk(p)
        if risk:
            raise ValueError(
                f"{what} {p!r} refused: {risk}; it could take exponential time to match "
                "(write e.g. '/pbt/.*' or '/(pbt|tim240)/.*')"
            )
        out.append(compiled)
    return out


def check_patterns(patterns: Sequence[str]) -> str | None:
    """Param check: None when every pattern compiles, else the reason."""
    try:
        compile_patterns(patterns)
    except ValueError as e:
        return str(e)
    return None


class TopicFilter:
    """A topic passes when it fully matches an allow pattern and no deny pattern.

    Each topic is matched once; the decision is cached (a new filter is built when the
    parameters change), so discovery passes cost a dict lookup per topic.
    """

    MAX_CACHE = 4096

    def __init__(self, allow: Sequence[str] = (".*",), deny: Sequence[str] = ()):
        self._allow = compile_patterns(allow, "allow pattern")
        self._deny = compile_patterns(deny, "deny pattern")
        self._cache: dict[str, bool] = {}
        self.matches_run = 0  # regex evaluations (topics decided), for tests and figures

    def __call__(self, topic: str) -> bool:
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        self.matches_run += 1
        ok = (
            len(topic) <= MAX_TOPIC_LEN
            and any(p.fullmatch(topic) for p in self._allow)
            and not any(p.fullmatch(topic) for p in self._deny)
        )
        if len(self._cache) >= self.MAX_CACHE:
            self._cache.clear()
        self._cache[topic] = ok
        return ok


@dataclass(frozen=True)
class RateRule:
    pattern: re.Pattern
    max_hz: float  # 0 = unlimited


def parse_rate_rules(items: Sequence[str]) -> list[RateRule]:
    """``["/pbt/samples=10", "/scan.*=5"]`` -> rules; the first matching rule wins."""
    rules = []
    for item in items:
        if not item:
            continue
        pat, sep, hz = item.rpartition("=")
        if not sep or not pat:
            raise ValueError(f"bad rate rule {item!r}: expected 'TOPIC_REGEX=HZ'")
        try:
            value = float(hz)
        except ValueError:
            raise ValueError(f"bad rate rule {item!r}: {hz!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"bad rate rule {item!r}: rate must be >= 0 (0 = unlimited)")
        rules.append(RateRule(compile_patterns([pat], "rate pattern")[0], value))
    return rules


def check_rate_rules(items: Sequence[str]) -> str | None:
    try:
        parse_rate_rules(items)
    except ValueError as e:
        return str(e)
    return None


def max_rate_for(rules: Sequence[RateRule], topic: str) -> float:
    """The cap of the first matching rule, 0.0 (unlimited) when none matches (called once per
    followed topic, not per message)."""
    if len(topic) > MAX_TOPIC_LEN:
        return 0.0
    for r in rules:
        if r.pattern.fullmatch(topic):
            return r.max_hz
    return 0.0


class RateLimiter:
    """Token bucket: on average at most ``max_hz``, and never more than one extra message.

    Unlike "drop if younger than 1/max_hz", it keeps the average at the cap when the input rate
    is not a multiple of it (20 Hz in, 7 Hz cap -> 7 Hz out, not 6.7) and when arrivals jitter
    (the bucket holds 1.5 tokens, so a slightly early message does not lose a period). In any
    window of T seconds it passes at most ``max_hz * T + 1.5`` messages.
    """

    CAPACITY = 1.5
    _EPS = 1e-9  # float sums of 1/N periods must still reach one token

    def __init__(self, max_hz: float):
        if not max_hz > 0:
            raise ValueError(f"max_hz must be > 0, got {max_hz!r}")
        self.max_hz = float(max_hz)
        self._tokens = 1.0
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.CAPACITY, self._tokens + (now - self._last) * self.max_hz)
        self._last = now
        if self._tokens >= 1.0 - self._EPS:
            self._tokens -= 1.0
            return True
        return False
