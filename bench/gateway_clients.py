#!/usr/bin/env python3
"""Benchmark of a class on the lab page: gateway CPU and per-client figures for N web clients.

Graph: `sensorhub up --profile sim --compose false` (every sim node, the gateway in a process of
its own) from a copy of the installed graph with room for the largest level (max_clients).

Clients: the independent JS client (src/foxglove_gateway/test/js, count mode), N WebSocket
connections in one node process, of two kinds:
- ``page``: what the lab page subscribes to (PAGE_TOPICS: the scope, events and their history,
  zones, the filtered scan, SEC110 files, /diagnostics_agg), at N = 1, 10, 30, 50, 60;
- ``layout``: what the engineers' Foxglove/Lichtblick layout subscribes to (every topic named in
  src/bringup/config/foxglove_layout.json: adds /scan at full rate, markers, /diagnostics), at
  N = 1, 10, 20;
and a mix (``--mix``, default 50 pages + 10 layouts) to check the limits chosen from the two.

Per level, over the window: the gateway process's CPU (user+system, % of one core, psutil),
its RSS, per client kB/s received (CDR payload + 17 B framing per message, from the client's
own counts) and per topic the messages each client got against what a reference rclpy
subscriber saw published (worst and median client, %), and clients connected.

Writes DIR/gateway_clients.json (and .png with matplotlib). Goal (the lab's class): 50 lab
pages at <= 50 % of one core of this machine, every client >= 99 % of events and files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ROOT,
    Procs,
    RosThread,
    bench_domain,
    cpu_seconds,
    ensure_js,
    free_port,
    listening,
    pyplot,
    rss_bytes,
    share,
    start_js,
    wait_for,
)

# what the lab page reads in the sim graph (src/lab_page/web/src/main.ts, TOPICS: page rates)
PAGE_TOPICS = ("/pbt/scope_preview", "/pbt/events", "/lab/pbt/event_history", "/lab/tim240/zones",
               "/lab/tim240/markers", "/lab/tim240/scan_filtered", "/sec110/files",
               "/lab/diagnostics_agg")  # fmt: skip
LAYOUT = ROOT / "src" / "bringup" / "config" / "foxglove_layout.json"
WS_OVERHEAD = 13 + 4  # B per message: Foxglove message data header + WebSocket frame header
GOAL_CPU_PCT_AT_50 = 50.0


def layout_topics() -> list[str]:
    text = json.dumps(json.loads(LAYOUT.read_text())["configById"])
    return sorted(set(re.findall(r'"(/[a-z0-9_/]+?)(?:[.\[{]|")', text)))


class Reference(RosThread):
    """Counts what the graph publishes on each topic (raw, best effort: matches any QoS)."""

    def __init__(self, topics: list[str]):
        super().__init__("bench_gateway_clients_reference")
        self.counts: dict[str, int] = {t: 0 for t in topics}
        self._wanted = set(topics)
        self._subs: dict[str, object] = {}

    def subscribe_known(self) -> None:
        """Subscribe to the wanted topics that have publishers now (their type from the graph)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from sensorhub_common.discovery import import_message

        q = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
        for name, types in self.node.get_topic_names_and_types():
            if name in self._wanted and name not in self._subs and types:
                cls = import_message(types[0])
                self._subs[name] = self.node.create_subscription(
                    cls, name, lambda _m, t=name: self._on(t), q, raw=True
                )

    def _on(self, topic: str) -> None:
        self.counts[topic] += 1


def _graph_copy(tmp: Path, max_clients: int) -> Path:
    dst = tmp / "config"
    shutil.copytree(share("bringup") / "config", dst)
    gw = dst / "foxglove_gateway.yaml"
    text, n = re.subn(r"max_clients:\s*\d+", f"max_clients: {max_clients}", gw.read_text())
    if not n:
        text += f"    max_clients: {max_clients}\n"
    gw.write_text(text)
    return dst / "graph.yaml"


def _up_argv(graph: Path, data: Path, port: int) -> list:
    return [shutil.which("sensorhub") or "sensorhub", "up", "--profile", "sim",
            "--compose", "false", "--quiet", "--no-color", "--graph", graph, "--data-root", data,
            "--set", f"web_port={port}", "--set", f"tim240_port={free_port()}",
            "--set", f"sec110_port={free_port()}"]  # fmt: skip


def gateway_pid(sup_pid: int) -> int | None:
    import psutil

    for c in psutil.Process(sup_pid).children(recursive=True):
        try:
            if any(Path(a).name == "foxglove_gateway" for a in c.cmdline()[:3]):
                return c.pid
        except psutil.Error:
            continue
    return None


def _progress(path: Path) -> dict[int, list[dict]]:
    """Each client's progress lines (count mode --progress), by client index."""
    out: dict[int, list[dict]] = {}
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "progress":
                out.setdefault(ev["client"], []).append(ev)
    return out


