"""The detector parameters for the offline re-detection and where each came from.

Sources, in order (later wins): the driver's defaults (``DetectorParams``), its installed
parameter files (package defaults, then bringup's deployment file, as the graph loads them),
``--params FILE``, the driver's own ``/parameter_events`` found in the bag (declarations and
run-time changes, applied when they happened), the threshold newer drivers publish with each
batch, ``--set NAME=VALUE``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sensorhub_tools.report_bags import Recording, ReportError, stamp_s
from sensorhub_tools.report_checks import T_PARAM_EVENT


def _coerce(value, default):
    """``value`` as the type of the parameter's ``default``."""
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


@dataclass
class _Layers:
    """The parameter values as each source is laid over the ones before it."""

    defaults: dict
    overrides: dict
    values: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    changes: list = field(default_factory=list)  # (stamp_s, {field: value}) after the start

    def __post_init__(self):
        self.values = dict(self.defaults)
        self.source = dict.fromkeys(self.defaults, "DetectorParams default")

    def file(self, f: Path) -> None:
        for k, v in params_from_file(f).items():
            if k in self.values:
                self.values[k] = _coerce(v, self.defaults[k])
                self.source[k] = str(f)

    def check_override_names(self) -> None:
        for k in self.overrides:
            if k not in self.values:
                names = ", ".join(self.values)
                raise ReportError(f"--set {k}: not a detector parameter ({names})")

    def _updates(self, m) -> dict:
        """The detector parameters a ParameterEvent declares or changes (bar --set ones)."""
        upd = {}
        for p in [*m.new_parameters, *m.changed_parameters]:
            if p.name in self.values and p.name not in self.overrides:
                v = _param_value(p)
                if v is not None:
                    upd[p.name] = _coerce(v, self.defaults[p.name])
        return upd

    def parameter_events(self, rec: Recording, node: str, first_stamp: float) -> None:
        """The driver's recorded events: initial values up to its first batch, changes after."""
        for topic in rec.usable_topics(T_PARAM_EVENT):
            for _t, m in rec.msgs.get(topic, []):
                upd = self._updates(m) if m.node == node else {}
                if not upd:
                    continue
                when = m.stamp.sec + m.stamp.nanosec * 1e-9
                if when > first_stamp:
                    self.changes.append((when, upd))
                    continue
                self.values.update(upd)
                for k in upd:
                    self.source[k] = f"{topic} (recorded)"

    def samples_threshold(self, pbt) -> None:
        """Newer drivers publish the threshold in force with each batch: the best evidence."""
        recorded = [
            (stamp_s(b.header), float(b.threshold))
            for b in pbt.batches
            if getattr(b, "threshold", 0.0) and "threshold" not in self.overrides
        ]
        if not recorded:
            return
        self.values["threshold"] = recorded[0][1]
        self.source["threshold"] = f"{pbt.ns}/samples threshold field (recorded)"
        self.changes = [(w, u) for w, u in self.changes if u.pop("threshold", None) is None or u]
        prev = recorded[0][1]
        for when, thr in recorded[1:]:
            if thr != prev:
                self.changes.append((when, {"threshold": thr}))
                prev = thr

    def apply_overrides(self) -> None:
        for k, v in self.overrides.items():
            try:
                self.values[k] = _coerce(v, self.defaults[k])
            except ValueError:
                kind = type(self.defaults[k]).__name__
                raise ReportError(f"--set {k}={v}: expected a {kind}") from None
            self.source[k] = "--set"


def resolve_params(rec: Recording, pbt, files=(), overrides=None) -> ParamPlan:
    """The plan for the PBT data ``pbt`` of ``rec``: ``files`` are ``--params``, ``overrides``
    the ``--set`` values (strings)."""
    from pbt_driver.detector import DetectorParams

    layers = _Layers(dataclasses.asdict(DetectorParams()), dict(overrides or {}))
    for f in [*driver_param_files(), *[Path(x) for x in files]]:
        layers.file(f)
    layers.check_override_names()
    first_stamp = stamp_s(pbt.batches[0].header) if pbt.batches else 0.0
    layers.parameter_events(rec, pbt.ns.rstrip("/") + "/pbt_driver", first_stamp)
    layers.samples_threshold(pbt)
    layers.apply_overrides()
    try:
        DetectorParams(**layers.values).check()
    except ValueError as e:
        raise ReportError(f"detector parameters: {e}") from e
    return ParamPlan(layers.values, layers.source, sorted(layers.changes, key=lambda c: c[0]))
