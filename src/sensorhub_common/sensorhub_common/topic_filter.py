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

MAX_PATTERN_LEN = 256
MAX_OPEN_QUANTIFIERS = 3
MAX_TOPIC_LEN = 256  # ROS topic names are far shorter; longer ones are never matched
_BIG_REPEAT = 16  # {m,n} with n above this counts as open-ended
_UNBOUNDED = 1 << 32  # the upper bound of *, + and {m,}


def without_placeholder(items: Iterable[str]) -> list[str]:
    """A ROS parameter file cannot hold an empty string array: ``[""]`` stands for none."""
    return [x for x in items if x]


# -- the pattern's structure, scanned from its text (``re`` has no public parse tree)

# what one scanned item is
_CHAR = "char"  # one character a set could hold: a literal, \d, [a-z]
_ONE = "one"  # one character a set cannot hold: '.', [^a]
_ZERO = "zero"  # zero-width: ^, $, \b
_GROUP = "group"  # (?:...), lookarounds, atomic and scoped-flag groups
_CAPTURE = "capture"  # a numbered group: never equal to another one
_BACKREF = "backref"  # \1, (?P=name)
_CONDITIONAL = "conditional"  # (?(1)a|b)

_SET_ESCAPES = frozenset("dDsSwW")
_ZERO_WIDTH_ESCAPES = frozenset("bBAZ")
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}  # digits that follow
_OCTAL = frozenset("01234567")
_BRACE = re.compile(r"(\d*)(,?)(\d*)\}")
_FLAGS = re.compile(r"[aiLmsux-]*([:)])")
_VERBOSE_SPACE = frozenset(" \t\n\r\v\f")


@dataclass
class _Item:
    kind: str
    hi: int = 1  # upper bound of its quantifier (1: none or '?')
    body: list[list[_Item]] | None = None  # a group's alternatives
    text: str = ""  # as written, quantifier included: equal items have equal text


@dataclass
class _Scanner:
    """Items of an already compiled pattern (so its syntax is known to be valid).

    Mirrors ``re``'s own reading: ``{`` that is not a quantifier is a literal, ``\\12`` is a
    backreference and ``\\012`` an octal escape, a class may start with ``]``, quantifiers may
    be lazy or possessive, verbose patterns skip whitespace and ``#`` comments.
    """

    text: str
    verbose: bool = False
    pos: int = 0

    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def alternatives(self) -> list[list[_Item]]:
        """Up to the closing ``)`` of the group (not consumed) or the end."""
        branches: list[list[_Item]] = [[]]
        while self.pos < len(self.text) and self.text[self.pos] != ")":
            start = self.pos
            c = self.text[start]
            self.pos += 1
            if c == "|":
                branches.append([])
            elif self.verbose and (c in _VERBOSE_SPACE or c == "#"):
                self._skip_verbose(c)
            elif c in "*+?{" and (hi := self._quantifier(c)) is not None:
                last = branches[-1][-1]
                last.hi, last.text = hi, last.text + self.text[start : self.pos]
            else:
                item = self._atom(c)
                if item is not None:
                    item.text = self.text[start : self.pos]
                    branches[-1].append(item)
        return branches

    def _skip_verbose(self, c: str) -> None:
        """After whitespace nothing; after ``#`` up to the end of the line (an escaped newline
        is part of the comment, as ``re`` reads escapes as one token)."""
        if c != "#":
            return
        while self._peek() not in ("\n", ""):
            self.pos += 2 if self._peek() == "\\" else 1
        self.pos += 1  # the newline

    def _quantifier(self, c: str) -> int | None:
        """The upper bound of the quantifier just read; None when ``{`` is a literal."""
        if c == "?":
            hi = 1
        elif c in "*+":
            hi = _UNBOUNDED
        else:
            m = _BRACE.match(self.text, self.pos)
            if m is None or not (m[1] or m[2]):
                return None
            self.pos = m.end()
            upper = m[3] if m[2] else m[1]
            hi = int(upper) if upper else _UNBOUNDED
        if self._peek() in ("?", "+"):  # lazy or possessive: still the same repeat
            self.pos += 1
        return hi

    def _atom(self, c: str) -> _Item | None:
        if c == "(":
            return self._group()
        if c == "[":
            return self._char_class()
        if c == "\\":
            return self._escape()
        if c == ".":
            return _Item(_ONE)
        if c in "^$":
            return _Item(_ZERO)
        return _Item(_CHAR)

    def _char_class(self) -> _Item:
        negated = self._peek() == "^"
        self.pos += negated
        if self._peek() == "]":  # a ']' first is a member
            self.pos += 1
        while self._peek() not in ("]", ""):
            self.pos += 2 if self._peek() == "\\" else 1
        self.pos += 1
        return _Item(_ONE if negated else _CHAR)

    def _escape(self) -> _Item:
        c = self._peek()
        self.pos += 1
        if c.isdigit():
            return self._numeric_escape(c)
        if c in _HEX_ESCAPES:
            self.pos += _HEX_ESCAPES[c]
        elif c == "N" and self._peek() == "{":
            self.pos = self.text.index("}", self.pos) + 1
        return _Item(_ZERO if c in _ZERO_WIDTH_ESCAPES else _CHAR)

    def _numeric_escape(self, first: str) -> _Item:
        """``\\0``, ``\\0oo`` and ``\\ooo`` are octal characters; other digits a group number."""
        if first == "0":
            for _ in range(2):
                if self._peek() in _OCTAL:
                    self.pos += 1
            return _Item(_CHAR)
        nxt, third = self._peek(), self._peek(1)
        if first in _OCTAL and nxt in _OCTAL and third in _OCTAL:
            self.pos += 2
            return _Item(_CHAR)
        if nxt.isdigit():
            self.pos += 1
        return _Item(_BACKREF)

    def _group(self) -> _Item | None:
        kind = _CAPTURE
        if self._peek() == "?":
            self.pos += 1
            kind = self._extension()
            if kind in (None, _BACKREF):  # a comment, or (?P=name): nothing inside
                return None if kind is None else _Item(_BACKREF)
        body = self.alternatives()
        self.pos += 1  # ')'
        return _Item(kind, body=body)

    def _extension(self) -> str | None:
        """Read the head of a ``(?...)`` group: its kind, None when it matches nothing."""
        c = self._peek()
        if c == "#" or (c == "P" and self._peek(1) == "="):  # comment, named backreference
            self.pos = self.text.index(")", self.pos) + 1
            return None if c == "#" else _BACKREF
        if c == "(":  # conditional on a group: its branches follow
            self.pos = self.text.index(")", self.pos) + 1
            return _CONDITIONAL
        if c in ":>=!":
            self.pos += 1
        elif c == "<" and self._peek(1) in ("=", "!"):
            self.pos += 2
        elif c in ("<", "P"):  # named group
            self.pos = self.text.index(">", self.pos) + 1
            return _CAPTURE
        else:  # flags: scoped '(?i:...)' or for the whole pattern '(?i)'
            m = _FLAGS.match(self.text, self.pos)
            self.pos = m.end()
            if m[1] == ")":
                return None
        return _GROUP