def _at(lines: list[dict], t: float) -> dict | None:
    """The last progress line at or before wall time t."""
    before = [p for p in lines if p["t"] <= t]
    return before[-1] if before else None


def _client_window(lines: list[dict], w0: float, w1: float) -> dict | None:
    a, b = _at(lines, w0), _at(lines, w1)
    if a is None or b is None or b["t"] <= a["t"]:
        return None
    dt = b["t"] - a["t"]
    msgs, nbytes = {}, 0
    for topic, c in b["topics"].items():
        c0 = a["topics"].get(topic, {"n": 0, "bytes": 0})
        n = c["n"] - c0["n"]
        msgs[topic] = n / dt
        nbytes += c["bytes"] - c0["bytes"] + WS_OVERHEAD * n
    return {"kB_per_s": nbytes / dt / 1000, "msgs_per_s": msgs}


def rate_caps() -> list[tuple[re.Pattern, float]]:
    """The deployed gateway's max_rates (bringup's foxglove_gateway.yaml): the web gets these."""
    import yaml

    doc = yaml.safe_load((share("bringup") / "config" / "foxglove_gateway.yaml").read_text())
    rules = next(iter(doc.values()))["ros__parameters"].get("max_rates", [])
    out = []
    for r in rules:
        pat, _, hz = str(r).rpartition("=")
        if pat and float(hz) > 0:
            out.append((re.compile(pat), float(hz)))
    return out


def _web_rate(topic: str, published: float, caps) -> float:
    """What a web client is offered: the published rate, or the topic's cap below it."""
    cap = next((hz for pat, hz in caps if pat.fullmatch(topic)), 0.0)
    return min(published, cap) if cap else published


def _summary(clients: list[dict], ref_rates: dict[str, float]) -> dict:
    kbs = [c["kB_per_s"] for c in clients]
    per_topic = {}
    for topic, rate in sorted(ref_rates.items()):
        if rate <= 0:
            continue
        offered = _web_rate(topic, rate, CAPS)
        pcts = [min(100.0, 100.0 * c["msgs_per_s"].get(topic, 0.0) / offered) for c in clients]
        per_topic[topic] = {
            "published_hz": round(rate, 2),
            "offered_hz": round(offered, 2),
            "worst_client_pct": round(min(pcts), 1) if pcts else None,
            "median_client_pct": round(statistics.median(pcts), 1) if pcts else None,
        }
    return {
        "kB_per_s_per_client_median": round(statistics.median(kbs), 1) if kbs else None,
        "kB_per_s_per_client_min": round(min(kbs), 1) if kbs else None,
        "kB_per_s_total": round(sum(kbs), 1),
        "got_vs_published": per_topic,
    }


def run_level(a, tmp: Path, port: int, gw: int, ref: Reference, kinds: dict[str, int]) -> dict:
    """One window with the given clients connected: {'page': n, 'layout': m}."""
    url = f"ws://127.0.0.1:{port}"
    topics = {"page": "|".join(PAGE_TOPICS), "layout": "|".join(layout_topics())}
    started = {}
    for kind, n in kinds.items():
        if n:
            path = tmp / f"{kind}_{'_'.join(f'{k}{v}' for k, v in kinds.items())}.jsonl"
            started[kind] = (path, start_js(path, url, n, "--topics", topics[kind],
                                            "--progress", "1.0"))  # fmt: skip
    total = sum(kinds.values())
    time.sleep(a.warmup + total * 0.03)
    ref.subscribe_known()
    r0, cpu0, w0, m0 = dict(ref.counts), cpu_seconds(gw), time.time(), time.monotonic()
    rss = []
    while time.monotonic() - m0 < a.window:
        time.sleep(min(1.0, a.window - (time.monotonic() - m0)))
        rss.append(rss_bytes(gw))
    r1, cpu1, w1, m1 = dict(ref.counts), cpu_seconds(gw), time.time(), time.monotonic()
    time.sleep(1.5)  # the clients' progress line after the window
    ref_rates = {t: (r1[t] - r0.get(t, 0)) / (m1 - m0) for t in r1}
    res: dict = {
        "clients": dict(kinds),
        "window_s": round(m1 - m0, 1),
        "gateway_cpu_pct_of_one_core": round(100.0 * (cpu1 - cpu0) / (m1 - m0), 1),
        "gateway_rss_mb": round(max(rss) / 1e6, 1) if rss else None,
    }
    for kind, (path, proc) in started.items():
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        prog = _progress(path)
        win = [w for w in (_client_window(v, w0, w1) for v in prog.values()) if w]
        wanted = set(PAGE_TOPICS if kind == "page" else layout_topics())
        rates = {t: v for t, v in ref_rates.items() if t in wanted}
        res[kind] = {"connected": len(prog), **_summary(win, rates)}
    print(json.dumps(res), flush=True)
    return res


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    ap.add_argument("--pages", default="1,10,30,50,60", help="lab page levels")
    ap.add_argument("--layouts", default="1,10,20", help="full-layout viewer levels")
    ap.add_argument("--mix", default="50+10", help="PAGES+LAYOUTS at once ('' = none)")
    a = ap.parse_args()
    a.page_levels = [int(x) for x in a.pages.split(",") if x.strip()]
    a.layout_levels = [int(x) for x in a.layouts.split(",") if x.strip()]
    a.mix_level = tuple(int(x) for x in a.mix.split("+")) if a.mix else None
    a.window, a.warmup = (6.0, 4.0) if a.quick else (20.0, 6.0)
    return a


