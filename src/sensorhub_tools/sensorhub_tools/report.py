"""`sensorhub report BAG... [--out DIR]`: from recorded MCAP bags to plots, CSV and one HTML page.

Reads our mcap_recorder bags, split sets and ``ros2 bag record -s mcap`` bags record by record
(mcap's stream reader), so a file cut short by a killed recorder still yields every complete
chunk; the summary says how much was cut. PBT detection is re-run offline with the driver's own
:class:`pbt_driver.detector.Detector` (pure, no ROS) and compared with the recorded events.

Where the detector parameters come from, in order (later wins): the driver's defaults
(``DetectorParams``), its installed parameter files (package defaults, then bringup's deployment
file, as the graph loads them), ``--params FILE``, the driver's own ``/parameter_events`` found
in the bag (declarations and run-time changes, applied when they happened), ``--set NAME=VALUE``.
The recorders do not store the parameters the driver started with; a bag started after the
driver only holds the changes made while it recorded.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import math
import os
import re
import sys
import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MCAP_MAGIC = b"\x89MCAP0\r\n"
SCHEMA_SEPARATOR = re.compile(r"^=+\s*$", re.M)  # between the types of a ros2msg schema
T_SAMPLES = "sensorhub_msgs/msg/PbtSamples"
T_EVENT = "sensorhub_msgs/msg/PbtEvent"
T_ZONES = "sensorhub_msgs/msg/ZoneStatus"
T_FILE = "sensorhub_msgs/msg/Sec110File"
T_DIAG = "diagnostic_msgs/msg/DiagnosticArray"
T_PARAM_EVENT = "rcl_interfaces/msg/ParameterEvent"
WANTED = (T_SAMPLES, T_EVENT, T_ZONES, T_FILE, T_DIAG, T_PARAM_EVENT)


class ReportError(Exception):
    """A bag that cannot be read (missing, not MCAP, nothing readable) or a bad option."""


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class FileRead:
    path: str
    size: int
    messages: int = 0
    cut_bytes: int = 0  # bytes after the last complete record (0 = read to the end)
    finished: bool = True  # has the closing magic
    error: str = ""  # why reading stopped early


@dataclass
class Recording:
    files: list[FileRead] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # name -> type
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    msgs: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # (t_ns, msg)
    undecodable: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    decode_error: dict[str, str] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0

    @property
    def truncated(self) -> list[FileRead]:
        return [f for f in self.files if f.cut_bytes or f.error or not f.finished]


def bag_files(paths) -> list[Path]:
    """The .mcap files of the arguments, in order: a file, a bag directory (rosbag2 layout: the
    files metadata.yaml lists, else ``*.mcap`` by index) or a directory of bags."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            mine = _dir_files(p)
            if mine:
                out.extend(mine)
                continue
            subs = [d for d in sorted(p.iterdir()) if d.is_dir() and _dir_files(d)]
            if not subs:
                raise ReportError(f"{p}: no .mcap file in this directory or its bags")
            for d in subs:
                out.extend(_dir_files(d))
        else:
            raise ReportError(f"{p}: no such file or directory")
    seen, unique = set(), []
    for f in out:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def _dir_files(d: Path) -> list[Path]:
    meta = d / "metadata.yaml"
    listed: list[Path] = []
    if meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text()) or {}
            rel = info.get("rosbag2_bagfile_information", {}).get("relative_file_paths") or []
            listed = [d / r for r in rel if (d / r).is_file()]
        except (OSError, yaml.YAMLError, AttributeError):
            listed = []

    def index(p: Path) -> tuple[int, str]:
        tail = p.stem.rsplit("_", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, p.name)

    on_disk = sorted(d.glob("*.mcap"), key=index)
    # files on disk that metadata.yaml does not list yet (a killed recorder) are read too
    return listed + [p for p in on_disk if p not in listed]