@dataclass
class _RiskWalk:
    """Walks scanned items the way the backtracking matcher would get slow on them."""

    open_ended: int = 0

    def branches(self, branches: list[list[_Item]], in_repeat: bool) -> str | None:
        prefix, rest = _factor(branches)
        for item in prefix:
            err = self.item(item, in_repeat)
            if err:
                return err
        if len(rest) > 1 and in_repeat and not _is_char_set(rest):
            return "alternation inside a repeated group"
        for branch in rest:
            for item in branch:
                err = self.item(item, in_repeat)
                if err:
                    return err
        return None

    def item(self, item: _Item, in_repeat: bool) -> str | None:
        if item.kind in (_BACKREF, _CONDITIONAL):
            return "backreference"
        repeats = item.hi > 1
        if repeats and in_repeat:
            return "nested quantifier (a repeated group containing a quantifier)"
        if item.hi > _BIG_REPEAT:
            self.open_ended += 1
        if item.body is None:
            return None
        return self.branches(item.body, in_repeat or repeats)


def _factor(branches: list[list[_Item]]) -> tuple[list[_Item], list[list[_Item]]]:
    """``ab|ac`` is matched as ``a(?:b|c)``: the leading items all branches share, and the rest."""
    if len(branches) < 2:
        return [], branches
    n = 0
    while all(len(b) > n for b in branches):
        first = branches[0][n]
        if first.kind == _CAPTURE or any(b[n].text != first.text for b in branches):
            break
        n += 1
    return branches[0][:n], [b[n:] for b in branches]


def _is_char_set(branches: list[list[_Item]]) -> bool:
    """``a|b|\\d`` matches one character like ``[ab\\d]``: no backtracking between branches."""
    return all(len(b) == 1 and b[0].kind == _CHAR and b[0].hi == 1 for b in branches)


def pattern_risk(pattern: str) -> str | None:
    """Why ``pattern`` could make the backtracking matcher slow, or None when it is safe."""
    if len(pattern) > MAX_PATTERN_LEN:
        return f"longer than {MAX_PATTERN_LEN} characters"
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return str(e)
    walk = _RiskWalk()
    scanner = _Scanner(pattern, verbose=bool(compiled.flags & re.VERBOSE))
    err = walk.branches(scanner.alternatives(), False)
    if err:
        return err
    if walk.open_ended > MAX_OPEN_QUANTIFIERS:
        return f"more than {MAX_OPEN_QUANTIFIERS} open-ended quantifiers (*, +, {{m,}})"
    return None


def compile_patterns(patterns: Iterable[str], what: str = "pattern") -> list[re.Pattern]:
    """Empty strings are skipped: a ROS parameter file cannot hold an empty string array.

    Raises ValueError for a bad pattern and for one the backtracking matcher could hang on.
    """
    out = []
    for p in without_placeholder(patterns):
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
    for item in without_placeholder(items):
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
