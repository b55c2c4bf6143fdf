"""The lab page in a real browser on a second host: Debian's chromium, driven by puppeteer-core
(test/browser/driver.js), in a network namespace of its own; the sim graph (`sensorhub up
--profile sim`, the gateway serving the page) on this machine, reached over a veth link at a
non-localhost address, as a phone on the lab's Wi-Fi reaches the Pi.

One graph for the module (the graph's start-up is most of the cost). The browser reports what
the page's read-only ``window.labPage`` hooks, its DOM and the browser's own events show; the
tests assert behaviour only (time-to-history is printed, and measured in bench/lab_page.py).
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bringup.plan import Resolver
from sensorhub_testing import ProcGroup, free_port, netns, params_file, wait_for, wait_listening
from sensorhub_testing.browser import DriverLog, driver_argv
from sensorhub_testing.installed import require_sensorhub

pytestmark = pytest.mark.integration

SENSORHUB = require_sensorhub(
    "lab_page", "foxglove_gateway", "pbt_driver", "pbt_scope", "tim240_bridge", "sec110_ftp",
    "system_monitor",
)  # fmt: skip
CONFIG = Path(Resolver().share("bringup") or "", "config")
STARTUP = 120.0  # the whole sim graph's rclpy processes on a loaded 2-core box
DEADLINE = 60.0  # a page's condition (chromium start included)
SCOPE = "/pbt/scope"


def start_graph(procs: ProcGroup, tmp: Path, host: str) -> SimpleNamespace:
    """The sim graph with the gateway (serving the page) on free ports, its own data root."""
    cfg = tmp / "cfg"
    shutil.copytree(CONFIG, cfg)
    g = yaml.safe_load((cfg / "graph.yaml").read_text())
    for var in ("web_port", "tim240_port", "sec110_port"):
        g["variables"][var] = free_port()
    (cfg / "graph.yaml").write_text(yaml.safe_dump(g, sort_keys=False))
    data = tmp / "data"
    argv = [SENSORHUB, "up", "--graph", cfg / "graph.yaml", "--profile", "sim", "--web",
            "gateway", "--no-color", "--data-root", data]  # fmt: skip
    sup = procs.start("sensorhub", argv)
    port = g["variables"]["web_port"]
    return SimpleNamespace(sup=sup, data=data, port=port, url=f"http://{host}:{port}/")


def supervised(data: Path) -> dict:
    try:
        state = json.loads((data / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}
    return {n["name"]: n for n in state.get("nodes", [])}


def running(data: Path, name: str) -> dict | None:
    n = supervised(data).get(name)
    return n if n and n["state"] == "running" and n.get("pid") else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The graph on this machine ("lab", 10.x.y.1) and a second host ("phone", 10.x.y.2)."""
    tmp = tmp_path_factory.mktemp("lab")
    procs = ProcGroup(tmp)
    with netns.two_hosts(("lab", "phone"), root="lab") as hosts:
        graph = start_graph(procs, tmp, hosts.addr["lab"])
        try:
            wait_for(lambda: running(graph.data, "web_view"), STARTUP, 0.2, what="web_view up")
            wait_listening(f"ws://{hosts.addr['lab']}:{graph.port}", graph.sup, wait_for, STARTUP)
            yield SimpleNamespace(hosts=hosts, procs=procs, tmp=tmp, **vars(graph))
        except BaseException:
            sys.stderr.write(f"\n----- sensorhub up -----\n{graph.sup.output()[-6000:]}")
            raise
        finally:
            procs.stop_all()


def browse(lab, procs, browser_dir, chromium, name: str, url: str, *extra) -> DriverLog:
    """driver.js on the second host (inside its network namespace) loading `url`."""
    argv = lab.hosts.argv("phone", *driver_argv(browser_dir, chromium, url, *extra))
    return DriverLog(procs.start(name, argv).log)


def state_where(log: DriverLog, pred, page: int = 0):
    """The newest state of `page` that satisfies pred (None: none yet); fails on a driver crash."""
    fatal = log.fatal()
    assert fatal is None, f"driver.js failed: {fatal}"
    for s in reversed(log.states(page)):
        if pred(s):
            return s
    return None


def live(s: dict) -> bool:
    lab = s["lab"]
    return lab["status"] == "live" and lab["scopeFrames"] > 0 and lab["scopeDraws"] > 0


