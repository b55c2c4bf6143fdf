"""Two Pis on one machine: network namespaces joined by a veth pair, made here.

`sensorhub up --role sensors` runs in one namespace, `--role web` in the other, same
ROS_DOMAIN_ID, discovery over the veth link (the root conftest's localhost-only discovery is
overridden for these processes). An independent Foxglove WebSocket client (the JS client of
foxglove_gateway's tests) on the web host sees /pbt/samples from the sensors host; with the link
down the sensors host keeps acquiring, and after it comes back the web host resumes.

The namespaces come from sensorhub_testing's ``two_hosts`` fixture (``netns``), the JS client from
its ``js_client_dir`` fixture; each skips with the reason when namespaces cannot be made (not
root, no `ip`) or node/npm are not installed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from bringup.plan import Resolver
from sensorhub_testing import free_port
from sensorhub_testing.installed import require_sensorhub

pytestmark = pytest.mark.integration

CONFIG = Path(Resolver().share("bringup") or "", "config")
SENSORHUB = require_sensorhub("pbt_driver", "foxglove_gateway", "system_monitor")

STARTUP = 120.0  # two supervisors and their rclpy processes on a loaded 2-core box
DEADLINE = 90.0  # DDS rediscovery after the link comes back included


def state(data: Path) -> dict:
    try:
        return json.loads((data / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}


def running(data: Path, names) -> dict | None:
    n = {x["name"]: x for x in state(data).get("nodes", [])}
    return n if set(names) <= set(n) and all(n[k]["state"] == "running" for k in names) else None


def driver_index(data: Path) -> int:
    """The sensors host's own count of acquired samples (the driver's saved state, 1 Hz)."""
    try:
        return int(json.loads((data / "run" / "pbt_driver.state.json").read_text())["next_index"])
    except (OSError, ValueError, KeyError):
        return -1


def newest_sample_stamp(log: Path) -> float:
    """Newest /pbt/samples header stamp [s] the JS client reported (count mode, --progress)."""
    newest = -1.0
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return newest
    for line in text.splitlines():
        if not line.startswith('{"event":"progress"'):
            continue
        try:
            t = json.loads(line)["topics"].get("/pbt/samples")
        except ValueError:
            continue
        if t and t.get("last"):
            newest = max(newest, float(t["last"]))
    return newest


def test_sensors_and_web_on_two_hosts_survive_a_link_outage(
    procs, tmp_path, wait, js_client_dir, two_hosts
):
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIG, cfg)
    g = yaml.safe_load((cfg / "graph.yaml").read_text())
    for var in ("web_port", "tim240_port", "sec110_port"):
        g["variables"][var] = free_port()
    (cfg / "graph.yaml").write_text(yaml.safe_dump(g, sort_keys=False))
    port = g["variables"]["web_port"]
    # discovery beyond localhost, over the veth link only (each namespace has nothing else)
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_LOCALHOST_ONLY": "0"}
    base = [SENSORHUB, "up", "--graph", cfg / "graph.yaml", "--profile", "sim", "--no-color"]
    d_s, d_w = tmp_path / "sensors", tmp_path / "web"
    procs.start(
        "sensors",
        two_hosts.argv("sensors", *base, "--role", "sensors", "--data-root", d_s),
        env=env,
    )
    web = procs.start(
        "web", two_hosts.argv("web", *base, "--role", "web", "--data-root", d_w), env=env
    )
    wait(lambda: running(d_s, ["pbt_sim", "pbt_driver"]), STARTUP, what="sensors host up")
    # the web side's nodes (pbt_scope, foxglove_gateway) share the web_view process by default
    web_view = wait(lambda: running(d_w, ["web_view"]), STARTUP, what="web host up")["web_view"]
    assert "/foxglove_gateway" in web_view["members"]

    url = f"ws://127.0.0.1:{port}"
    # the supervisor announces the URL once the port answers (inside the web namespace)
    wait(lambda: f"ws://localhost:{port}" in web.output(), STARTUP, what="the web port open")
    client = procs.start(
        "client",
        two_hosts.argv(
            "web",
            "node",
            js_client_dir / "client.js",
            "--url",
            url,
            "--mode",
            "count",
            "--topics",
            "/pbt/samples",
            "--progress",
            "1",
        ),
    )
    log = client.log
    wait(lambda: newest_sample_stamp(log) > 0, DEADLINE, what="/pbt/samples on the web host")
    first = newest_sample_stamp(log)
    wait(lambda: newest_sample_stamp(log) > first + 2, DEADLINE, what="samples keep coming")

    # link down: the sensors host keeps acquiring, nothing restarts; the web host goes quiet
    before = {n: v["pid"] for n, v in running(d_s, ["pbt_driver"]).items()}
    two_hosts.link(False)
    t_down = time.time()
    i0 = wait(lambda: driver_index(d_s) > 0 and driver_index(d_s), 30, what="driver state")
    wait(lambda: driver_index(d_s) > i0 + 4 * 800, 60, what="acquiring with the link down")
    stale = newest_sample_stamp(log)
    assert stale < t_down + 2.0, "the web host got PBT data with the link down"
    now = running(d_s, ["pbt_driver"])
    assert now and {n: v["pid"] for n, v in now.items()} == before
    assert now["pbt_driver"]["restarts"] == 0

    # link up: the web host resumes with fresh data
    two_hosts.link(True)
    t_up = time.time()
    wait(
        lambda: newest_sample_stamp(log) > t_up,
        DEADLINE,
        what="the web host's client getting new /pbt/samples after the link came back",
    )
    assert running(d_w, ["web_view"])["web_view"]["restarts"] == 0