class _Progress:
    """One line on stderr, only on a terminal."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total = max(1, total)
        self.done = 0
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def advance(self, pos: int, name: str) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        frac = min(1.0, (self.done + pos) / self.total)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\rreading [{bar:<30}] {100 * frac:5.1f}% {name[-40:]:<40}")
        sys.stderr.flush()

    def file_done(self, size: int) -> None:
        self.done += size

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _deserializer():
    """Decode CDR with the schema recorded in the bag (rosbags), not the installed classes: a
    message that gained a field since the recording still reads."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    stores: dict[tuple[str, bytes], object] = {}

    def store_for(type_name: str, schema: bytes):
        key = (type_name, schema)
        ts = stores.get(key)
        if ts is None:
            ts = get_typestore(Stores.ROS2_JAZZY)
            types = {}
            parts = SCHEMA_SEPARATOR.split(schema.decode(errors="replace"))
            for k, part in enumerate(parts):
                name, text = type_name, part
                if k:
                    head, _nl, text = part.strip("\n").partition("\n")
                    name = head.removeprefix("MSG:").strip()
                    if name.count("/") == 1:
                        name = name.replace("/", "/msg/")
                    if name in ts.types and name != type_name:
                        continue  # a standard type: the store's own definition
                try:
                    types.update(get_types_from_msg(text, name))
                except Exception as e:
                    raise ReportError(f"cannot parse the recorded schema of {name}: {e}") from e
            ts.register(types)
            stores[key] = ts
        return ts

    dynamic: dict[tuple[str, bytes], object] = {}

    def decode(type_name: str, schema: bytes, data: bytes):
        try:
            return store_for(type_name, schema).deserialize_cdr(data, type_name)
        except ReportError:
            raise
        except Exception:
            # rosbags insists on the exact CDR size; Fast DDS pads some messages (those with a
            # ParameterValue) to 8 bytes. mcap_ros2's decoder reads them from the same schema.
            from mcap.records import Schema
            from mcap_ros2.decoder import DecoderFactory

            key = (type_name, schema)
            if key not in dynamic:
                sch = Schema(id=1, name=type_name, encoding="ros2msg", data=schema)
                dynamic[key] = DecoderFactory().decoder_for("cdr", sch)
            return dynamic[key](data)

    return decode


