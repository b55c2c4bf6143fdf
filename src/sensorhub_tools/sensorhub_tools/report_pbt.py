"""The PBT part of a recording: batches grouped into driver runs, the offline re-detection with
the driver's own :class:`pbt_driver.detector.Detector` (pure, no ROS) and its comparison with
the recorded events."""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

from sensorhub_tools.report_bags import Recording, stamp_s
from sensorhub_tools.report_checks import T_SAMPLES
from sensorhub_tools.report_params import ParamPlan, resolve_params


@dataclass
class Session:
    """One run of the driver: sample indexes only go forward inside it. A new run (the index
    starts again, e.g. bags of different days read together) gets a fresh detector."""

    batches: list = field(default_factory=list)  # by first_index
    events: list = field(default_factory=list)  # recorded PbtEvent of this run, by peak_index

    @property
    def first(self) -> int:
        return int(self.batches[0].first_index)

    @property
    def end(self) -> int:
        b = self.batches[-1]
        return int(b.first_index) + len(b.values)


@dataclass
class PbtData:
    ns: str
    rate: float = 800.0
    sessions: list[Session] = field(default_factory=list)
    duplicates: int = 0

    @property
    def batches(self) -> list:
        return [b for s in self.sessions for b in s.batches]

    @property
    def events(self) -> list:
        return [e for s in self.sessions for e in s.events]


def _key(m) -> tuple[int, int]:
    return m.header.stamp.sec, m.header.stamp.nanosec


def _samples_topic(rec: Recording, ns: str | None) -> str | None:
    """The PbtSamples topic to analyse: the first, or the one of namespace ``ns``."""
    topics = rec.usable_topics(T_SAMPLES)
    if ns is not None:
        want = ns.rstrip("/") + "/samples"
        want = want if want.startswith("/") else "/" + want
        topics = [t for t in topics if t == want]
    return topics[0] if topics else None


def _unique_batches(d: PbtData, msgs) -> list:
    """The batches by stamp, each once (a restarted recorder records some twice)."""
    seen: set = set()
    batches = []
    for _t, m in msgs:
        k = (int(m.first_index), _key(m))
        if k in seen:
            d.duplicates += 1
            continue
        seen.add(k)
        batches.append(m)
    return sorted(batches, key=_key)


def _split_runs(d: PbtData, batches: list) -> None:
    cur: Session | None = None
    for m in batches:
        if cur is None or int(m.first_index) < cur.end:
            cur = Session()
            d.sessions.append(cur)
        cur.batches.append(m)


def _assign_events(d: PbtData, msgs) -> None:
    """Each distinct recorded event to the run whose sample stamps hold its peak's stamp."""
    evs: dict = {}
    for _t, m in msgs:
        evs.setdefault((int(m.peak_index), _key(m)), m)
    starts = [stamp_s(s.batches[0].header) for s in d.sessions]
    for e in sorted(evs.values(), key=lambda e: (stamp_s(e.header), e.peak_index)):
        if not d.sessions:
            break
        k = max(0, bisect_left(starts, stamp_s(e.header) + 1e-9) - 1)
        d.sessions[k].events.append(e)
    for s in d.sessions:
        s.events.sort(key=lambda e: e.peak_index)


def pbt_data(rec: Recording, ns: str | None = None) -> PbtData | None:
    st = _samples_topic(rec, ns)
    if st is None:
        return None
    base = st.rsplit("/", 1)[0]
    d = PbtData(base or "/")
    batches = _unique_batches(d, rec.msgs.get(st, []))
    _split_runs(d, batches)
    if batches:
        d.rate = float(batches[0].sample_rate) or d.rate
    _assign_events(d, rec.msgs.get(base + "/events", []))
    return d


@dataclass
class Offline:
    by_session: list[list]  # detector.Event (closed), per Session
    seeded_at: list[int]  # per session: first sample index the replay is exact from
    exact: list[bool]  # per session: replay from the driver's sample 0 (bit-for-bit input)
    changes_applied: int = 0

    @property
    def events(self) -> list:
        return [e for evs in self.by_session for e in evs]


@dataclass
class _ParamFeed:
    """The plan's run-time changes, applied in stamp order across the runs."""

    params: dict
    changes: list
    applied: int = 0

    def advance(self, t: float, det=None) -> None:
        """Apply each change due at stamp ``t`` (to ``det`` too, one change at a time)."""
        from pbt_driver.detector import DetectorParams

        while self.changes and self.changes[0][0] <= t:
            self.params.update(self.changes.pop(0)[1])
            self.applied += 1
            if det is not None:
                det.set_params(DetectorParams(**self.params))


def _closed(notes) -> list:
    return [ev for kind, ev in notes if kind == "close"]


def _replay(sess: Session, feed: _ParamFeed, rate: float) -> tuple[list, int, bool]:
    """(closed events, first exact sample index, exact from sample 0) of one driver run."""
    from pbt_driver.detector import Detector, DetectorParams

    batches = sess.batches
    feed.advance(stamp_s(batches[0].header))
    det = Detector(DetectorParams(**feed.params), rate)
    exact = sess.first == 0
    start, seeded = 0, sess.first
    if not exact:
        b0 = batches[0]
        det.seed(
            b0.baseline,
            b0.envelope[-1] if len(b0.envelope) else b0.baseline,
            b0.values[-1] if len(b0.values) else None,
        )
        start, seeded = 1, sess.first + len(b0.values)
    found: list = []
    for m in batches[start:]:
        feed.advance(stamp_s(m.header), det)
        if m.lost_before:
            found += _closed(det.gap(int(m.lost_before)))
        if len(m.values):
            _env, notes = det.process([float(v) for v in m.values], int(m.first_index))
            found += _closed(notes)
    return found, seeded, exact


