"""What bench/scenarios.py computes from a run (not a benchmark: tools/run_bench.sh skips
`_*.py`): PBT loss, recall and latencies from the simulator's truth and write logs, web
delivery per client, recorder completeness from the bags, and the report (markdown, plot).
"""

from __future__ import annotations

import bisect
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pct, pyplot
from _load import JsClients, PbtSub


def ms(xs) -> dict:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50_ms": round(pct(xs, 50) * 1e3, 3),
        "p99_ms": round(pct(xs, 99) * 1e3, 3),
        "max_ms": round(max(xs) * 1e3, 3),
    }


def read_bags(bags: Path) -> dict:
    """Events (peak_index), sample batches (first_index) and file health of every bag."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    out = {"files": 0, "files_without_summary": 0, "events": [], "batches": [], "errors": []}
    for f in sorted(bags.rglob("*.mcap")):
        out["files"] += 1
        try:
            with open(f, "rb") as fh:
                r = make_reader(fh)
                if r.get_summary() is None:
                    out["files_without_summary"] += 1
                for _, ch, msg in r.iter_messages(topics=["/pbt/events", "/pbt/samples"]):
                    if ch.topic == "/pbt/events":
                        out["events"].append(deserialize_message(msg.data, PbtEvent).peak_index)
                    else:
                        m = deserialize_message(msg.data, PbtSamples)
                        out["batches"].append(m.first_index)
        except Exception as e:  # a damaged file is a finding, not a crash of the bench
            out["errors"].append(f"{f.name}: {e}")
    return out


def analyse_pbt(tmp: Path, sub: PbtSub, w0: float, w1: float) -> dict:
    """Loss, recall/precision and latencies from the sim's truth and write logs."""
    truth = [json.loads(x) for x in (tmp / "truth.jsonl").read_text().splitlines() if x]
    writes = [
        tuple(map(float, x.split()))
        for x in (tmp / "writes.log").read_text().splitlines()
        if x.count(" ") == 2
    ]
    events = list(sub.events)
    batches = list(sub.batches)
    # driver index -> sim index: the truth peak nearest in time to each event's stamp
    tr_t = [t["t"] for t in truth]
    offs = []
    for _, m in events:
        st = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        i = bisect.bisect_left(tr_t, st)
        best = min(
            (j for j in (i - 1, i) if 0 <= j < len(truth)),
            key=lambda j: abs(tr_t[j] - st),
            default=None,
        )
        if best is not None and abs(tr_t[best] - st) < 0.02:
            offs.append(truth[best]["index"] - m.peak_index)
    if not offs:
        return {"error": "no event matched the truth log: cannot align indices"}
    off = statistics.mode(offs)
    # sim slots written inside the window
    win = [w for w in writes if w0 <= w[2] <= w1]
    if not win:
        return {"error": "no write inside the window"}
    k0, k1 = int(win[0][0]), int(win[-1][0] + win[-1][1])  # [k0, k1)
    got = bytearray(k1 - k0)
    for b in batches:
        a, n = b[0] + off, b[1]
        lo, hi = max(a, k0), min(a + n, k1)
        if lo < hi:
            got[lo - k0 : hi - k0] = b"\x01" * (hi - lo)
    lost = got.count(0)
    in_win = [b for b in batches if k0 <= b[0] + off < k1]
    lost_total_driver = (in_win[-1][3] - in_win[0][3]) if len(in_win) > 1 else 0
    # recall / precision within the window
    t_idx = sorted(t["index"] for t in truth if k0 <= t["index"] < k1 - 800)
    e_idx = sorted(m.peak_index + off for _, m in events if k0 <= m.peak_index + off < k1 - 800)
    matched_t = sum(1 for k in t_idx if _near(e_idx, k, 2))
    matched_e = sum(1 for k in e_idx if _near(t_idx, k, 2))
    # detection latency: closing sample (end_index + 1) written -> event received
    wf = [w[0] for w in writes]
    lat, delays = [], []
    parts: dict[str, list[float]] = {"driver": [], "dds": [], "observer": []}
    for t_rx, m in events:
        k = m.end_index + 1 + off
        if not k0 <= k < k1:
            continue
        i = bisect.bisect_right(wf, k) - 1
        if i >= 0 and writes[i][0] <= k < writes[i][0] + writes[i][1]:
            lat.append(t_rx - writes[i][2])
            dds = sub.event_dds.get(m.peak_index)
            if dds is not None:  # write -> publish -> DDS reception -> callback
                parts["driver"].append(dds[0] - writes[i][2])
                parts["dds"].append(dds[1] - dds[0])
                parts["observer"].append(t_rx - dds[1])
        if m.pulse_sent and m.pulse_delay >= 0:
            delays.append(m.pulse_delay)
    return {
        "index_offset": off,
        "window_slots": k1 - k0,
        "samples_lost": lost,
        "driver_lost_in_window": lost_total_driver,
        "truth_events": len(t_idx),
        "events": len(e_idx),
        "recall_pct": round(100.0 * matched_t / len(t_idx), 2) if t_idx else None,
        "precision_pct": round(100.0 * matched_e / len(e_idx), 2) if e_idx else None,
        "detection_latency": ms(lat),
        # its shares: closing sample written -> the driver's publish (DDS source timestamp),
        # -> DDS reception in the observer, -> the observer's callback
        "detection_latency_split": {k: ms(v) for k, v in parts.items()},
        "pulse_delay": ms(delays),
        "_lat": lat,
        "_delays": delays,
        "_k": (k0, k1, off),
    }