def read_file(path: Path, rec: Recording, decode, progress: _Progress | None = None) -> FileRead:
    """Every complete record of one MCAP file, in file order; stops at a torn tail."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise ReportError(f"{path}: cannot open: {e.strerror or e}") from e
    fr = FileRead(str(path), size)
    with f:
        head = f.read(len(MCAP_MAGIC))
        if head != MCAP_MAGIC:
            what = "empty" if not head else f"starts with {head[:8]!r}"
            raise ReportError(f"{path}: not an MCAP file ({what})")
        f.seek(-min(size, len(MCAP_MAGIC)), os.SEEK_END)
        fr.finished = size >= 2 * len(MCAP_MAGIC) and f.read() == MCAP_MAGIC
        f.seek(0)
        schemas: dict[int, tuple[str, bytes]] = {}
        channels: dict[int, tuple[str, str]] = {}
        good_end = 0
        reader = StreamReader(f, validate_crcs=True)
        try:
            for r in reader.records:
                if isinstance(r, Schema):
                    schemas[r.id] = (r.name, r.data)
                elif isinstance(r, Channel):
                    sname, sdata = schemas.get(r.schema_id, ("", b""))
                    channels[r.id] = (r.topic, sname, sdata)
                    rec.topics.setdefault(r.topic, sname)
                elif isinstance(r, Message):
                    ch = channels.get(r.channel_id)
                    if ch is None:
                        continue
                    topic, type_name, schema = ch
                    fr.messages += 1
                    rec.counts[topic] += 1
                    t = r.log_time
                    rec.start_ns = t if not rec.start_ns else min(rec.start_ns, t)
                    rec.end_ns = max(rec.end_ns, t)
                    if type_name in WANTED:
                        try:
                            rec.msgs[topic].append((t, decode(type_name, schema, r.data)))
                        except Exception as e:  # one bad message is not the end of the file
                            rec.undecodable[topic] += 1
                            rec.decode_error.setdefault(topic, f"{type(e).__name__}: {e}"[:200])
                good_end = f.tell()
                if progress is not None:
                    progress.advance(good_end, path.name)
        except Exception as e:  # any error in the records is the torn tail: keep what was read
            fr.error = f"{type(e).__name__}: {e}"[:200]
    fr.cut_bytes = 0 if (fr.finished and not fr.error) else max(0, size - good_end)
    if fr.error and fr.messages == 0 and good_end <= len(MCAP_MAGIC):
        raise ReportError(f"{path}: no readable MCAP record ({fr.error})")
    return fr


def read_bags(paths, progress: bool | None = None) -> Recording:
    files = bag_files(paths)
    if not files:
        raise ReportError("no bag given")
    rec = Recording()
    decode = _deserializer()
    prog = _Progress(sum(p.stat().st_size for p in files), progress)
    try:
        for p in files:
            rec.files.append(read_file(p, rec, decode, prog))
            prog.file_done(p.stat().st_size)
    finally:
        prog.close()
    for v in rec.msgs.values():
        v.sort(key=lambda x: x[0])
    return rec


# ---------------------------------------------------------------------------------------------
# Analysis


def _stamp(h) -> float:
    return h.stamp.sec + h.stamp.nanosec * 1e-9


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


def pbt_data(rec: Recording, ns: str | None = None) -> PbtData | None:
    sample_topics = sorted(t for t, ty in rec.topics.items() if ty == T_SAMPLES)
    if ns is not None:
        want = ns.rstrip("/") + "/samples"
        want = want if want.startswith("/") else "/" + want
        sample_topics = [t for t in sample_topics if t == want]
    if not sample_topics:
        return None
    st = sample_topics[0]
    base = st.rsplit("/", 1)[0]
    d = PbtData(base or "/")
    seen: set = set()
    batches = []
    for _t, m in rec.msgs.get(st, []):
        k = (int(m.first_index), _key(m))
        if k in seen:  # the same batch twice (a restarted recorder)
            d.duplicates += 1
            continue
        seen.add(k)
        batches.append(m)
    batches.sort(key=_key)
    cur: Session | None = None
    for m in batches:
        if cur is None or int(m.first_index) < cur.end:
            cur = Session()
            d.sessions.append(cur)
        cur.batches.append(m)
    if batches:
        d.rate = float(batches[0].sample_rate) or d.rate
    evs: dict = {}
    for _t, m in rec.msgs.get(base + "/events", []):
        evs.setdefault((int(m.peak_index), _key(m)), m)
    # an event belongs to the run whose sample stamps hold its peak's stamp
    starts = [_stamp(s.batches[0].header) for s in d.sessions]
    for e in sorted(evs.values(), key=lambda e: (_stamp(e.header), e.peak_index)):
        if not d.sessions:
            break
        k = max(0, bisect_left(starts, _stamp(e.header) + 1e-9) - 1)
        d.sessions[k].events.append(e)
    for s in d.sessions:
        s.events.sort(key=lambda e: e.peak_index)
    return d


def _coerce(name: str, value, default):
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def _param_value(p):
    """rcl_interfaces ParameterValue -> Python value (None for unset/arrays we do not need)."""
    v = p.value
    return {1: v.bool_value, 2: v.integer_value, 3: v.double_value, 4: v.string_value}.get(v.type)


def driver_param_files() -> list[Path]:
    """The pbt_driver parameter files the graph loads, installed copies (may be none)."""
    try:
        from bringup.plan import Resolver

        r = Resolver()
        out = []
        for pkg in ("pbt_driver", "bringup"):
            share = r.share(pkg)
            if share:
                f = Path(share, "config", "pbt_driver.yaml")
                if f.is_file():
                    out.append(f)
        return out
    except Exception:
        return []


def params_from_file(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ReportError(f"{path}: cannot read parameters: {e}") from e
    out = {}
    for key, sect in data.items() if isinstance(data, dict) else []:
        mine = key in ("/**", "**") or str(key).rstrip("/").endswith("pbt_driver")
        if mine and isinstance(sect, dict) and isinstance(sect.get("ros__parameters"), dict):
            out.update(sect["ros__parameters"])
    return out


@dataclass
class ParamPlan:
    initial: dict  # DetectorParams fields
    source: dict  # field -> where the value came from
    changes: list = field(default_factory=list)  # (stamp_s, {field: value}) from the bag

    def at(self, t: float) -> dict:
        """The parameters in force at stamp ``t``."""
        v = dict(self.initial)
        for when, upd in self.changes:
            if when > t:
                break
            v.update(upd)
        return v


def resolve_params(rec, pbt: PbtData, files=(), overrides=None) -> ParamPlan:
    from pbt_driver.detector import DetectorParams

    defaults = dataclasses.asdict(DetectorParams())
    vals, src = dict(defaults), dict.fromkeys(defaults, "DetectorParams default")
    for f in [*driver_param_files(), *[Path(x) for x in files]]:
        for k, v in params_from_file(f).items():
            if k in vals:
                vals[k] = _coerce(k, v, defaults[k])
                src[k] = str(f)
    overrides = dict(overrides or {})
    for k in overrides:
        if k not in vals:
            raise ReportError(f"--set {k}: not a detector parameter ({', '.join(vals)})")
    node = pbt.ns.rstrip("/") + "/pbt_driver"
    changes = []
    first_stamp = _stamp(pbt.batches[0].header) if pbt.batches else 0.0
    for topic, ty in rec.topics.items():
        if ty != T_PARAM_EVENT:
            continue
        for _t, m in rec.msgs.get(topic, []):
            if m.node != node:
                continue
            upd = {}
            for p in [*m.new_parameters, *m.changed_parameters]:
                if p.name in vals and p.name not in overrides:
                    v = _param_value(p)
                    if v is not None:
                        upd[p.name] = _coerce(p.name, v, defaults[p.name])
            if not upd:
                continue
            when = m.stamp.sec + m.stamp.nanosec * 1e-9
            if when <= first_stamp:
                vals.update(upd)
                for k in upd:
                    src[k] = f"{topic} (recorded)"
            else:
                changes.append((when, upd))
    # newer drivers publish the threshold in force with each batch: the best evidence there is
    recorded_thr = [
        (_stamp(b.header), float(b.threshold))
        for b in pbt.batches
        if getattr(b, "threshold", 0.0) and "threshold" not in overrides
    ]
    if recorded_thr:
        vals["threshold"] = recorded_thr[0][1]
        src["threshold"] = f"{pbt.ns}/samples threshold field (recorded)"
        changes = [(w, u) for w, u in changes if u.pop("threshold", None) is None or u]
        prev = recorded_thr[0][1]
        for when, thr in recorded_thr[1:]:
            if thr != prev:
                changes.append((when, {"threshold": thr}))
                prev = thr
    for k, v in overrides.items():
        try:
            vals[k] = _coerce(k, v, defaults[k])
        except ValueError:
            kind = type(defaults[k]).__name__
            raise ReportError(f"--set {k}={v}: expected a {kind}") from None
        src[k] = "--set"
    try:
        DetectorParams(**vals).check()
    except ValueError as e:
        raise ReportError(f"detector parameters: {e}") from e
    return ParamPlan(vals, src, sorted(changes, key=lambda c: c[0]))


@dataclass
class Offline:
    by_session: list[list]  # detector.Event (closed), per Session
    seeded_at: list[int]  # per session: first sample index the replay is exact from
    exact: list[bool]  # per session: replay from the driver's sample 0 (bit-for-bit input)
    changes_applied: int = 0

    @property
    def events(self) -> list:
        return [e for evs in self.by_session for e in evs]


def redetect(pbt: PbtData, plan: ParamPlan) -> Offline:
    """Feed the recorded batches to the driver's detector exactly as the reader thread did:
    ``gap(lost_before)`` then ``process(values, first_index)``, a fresh detector per run.

    A recording that starts after the driver did (the usual case) misses the detector's state;
    it is seeded from the first batch's published baseline and envelope and the replay starts
    with the next batch."""
    from pbt_driver.detector import Detector, DetectorParams

    changes = list(plan.changes)
    applied = 0
    params = dict(plan.initial)
    off = Offline([], [], [])
    for sess in pbt.sessions:
        batches = sess.batches
        for_session: list = []
        while changes and changes[0][0] <= _stamp(batches[0].header):
            params.update(changes.pop(0)[1])
            applied += 1
        det = Detector(DetectorParams(**params), pbt.rate)
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
        for m in batches[start:]:
            while changes and changes[0][0] <= _stamp(m.header):
                params.update(changes.pop(0)[1])
                det.set_params(DetectorParams(**params))
                applied += 1
            if m.lost_before:
                for_session += [ev for kind, ev in det.gap(int(m.lost_before)) if kind == "close"]
            if len(m.values):
                _env, notes = det.process([float(v) for v in m.values], int(m.first_index))
                for_session += [ev for kind, ev in notes if kind == "close"]
        off.by_session.append(for_session)
        off.seeded_at.append(seeded)
        off.exact.append(exact)
    off.changes_applied = applied
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
        peaks = [e.peak_index for e in of]
        used: set[int] = set()
        for e in on:
            i = bisect_left(peaks, e.peak_index - tolerance)
            best = None
            while i < len(peaks) and peaks[i] <= e.peak_index + tolerance:
                if i not in used and (
                    best is None or abs(peaks[i] - e.peak_index) < abs(peaks[best] - e.peak_index)
                ):
                    best = i
                i += 1
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
    return c


# ---------------------------------------------------------------------------------------------
# Output


EVENT_COLUMNS = [
    "peak_index",
    "start_index",
    "end_index",
    "peak",
    "baseline",
    "amplitude",
    "width_s",
    "area",
    "rise_time_s",
    "missing_slots",
    "gap_closed",
]


def _event_row(e) -> list:
    """One event (recorded PbtEvent or offline re-detection) as the EVENT_COLUMNS."""
    return [
        e.peak_index,
        e.start_index,
        e.end_index,
        e.peak,
        e.baseline,
        e.amplitude,
        e.width,
        e.area,
        e.rise_time,
        e.missing_slots,
        e.gap_closed,
    ]


def _csv(path: Path, header, rows) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path.name


def _zones(rec: Recording):
    topic = next((t for t, ty in sorted(rec.topics.items()) if ty == T_ZONES), None)
    return topic, [m for _t, m in rec.msgs.get(topic, [])] if topic else []


def _files(rec: Recording):
    topic = next((t for t, ty in sorted(rec.topics.items()) if ty == T_FILE), None)
    rows, seen = [], set()
    for _t, m in rec.msgs.get(topic, []) if topic else []:
        key = (m.path, m.sha256)
        if key in seen:
            continue  # a late joiner's transient-local copy
        seen.add(key)
        rows.append(m)
    return topic, rows


def _host(rec: Recording):
    """(t, cpu %, temperature degC) from system_monitor's host statuses on /diagnostics."""
    cpu, temp = [], []
    for _t, arr in rec.msgs.get("/diagnostics", []):
        t = _stamp(arr.header)
        for s in arr.status:
            kv = {x.key: x.value for x in s.values}
            try:
                if s.name.endswith(": cpu") and "average [%]" in kv:
                    cpu.append((t, float(kv["average [%]"])))
                elif s.name.endswith(": temperature") and "max [degC]" in kv:
                    temp.append((t, float(kv["max [degC]"])))
            except ValueError:
                pass
    return cpu, temp


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


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


