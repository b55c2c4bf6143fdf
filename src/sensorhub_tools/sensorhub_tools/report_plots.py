"""The PNG plots of `sensorhub report` (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from sensorhub_tools.report_bags import Recording, stamp_s
from sensorhub_tools.report_pbt import PbtData, choose_events, trace_around

T_AXIS = "time since the start of the recording [s]"


@dataclass
class Image:
    name: str  # file name in the output directory
    caption: str
    png: bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _finish(fig, name: str, caption: str) -> Image:
    fig.tight_layout()
    return Image(name, caption, _png(fig))


def _bins(lo: float, hi: float, n: int = 40) -> list[float]:
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / n
    return [lo + k * step for k in range(n + 1)]


def spectrum(pbt: PbtData, off) -> Image:
    fig, ax = _pyplot().subplots(figsize=(7, 3.2))
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
    return _finish(fig, "spectrum.png", "Pulse-height spectrum")


def event_rate(rec: Recording, pbt: PbtData) -> Image:
    t0 = rec.start_ns * 1e-9
    fig, ax = _pyplot().subplots(figsize=(7, 3.0))
    span = max(1.0, (rec.end_ns - rec.start_ns) * 1e-9)
    width = max(1.0, round(span / 60))
    n = int(span // width) + 1
    counts = [0] * n
    for t in (stamp_s(e.header) - t0 for e in pbt.events):
        if 0 <= t < n * width:
            counts[int(t // width)] += 1
    ax.step([k * width for k in range(n)], [c / width for c in counts], where="post")
    ax.set_xlabel(T_AXIS)
    ax.set_ylabel(f"events/s ({width:g} s bins)")
    ax.set_title(f"{pbt.ns}/events rate")
    return _finish(fig, "event_rate.png", "Event rate over time")


def traced_events(pbt: PbtData, cmp_, n_traces: int, trace_events) -> list:
    """The ``--event`` ones, else a choice among those inside the compared windows."""
    inside = [
        e
        for sess, (lo, hi) in zip(pbt.sessions, cmp_.windows, strict=True)
        for e in sess.events
        if lo <= e.start_index < hi
    ]
    wanted = set(trace_events)
    chosen = [e for e in pbt.events if e.peak_index in wanted]
    return chosen or choose_events(inside or pbt.events, n_traces)


def trace(pbt: PbtData, e, plan, name: str) -> Image | None:
    """Value, envelope and baseline around event ``e`` with the levels in force then."""
    tr = trace_around(pbt, e, max(20, int(0.03 * pbt.rate)))
    if not tr.index:
        return None
    fig, ax = _pyplot().subplots(figsize=(7, 3.2))
    t = [(j - e.peak_index) / pbt.rate * 1e3 for j in tr.index]
    ax.plot(t, tr.value, ".-", ms=3, lw=0.8, label="value")
    ax.plot(t, tr.envelope, lw=1.2, label="envelope")
    ax.plot(t, tr.baseline, lw=1, ls=":", label="baseline (per batch)")
    in_force = plan.at(stamp_s(e.header))
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
    return _finish(fig, name, f"Trace around event {e.peak_index}")


def losses(rec: Recording, pbt: PbtData) -> Image:
    t0 = rec.start_ns * 1e-9
    fig, ax = _pyplot().subplots(figsize=(7, 3.0))
    bt = [stamp_s(b.header) - t0 for b in pbt.batches]
    ax.plot(bt, [b.lost_total for b in pbt.batches], label="lost_total (driver)")
    cum, acc = [], 0
    for b in pbt.batches:
        acc += b.lost_before
        cum.append(acc)
    ax.plot(bt, cum, ls="--", label="sum of lost_before in this recording")
    ax.set_xlabel(T_AXIS)
    ax.set_ylabel("samples")
    ax.set_title(f"{pbt.ns} lost samples")
    ax.legend()
    return _finish(fig, "losses.png", "Lost samples over time")


def _occupied_spans(pts, end: float) -> list[tuple[float, float]]:
    """(start, length) of each occupied stretch of one zone's (t, occupied) points."""
    spans, on_at = [], None
    for t, o in pts:
        if o and on_at is None:
            on_at = t
        elif not o and on_at is not None:
            spans.append((on_at, t - on_at))
            on_at = None
    if on_at is not None:
        spans.append((on_at, max(0.0, end - on_at)))
    return spans


def zones(rec: Recording, z) -> Image:
    t0 = rec.start_ns * 1e-9
    fig, ax = _pyplot().subplots(figsize=(7, 0.6 + 0.45 * len(z.names)))
    end = (rec.end_ns * 1e-9) - t0
    for k, name in enumerate(z.names):
        pts = [(t - t0, o) for t, zone, o, _r in z.rows if zone == name]
        ax.broken_barh(_occupied_spans(pts, end), (k - 0.35, 0.7), color="tab:orange")
    ax.set_yticks(range(len(z.names)), z.names)
    ax.set_xlim(0, max(1.0, end))
    ax.set_xlabel(f"{T_AXIS} (bars: occupied)")
    ax.set_title(f"{z.topic} occupancy")
    return _finish(fig, "zones.png", "TiM240 zone occupancy")


def host(rec: Recording, cpu: list, temp: list) -> Image:
    t0 = rec.start_ns * 1e-9
    fig, ax = _pyplot().subplots(figsize=(7, 3.0))
    if cpu:
        ax.plot([t - t0 for t, _ in cpu], [v for _, v in cpu], label="CPU average [%]")
    ax.set_xlabel(T_AXIS)
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
    return _finish(fig, "host.png", "Host CPU and temperature")