def _near(sorted_xs: list[int], k: int, tol: int) -> bool:
    i = bisect.bisect_left(sorted_xs, k - tol)
    return i < len(sorted_xs) and sorted_xs[i] <= k + tol


def delivery(clients: JsClients, sub: PbtSub, w0: float, w1: float) -> dict:
    ref = {
        "/pbt/samples": {b[5] for b in sub.batches if w0 <= b[4] <= w1},
        "/pbt/events": {PbtSub.stamp(m) for t, m in sub.events if w0 <= t <= w1},
        "/tim240/scan_filtered": {s for t, s in sub.scans if w0 <= t <= w1},
    }
    counts = clients.counts()
    per_client = {}
    for c, topics in sorted(counts.items()):
        per_client[c] = {
            t: round(100.0 * len(want & topics.get(t, set())) / len(want), 2)
            for t, want in ref.items()
            if want
        }
    opened = len(clients.events("serverInfo"))
    closed = clients.events("close")
    summary = {}
    for t, want in ref.items():
        vals = [v[t] for v in per_client.values() if t in v and v]
        served = [v for v in vals if v > 0]
        if vals:
            summary[t] = {
                "reference": len(want),
                "min_pct": min(vals),
                "median_pct": statistics.median(vals),
                "min_pct_served": min(served) if served else None,
            }
    return {
        "clients": clients.n,
        "connected": opened,
        "closed_by_server": len(closed),
        "refusals": sorted({e.get("code") for e in closed}),
        # what the clients saw go wrong (first few), to tell a refusal from a timeout
        "client_errors": [
            f"client {e.get('client')}: {e.get('message')}" for e in clients.events("error")
        ][:5],
        "close_reasons": sorted({str(e.get("reason")) for e in closed})[:5],
        "per_topic": summary,
        "per_client": per_client,
    }


def recorder(bag: dict, sub: PbtSub, k_info, w0: float, w1: float) -> dict:
    ev_rx = {m.peak_index for t, m in sub.events if w0 <= t <= w1}
    b_rx = {b[0] for b in sub.batches if w0 <= b[4] <= w1}
    ev_bag, b_bag = set(bag["events"]), set(bag["batches"])
    return {
        "files": bag["files"],
        "files_without_summary": bag["files_without_summary"],
        "read_errors": bag["errors"],
        "events_in_window": len(ev_rx),
        "events_recorded_pct": round(100.0 * len(ev_rx & ev_bag) / len(ev_rx), 3)
        if ev_rx
        else None,
        "events_recorded_twice": len(bag["events"]) - len(ev_bag),
        "batches_in_window": len(b_rx),
        "batches_recorded_pct": round(100.0 * len(b_rx & b_bag) / len(b_rx), 3) if b_rx else None,
    }


