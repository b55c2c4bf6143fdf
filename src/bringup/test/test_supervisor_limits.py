"""`sensorhub up` at its limits: a domain id DDS cannot use, a node that outprints its log cap,
a grandchild that left its process group (setsid). Graphs of plain commands: no ROS needed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bringup.domain import DomainIdError, domain_id, max_processes
from sensorhub_testing.installed import require_sensorhub

SENSORHUB = require_sensorhub()
STARTUP = 40.0


def mini_graph(tmp_path: Path, nodes: list[dict]) -> Path:
    d = tmp_path / "mini"
    d.mkdir(exist_ok=True)
    data = {"version": 1, "profiles": {"sim": {}}, "nodes": nodes}
    (d / "graph.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return d / "graph.yaml"


def py_node(name: str, code: str, **extra) -> dict:
    return {
        "name": name,
        "kind": "command",
        "command": [sys.executable, "-u", "-c", code],
        "roles": ["sensors"],
        **extra,
    }


def up_argv(graph: Path, data: Path, *extra) -> list[str]:
    argv = [SENSORHUB, "up", "--graph", graph, "--profile", "sim", "--data-root", data]
    return [str(a) for a in [*argv, "--no-color", *extra]]


def state(data: Path) -> dict:
    try:
        return json.loads((data / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    """Exists and is no zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_domain_id_rules_from_the_ros_docs():
    assert domain_id({}) == 0 and domain_id({"ROS_DOMAIN_ID": " 232 "}) == 232
    for bad in ("233", "323", "-1", "ten", "1.5"):
        with pytest.raises(DomainIdError, match="ROS_DOMAIN_ID"):
            domain_id({"ROS_DOMAIN_ID": bad})
    # About Domain ID: 54 processes at 101 and 63 at 232 on Linux; 102-214 are ephemeral ports
    assert max_processes(101) == 54 and max_processes(232) == 63
    assert max_processes(0) == max_processes(215) == 120
    assert max_processes(102) == max_processes(214) == 0


@pytest.mark.parametrize("value", ["323", "seven"])
def test_a_bad_domain_id_is_refused_before_anything_starts(tmp_path, value):
    marker = tmp_path / "started"
    graph = mini_graph(tmp_path, [py_node("n", f"open({str(marker)!r}, 'w')")])
    data = tmp_path / "data"
    env = {**os.environ, "ROS_DOMAIN_ID": value}
    r = subprocess.run(up_argv(graph, data), capture_output=True, text=True, timeout=60, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert f"ROS_DOMAIN_ID={value!r}" in out or f"ROS_DOMAIN_ID={value} " in out, out
    assert "0-232" in out and "Not starting anything" in out
    assert not marker.exists() and not (data / "run" / "supervisor.json").exists()


LOUD = """
line = 'x' * 90
for i in range(30000):
    print(f'line {i:05d} {line}')
"""


def test_a_capped_log_says_what_it_dropped(tmp_path):
    """3 MB of output into a 0.4 MB cap: the stop message and the log itself say so."""
    graph = mini_graph(tmp_path, [py_node("loud", LOUD, respawn=False)])
    data = tmp_path / "data"
    r = subprocess.run(
        up_argv(graph, data, "--quiet", "--log-cap-mb", "0.4"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr  # finished: nothing left to run
    log = data / "logs" / "loud.log"
    m = re.search(
        rf"loud: log capped at 0\.4 MB, ([\d.]+) MB dropped \((\d+) lines, the oldest; "
        rf"see {re.escape(str(log))}\)",
        r.stdout,
    )
    assert m, r.stdout
    dropped_mb, dropped_lines = float(m[1]), int(m[2])
    kept = [log, *(Path(f"{log}.{i}") for i in (1, 2, 3))]
    assert all(p.exists() for p in kept) and not Path(f"{log}.4").exists()
    text = "".join(p.read_text() for p in reversed(kept))
    numbers = [int(n) for n in re.findall(r" line (\d{5}) x", text)]
    assert numbers == list(range(numbers[0], 30000))  # the newest output, complete
    # every line not kept is counted: the prints before the first kept one, plus the
    # supervisor's start line and markers that went with them
    assert numbers[0] <= dropped_lines <= numbers[0] + 1 + 30
    assert dropped_mb >= numbers[0] * 110 / 1e6 - 0.1
    assert state(data)["nodes"][0]["log_dropped_bytes"] >= numbers[0] * 110
    # the marker: the current file starts by saying older output is gone
    first = log.read_text().splitlines()[0]
    assert "[sensorhub] log capped at 0.4 MB:" in first and "older output dropped" in first
    assert "complete" not in r.stdout


SPAWN = """
import subprocess, sys, time
code = '''
import os, signal, sys, time
os.setsid()
if sys.argv[1] == 'stubborn':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(os.getpid(), flush=True)
time.sleep(3600)
'''
g = subprocess.Popen([sys.executable, '-c', code, sys.argv[1]], stdout=subprocess.PIPE, text=True)
print('grandchild', g.stdout.readline().strip(), flush=True)
if sys.argv[1] == 'stubborn':
    time.sleep(3600)
"""


def test_a_detached_grandchild_is_stopped_with_the_graph(procs, tmp_path, wait):
    """A node's setsid grandchild outside its process group: stopped when its parent ends,
    and at the graph's stop (one that ignores SIGTERM too)."""

    def node(name, mode, **kw):
        n = py_node(name, SPAWN, **kw)
        n["command"] = [*n["command"], mode]
        return n

    graph = mini_graph(
        tmp_path, [node("keeper", "stubborn"), node("leaver", "polite", respawn=False)]
    )
    data = tmp_path / "data"
    sup = procs.start("sensorhub", up_argv(graph, data))
    pids: dict[str, int] = {}

    def grandchildren():
        for name, pid in re.findall(r"(keeper|leaver)\s*\| grandchild (\d+)", sup.output()):
            pids[name] = int(pid)
        return len(pids) == 2

    try:
        wait(grandchildren, STARTUP, what="both grandchildren started")
        # the leaver ended (exit 0, no respawn): what it left behind is stopped now
        wait(lambda: not alive(pids["leaver"]), STARTUP, what="the leaver's grandchild gone")
        assert f"stopping pid {pids['leaver']}, left running by leaver" in sup.output()
        assert alive(pids["keeper"])  # its parent still runs: left alone
        os.kill(sup.pid, signal.SIGINT)
        assert sup.popen.wait(60) == 0, sup.output()
        assert not alive(pids["keeper"]), "the setsid grandchild outlived the stop"
        assert f"stopping pid {pids['keeper']}, left running by keeper" in sup.output()
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
