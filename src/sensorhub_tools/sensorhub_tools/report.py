"""`sensorhub report BAG... [--out DIR]`: from recorded MCAP bags to plots, CSV and one HTML page.

Reads our mcap_recorder bags, split sets and ``ros2 bag record -s mcap`` bags record by record
(``report_bags``), so a file cut short by a killed recorder still yields every complete chunk;
the summary says how much was cut. PBT detection is re-run offline with the driver's own
:class:`pbt_driver.detector.Detector` (pure, no ROS) and compared with the recorded events
(``report_pbt``), with the detector parameters resolved from the driver's files, the bag and the
options (``report_params``). The recorders do not store the parameters the driver started with;
a bag started after the driver only holds the changes made while it recorded.

This module is the pipeline and the command line; ``report_tables``, ``report_plots`` and
``report_page`` write the CSV files, the plots and the page.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from sensorhub_tools import report_plots as plots
from sensorhub_tools import report_tables as tables
from sensorhub_tools.report_bags import Recording, ReportError, bag_files, read_bags
from sensorhub_tools.report_checks import input_problems
from sensorhub_tools.report_page import Page, render
from sensorhub_tools.report_pbt import Comparison, Offline, PbtAnalysis, PbtData, analyse, pbt_data

__all__ = [
    "Report",
    "ReportError",
    "ReportOptions",
    "add_parser",
    "bag_files",
    "make_report",
    "read_bags",
    "run",
]


@dataclass
class ReportOptions:
    param_files: list = field(default_factory=list)  # --params
    overrides: dict | None = None  # --set NAME=VALUE, values as strings
    ns: str | None = None  # --pbt-ns
    n_traces: int = 3  # --traces
    trace_events: list = field(default_factory=list)  # --event PEAK_INDEX
    tolerance: int = 2  # --tolerance


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


def _reading_notes(rec: Recording) -> list[str]:
    """What could not be read: cut or corrupt files, skipped topics, undecodable messages."""
    notes = []
    for f in rec.truncated:
        notes.append(
            f"{f.path}: "
            + ("no footer (recorder killed or still writing); " if not f.finished else "")
            + f"{f.messages} messages read, {f.cut_bytes} bytes at the end not readable"
            + (f" ({f.error})" if f.error else "")
        )
    notes += rec.skipped.values()
    for topic, n in rec.undecodable.items():
        notes.append(
            f"{topic}: {n} messages could not be decoded (first error: {rec.decode_error[topic]})"
        )
    return notes


def _run_notes(a: PbtAnalysis) -> list[str]:
    """Several driver runs, and runs the recording joined after the driver started."""
    sessions = a.pbt.sessions
    notes = []
    if len(sessions) > 1:
        notes.append(
            f"{len(sessions)} driver runs (the sample index starts again): each is "
            "re-detected with a fresh detector"
        )
    for k, sess in enumerate(sessions):
        if not a.offline.exact[k]:
            run = f"run {k + 1}: " if len(sessions) > 1 else ""
            notes.append(
                f"{run}recording starts at sample {sess.first}, after the driver started: "
                "the offline detector was seeded from the first batch's baseline and "
                "envelope"
            )
    return notes


def _analyse_pbt(rec: Recording, opts: ReportOptions, notes: list[str]) -> PbtAnalysis | None:
    pbt = pbt_data(rec, opts.ns)
    if pbt is None or not pbt.batches:
        notes.append("no usable PbtSamples message in the bag: no PBT analysis")
        return None
    if pbt.duplicates:
        notes.append(f"{pbt.duplicates} repeated PbtSamples batches ignored")
    a = analyse(rec, pbt, opts.param_files, opts.overrides, opts.tolerance)
    notes += _run_notes(a)
    return a


def _pbt_outputs(rec: Recording, opts: ReportOptions, out: Path, page: Page) -> None:
    a = page.analysis
    page.csvs += tables.pbt_csvs(out, a.pbt, a.offline)
    page.images += [plots.spectrum(a.pbt, a.offline), plots.event_rate(rec, a.pbt)]
    chosen = plots.traced_events(a.pbt, a.comparison, opts.n_traces, opts.trace_events)
    for k, e in enumerate(chosen):
        image = plots.trace(a.pbt, e, a.plan, f"trace_{k}.png")
        if image is not None:
            page.images.append(image)
    page.images.append(plots.losses(rec, a.pbt))


def _zone_outputs(rec: Recording, out: Path, page: Page) -> None:
    z = tables.zones(rec)
    if not z.messages:
        page.notes.append("no ZoneStatus topic in the bag")
        return
    page.csvs.append(tables.zones_csv(out, z))
    page.images.append(plots.zones(rec, z))


def _sec110_outputs(rec: Recording, out: Path, page: Page) -> None:
    page.sec110_topic, page.sec110_files = tables.sec110_files(rec)
    if page.sec110_topic:
        page.csvs.append(tables.sec110_csv(out, page.sec110_files))


def _host_outputs(rec: Recording, out: Path, page: Page) -> None:
    cpu, temp = tables.host(rec)
    if not (cpu or temp):
        page.notes.append("no system_monitor host statuses on /diagnostics")
        return
    page.csvs.append(tables.host_csv(out, cpu, temp))
    page.images.append(plots.host(rec, cpu, temp))


def make_report(rec: Recording, out: Path, **options) -> Report:
    """Writes the CSV files, the plots and report.html to ``out``; ``options`` are
    :class:`ReportOptions` fields by keyword."""
    opts = ReportOptions(**options)
    out.mkdir(parents=True, exist_ok=True)
    notes = _reading_notes(rec)
    page = Page(analysis=_analyse_pbt(rec, opts, notes), notes=notes)
    if page.analysis is not None:
        _pbt_outputs(rec, opts, out, page)
    _zone_outputs(rec, out, page)
    _sec110_outputs(rec, out, page)
    _host_outputs(rec, out, page)
    if not page.images and input_problems(rec):
        page.notes.append("nothing could be plotted: see what could not be read above")
    for image in page.images:
        (out / image.name).write_bytes(image.png)
    html_path = out / "report.html"
    html_path.write_text(render(rec, page))
    a = page.analysis
    return Report(
        out=out,
        html=html_path,
        pngs=[image.name for image in page.images],
        csvs=page.csvs,
        comparison=a.comparison if a else None,
        offline=a.offline if a else None,
        pbt=a.pbt if a else None,
        notes=page.notes,
    )


# ---------------------------------------------------------------------------------------------
# Command line


def add_parser(sub) -> None:
    rp = sub.add_parser(
        "report",
        help="plots, CSV and an HTML summary of recorded bags",
        epilog="exit status: 0 report written; 2 bad input or options (a missing, foreign or "
        "unreadable file, or no plot at all because of bad input: skipped topics, undecodable "
        "messages, corrupt or cut files, each listed)",
    )
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


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ReportError(f"--set {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _print_summary(rep: Report) -> None:
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


def run(a) -> int:
    try:
        overrides = _overrides(a.set)
        rec = read_bags(a.bags, progress=False if a.no_progress else None)
        rep = make_report(
            rec,
            Path(a.out),
            param_files=a.params,
            overrides=overrides,
            ns=a.pbt_ns,
            n_traces=a.traces,
            trace_events=a.event,
            tolerance=a.tolerance,
        )
    except ReportError as e:
        print(f"sensorhub report: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the output directory
        print(f"sensorhub report: {e.filename or a.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    _print_summary(rep)
    problems = input_problems(rec)
    if not rep.pngs and problems:  # an empty report because of the input is no success
        print("sensorhub report: nothing could be plotted because of bad input:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    return 0