def markdown(r: dict) -> str:
    p, w, rec = r["pbt"], r["web"], r["recorder"]
    v = r["verdict"]

    def ok(k):
        return "met" if v.get(k) else "MISSED"

    lines = [
        f"## Scenario `{r['scenario']}` ({r['duration_s']:.0f} s, {r['started']})",
        "",
        f"Load: {r['load']['clients']} Foxglove clients, {r['load']['uploaders']} extra "
        f"uploader(s) of {r['load']['upload_mb']} MB files, CPU hogs: {r['load']['cpu_hogs']}; "
        f"reader thread SCHED_FIFO: {r['rt_reader_thread']}; driver alone on a CPU: "
        f"{r.get('isolated_driver_cpu')}; containers (`--compose`): {r.get('compose', 'auto')}. "
        f"Host: {r['host']['cpus']} CPUs "
        "(shared dev box; figures are noisy).",
        "",
        "| figure | value | goal | |",
        "|---|---|---|---|",
        f"| PBT samples lost (ground truth) | {r['samples_lost']} | 0 | {ok('samples_lost')} |",
        f"| detection latency p99 [ms] | {r['latency_p99_ms']} | <= 5 | {ok('latency_p99_ms')} |",
        f"| events in the recording [%] | {r['events_recorded_pct']} | 100 | "
        f"{ok('events_recorded_pct')} |",
        f"| graph PSS without simulators [MB] | {r['graph_pss_mb']} | <= 200 | "
        f"{ok('graph_pss_mb')} |",
        f"| pbt_driver CPU [% of one core] | {r['pbt_driver_cpu_pct']} | <= 5 | "
        f"{ok('pbt_driver_cpu_pct')} |",
        f"| event recall / precision [%] | {p.get('recall_pct')} / {p.get('precision_pct')} | | |",
        f"| detection latency p50 / max [ms] | {p.get('detection_latency', {}).get('p50_ms')} / "
        f"{p.get('detection_latency', {}).get('max_ms')} | | |",
        *[
            f"| detection latency, {k} share p50 / p99 [ms] | {v.get('p50_ms')} / "
            f"{v.get('p99_ms')} | | |"
            for k, v in p.get("detection_latency_split", {}).items()
        ],
        f"| peak -> pulse command p50 / p99 [ms] | {p.get('pulse_delay', {}).get('p50_ms')} / "
        f"{p.get('pulse_delay', {}).get('p99_ms')} | | |",
        f"| web clients connected | {w['connected']} of {w['clients']} | | |",
    ]
    for t, s in w["per_topic"].items():
        lines.append(
            f"| web delivery {t} min / median [%] | {s['min_pct']} / {s['median_pct']} | | |"
        )
    if r["ftp"]:
        lines.append(
            f"| FTP throughput [MB/s] | {r['ftp']['mb_per_s']} ({r['ftp']['files']} files) | | |"
        )
    lines.append(f"| sample batches in the recording [%] | {rec['batches_recorded_pct']} | | |")
    lines.append(f"| restarts during the run | {sum(r['restarts'].values())} | 0 | |")
    lines += [
        "",
        "| node | CPU mean / max [%] | RSS [MB] | PSS [MB] | fds |",
        "|---|---|---|---|---|",
    ]
    for n, s in sorted(r["nodes"].items()):
        lines.append(
            f"| {n} | {s['cpu_mean_pct']} / {s['cpu_max_pct']} | {s['rss_max_mb']} | "
            f"{s['pss_max_mb']} | {s['fds']} |"
        )
    return "\n".join(lines) + "\n"


def plot(r: dict, lat: list, delays: list, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(2, 2, figsize=(13, 8))
    a0 = ax[0][0]
    if lat:
        a0.hist([x * 1e3 for x in lat], bins=50, alpha=0.7, label="closing sample -> PbtEvent")
    if delays:
        a0.hist([x * 1e3 for x in delays], bins=50, alpha=0.7, label="peak -> pulse command")
    a0.axvline(5.0, ls="--", c="#cc3311", label="goal p99 5 ms")
    a0.set(xlabel="ms", ylabel="events", title="detection latency / pulse delay")
    a0.legend(fontsize=7)
    for n, xs in sorted(r["series"].items()):
        ts = [x[0] for x in xs]
        ax[0][1].plot(ts, [x[1] if x[1] is not None else float("nan") for x in xs], label=n)
        ax[1][0].plot(ts, [x[2] / 1e6 for x in xs], label=n)
    ax[0][1].set(xlabel="s", ylabel="% of one core", title="CPU per node")
    ax[0][1].legend(fontsize=6, ncol=2)
    ax[1][0].set(xlabel="s", ylabel="RSS [MB]", title="RSS per node")
    a3 = ax[1][1]
    pc = r["web"]["per_client"]
    topics = list(r["web"]["per_topic"])
    width = 0.8 / max(1, len(topics))
    for i, t in enumerate(topics):
        xs = [int(c) + i * width for c in pc]
        a3.bar(xs, [pc[c].get(t, 0) for c in pc], width=width, label=t)
    a3.set(xlabel="client", ylabel="delivered [%]", title="web delivery per client", ylim=(0, 105))
    a3.legend(fontsize=7)
    fig.suptitle(f"bench/scenarios.py --scenario {r['scenario']} ({r['duration_s']:.0f} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
