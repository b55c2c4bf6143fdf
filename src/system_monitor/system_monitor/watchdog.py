"""The watchdog's verdicts: is each expected node alive, running and talking? (pure, no rclpy)

Three independent signs, so every way of going silent is caught: the process (gone, zombie,
stopped by SIGSTOP), its REP 107 diagnostics (a hung executor stops the 1 Hz updater) and its
key topics (a stalled reader thread keeps diagnostics alive but stops `/pbt/samples`).

A node is known by its process as well as its name: the node tells writers apart by the pid
each array names (``header.frame_id``, see sensorhub_common.diagnostics.process_tag) or, for
a publisher without it, by the pid in its DDS GUID; a second process publishing under a node's
name is an ERROR, and only the expected process's own diagnostics keep the node from going
stale.
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
class Publisher:
    """One process seen publishing as a node (key: its pid, or how it was told apart)."""

    key: object
    pid: int | None  # the process it runs in; None = not known
    first: float
    last: float
    who: str = ""  # how to name it when the pid is only partly known

    def label(self, expected_pid: int | None) -> str:
        if self.pid is None:
            return self.who or "pid unknown"
        if self.pid == expected_pid:
            return f"pid {self.pid} (expected)"
        return self.who or f"pid {self.pid}"


def concurrent(pubs: list[Publisher]) -> bool:
    """Two writers each publishing after the other appeared: not a restart's old and new."""
    return any(
        a.last > b.first and b.last > a.first for i, a in enumerate(pubs) for b in pubs[i + 1 :]
    )


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
        self.last_diag: dict[str, float] = {}  # any writer, by node name
        self.publishers: dict[str, dict[object, Publisher]] = {}
        self.expected_last: dict[str, float] = {}  # the expected process's own writer
        self.seen_proc: set[str] = set()
        self.verdicts: dict[str, Verdict] = {}
        self.topic_levels: dict[str, tuple[int, str]] = {}

    # -- inputs ---------------------------------------------------------------------------------
    def on_diagnostics(
        self,
        node: str,
        now: float,
        key=None,
        pid: int | None = None,
        who: str = "",
    ) -> None:
        """A status from ``node``; ``key`` tells its writers apart, ``pid`` names the process
        (None: not known, so it may be the expected one)."""
        self.last_diag[node] = now
        pubs = self.publishers.setdefault(node, {})
        p = pubs.get(key)
        if p is None:
            pubs[key] = Publisher(key, pid, now, now, who)
        else:
            p.last = now
            if pid is not None:
                p.pid = pid

    def _forget(self, now: float) -> None:
        """Writers silent for long (a restarted node's old process) are no longer listed."""
        keep = max(60.0, 10 * self.diag_timeout)
        for pubs in self.publishers.values():
            for key in [k for k, p in pubs.items() if now - p.last > keep]:
                del pubs[key]

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
        self._forget(now)
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
                self._diag_verdict(v, name, p.pid, now, in_grace)
            out[name] = v
        for topic, (level, msg) in self.topic_levels.items():
            owner = self.topics[topic].watch.owner
            v = out.setdefault(owner, Verdict())
            v.add(level, msg)
        self.verdicts = out
        return out

    def own_writers(self, name: str, pid: int | None) -> list[Publisher]:
        """The writers under ``name`` that are the expected process's (any, when its pid or
        theirs is not known: nothing to tell them apart by)."""
        pubs = list(self.publishers.get(name, {}).values())
        if pid is None:
            return pubs
        return [p for p in pubs if p.pid is None or p.pid == pid]

    def _diag_verdict(
        self, v: Verdict, name: str, pid: int | None, now: float, in_grace: bool
    ) -> None:
        fresh = [
            p for p in self.publishers.get(name, {}).values() if now - p.last <= self.diag_timeout
        ]
        if len(fresh) > 1 and concurrent(fresh):
            fresh.sort(key=lambda p: (p.pid != pid, p.first))
            who = ", ".join(p.label(pid) for p in fresh)
            n = {2: "two", 3: "three"}.get(len(fresh), str(len(fresh)))
            v.add(ERROR, f"{n} processes publish as {name}: {who}")
        elif pid is not None and fresh and all(p.pid not in (None, pid) for p in fresh):
            v.add(ERROR, f"{fresh[0].label(pid)} publishes as {name}, not the expected pid {pid}")
        own = self.own_writers(name, pid)
        last = max((p.last for p in own), default=None)
        if last is None:
            self.expected_last.pop(name, None)
            if name in self.publishers and self.publishers[name] and pid is not None:
                if not in_grace:
                    v.add(STALE, f"no diagnostics from the expected process (pid {pid})")
            elif not in_grace:
                v.add(WARN, "no diagnostics received")
            return
        self.expected_last[name] = last
        if now - last > self.diag_timeout:
            v.add(STALE, f"diagnostics silent for {now - last:.1f} s")

    def unhealthy(self) -> dict[str, str]:
        return {n: v.message for n, v in self.verdicts.items() if v.level > WARN}
