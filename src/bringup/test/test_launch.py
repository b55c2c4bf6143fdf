"""all.launch.py builds the same processes as the supervisor's plan (needs launch_ros).

Skipped when launch_ros is absent (the wheels path). Nothing is started here: ExecuteLocal's
execute is replaced by its own `prepare`, which computes the final command, env and cwd exactly
as ros2 launch would before spawning.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

launch = pytest.importorskip("launch")
pytest.importorskip("launch_ros")

from launch import LaunchContext  # noqa: E402
from launch.actions import (  # noqa: E402
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    SetLaunchConfiguration,
)
from launch.actions.execute_local import ExecuteLocal  # noqa: E402
from launch.launch_description_sources import (  # noqa: E402
    get_launch_description_from_python_launch_file,
)

from bringup.graph import load_graph  # noqa: E402
from bringup.plan import Resolver, build_plan  # noqa: E402

pytestmark = pytest.mark.launch

SHARE = Path(Resolver().share("bringup") or "")
LAUNCH_FILE = SHARE / "launch" / "all.launch.py"
GRAPH = SHARE / "config" / "graph.yaml"


@pytest.fixture
def fake_prefix(tmp_path, monkeypatch, our_packages):
    """Our node packages as an ament prefix (the real ones may still be building elsewhere)."""
    root = tmp_path / "prefix"
    for pkg, exes in our_packages.items():
        (root / "share/ament_index/resource_index/packages").mkdir(parents=True, exist_ok=True)
        (root / "share/ament_index/resource_index/packages" / pkg).write_text("")
        (root / "share" / pkg / "config").mkdir(parents=True, exist_ok=True)
        (root / "lib" / pkg).mkdir(parents=True, exist_ok=True)
        for exe in exes:
            (root / "share" / pkg / "config" / f"{exe}.yaml").write_text(
                "/**:\n  ros__parameters: {}\n"
            )
            (root / "lib" / pkg / exe).write_text("#!/bin/sh\n")
            (root / "lib" / pkg / exe).chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{root}:{os.environ['AMENT_PREFIX_PATH']}")
    return root


def launch_processes(monkeypatch, args: dict) -> tuple[dict, list]:
    """Evaluate all.launch.py with these arguments; name -> prepared process details."""
    monkeypatch.setenv("SENSORHUB_SKIP_DOMAIN_CHECK", "1")  # nothing runs; tested for real below
    monkeypatch.setattr(ExecuteLocal, "execute", lambda self, context: self.prepare(context))
    ld = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    context = LaunchContext()
    context.launch_configurations.update(args)
    actions = []
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
        elif isinstance(entity, OpaqueFunction):
            actions = entity.visit(context) or []
    out = {}
    for a in actions:
        if isinstance(a, ExecuteLocal):
            a.execute(context)
            d = a.process_details
            out[d["name"].rsplit("-", 1)[0]] = {
                "cmd": d["cmd"],
                "env": d["env"],
                "cwd": d["cwd"],
                "respawn": a._ExecuteLocal__respawn,
                "respawn_delay": a._ExecuteLocal__respawn_delay,
                "respawn_max_retries": a._ExecuteLocal__respawn_max_retries,
            }
    return out, actions


class _LaunchParamsLoader(yaml.SafeLoader):
    """launch_ros writes list parameters with yaml.dump, i.e. as ``!!python/tuple`` (rcl's
    parser reads them as plain sequences; so do we)."""


_LaunchParamsLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
)


def normalize(cmd: list[str]) -> dict:
    """A command as {prefix+exe+args, remaps, params files, parameters} (order-insensitive
    where ROS is: -p overrides and a launch-generated parameter file mean the same)."""
    if "--ros-args" not in cmd:
        return {"argv": cmd}
    i = cmd.index("--ros-args")
    head, rest = cmd[:i], cmd[i:]
    remaps, files, params = [], [], {}
    k = 0
    while k < len(rest):
        tok = rest[k]
        if tok == "--ros-args":
            k += 1
            continue
        val = rest[k + 1]
        if tok == "-r":
            remaps.append(val)
        elif tok == "--params-file":
            if os.path.basename(val).startswith("launch_params_"):
                data = yaml.load(Path(val).read_text(), Loader=_LaunchParamsLoader)
                for section in data.values():
                    params.update(section["ros__parameters"])
            else:
                files.append(val)
        elif tok == "-p":
            name, _, v = val.partition(":=")
            params[name] = yaml.safe_load(v)
        else:
            raise AssertionError(f"unexpected token {tok!r} in {cmd}")
        k += 2
    return {"argv": head, "remaps": sorted(remaps), "files": files, "params": params}


def member_ros_args(cmd: list[str], name: str) -> list[str]:
    """The ROS arguments a container's command gives its member ``name``."""
    members = [json.loads(cmd[i + 1]) for i, a in enumerate(cmd) if a == "--member"]
    return next(m["ros_args"] for m in members if m["name"] == name)