def _session_of(pbt: PbtData, ev) -> Session | None:
    for sess in pbt.sessions:
        if any(e is ev for e in sess.events):
            return sess
    return None


def _trace(pbt: PbtData, ev, half: int):
    """Sample indexes, values, envelope (as published) and batch baseline around an event."""
    lo, hi = ev.start_index - half, ev.end_index + half
    idx, vals, env, base = [], [], [], []
    sess = _session_of(pbt, ev)
    batches = sess.batches if sess else []
    firsts = [b.first_index for b in batches]
    i = max(0, bisect_left(firsts, lo) - 1)
    while i < len(batches) and batches[i].first_index <= hi:
        b = batches[i]
        for k in range(len(b.values)):
            j = b.first_index + k
            if lo <= j <= hi:
                idx.append(j)
                vals.append(float(b.values[k]))
                env.append(float(b.envelope[k]) if k < len(b.envelope) else math.nan)
                base.append(float(b.baseline))
        i += 1
    return idx, vals, env, base


@dataclass
class Report:
    out: Path
    html: Path
    pngs: list
    csvs: list
    comparison: Comparison | None
    offline: Offline | None
    pbt: PbtData | None
    notes: list


def make_report(
    rec: Recording,
    out: Path,
    param_files=(),
    overrides=None,
    ns: str | None = None,
    n_traces: int = 3,
    trace_events=(),
    tolerance: int = 2,
) -> Report:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    images: list[tuple[str, str, bytes]] = []  # (file, caption, png)
    csvs: list[str] = []
    t0 = rec.start_ns * 1e-9
    for f in rec.truncated:
        notes.append(
            f"{f.path}: "
            + ("no footer (recorder killed or still writing); " if not f.finished else "")
            + f"{f.messages} messages read, {f.cut_bytes} bytes at the end not readable"
            + (f" ({f.error})" if f.error else "")
        )

    for topic, n in rec.undecodable.items():
        notes.append(f"{topic}: {n} messages could not be decoded ({rec.decode_error[topic]})")
    pbt = pbt_data(rec, ns)
    cmp_ = off = plan = None
    if pbt is None or not pbt.batches:
        pbt = None
        notes.append("no PbtSamples message in the bag: no PBT analysis")
    else:
        if pbt.duplicates:
            notes.append(f"{pbt.duplicates} repeated PbtSamples batches ignored")
        plan = resolve_params(rec, pbt, param_files, overrides)
        off = redetect(pbt, plan)
        cmp_ = compare(pbt, off, tolerance)
        if len(pbt.sessions) > 1:
            notes.append(
                f"{len(pbt.sessions)} driver runs (the sample index starts again): each is "
                "re-detected with a fresh detector"
            )
        for k, sess in enumerate(pbt.sessions):
            if not off.exact[k]:
                run = f"run {k + 1}: " if len(pbt.sessions) > 1 else ""
                notes.append(
                    f"{run}recording starts at sample {sess.first}, after the driver started: "
                    "the offline detector was seeded from the first batch's baseline and "
                    "envelope"
                )
        csvs.append(
            _csv(
                out / "events_recorded.csv",
                ["stamp", *EVENT_COLUMNS],
                [[f"{_stamp(e.header):.6f}", *_event_row(e)] for e in pbt.events],
            )
        )
        csvs.append(
            _csv(out / "events_offline.csv", EVENT_COLUMNS, [_event_row(e) for e in off.events])
        )
        csvs.append(
            _csv(
                out / "losses.csv",
                ["stamp", "first_index", "samples", "lost_before", "lost_total"],
                [
                    [
                        f"{_stamp(b.header):.6f}",
                        b.first_index,
                        len(b.values),
                        b.lost_before,
                        b.lost_total,
                    ]
                    for b in pbt.batches
                ],
            )
        )

        # spectrum
        fig, ax = plt.subplots(figsize=(7, 3.2))
        amps = [e.amplitude for e in pbt.events]
        amps_off = [e.amplitude for e in off.events]
        if amps or amps_off:
            allv = amps + amps_off
            bins = _bins(min(allv), max(allv))
            ax.hist(amps, bins=bins, alpha=0.6, label=f"recorded ({len(amps)})")
            ax.hist(
                amps_off,
                bins=bins,
                histtype="step",
                lw=1.5,
                label=f"offline re-detection ({len(amps_off)})",
            )
            ax.legend()
        ax.set_xlabel("pulse height (peak - baseline) [sensor units]")
        ax.set_ylabel("events")
        ax.set_title(f"{pbt.ns} pulse-height spectrum")
        fig.tight_layout()
        images.append(("spectrum.png", "Pulse-height spectrum", _png(fig)))

        # rate over time
        fig, ax = plt.subplots(figsize=(7, 3.0))
        ts = [_stamp(e.header) - t0 for e in pbt.events]
        span = max(1.0, (rec.end_ns - rec.start_ns) * 1e-9)
        width = max(1.0, round(span / 60))
        n = int(span // width) + 1
        counts = [0] * n
        for t in ts:
            if 0 <= t < n * width:
                counts[int(t // width)] += 1
        ax.step([k * width for k in range(n)], [c / width for c in counts], where="post")
        ax.set_xlabel("time since the start of the recording [s]")
        ax.set_ylabel(f"events/s ({width:g} s bins)")
        ax.set_title(f"{pbt.ns}/events rate")
        fig.tight_layout()
        images.append(("event_rate.png", "Event rate over time", _png(fig)))

        # traces around chosen events
        inside = [
            e
            for sess, (lo, hi) in zip(pbt.sessions, cmp_.windows, strict=True)
            for e in sess.events
            if lo <= e.start_index < hi
        ]
        wanted = set(trace_events)
        chosen = [e for e in pbt.events if e.peak_index in wanted] or choose_events(
            inside or pbt.events, n_traces
        )
        half = max(20, int(0.03 * pbt.rate))
        for k, e in enumerate(chosen):
            idx, vals, env, base = _trace(pbt, e, half)
            if not idx:
                continue
            fig, ax = plt.subplots(figsize=(7, 3.2))
            t = [(j - e.peak_index) / pbt.rate * 1e3 for j in idx]
            ax.plot(t, vals, ".-", ms=3, lw=0.8, label="value")
            ax.plot(t, env, lw=1.2, label="envelope")
            ax.plot(t, base, lw=1, ls=":", label="baseline (per batch)")
            in_force = plan.at(_stamp(e.header))
            thr, hys = in_force["threshold"], in_force["hysteresis"]
            ax.axhline(e.baseline + thr, color="r", lw=0.8, ls="--", label="threshold")
            ax.axhline(e.baseline + thr - hys, color="r", lw=0.6, ls=":", label="end level")
            ax.axvspan(
                (e.start_index - e.peak_index) / pbt.rate * 1e3,
                (e.end_index - e.peak_index) / pbt.rate * 1e3,
                color="0.9",
            )
            ax.set_xlabel(f"time from the peak (sample {e.peak_index}) [ms]")
            ax.set_ylabel("sensor units")
            ax.set_title(f"event at sample {e.peak_index}: amplitude {e.amplitude:.1f}")
            ax.legend(fontsize=7, loc="upper right")
            fig.tight_layout()
            images.append((f"trace_{k}.png", f"Trace around event {e.peak_index}", _png(fig)))

        # losses
        fig, ax = plt.subplots(figsize=(7, 3.0))
        bt = [_stamp(b.header) - t0 for b in pbt.batches]
        ax.plot(bt, [b.lost_total for b in pbt.batches], label="lost_total (driver)")
        lost = [b.lost_before for b in pbt.batches]
        cum, acc = [], 0
        for x in lost:
            acc += x
            cum.append(acc)
        ax.plot(bt, cum, ls="--", label="sum of lost_before in this recording")
        ax.set_xlabel("time since the start of the recording [s]")
        ax.set_ylabel("samples")
        ax.set_title(f"{pbt.ns} lost samples")
        ax.legend()
        fig.tight_layout()
        images.append(("losses.png", "Lost samples over time", _png(fig)))

    # zones
    ztopic, zmsgs = _zones(rec)
    if zmsgs:
        rows, names = [], []
        for m in zmsgs:
            t = _stamp(m.header)
            for i, name in enumerate(m.names):
                if name not in names:
                    names.append(name)
                occ = bool(m.occupied[i]) if i < len(m.occupied) else False
                rng = float(m.nearest_range[i]) if i < len(m.nearest_range) else math.nan
                rows.append((t, name, occ, rng))
        csvs.append(
            _csv(
                out / "zones.csv",
                ["stamp", "zone", "occupied", "nearest_range_m"],
                [[f"{t:.6f}", z, int(o), r] for t, z, o, r in rows],
            )
        )
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.45 * len(names)))
        end = (rec.end_ns * 1e-9) - t0
        for k, name in enumerate(names):
            pts = [(t - t0, o) for t, z, o, _r in rows if z == name]
            spans, on_at = [], None
            for t, o in pts:
                if o and on_at is None:
                    on_at = t
                elif not o and on_at is not None:
                    spans.append((on_at, t - on_at))
                    on_at = None
            if on_at is not None:
                spans.append((on_at, max(0.0, end - on_at)))
            ax.broken_barh(spans, (k - 0.35, 0.7), color="tab:orange")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlim(0, max(1.0, end))
        ax.set_xlabel("time since the start of the recording [s] (bars: occupied)")
        ax.set_title(f"{ztopic} occupancy")
        fig.tight_layout()
        images.append(("zones.png", "TiM240 zone occupancy", _png(fig)))
    else:
        notes.append("no ZoneStatus topic in the bag")

    # SEC110 files
    ftopic, files = _files(rec)
    if ftopic:
        csvs.append(
            _csv(
                out / "sec110_files.csv",
                ["stamp", "path", "size", "sha256", "client_address", "transfer_seconds"],
                [
                    [
                        f"{_stamp(m.header):.6f}",
                        m.path,
                        m.size,
                        m.sha256,
                        m.client_address,
                        m.transfer_seconds,
                    ]
                    for m in files
                ],
            )
        )

    # host CPU / temperature
    cpu, temp = _host(rec)
    if cpu or temp:
        csvs.append(
            _csv(
                out / "host.csv",
                ["stamp", "what", "value"],
                [[f"{t:.6f}", "cpu_percent", v] for t, v in cpu]
                + [[f"{t:.6f}", "temperature_degC", v] for t, v in temp],
            )
        )
        fig, ax = plt.subplots(figsize=(7, 3.0))
        if cpu:
            ax.plot([t - t0 for t, _ in cpu], [v for _, v in cpu], label="CPU average [%]")
        ax.set_xlabel("time since the start of the recording [s]")
        ax.set_ylabel("CPU [%]")
        if temp:
            ax2 = ax.twinx()
            ax2.plot(
                [t - t0 for t, _ in temp],
                [v for _, v in temp],
                color="tab:red",
                label="temperature [degC]",
            )
            ax2.set_ylabel("max temperature [degC]")
            ax2.legend(loc="upper right")
        ax.legend(loc="upper left")
        ax.set_title("host (system_monitor on /diagnostics)")
        fig.tight_layout()
        images.append(("host.png", "Host CPU and temperature", _png(fig)))
    else:
        notes.append("no system_monitor host statuses on /diagnostics")

    pngs = []
    for name, _cap, data in images:
        (out / name).write_bytes(data)
        pngs.append(name)
    page = out / "report.html"
    page.write_text(_html(rec, pbt, plan, off, cmp_, images, files, ftopic, notes, csvs))
    return Report(out, page, pngs, csvs, cmp_, off, pbt, notes)


def _bins(lo: float, hi: float, n: int = 40) -> list[float]:
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / n
    return [lo + k * step for k in range(n + 1)]


def _html(rec, pbt, plan, off, cmp_, images, files, ftopic, notes, csvs) -> str:
    e = html.escape
    dur = (rec.end_ns - rec.start_ns) * 1e-9
    start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec.start_ns * 1e-9))
    h = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sensorhub report</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left}.warn{color:#a40}img{max-width:100%}</style>",
        "</head><body><h1>sensorhub recording report</h1>",
        f"<p>{len(rec.files)} file(s), {sum(rec.counts.values())} messages, "
        f"{dur:.1f} s from {e(start)}.</p>",
    ]
    if notes:
        h.append("<h2>Notes</h2><ul>")
        h += [f"<li class='warn'>{e(n)}</li>" for n in notes]
        h.append("</ul>")
    h.append(
        "<h2>Files</h2><table><tr><th>file</th><th>bytes</th><th>messages</th><th>state</th></tr>"
    )
    for f in rec.files:
        state = (
            "complete"
            if not (f.cut_bytes or f.error or not f.finished)
            else (f"cut: {f.cut_bytes} bytes at the end unreadable")
        )
        h.append(
            f"<tr><td>{e(f.path)}</td><td>{f.size}</td><td>{f.messages}</td>"
            f"<td>{e(state)}</td></tr>"
        )
    h.append("</table><h2>Topics</h2><table><tr><th>topic</th><th>type</th><th>messages</th></tr>")
    for t in sorted(rec.topics):
        h.append(f"<tr><td>{e(t)}</td><td>{e(rec.topics[t])}</td><td>{rec.counts[t]}</td></tr>")
    h.append("</table>")
    if pbt is not None and cmp_ is not None:
        h.append(f"<h2>PBT ({e(pbt.ns)})</h2><table>")
        rows = [
            ("sample rate [Hz]", f"{pbt.rate:g}"),
            ("batches", len(pbt.batches)),
            ("recorded events", len(pbt.events)),
            ("offline events", len(off.events)),
            ("driver runs in the recording", len(pbt.sessions)),
            (
                "compared samples (per run)",
                ", ".join(f"{lo} .. {hi}" for lo, hi in cmp_.windows),
            ),
            (
                "events in window (recorded / offline / matched)",
                f"{cmp_.online} / {cmp_.offline} / {cmp_.matched}",
            ),
            ("largest peak index difference [samples]", cmp_.max_peak_shift),
            ("largest amplitude difference", f"{cmp_.max_amp_diff:.4g}"),
            (
                "recorded only (peak index)",
                " ".join(str(x.peak_index) for x in cmp_.online_only[:20]) or "-",
            ),
            (
                "offline only (peak index)",
                " ".join(str(x.peak_index) for x in cmp_.offline_only[:20]) or "-",
            ),
            (
                "lost samples (lost_total at the end)",
                pbt.batches[-1].lost_total if pbt.batches else 0,
            ),
        ]
        h += [f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in rows]
        h.append(
            "</table><h3>Detector parameters used offline</h3><table>"
            "<tr><th>parameter</th><th>value</th><th>from</th></tr>"
        )
        for k, v in plan.initial.items():
            h.append(f"<tr><td>{k}</td><td>{v}</td><td>{e(plan.source[k])}</td></tr>")
        h.append("</table>")
        if plan.changes:
            h.append(f"<p>{len(plan.changes)} run-time change(s) from the bag applied.</p>")
    for _name, cap, data in images:
        b64 = base64.b64encode(data).decode()
        h.append(f"<h3>{e(cap)}</h3><img alt='{e(cap)}' src='data:image/png;base64,{b64}'>")
    if ftopic:
        h.append(
            f"<h2>SEC110 files ({e(ftopic)})</h2><table><tr><th>time (UTC)</th>"
            "<th>path</th><th>bytes</th><th>sha256</th><th>client</th>"
            "<th>transfer [s]</th></tr>"
        )
        for m in files:
            ts = time.strftime("%H:%M:%S", time.gmtime(_stamp(m.header)))
            h.append(
                f"<tr><td>{ts}</td><td>{e(m.path)}</td><td>{m.size}</td>"
                f"<td><code>{e(m.sha256[:16])}…</code></td><td>{e(m.client_address)}</td>"
                f"<td>{m.transfer_seconds:.3f}</td></tr>"
            )
        h.append("</table>")
    h.append("<h2>CSV files</h2><ul>")
    h += [f"<li><a href='{e(c)}'>{e(c)}</a></li>" for c in csvs]
    h.append("</ul></body></html>\n")
    return "\n".join(h)


