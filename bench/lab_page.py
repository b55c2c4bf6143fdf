#!/usr/bin/env python3
"""Benchmark of the lab page: a class of 1, 10 and 50 pages open at once, from a second host.

Graph: the real sim graph (`sensorhub up --profile sim`, bench/_load.SimGraph: PBT sim + driver,
pbt_scope, TiM240 sim + bridge, SEC110 sim + FTP server, system_monitor, the gateway serving the
page) with max_clients 60. Browsers: Debian's chromium driven by src/lab_page/test/browser/
driver.js (puppeteer-core), one browser context per page, inside a network namespace of their
own (sensorhub_testing.netns, needs root), loading http://10.x.y.1:<port>/ over a veth link as
a phone on the lab's Wi-Fi would; without root they run on this machine and load 127.0.0.1
(the JSON says which). `--per-browser` pages share one chromium (several browsers beyond that);
with `--renderers N` they share one browser context and N renderer processes with the HTTP cache
off: every page still loads everything from the server and runs its own script, WebSocket and
decoding, but as background tabs they do not draw. That is the server's view of a class (what
50 connected phones cost the web host) on a box whose own 2 cores cannot also draw 50 visible
pages (a visible page costs this VM's software-rendering chromium ~7 % of a core).

Per level, over a measured window after every page is live:
- delivery: each page's count of /pbt/scope_preview frames (the scope the page reads) against a
  reliable ROS subscriber's count of those messages published over the same wall-clock span
  (goal: every page >= 95%);
- bandwidth: WebSocket bytes each page received per second (goal <= 30 kB/s per page);
- web CPU: the web_view process (pbt_scope + foxglove_gateway) in % of one core; the browsers'
  CPU (node + chromium trees) reported separately: on a 2-core box they compete with the graph;
- page load: navigation start to the first live /pbt/scope frame, p50/p95, and to the first
  events+files listed (the page's firstHistoryMs; goal <= 2 s).

Writes DIR/<--name>.json (lab_page.json: every page visible; lab_page_class.json: 50 background
tabs, `--levels 50 --renderers 4 --name lab_page_class`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Procs, RosThread, bench_domain, cpu_seconds, pct, wait_for
from _load import SimGraph, node_entry

BROWSER_DIR = ROOT / "src" / "lab_page" / "test" / "browser"
SCOPE = "/pbt/scope_preview"  # what the page reads when the graph publishes it
GOALS = {"delivery_min": 0.95, "kB_per_s_per_page": 30.0, "first_history_ms": 2000.0}


class ScopeCount(RosThread):
    """Wall-clock receive times of /pbt/scope (reliable, as the gateway subscribes)."""

    def __init__(self):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import PbtScope

        super().__init__("bench_lab_page")
        self.times: list[float] = []
        self.node.create_subscription(PbtScope, SCOPE, self._cb, qos.WEB_VIEW)

    def _cb(self, _msg) -> None:
        self.times.append(time.time())

    def between(self, a: float, b: float) -> int:
        return sum(1 for t in self.times if a < t <= b)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants (a driver: node + chromium)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


def driver_states(logs: list[Path]) -> list[list[dict]]:
    """Every page's state lines, in order (pages of several drivers numbered one after another)."""
    from sensorhub_testing.browser import DriverLog

    pages: list[list[dict]] = []
    for log in logs:
        d = DriverLog(log)
        by_page: dict[int, list[dict]] = {}
        for s in d.events("state"):
            if s.get("lab"):
                by_page.setdefault(s["page"], []).append(s)
        pages += [by_page[k] for k in sorted(by_page)]
    return pages


def all_live(logs: list[Path], n: int) -> bool:
    pages = driver_states(logs)
    return len(pages) == n and all(p[-1]["lab"]["scopeFrames"] > 0 for p in pages)


def near(states: list[dict], wall: float) -> dict:
    return min(states, key=lambda s: abs(s["wall"] - wall))