@pytest.mark.parametrize(
    "args",
    [
        {"profile": "sim", "record": "true", "data_root": "{tmp}/data"},
        {"profile": "pi", "role": "sensors", "data_root": "{tmp}/data"},
        {"profile": "lite", "role": "web", "web": "gateway", "data_root": "{tmp}/data"},
    ],
    ids=["sim-record", "pi-sensors", "lite-web"],
)
def test_launch_matches_supervisor_plan(tmp_path, monkeypatch, fake_prefix, args):
    args = {k: v.format(tmp=tmp_path) for k, v in args.items()}
    launched, _ = launch_processes(monkeypatch, args)
    options = {
        "record": args.get("record", "false"),
        "web": args.get("web", "auto"),
        "tim240_driver": "auto",
        "recorder": "auto",
    }
    plan = build_plan(
        load_graph(GRAPH), args["profile"], args.get("role", "all"), options, args["data_root"]
    )
    assert sorted(launched) == sorted(plan.names())
    for p in plan.processes:
        got = launched[p.name]
        assert normalize(got["cmd"]) == normalize(p.command), p.name
        assert got["respawn"] == p.respawn.enabled
        assert got["respawn_delay"] == p.respawn.delay
        want_retries = p.respawn.max_restarts if p.respawn.enabled else -1
        assert got["respawn_max_retries"] == want_retries, p.name
        for k, v in p.env.items():
            assert got["env"][k] == v
        assert got["cwd"] == p.cwd
        if p.scheduling.get("cpus"):
            assert got["cmd"][: len(p.prefix)] == p.prefix  # the scheduling prefix comes first


def test_launch_includes_sick_scan_xd_with_prefix(tmp_path, monkeypatch, fake_prefix):
    """tim240_driver:=sick_scan_xd includes tim240_bridge's wrapper of sick_scan_xd's TiM240
    launch file with hostname/port/params_file."""
    (fake_prefix / "share/ament_index/resource_index/packages/sick_scan_xd").write_text("")
    share = fake_prefix / "share/tim240_bridge/launch"
    share.mkdir(parents=True)
    (share / "sick_scan_xd.launch.py").write_text(
        "from launch import LaunchDescription\n\n\n"
        "def generate_launch_description():\n    return LaunchDescription([])\n"
    )
    _, actions = launch_processes(
        monkeypatch,
        {"profile": "pi", "tim240_driver": "sick_scan_xd", "data_root": str(tmp_path / "d")},
    )
    groups = [a for a in actions if isinstance(a, GroupAction)]
    assert len(groups) == 1
    subs = groups[0].get_sub_entities()
    (set_prefix,) = [a for a in subs if isinstance(a, SetLaunchConfiguration)]
    (include,) = [a for a in subs if isinstance(a, IncludeLaunchDescription)]
    assert "bringup.sched_exec" in "".join(s.perform(None) for s in set_prefix.value)
    context = LaunchContext()
    src = include.launch_description_source
    src.get_launch_description(context)  # performs the path substitution (parses the XML)
    assert src.location.endswith("share/tim240_bridge/launch/sick_scan_xd.launch.py")
    got = dict(include.launch_arguments)
    assert got == {
        "hostname": "192.168.0.1",
        "port": "2111",
        "params_file": str(GRAPH.parent.resolve() / "tim240_bridge.yaml"),
    }


def test_bad_graph_fails_before_anything_starts(tmp_path, monkeypatch, fake_prefix):
    shutil.copytree(GRAPH.parent, tmp_path / "cfg")
    bad = tmp_path / "cfg" / "graph.yaml"
    bad.write_text(GRAPH.read_text().replace("\n    roles: [sensors]", "\n    roles: [sensor]", 1))
    with pytest.raises(Exception, match="unknown role 'sensor'"):
        launch_processes(monkeypatch, {"graph": str(bad), "profile": "sim"})