# ---------------------------------------------------------------------------------------------
# Command line


def add_parser(sub) -> None:
    rp = sub.add_parser("report", help="plots, CSV and an HTML summary of recorded bags")
    rp.add_argument(
        "bags",
        nargs="+",
        metavar="BAG",
        help="bag directory, .mcap file or a directory of bags (several = one run)",
    )
    rp.add_argument("--out", default="report", help="output directory (default ./report)")
    rp.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="FILE",
        help="pbt_driver parameter file (ros__parameters) for the re-detection",
    )
    rp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="detector parameter for the re-detection, e.g. --set threshold=30",
    )
    rp.add_argument("--pbt-ns", help="PBT namespace when the bag holds several (default first)")
    rp.add_argument("--traces", type=int, default=3, help="events to plot a trace of")
    rp.add_argument(
        "--event",
        action="append",
        type=int,
        default=[],
        metavar="PEAK_INDEX",
        help="plot the trace of this event (repeatable)",
    )
    rp.add_argument(
        "--tolerance",
        type=int,
        default=2,
        help="peak index difference still counted as the same event [samples]",
    )
    rp.add_argument("--no-progress", action="store_true")


def run(a) -> int:
    overrides = {}
    for item in a.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"sensorhub report: --set {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        overrides[name.strip()] = value.strip()
    try:
        rec = read_bags(a.bags, progress=False if a.no_progress else None)
        rep = make_report(
            rec, Path(a.out), a.params, overrides, a.pbt_ns, a.traces, a.event, a.tolerance
        )
    except ReportError as e:
        print(f"sensorhub report: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the output directory
        print(f"sensorhub report: {e.filename or a.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    for n in rep.notes:
        print(f"note: {n}")
    if rep.comparison is not None:
        c = rep.comparison
        print(
            f"PBT {rep.pbt.ns}: {len(rep.pbt.events)} recorded events, "
            f"{len(rep.offline.events)} re-detected; in the compared window {c.online} "
            f"recorded, {c.offline} offline, {c.matched} matched"
        )
    print(f"wrote {rep.html} ({len(rep.pngs)} plots, {len(rep.csvs)} CSV files)")
    return 0
