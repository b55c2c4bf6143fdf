"""The watchdog's verdicts: is each expected node alive, running and talking? (pure, no rclpy)

Three independent signs, so every way of going silent is caught: the process (gone, zombie,
stopped by SIGSTOP), its REP 107 diagnostics (a hung executor stops the 1 Hz updater) and its
key topics (a stalled reader thread keeps diagnostics alive but stops `/pbt/samples`).
The clock is injected; the node evaluates several times a second and publishes a change at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sensorhub_common.diagnostics import ERROR, OK, STALE, WARN
from system_monitor.procinfo import Expected


class WatchSpecError(ValueError):
    pass


@dataclass(frozen=True)
class TopicWatch:
    topic: str
    owner: str  # node name the silence is blamed on
    max_silence: float  # seconds


def parse_watch(spec: str) -> TopicWatch | None:
    """``/pbt/samples=pbt_driver:0.5`` (topic=owner:max silence in s); blank = None."""
    spec = spec.strip()
    if not spec:
        return None
    topic, sep, rest = spec.partition("=")
    owner, sep2, silence = rest.rpartition(":")
    if not sep or not sep2 or not topic.startswith("/") or not owner:
        raise WatchSpecError(f"watch {spec!r}: expected '/topic=node:seconds'")
    try:
        s = float(silence)
    except ValueError:
        raise WatchSpecError(f"watch {spec!r}: {silence!r} is not a number of seconds") from None
    if not s > 0:
        raise WatchSpecError(f"watch {spec!r}: silence must be > 0 s")
    return TopicWatch(topic.strip(), owner.strip(), s)


def parse_watches(specs) -> list[TopicWatch]:
    return [w for w in (parse_watch(s) for s in specs) if w is not None]


@dataclass
class ProcState:
    """What the process poll saw: pid None = not found."""

    pid: int | None
    state: str = ""  # /proc state letter


@dataclass
class Verdict:
    level: int = OK
    reasons: list[tuple[int, str]] = field(default_factory=list)

    def add(self, level: int, reason: str) -> None:
        self.reasons.append((level, reason))
        self.level = max(self.level, level)

    @property
    def message(self) -> str:
        bad = [r for lv, r in sorted(self.reasons, key=lambda x: -x[0]) if lv > OK]
        return "; ".join(bad) if bad else "alive"


@dataclass
class TopicState:
    watch: TopicWatch
    last: float | None = None
    count: int = 0
    silences: int = 0  # how many times it went silent
    silent: bool = False
    publishers: int = -1  # -1 = unknown


class Watchdog:
    def __init__(
        self,
        expected: list[Expected],
        watches: list[TopicWatch],
        diag_timeout: float = 2.5,
        grace: float = 15.0,
        start: float = 0.0,
    ):
        self.expected = {e.name: e for e in expected}
        self.topics = {w.topic: TopicState(w) for w in watches}
        self.diag_timeout = diag_timeout
        self.grace = grace
        self.start = start
        self.last_diag: dict[str, float] = {}
        self.seen_proc: set[str] = set()
        self.verdicts: dict[str, Verdict] = {}
        self.topic_levels: dict[str, tuple[int, str]] = {}

    # -- inputs ---------------------------------------------------------------------------------
    def on_diagnostics(self, node: str, now: float) -> None:
        self.last_diag[node] = now

    def on_topic(self, topic: str, now: float) -> None:
        ts = self.topics.get(topic)
        if ts is not None:
            ts.last = now
            ts.count += 1

    # -- evaluation -----------------------------------------------------------------------------
    def topic_level(self, ts: TopicState, now: float) -> tuple[int, str]:
        w = ts.watch
        if ts.last is None:
            if now - self.start < self.grace:
                return OK, f"waiting for the first message on {w.topic}"
            if ts.publishers == 0:
                return ERROR, f"{w.topic}: no publisher"
            return ERROR, f"{w.topic}: no message received"
        age = now - ts.last
        silent = age > w.max_silence
        if silent and not ts.silent:
            ts.silences += 1
        ts.silent = silent
        if silent:
            return ERROR, f"{w.topic} silent for {age:.1f} s (deadline {w.max_silence:g} s)"
        return OK, f"{w.topic} flowing"

    def evaluate(self, now: float, procs: dict[str, ProcState]) -> dict[str, Verdict]:
        """One verdict per expected node, plus topic owners that are not expected here."""
        in_grace = now - self.start < self.grace
        out: dict[str, Verdict] = {}
        self.topic_levels = {t: self.topic_level(ts, now) for t, ts in self.topics.items()}
        for name, exp in self.expected.items():
            v = Verdict()
            p = procs.get(name, ProcState(None))
            if p.pid is None:
                if name in self.seen_proc:
                    v.add(ERROR, "process not running")
                elif in_grace:
                    v.add(STALE, "process not started yet")
                else:
                    v.add(ERROR, "process not found")
            else:
                self.seen_proc.add(name)
                if p.state in ("T", "t"):
                    v.add(ERROR, "process stopped (SIGSTOP)")
                elif p.state in ("Z", "X"):
                    v.add(ERROR, "process exited (zombie)")
            if exp.publishes_diagnostics:
                last = self.last_diag.get(name)
                if last is None:
                    if not in_grace:
                        v.add(WARN, "no diagnostics received")
                elif now - last > self.diag_timeout:
                    v.add(STALE, f"diagnostics silent for {now - last:.1f} s")
            out[name] = v
        for topic, (level, msg) in self.topic_levels.items():
            owner = self.topics[topic].watch.owner
            v = out.setdefault(owner, Verdict())
            v.add(level, msg)
        self.verdicts = out
        return out

    def unhealthy(self) -> dict[str, str]:
        return {n: v.message for n, v in self.verdicts.items() if v.level > WARN}