def _children(pid: int) -> dict[int, str]:
    """Direct children of pid: {pid: cmdline}."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.mark.integration
def test_real_ros2_launch_starts_the_sim_graph(procs, tmp_path, wait):
    """`ros2 launch bringup all.launch.py profile:=sim` on the real nodes, then Ctrl-C."""
    import signal
    import socket

    ros2 = shutil.which("ros2")
    if ros2 is None or Resolver().package_prefix("pbt_driver") is None:
        pytest.skip("needs the ros2 CLI (ros2launch) and pbt_driver installed")
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port = ports[0]
    launch_proc = procs.start(
        "ros2_launch",
        [
            ros2,
            "launch",
            "bringup",
            "all.launch.py",
            "profile:=sim",
            f"data_root:={tmp_path / 'data'}",
            f"web_port:={ports[0]}",
            f"tim240_port:={ports[1]}",
            f"sec110_port:={ports[2]}",
        ],
    )
    want = {
        "pbt_sim": "lib/pbt_driver/pbt_sim --link",
        "pbt_driver": "lib/pbt_driver/pbt_driver --ros-args",
        # the web side's nodes share one process by default
        "web_view": "-m sensorhub_common.container --name web_view",
    }

    def started():
        kids = _children(launch_proc.pid)
        found = {n: p for p, cmd in kids.items() for n, mark in want.items() if mark in cmd}
        return found if set(found) == set(want) else None

    found = wait(started, 60, what="ros2 launch starting pbt_sim, pbt_driver, web_view")
    # The launch prefix applied the graph's scheduling (sim profile: driver on CPU 1).
    if os.cpu_count() and os.cpu_count() >= 2:
        wait(lambda: os.sched_getaffinity(found["pbt_driver"]) == {1}, 60, what="affinity")
    with socket.socket() as s:
        wait(lambda: s.connect_ex(("127.0.0.1", port)) == 0, 60, what="gateway port")
    assert "sensorhub: web on ws://localhost" in launch_proc.output()
    os.kill(launch_proc.pid, signal.SIGINT)
    assert launch_proc.popen.wait(15) == 0
    wait(lambda: all(not Path(f"/proc/{p}").exists() for p in found.values()), 10)


def test_wrong_parameter_type_fails_before_anything_starts(tmp_path, monkeypatch):
    """Under launch, the same parameter type check as `sensorhub up`, naming file/node/key
    (against the installed package's own parameter file)."""
    if Resolver().package_prefix("pbt_driver") is None:
        pytest.skip("needs pbt_driver installed")
    shutil.copytree(GRAPH.parent, tmp_path / "cfg")
    g = tmp_path / "cfg" / "graph.yaml"
    data = yaml.safe_load(g.read_text())
    node = next(n for n in data["nodes"] if n["name"] == "pbt_driver")
    node["parameters"]["batch_size"] = "forty"
    g.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(Exception, match="batch_size") as e:
        launch_processes(monkeypatch, {"graph": str(g), "profile": "sim"})
    assert "pbt_driver" in str(e.value)


def test_data_root_and_variables_reach_the_processes(tmp_path, monkeypatch, fake_prefix):
    """Under launch: logs follow data_root; set:= and NAME:= set variables."""
    monkeypatch.delenv("ROS_LOG_DIR", raising=False)
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    root = tmp_path / "d"
    launched, _ = launch_processes(
        monkeypatch,
        {
            "profile": "sim",
            "data_root": str(root),
            "set": "web_port=9123,tim240_port=2999",
            "sec110_port": "2998",
        },
    )
    for name, p in launched.items():
        assert p["env"]["ROS_LOG_DIR"] == str(root / "logs" / "ros"), name
        # the sim profile keeps discovery on this host
        assert p["env"]["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST", name
    gw = normalize(member_ros_args(launched["web_view"]["cmd"], "foxglove_gateway"))
    assert gw["params"]["port"] == 9123
    assert "2999" in launched["tim240_sim"]["cmd"]
    assert normalize(launched["sec110_ftp"]["cmd"])["params"]["port"] == 2998


def _ros2_launch_or_skip() -> str:
    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("needs the ros2 CLI (ros2launch)")
    return ros2


def launch_graph(procs, ros2: str, graph: Path, tmp_path: Path):
    """`ros2 launch bringup all.launch.py` of ``graph`` (sim profile, data root in tmp_path)."""
    argv = [ros2, "launch", "bringup", "all.launch.py", "profile:=sim", f"graph:={graph}"]
    return procs.start("ros2_launch", [*argv, f"data_root:={tmp_path / 'data'}"])


def _tiny_graph(tmp_path: Path, nodes: list[dict]) -> Path:
    g = tmp_path / "tiny.yaml"
    g.write_text(
        yaml.safe_dump(
            {"version": 1, "profiles": {"sim": {"description": "test"}}, "nodes": nodes},
            sort_keys=False,
        )
    )
    return g


@pytest.mark.integration
def test_a_given_up_node_ends_ros2_launch_nonzero(procs, tmp_path, wait):
    """respawn_max_retries from the graph; then launch stops everything and exits 1."""
    ros2 = _ros2_launch_or_skip()
    g = _tiny_graph(
        tmp_path,
        [
            {
                "name": "crasher",
                "kind": "command",
                "command": ["sh", "-c", "echo crashing; exit 3"],
                "roles": ["sensors"],
                "respawn": {"delay": 0.1, "max_restarts": 2, "window": 30},
            },
            {
                "name": "bystander",
                "kind": "command",
                "command": ["sleep", "600"],
                "roles": ["sensors"],
            },
        ],
    )
    p = launch_graph(procs, ros2, g, tmp_path)
    assert p.popen.wait(120) == 1
    out = p.output()
    assert out.count("] crashing\n") == 3  # the first start and two respawns
    assert "crasher exited 3 times (respawn_max_retries 2): given up" in out
    assert not [c for c in _all_procs() if "sleep 600" in c and str(tmp_path) in c]


def _all_procs() -> list[str]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().decode(errors="replace")
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append(cmd + " " + env)
            except OSError:
                continue
    return out


@pytest.mark.integration
def test_sigterm_to_ros2_launch_leaves_no_orphans(procs, tmp_path, wait):
    """Launch itself leaves its children behind on SIGTERM; the trampoline's
    parent-death signal takes them down with it."""
    import signal

    ros2 = _ros2_launch_or_skip()
    g = _tiny_graph(
        tmp_path,
        [
            {"name": f"sleeper{i}", "kind": "command", "command": ["sleep", "601"],
             "roles": ["sensors"]}
            for i in range(2)
        ],
    )  # fmt: skip
    p = launch_graph(procs, ros2, g, tmp_path)

    def sleepers():
        kids = {pid: c for pid, c in _children(p.pid).items() if "sleep 601" in c}
        return kids if len(kids) == 2 else None

    kids = wait(sleepers, 60, what="two sleepers under ros2 launch")
    os.kill(p.pid, signal.SIGTERM)
    p.popen.wait(60)
    wait(lambda: all(not Path(f"/proc/{k}").exists() for k in kids), 30, what="no orphans")


@pytest.mark.integration
def test_ros2_launch_refuses_nodes_already_live_in_the_domain(procs, tmp_path):
    """Under launch, a second graph in the same domain is refused, naming the node."""
    ros2 = _ros2_launch_or_skip()
    if Resolver().package_prefix("pbt_driver") is None:
        pytest.skip("needs pbt_driver installed")
    with live_node("pbt_driver", "pbt"):
        g = _tiny_graph(
            tmp_path,
            [{"name": "pbt_driver", "package": "pbt_driver", "executable": "pbt_driver",
              "namespace": "pbt", "roles": ["sensors"]}],
        )  # fmt: skip
        p = launch_graph(procs, ros2, g, tmp_path)
        assert p.popen.wait(120) != 0
        out = p.output()
        assert "/pbt/pbt_driver already running in ROS domain" in out
        assert "process started" not in out


@contextlib.contextmanager
def live_node(name: str, namespace: str = ""):
    """A node of another graph: alive in this domain and answering its parameter services."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx, signal_handler_options=rclpy.SignalHandlerOptions.NO)
    node = rclpy.create_node(name, namespace=namespace, context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        yield node
    finally:
        stop.set()
        t.join(5)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