def page_figures(states: list[dict], t_a: float, t_b: float, scope: ScopeCount) -> dict | None:
    """One page's figures over [t_a, t_b]; None if its reports do not cover the window."""
    a, b = near(states, t_a), near(states, t_b)
    if abs(a["wall"] - t_a) > 5 or abs(b["wall"] - t_b) > 5:
        return None
    span = b["wall"] - a["wall"]
    published = scope.between(a["wall"], b["wall"])
    got = b["lab"]["frames"].get(SCOPE, 0) - a["lab"]["frames"].get(SCOPE, 0)
    # every page reads the preview, or its frames would not be comparable with `published`
    assert b["lab"]["reading"].get("/pbt/scope") == SCOPE, b["lab"]["reading"]
    probe = b.get("probe") or {}
    return {
        "delivery": got / published if published else None,
        "kB_per_s": (b["lab"]["bytes"] - a["lab"]["bytes"]) / span / 1000 if span > 0 else None,
        "load_ms": probe.get("firstScopeFrameMs"),
        "history_ms": b["lab"].get("firstHistoryMs"),
        "status": b["lab"]["status"],
        "errors": len(b["lab"].get("errors") or []),
    }


def _stats(xs: list, nd: int = 1) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"p50": None, "p95": None, "max": None}
    return {
        "p50": round(pct(xs, 50), nd),
        "p95": round(pct(xs, 95), nd),
        "max": round(max(xs), nd),
    }


def run_level(a, graph: SimGraph, scope: ScopeCount, hosts, url: str, n: int, tmp: Path) -> dict:
    from sensorhub_testing.browser import driver_argv, find_chromium

    procs = Procs(tmp)
    chromium = find_chromium()
    browsers = math.ceil(n / a.per_browser)
    logs, drivers = [], []
    for k in range(browsers):
        pages = min(a.per_browser, n - k * a.per_browser)
        argv = driver_argv(BROWSER_DIR, chromium, url, "--pages", pages, "--progress", a.progress,
                           "--parallel", a.parallel, "--open-timeout", a.open_timeout,
                           *(["--shared-context", "--renderer-limit", a.renderers]
                             if a.renderers else []))  # fmt: skip
        if hosts is not None:
            argv = hosts.argv("phone", *argv)
        name = f"driver_{n}_{k}"
        drivers.append(procs.start(name, argv))
        logs.append(tmp / f"{name}.log")
    t_open = time.monotonic()
    ok = wait_for(lambda: all_live(logs, n), a.open_timeout, 0.5)
    opened_s = time.monotonic() - t_open
    web = graph.pids().get("web_view")
    settle = time.time() + a.settle
    wait_for(lambda: time.time() >= settle, a.settle + 1, 0.2)
    t_a = time.time()
    cpu_a = cpu_seconds(web) if web else None
    br_a = sum(tree_cpu(d.pid) for d in drivers)
    wait_for(lambda: time.time() >= t_a + a.window, a.window + 1, 0.2)
    t_b = time.time()
    cpu_b = cpu_seconds(web) if web else None
    br_b = sum(tree_cpu(d.pid) for d in drivers)
    wait_for(lambda: all(s[-1]["wall"] >= t_b for s in driver_states(logs)), 30, 0.5)
    states = driver_states(logs)
    measured = [page_figures(s, t_a, t_b, scope) for s in states]
    pages = [p for p in measured if p is not None]
    for d in drivers:
        Procs.stop(d, 30)
    span = t_b - t_a
    deliveries = [p["delivery"] for p in pages if p["delivery"] is not None]
    return {
        "pages": n,
        "browsers": browsers,
        "all_live": ok,
        "open_all_s": round(opened_s, 1),
        "window_s": round(span, 1),
        "published_scope": scope.between(t_a, t_b),
        "delivery_min": round(min(deliveries), 3) if deliveries else None,
        "delivery_p50": round(pct(deliveries, 50), 3) if deliveries else None,
        "pages_below_95pct": sum(1 for d in deliveries if d < GOALS["delivery_min"]),
        "pages_opened": len(states),
        "pages_measured": len(pages),
        "kB_per_s_per_page": _stats([p["kB_per_s"] for p in pages], 2),
        "web_view_cpu_pct": round(100 * (cpu_b - cpu_a) / span, 1) if web else None,
        "browser_cpu_pct": round(100 * (br_b - br_a) / span, 1),
        "load_to_first_frame_ms": _stats([p["load_ms"] for p in pages], 0),
        "first_history_ms": _stats([p["history_ms"] for p in pages], 0),
        "page_errors": sum(p["errors"] for p in pages),
        "live_at_end": sum(1 for s in states if s[-1]["lab"]["status"] == "live"),
    }