CAPS: list = []


def run(a, tmp: Path) -> dict:
    CAPS[:] = rate_caps()
    levels = [{"page": n, "layout": 0} for n in a.page_levels]
    levels += [{"page": 0, "layout": n} for n in a.layout_levels]
    if a.mix_level:
        levels.append({"page": a.mix_level[0], "layout": a.mix_level[1]})
    most = max(sum(lv.values()) for lv in levels)
    graph = _graph_copy(tmp, most + 5)
    port = free_port()
    procs = Procs(tmp)
    sup = procs.start("sensorhub", _up_argv(graph, tmp / "data", port))
    ref = None
    try:
        if not wait_for(lambda: listening(port), 90.0, interval=0.5):
            raise RuntimeError(f"gateway not listening (see {tmp}/sensorhub.log)")
        gw = gateway_pid(sup.pid)
        if gw is None:
            raise RuntimeError("no foxglove_gateway process under the supervisor")
        ref = Reference(sorted(set(PAGE_TOPICS) | set(layout_topics())))
        time.sleep(5.0)  # discovery; the first SEC110 upload
        ref.subscribe_known()
        idle0, t0 = cpu_seconds(gw), time.monotonic()
        time.sleep(min(a.window, 10.0))
        idle = round(100.0 * (cpu_seconds(gw) - idle0) / (time.monotonic() - t0), 1)
        res = {"gateway_idle_cpu_pct": idle, "levels": []}
        for lv in levels:
            res["levels"].append(run_level(a, tmp, port, gw, ref, lv))
        return res
    finally:
        if ref is not None:
            ref.close()
        procs.stop_all(timeout=30.0)


def verdict(res: dict) -> dict:
    out = {}
    for lv in res["levels"]:
        if lv["clients"] == {"page": 50, "layout": 0}:
            cpu = lv["gateway_cpu_pct_of_one_core"]
            out["cpu_le_50pct_at_50_pages"] = cpu <= GOAL_CPU_PCT_AT_50
            got = lv["page"]["got_vs_published"]
            out["events_and_files_ge_99pct_at_50_pages"] = all(
                got[t]["worst_client_pct"] >= 99.0
                for t in ("/pbt/events", "/sec110/files")
                if t in got and got[t]["worst_client_pct"] is not None
            )
            out["all_50_connected"] = lv["page"]["connected"] == 50
    return out


def main() -> int:
    a = parse_args()
    ensure_js()
    domain = bench_domain()
    tmp = Path(tempfile.mkdtemp(prefix="bench_gateway_clients_"))
    res = run(a, tmp)
    result = {
        "benchmark": "gateway_clients",
        "host_cpus": os.cpu_count(),
        "quick": a.quick,
        "ros_domain": domain,
        "graph": "sensorhub up --profile sim --compose false (gateway in its own process)",
        "page_topics": list(PAGE_TOPICS),
        "rate_caps": [f"{p.pattern}={hz:g}" for p, hz in CAPS],
        "note": "got vs published: each client's messages/s against the published rate, or "
        "the gateway's rate cap below it (offered_hz); kB/s = CDR payload + 17 B/message",
        "layout_topics": layout_topics(),
        **res,
    }
    result["verdict"] = verdict(result)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gateway_clients.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["verdict"]))
    _plot(result, a.out / "gateway_clients.png")
    if os.environ.get("BENCH_KEEP_TMP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _plot(result: dict, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for kind in ("page", "layout"):
        rows = [lv for lv in result["levels"] if lv["clients"][kind] and
                not lv["clients"]["layout" if kind == "page" else "page"]]  # fmt: skip
        xs = [lv["clients"][kind] for lv in rows]
        ax[0].plot(xs, [lv["gateway_cpu_pct_of_one_core"] for lv in rows], "o-", label=kind)
        ax[1].plot(xs, [lv[kind]["kB_per_s_per_client_median"] for lv in rows], "o-", label=kind)
    ax[0].set(xlabel="clients", ylabel="gateway CPU [% of one core]", title="CPU")
    ax[1].set(xlabel="clients", ylabel="kB/s per client (median)", title="bandwidth")
    for x in ax:
        x.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    sys.exit(main())