def test_page_from_a_second_host_is_live_fits_a_phone_and_reconnects(
    lab, procs, wait, browser_dir, chromium
):
    log = browse(lab, procs, browser_dir, chromium, "phone", lab.url, "--hash-scope")
    first = wait(lambda: state_where(log, live), DEADLINE, 0.2, what="the page live")
    f0, lab0 = first["lab"]["frames"], first["lab"]
    n0 = lab0["scopeFrames"]
    assert first["lab"]["url"].startswith(f"ws://{lab.hosts.addr['lab']}:{lab.port}")

    def moved(s):
        f = s["lab"]["frames"]
        return (
            live(s)
            and s["lab"]["scopeFrames"] > n0 + 5
            and s["lab"]["scopeDraws"] > lab0["scopeDraws"] + 5
            and s["scopeHash"] != first["scopeHash"]
            and all(f.get(t, 0) > n for t, n in f0.items() if t.endswith("/tim240/zones"))
        )

    later = wait(lambda: state_where(log, moved), DEADLINE, 0.2, what="data flowing, plot moving")
    assert later["lab"]["errors"] == []
    # the graph's page-rate topics, not the full-rate ones
    assert later["lab"]["reading"] == {
        "/pbt/scope": "/pbt/scope_preview",
        "/pbt/event_history": "/lab/pbt/event_history",
        "/pbt/events": "/pbt/events",
        "/tim240/zones": "/lab/tim240/zones",
        "/tim240/markers": "/lab/tim240/markers",
        "/tim240/scan_filtered": "/lab/tim240/scan_filtered",
        "/sec110/files": "/sec110/files",
        "/diagnostics_agg": "/lab/diagnostics_agg",
    }, later["lab"]["reading"]
    # a 390 px phone: no horizontal scrolling
    assert later["layout"]["innerWidth"] == 390
    assert later["layout"]["scrollWidth"] <= later["layout"]["innerWidth"], later["layout"]
    assert set(later["layout"]["ids"]) >= {"conn-banner", "scope", "events", "zones", "files"}
    assert log.errors() == [], "console errors, page errors or failed requests"

    # the WebSocket server dies and comes back on the same port (the supervisor's respawn)
    web_view = running(lab.data, "web_view")
    os.kill(web_view["pid"], signal.SIGKILL)
    wait(
        lambda: (r := running(lab.data, "web_view")) and r["pid"] != web_view["pid"],
        STARTUP,
        0.2,
        what="web_view respawned",
    )
    n_before = later["lab"]["scopeFrames"]

    def back(s):
        lab_ = s["lab"]
        return live(s) and lab_["connects"] == 2 and lab_["scopeFrames"] > n_before + 5

    again = wait(lambda: state_where(log, back), STARTUP, 0.2, what="reconnected, data again")
    seen = again["probe"]["seen"]
    lost = [e for e in seen if e["status"] == "lost" and e["connects"] == 1]
    assert lost, f"the banner never showed the connection lost: {seen}"
    assert any("lost" in e["banner"].lower() for e in lost), lost
    assert again["lab"]["errors"] == []
    assert [e for e in log.errors() if e["kind"] == "pageerror"] == []


def test_a_late_joiner_sees_events_and_files_no_later_than_the_first_scope_frame(
    lab, procs, wait, browser_dir, chromium
):
    # let the graph run until events and files exist (seen by a first page), then join late
    warm = browse(lab, procs, browser_dir, chromium, "warm", lab.url)
    wait(
        lambda: state_where(warm, lambda s: s["lab"]["events"] > 0 and s["lab"]["files"] > 0),
        STARTUP,
        0.2,
        what="events and files in the graph",
    )
    procs.procs[-1].stop()
    log = browse(lab, procs, browser_dir, chromium, "late", lab.url, "--progress", "0.5")
    s = wait(
        lambda: state_where(log, lambda s: live(s) and s["probe"]["historyMs"] is not None),
        DEADLINE,
        0.2,
        what="the late page live with history",
    )
    probe = s["probe"]
    sys.stdout.write(
        f"\nlate joiner: firstHistoryMs={s['lab']['firstHistoryMs']} (page), probe "
        f"historyMs={probe['historyMs']:.0f} firstScopeDrawMs={probe['firstScopeDrawMs']:.0f}\n"
    )
    assert s["lab"]["firstHistoryMs"] is not None
    # the probe polls every 10 ms: history listed in the same tick as the first draw or before
    assert probe["historyMs"] <= probe["firstScopeDrawMs"] + 10, probe
    assert log.errors() == []