def second_host():
    """A network namespace for the browsers (None, with the reason printed, where none can be
    made: not root, no ip)."""
    from sensorhub_testing.netns import TwoHosts

    hosts = TwoHosts(("lab", "phone"), root="lab")
    try:
        hosts.create()
    except BaseException as e:  # pytest's skip/fail outcomes: no namespace here
        hosts.destroy()
        print(f"lab_page bench: browsers on this machine ({e})", file=sys.stderr)
        return None
    return hosts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--levels", default="1,10,50", help="pages open at once, comma-separated")
    ap.add_argument("--per-browser", type=int, default=50, help="pages per chromium")
    ap.add_argument("--parallel", type=int, default=5, help="pages a browser opens at once")
    ap.add_argument("--warmup", type=float, default=20.0, help="graph run time before level 1")
    ap.add_argument("--window", type=float, default=30.0, help="measured seconds per level")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after all are live")
    ap.add_argument("--progress", type=float, default=2.0, help="driver report period [s]")
    ap.add_argument("--open-timeout", type=float, default=240.0)
    ap.add_argument(
        "--renderers",
        type=int,
        default=0,
        help="N > 0: the pages share one browser context and N renderer processes, "
        "cache off; they are background tabs then (connected and decoding, "
        "not drawing). 0: a context and window per page, every page drawing",
    )
    ap.add_argument("--name", default="lab_page", help="output file name (without .json)")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    domain = bench_domain()
    a.out.mkdir(parents=True, exist_ok=True)
    hosts = second_host()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-lab-page-") as td:
        tmp = Path(td)

        def mutate(g):
            node_entry(g, "foxglove_gateway").setdefault("parameters", {})["max_clients"] = 60

        graph = SimGraph(tmp, mutate=mutate)
        host = hosts.addr["lab"] if hosts else "127.0.0.1"
        url = f"http://{host}:{graph.web_port}/"
        scope = None
        try:
            graph.start()
            if not graph.wait_running(120):
                raise SystemExit(f"the sim graph did not come up: see {tmp}/sensorhub.log")
            scope = ScopeCount()
            # a class joins a running graph: events and files exist before the first page
            t_up = time.monotonic()
            wait_for(lambda: time.monotonic() - t_up >= a.warmup, a.warmup + 1, 0.5)
            for n in levels:
                r = run_level(a, graph, scope, hosts, url, n, tmp)
                print(json.dumps(r), flush=True)
                results.append(r)
        finally:
            if scope is not None:
                scope.close()
            graph.stop()
            if hosts is not None:
                hosts.destroy()
    out = {
        "bench": "lab_page",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ros_domain": domain,
        "second_host": hosts is not None,
        "url_host": "10.x.y.1 (veth, browsers in a network namespace)" if hosts else "127.0.0.1",
        "pages_per_browser": a.per_browser,
        "rig": (
            f"pages of one chromium share one browser context and {a.renderers} renderer "
            "processes, HTTP cache off: background tabs (each its own script, WebSocket and "
            "decoding; drawing skipped while hidden, as on a phone with the tab in the back)"
            if a.renderers
            else "one browser context and window per page: every page visible and drawing"
        ),
        "goals": GOALS,
        "levels": results,
    }
    (a.out / f"{a.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out / (a.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
