"""The self-contained HTML page of `sensorhub report` (plots inlined as data: URLs, no
network needed to open it)."""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field

from sensorhub_tools.report_bags import Recording, stamp_s

E = html.escape
STYLE = (
    "<style>body{font-family:sans-serif;max-width:980px;margin:auto;padding:1em}"
    "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
    "padding:2px 6px;text-align:left}.warn{color:#a40}img{max-width:100%}</style>"
)


@dataclass
class Page:
    """What the page shows besides the recording itself."""

    analysis: object | None = None  # report_pbt.PbtAnalysis
    images: list = field(default_factory=list)  # report_plots.Image
    sec110_topic: str | None = None
    sec110_files: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    csvs: list[str] = field(default_factory=list)


def _head(rec: Recording) -> list[str]:
    dur = (rec.end_ns - rec.start_ns) * 1e-9
    start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec.start_ns * 1e-9))
    return [
        "<!doctype html><html><head><meta charset='utf-8'><title>sensorhub report</title>",
        STYLE,
        "</head><body><h1>sensorhub recording report</h1>",
        f"<p>{len(rec.files)} file(s), {sum(rec.counts.values())} messages, "
        f"{dur:.1f} s from {E(start)}.</p>",
    ]


def _notes(notes: list[str]) -> list[str]:
    if not notes:
        return []
    return ["<h2>Notes</h2><ul>", *[f"<li class='warn'>{E(n)}</li>" for n in notes], "</ul>"]


def _files(rec: Recording) -> list[str]:
    h = [
        "<h2>Files</h2><table><tr><th>file</th><th>bytes</th><th>messages</th><th>state</th></tr>"
    ]
    for f in rec.files:
        state = "complete" if f.complete else f"cut: {f.cut_bytes} bytes at the end unreadable"
        h.append(
            f"<tr><td>{E(f.path)}</td><td>{f.size}</td><td>{f.messages}</td>"
            f"<td>{E(state)}</td></tr>"
        )
    return h


def _topics(rec: Recording) -> list[str]:
    h = ["</table><h2>Topics</h2><table><tr><th>topic</th><th>type</th><th>messages</th></tr>"]
    for t in sorted(rec.topics):
        h.append(f"<tr><td>{E(t)}</td><td>{E(rec.topics[t])}</td><td>{rec.counts[t]}</td></tr>")
    h.append("</table>")
    return h


def _peaks(events) -> str:
    return " ".join(str(x.peak_index) for x in events[:20]) or "-"


def _pbt_rows(a) -> list[tuple]:
    pbt, off, c = a.pbt, a.offline, a.comparison
    return [
        ("sample rate [Hz]", f"{pbt.rate:g}"),
        ("batches", len(pbt.batches)),
        ("recorded events", len(pbt.events)),
        ("offline events", len(off.events)),
        ("driver runs in the recording", len(pbt.sessions)),
        ("compared samples (per run)", ", ".join(f"{lo} .. {hi}" for lo, hi in c.windows)),
        (
            "events in window (recorded / offline / matched)",
            f"{c.online} / {c.offline} / {c.matched}",
        ),
        ("largest peak index difference [samples]", c.max_peak_shift),
        ("largest amplitude difference", f"{c.max_amp_diff:.4g}"),
        ("recorded only (peak index)", _peaks(c.online_only)),
        ("offline only (peak index)", _peaks(c.offline_only)),
        ("lost samples (lost_total at the end)", pbt.batches[-1].lost_total if pbt.batches else 0),
    ]


def _pbt(a) -> list[str]:
    if a is None:
        return []
    h = [f"<h2>PBT ({E(a.pbt.ns)})</h2><table>"]
    h += [f"<tr><th>{E(str(k))}</th><td>{E(str(v))}</td></tr>" for k, v in _pbt_rows(a)]
    h.append(
        "</table><h3>Detector parameters used offline</h3><table>"
        "<tr><th>parameter</th><th>value</th><th>from</th></tr>"
    )
    plan = a.plan
    for k, v in plan.initial.items():
        h.append(f"<tr><td>{k}</td><td>{v}</td><td>{E(plan.source[k])}</td></tr>")
    h.append("</table>")
    if plan.changes:
        h.append(f"<p>{len(plan.changes)} run-time change(s) from the bag applied.</p>")
    return h


def _images(images) -> list[str]:
    h = []
    for im in images:
        b64 = base64.b64encode(im.png).decode()
        h.append(
            f"<h3>{E(im.caption)}</h3><img alt='{E(im.caption)}' "
            f"src='data:image/png;base64,{b64}'>"
        )
    return h


def _sec110(topic: str | None, files: list) -> list[str]:
    if not topic:
        return []
    h = [
        f"<h2>SEC110 files ({E(topic)})</h2><table><tr><th>time (UTC)</th>"
        "<th>path</th><th>bytes</th><th>sha256</th><th>client</th>"
        "<th>transfer [s]</th></tr>"
    ]
    for m in files:
        ts = time.strftime("%H:%M:%S", time.gmtime(stamp_s(m.header)))
        h.append(
            f"<tr><td>{ts}</td><td>{E(m.path)}</td><td>{m.size}</td>"
            f"<td><code>{E(m.sha256[:16])}…</code></td><td>{E(m.client_address)}</td>"
            f"<td>{m.transfer_seconds:.3f}</td></tr>"
        )
    h.append("</table>")
    return h


def _csv_list(csvs: list[str]) -> list[str]:
    return [
        "<h2>CSV files</h2><ul>",
        *[f"<li><a href='{E(c)}'>{E(c)}</a></li>" for c in csvs],
        "</ul></body></html>\n",
    ]


def render(rec: Recording, page: Page) -> str:
    parts = [
        _head(rec),
        _notes(page.notes),
        _files(rec),
        _topics(rec),
        _pbt(page.analysis),
        _images(page.images),
        _sec110(page.sec110_topic, page.sec110_files),
        _csv_list(page.csvs),
    ]
    return "\n".join(line for part in parts for line in part)