def redetect(pbt: PbtData, plan: ParamPlan) -> Offline:
    """Feed the recorded batches to the driver's detector exactly as the reader thread did:
    ``gap(lost_before)`` then ``process(values, first_index)``, a fresh detector per run.

    A recording that starts after the driver did (the usual case) misses the detector's state;
    it is seeded from the first batch's published baseline and envelope and the replay starts
    with the next batch."""
    feed = _ParamFeed(dict(plan.initial), list(plan.changes))
    off = Offline([], [], [])
    for sess in pbt.sessions:
        found, seeded, exact = _replay(sess, feed, pbt.rate)
        off.by_session.append(found)
        off.seeded_at.append(seeded)
        off.exact.append(exact)
    off.changes_applied = feed.applied
    return off


@dataclass
class Comparison:
    windows: list[tuple[int, int]]  # per run: sample indexes compared
    online: int = 0
    offline: int = 0
    matched: int = 0
    online_only: list = field(default_factory=list)
    offline_only: list = field(default_factory=list)
    max_peak_shift: int = 0
    max_amp_diff: float = 0.0


def _nearest_unused(peaks: list, used: set, peak: int, tolerance: int) -> int | None:
    """Index in ``peaks`` (sorted) of the closest unused peak within ``tolerance``."""
    i = bisect_left(peaks, peak - tolerance)
    best = None
    while i < len(peaks) and peaks[i] <= peak + tolerance:
        if i not in used and (best is None or abs(peaks[i] - peak) < abs(peaks[best] - peak)):
            best = i
        i += 1
    return best


def _match(c: Comparison, on: list, of: list, tolerance: int) -> None:
    peaks = [e.peak_index for e in of]
    used: set[int] = set()
    for e in on:
        best = _nearest_unused(peaks, used, e.peak_index, tolerance)
        if best is None:
            c.online_only.append(e)
            continue
        used.add(best)
        c.matched += 1
        c.max_peak_shift = max(c.max_peak_shift, abs(peaks[best] - e.peak_index))
        c.max_amp_diff = max(c.max_amp_diff, abs(of[best].amplitude - e.amplitude))
    c.offline_only += [e for i, e in enumerate(of) if i not in used]
    c.online += len(on)
    c.offline += len(of)


def compare(pbt: PbtData, off: Offline, tolerance: int = 2) -> Comparison:
    """Match events by peak index (within ``tolerance`` samples) inside the samples both saw,
    run by run; events near the edges (open when recording started or stopped) are left out."""
    c = Comparison([])
    edge = int(0.05 * pbt.rate)
    for sess, found, seeded, exact in zip(
        pbt.sessions, off.by_session, off.seeded_at, off.exact, strict=True
    ):
        lo = seeded + (0 if exact else edge)
        hi = sess.end - edge
        c.windows.append((lo, hi))
        on = [e for e in sess.events if lo <= e.start_index and e.end_index < hi]
        of = [e for e in found if lo <= e.start_index and e.end_index < hi]
        _match(c, on, of, tolerance)
    return c


@dataclass
class PbtAnalysis:
    pbt: PbtData
    plan: ParamPlan
    offline: Offline
    comparison: Comparison


def analyse(rec: Recording, pbt: PbtData, param_files=(), overrides=None, tolerance: int = 2):
    """Parameters, re-detection and comparison of the PBT data ``pbt`` of ``rec``."""
    plan = resolve_params(rec, pbt, param_files, overrides)
    off = redetect(pbt, plan)
    return PbtAnalysis(pbt, plan, off, compare(pbt, off, tolerance))


def choose_events(events, n: int) -> list:
    """First, largest and median-amplitude events (up to n, distinct)."""
    if not events or n <= 0:
        return []
    by_amp = sorted(events, key=lambda e: e.amplitude)
    picks = [events[0], by_amp[-1], by_amp[len(by_amp) // 2], events[-1], by_amp[0]]
    out = []
    for e in picks:
        if e not in out:
            out.append(e)
    return out[:n]


@dataclass
class Trace:
    """The published samples around one event."""

    index: list = field(default_factory=list)
    value: list = field(default_factory=list)
    envelope: list = field(default_factory=list)  # as published
    baseline: list = field(default_factory=list)  # the batch's


def _session_of(pbt: PbtData, ev) -> Session | None:
    for sess in pbt.sessions:
        if any(e is ev for e in sess.events):
            return sess
    return None


def trace_around(pbt: PbtData, ev, half: int) -> Trace:
    """The samples from ``half`` before the event's start to ``half`` after its end."""
    lo, hi = ev.start_index - half, ev.end_index + half
    tr = Trace()
    sess = _session_of(pbt, ev)
    batches = sess.batches if sess else []
    firsts = [b.first_index for b in batches]
    i = max(0, bisect_left(firsts, lo) - 1)
    while i < len(batches) and batches[i].first_index <= hi:
        b = batches[i]
        for k in range(len(b.values)):
            j = b.first_index + k
            if lo <= j <= hi:
                tr.index.append(j)
                tr.value.append(float(b.values[k]))
                tr.envelope.append(float(b.envelope[k]) if k < len(b.envelope) else math.nan)
                tr.baseline.append(float(b.baseline))
        i += 1
    return tr
