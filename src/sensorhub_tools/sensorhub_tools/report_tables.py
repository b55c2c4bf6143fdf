"""The recording's series as rows (zones, SEC110 files, host CPU and temperature, PBT events and
losses) and the CSV files of `sensorhub report`."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from sensorhub_tools.report_bags import Recording, stamp_s
from sensorhub_tools.report_checks import T_FILE, T_ZONES

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
SEC110_COLUMNS = ["stamp", "path", "size", "sha256", "client_address", "transfer_seconds"]
LOSS_COLUMNS = ["stamp", "first_index", "samples", "lost_before", "lost_total"]


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


def write_csv(path: Path, header, rows) -> str:
    """Writes the file; its name (for the page's list)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path.name


@dataclass
class Zones:
    topic: str | None = None
    messages: int = 0
    names: list[str] = field(default_factory=list)  # in order of appearance
    rows: list[tuple] = field(default_factory=list)  # (stamp, zone, occupied, nearest range)


def zones(rec: Recording) -> Zones:
    """Every zone's state in every recorded ZoneStatus (first ZoneStatus topic)."""
    z = Zones(rec.first_topic(T_ZONES))
    for _t, m in rec.msgs.get(z.topic, []) if z.topic else []:
        z.messages += 1
        t = stamp_s(m.header)
        for i, name in enumerate(m.names):
            if name not in z.names:
                z.names.append(name)
            occ = bool(m.occupied[i]) if i < len(m.occupied) else False
            rng = float(m.nearest_range[i]) if i < len(m.nearest_range) else math.nan
            z.rows.append((t, name, occ, rng))
    return z


def sec110_files(rec: Recording) -> tuple[str | None, list]:
    """(topic, Sec110File messages, each file once)."""
    topic = rec.first_topic(T_FILE)
    rows, seen = [], set()
    for _t, m in rec.msgs.get(topic, []) if topic else []:
        key = (m.path, m.sha256)
        if key in seen:
            continue  # a late joiner's transient-local copy
        seen.add(key)
        rows.append(m)
    return topic, rows


def host(rec: Recording) -> tuple[list, list]:
    """(t, cpu %) and (t, temperature degC) from system_monitor's statuses on /diagnostics."""
    cpu, temp = [], []
    for _t, arr in rec.msgs.get("/diagnostics", []):
        t = stamp_s(arr.header)
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


def pbt_csvs(out: Path, pbt, off) -> list[str]:
    """events_recorded.csv, events_offline.csv and losses.csv."""
    return [
        write_csv(
            out / "events_recorded.csv",
            ["stamp", *EVENT_COLUMNS],
            [[f"{stamp_s(e.header):.6f}", *_event_row(e)] for e in pbt.events],
        ),
        write_csv(out / "events_offline.csv", EVENT_COLUMNS, [_event_row(e) for e in off.events]),
        write_csv(
            out / "losses.csv",
            LOSS_COLUMNS,
            [
                [
                    f"{stamp_s(b.header):.6f}",
                    b.first_index,
                    len(b.values),
                    b.lost_before,
                    b.lost_total,
                ]
                for b in pbt.batches
            ],
        ),
    ]


def zones_csv(out: Path, z: Zones) -> str:
    return write_csv(
        out / "zones.csv",
        ["stamp", "zone", "occupied", "nearest_range_m"],
        [[f"{t:.6f}", name, int(o), r] for t, name, o, r in z.rows],
    )


def sec110_csv(out: Path, files: list) -> str:
    rows = [
        [
            f"{stamp_s(m.header):.6f}",
            m.path,
            m.size,
            m.sha256,
            m.client_address,
            m.transfer_seconds,
        ]
        for m in files
    ]
    return write_csv(out / "sec110_files.csv", SEC110_COLUMNS, rows)


def host_csv(out: Path, cpu: list, temp: list) -> str:
    return write_csv(
        out / "host.csv",
        ["stamp", "what", "value"],
        [[f"{t:.6f}", "cpu_percent", v] for t, v in cpu]
        + [[f"{t:.6f}", "temperature_degC", v] for t, v in temp],
    )