def scope_fixture(path: Path, count: int = 100) -> Path:
    """A /pbt/scope channel for the v1 server: real CDR (rclpy) of a moving PbtScope window
    and its ros2msg schema from the installed sensorhub_msgs."""
    from rclpy.serialization import serialize_message

    from sensorhub_common.schema import build_ros2msg
    from sensorhub_msgs.msg import PbtScope

    n = 200
    msgs = []
    for k in range(count):
        m = PbtScope()
        m.header.frame_id = "pbt"
        m.t = [-5.0 + 5.0 * i / (n - 1) for i in range(n)]
        m.value = [0.5 + 0.4 * math.sin(0.2 * i + 0.3 * k) for i in range(n)]
        m.envelope = [abs(v - 0.5) + 0.5 for v in m.value]
        m.baseline = [0.5] * n
        m.threshold = [0.8] * n
        m.events = [0.9 if i == (k * 7) % n else math.nan for i in range(n)]
        m.window, m.bucket_samples, m.sample_rate = 5.0, 20, 800.0
        m.first_index, m.last_index = k * 40, k * 40 + 4000
        m.event_count = 1
        msgs.append(base64.b64encode(serialize_message(m)).decode())
    channel = {
        "topic": SCOPE,
        "schemaName": "sensorhub_msgs/msg/PbtScope",
        "schema": build_ros2msg("sensorhub_msgs/msg/PbtScope"),
        "rateHz": 20,
        "messages": msgs,
    }
    path.write_text(json.dumps({"channels": [channel]}))
    return path


def test_the_page_works_with_a_server_speaking_only_foxglove_websocket_v1(
    lab, procs, wait, tmp_path, browser_dir, chromium
):
    host = lab.hosts.addr["lab"]
    pf = tmp_path / "v1.port"
    server = procs.start(
        "v1_server",
        ["node", browser_dir / "v1_server.js", "--fixture", scope_fixture(tmp_path / "v1.json"),
         "--host", host, "--port", "0", "--port-file", pf],
    )  # fmt: skip
    wait(pf.exists, 30, what="v1 server port file")
    ws = f"ws://{host}:{pf.read_text()}/"
    log = browse(lab, procs, browser_dir, chromium, "v1", f"{lab.url}?ws={ws}")
    s = wait(
        lambda: state_where(log, lambda s: live(s) and s["lab"]["scopeFrames"] >= 10),
        DEADLINE,
        0.2,
        what="the page live against the v1 server",
    )
    assert s["lab"]["subprotocol"] == "foxglove.websocket.v1"
    assert s["lab"]["reading"]["/pbt/scope"] == SCOPE  # no preview there: the original
    assert s["lab"]["url"] == ws
    assert s["lab"]["errors"] == []
    assert log.errors() == []
    assert '"protocol":"foxglove.websocket.v1"' in server.output()


def test_a_page_beyond_the_client_limit_says_the_server_is_full(
    lab, procs, wait, tmp_path, browser_dir, chromium
):
    """A second gateway beside the graph's, admitting one client: of two pages, one is live and
    the other shows "full" with the server's message."""
    from sensorhub_common.paths import executable

    port = free_port()
    params = {"address": lab.hosts.addr["lab"], "port": port, "max_clients": 1}
    pf = params_file(tmp_path / "gw.yaml", "/**", params)
    exe = executable("foxglove_gateway", "foxglove_gateway")
    gw = procs.start("gateway_one", [exe, "--ros-args", "-r", "__node:=gateway_one",
                                     "--params-file", pf])  # fmt: skip
    url = f"http://{lab.hosts.addr['lab']}:{port}/"
    wait_listening(url.replace("http", "ws").rstrip("/"), gw, wait, STARTUP)
    log = browse(lab, procs, browser_dir, chromium, "two", url, "--pages", "2")

    def one_live_one_full():
        s = [log.last(0), log.last(1)]
        if None in s:
            return None
        status = sorted(x["lab"]["status"] for x in s)
        return s if status == ["full", "live"] else None

    pages = wait(one_live_one_full, DEADLINE, 0.2, what="one page live, the other full")
    full = next(p for p in pages if p["lab"]["status"] == "full")
    banners = [e["banner"] for e in full["probe"]["seen"] if e["status"] == "full"]
    assert any("full" in b.lower() for b in banners), full["probe"]["seen"]
