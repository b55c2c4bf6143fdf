"""Plan building without ROS (a fake ament index in tmp_path): selection, variables, specs,
containers, and what system_monitor is told to expect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from bringup.graph import GraphError, load_graph
from bringup.plan import Resolver, build_plan, yaml_value

GRAPH = Path(Resolver().share("bringup") or "", "config", "graph.yaml")  # the installed one
CONFIG = GRAPH.parent


def node(data, name):
    return next(n for n in data["nodes"] if n["name"] == name)


SIM_SENSORS = ["pbt_sim", "pbt_driver", "tim240_sim", "tim240_bridge", "sec110_ftp", "sec110_sim"]


def test_missing_package_and_executable(tmp_path, fake_resolver):
    g = load_graph(GRAPH)
    no_pbt = fake_resolver(tmp_path / "a", {"foxglove_gateway": ["foxglove_gateway"]})
    with pytest.raises(GraphError) as ei:
        build_plan(g, "sim", "all", {}, tmp_path / "data", no_pbt)
    assert (ei.value.node, ei.value.key) == ("pbt_sim", "package")
    assert "package 'pbt_driver' is not installed" in str(ei.value)

    no_exe = fake_resolver(
        tmp_path / "b", {"pbt_driver": ["pbt_sim"], "foxglove_gateway": ["foxglove_gateway"]}
    )
    with pytest.raises(GraphError) as ei:
        build_plan(g, "sim", "all", {}, tmp_path / "data", no_exe)
    assert (ei.value.node, ei.value.key) == ("pbt_driver", "executable")
    assert "executable 'pbt_driver' not found" in str(ei.value)


def test_bad_option_values(tmp_path, ours):
    g = load_graph(GRAPH)
    with pytest.raises(GraphError, match="unknown role 'kitchen'"):
        build_plan(g, "sim", "kitchen", {}, tmp_path, ours)
    with pytest.raises(GraphError, match="unknown profile 'mars'"):
        build_plan(g, "mars", "all", {}, tmp_path, ours)
    with pytest.raises(GraphError, match="web:='apache' is not provided"):
        build_plan(g, "sim", "all", {"web": "apache"}, tmp_path, ours)
    with pytest.raises(GraphError, match="record: expected true or false"):
        build_plan(g, "sim", "all", {"record": "maybe"}, tmp_path, ours)
    # an explicit distribution choice that is not installed is an error, auto is not
    with pytest.raises(GraphError, match="foxglove_bridge"):
        build_plan(g, "sim", "all", {"web": "foxglove_bridge"}, tmp_path, ours)


def test_sim_plan(tmp_path, ours):
    data = tmp_path / "data"
    opts = {"record": True, "compose": "false"}  # every node its own process, to look at each
    plan = build_plan(load_graph(GRAPH), "sim", "all", opts, data, ours)
    assert plan.names() == [
        *SIM_SENSORS,
        "mcap_recorder",
        "pbt_scope",
        "lab_feed",
        "foxglove_gateway",
        "system_monitor",
    ]
    root = str(data.resolve())
    sim, drv = plan.get("pbt_sim"), plan.get("pbt_driver")
    assert sim.argv[1:] == ["--link", f"{root}/run/pbt0"]
    assert drv.parameters == {
        "port": f"{root}/run/pbt0",
        "state_file": f"{root}/run/pbt_driver.state.json",
        "rt_priority": 0,
        "rt_cpus": "1",
    }
    assert drv.namespace == "pbt" and drv.fqn == "/pbt/pbt_driver"
    assert drv.scheduling["cpus"] == "1"
    assert drv.params_files == [
        f"{ours.root}/share/pbt_driver/config/pbt_driver.yaml",
        str(CONFIG.resolve() / "pbt_driver.yaml"),
    ]
    assert drv.argv[0] == f"{ours.root}/lib/pbt_driver/pbt_driver"
    assert drv.argv[1:6] == ["--ros-args", "-r", "__node:=pbt_driver", "-r", "__ns:=/pbt"]
    assert f"port:={root}/run/pbt0" in drv.argv
    assert drv.prefix[-1] == "--" and "--cpus" in drv.prefix
    gw = plan.get("foxglove_gateway")
    assert gw.parameters["port"] == 8765  # a lone ${web_port} keeps its int type
    assert gw.url == "ws://localhost:8765"
    rec = plan.get("mcap_recorder")
    # the topics both recorders leave out, from the graph's ${record_exclude}
    assert rec.parameters == {
        "data_root": root,
        "topics_deny": ["/parameter_events|/rosout|/pbt/scope|/pbt/scope_preview|/lab/.*"],
    }
    assert rec.prefix[rec.prefix.index("--io-class") + 1] == "best-effort"
    assert all(p.env["SENSORHUB_DATA_ROOT"] == root for p in plan.processes)
    # the TiM240 emulator and the native driver meet on the sim address
    assert plan.get("tim240_sim").argv[1:] == ["--host", "127.0.0.1", "--port", "2111"]
    tim = plan.get("tim240_bridge")
    assert tim.parameters == {"driver": "native", "hostname": "127.0.0.1", "port": 2111}
    # the FTP landing zone: loopback, the sim-only account file, lowest best-effort I/O, nice 10
    ftp = plan.get("sec110_ftp")
    assert ftp.parameters == {
        "data_root": root,
        "address": "127.0.0.1",
        "port": 2121,
        "credentials_file": str(CONFIG.resolve() / "sec110_users_sim.yaml"),
    }
    assert ftp.prefix[ftp.prefix.index("--io-class") + 1] == "best-effort"
    assert ftp.scheduling["nice"] == 10
    up = plan.get("sec110_sim").argv[1:]
    assert up[:4] == ["--host", "127.0.0.1", "--port", "2121"]
    assert "web=auto: using gateway" in plan.notes


def test_pi_and_lite_profiles(tmp_path, ours):
    g = load_graph(GRAPH)
    pi = build_plan(g, "pi", "all", {}, tmp_path, ours)
    assert "pbt_sim" not in pi.names()
    drv = pi.get("pbt_driver")
    assert drv.parameters == {
        "port": "/dev/pbt",
        "state_file": f"{tmp_path.resolve()}/run/pbt_driver.state.json",
        "rt_priority": 80,
        "rt_cpus": "3",
    }
    assert drv.scheduling["cpus"] == "3" and drv.scheduling["nice"] == -10
    lite = build_plan(g, "lite", "all", {"compose": "false"}, tmp_path, ours)
    assert lite.get("pbt_driver").parameters == drv.parameters  # lite extends pi
    assert lite.get("foxglove_gateway").params_files[-1].endswith("foxglove_gateway_lite.yaml")


def test_containers_put_non_real_time_nodes_into_one_process(tmp_path, ours):
    """lite composes (one process per container); the PBT driver stays alone; the container's
    command loads each member with exactly its own executable's ROS arguments."""
    import json

    g = load_graph(GRAPH)
    alone = build_plan(g, "lite", "all", {"compose": "false", "record": "true"}, tmp_path, ours)
    lite = build_plan(g, "lite", "all", {"record": "true"}, tmp_path, ours)
    assert "services" not in alone.names() and "pbt_driver" in alone.names()
    assert lite.names()[0] == "pbt_driver"
    services = lite.get("services")
    assert services.kind == "container"
    assert services.members == [
        "/tim240_bridge",
        "/sec110_ftp",
        "/mcap_recorder",
        "/system_monitor",
    ]
    assert lite.get("web_view").members == ["/pbt/pbt_scope", "/lab/lab_feed", "/foxglove_gateway"]
    assert lite.get("web_view").url == alone.get("foxglove_gateway").url
    assert set(lite.ros_node_names()) == set(alone.ros_node_names())
    i = services.argv.index("-m")
    assert services.argv[i + 1 : i + 4] == ["sensorhub_common.container", "--name", "services"]
    members = [
        json.loads(services.argv[k + 1]) for k, a in enumerate(services.argv) if a == "--member"
    ]

    def same(args):  # system_monitor's `expected` names the container instead (below)
        return [a for a in args if not a.startswith("expected:=")]

    for m in members:
        own = alone.get(m["name"]).argv
        assert same(m["ros_args"]) == same(own[own.index("--ros-args") :]), m["name"]
    assert members[0]["component"] == "tim240_bridge.node:Tim240BridgeNode"
    # the container is what system_monitor looks for, not its members
    exp = lite.get("services").argv[-1]
    assert "name=services;kind=command" in exp and "name=tim240_bridge;" not in exp
    # sim does not compose unless asked
    assert "services" not in build_plan(g, "sim", "all", {}, tmp_path, ours).names()
    sim = build_plan(g, "sim", "all", {"compose": "true"}, tmp_path, ours)
    assert "services" in sim.names() and "tim240_bridge" not in sim.names()
    # a split host only composes what it runs
    web = build_plan(g, "lite", "web", {}, tmp_path, ours)
    assert web.get("services").members == ["/web/system_monitor"]


def test_the_web_side_shares_one_process_by_default(tmp_path, ours):
    """web_view (default: true) composes in sim and pi unless compose is false; services only
    where the profile composes; the PBT driver is never a member."""
    g = load_graph(GRAPH)
    for profile in ("sim", "pi"):
        plan = build_plan(g, profile, "all", {}, tmp_path, ours)
        web = plan.get("web_view")
        assert web.kind == "container"
        assert web.members == ["/pbt/pbt_scope", "/lab/lab_feed", "/foxglove_gateway"]
        assert web.url == "ws://localhost:8765"
        assert web.argv.count("--member") == 3
        assert {"pbt_scope", "foxglove_gateway", "services"}.isdisjoint(plan.names())
        assert plan.get("tim240_bridge").kind == plan.get("pbt_driver").kind == "ros_node"
        expected = plan.get("system_monitor").parameters["expected"]
        assert any(e.startswith("name=web_view;kind=command;") for e in expected)

        apart = build_plan(g, profile, "all", {"compose": "false"}, tmp_path, ours)
        assert "web_view" not in apart.names()
        assert apart.get("pbt_scope").kind == apart.get("foxglove_gateway").kind == "ros_node"
        assert set(apart.ros_node_names()) == set(plan.ros_node_names())

        every = build_plan(g, profile, "all", {"compose": "true"}, tmp_path, ours)
        assert {"services", "web_view"} <= set(every.names())
    assert "web_view" not in build_plan(g, "sim", "sensors", {}, tmp_path, ours).names()


def test_auto_takes_distribution_web_and_tim240_and_our_recorder(
    tmp_path, our_packages, fake_resolver
):
    everything = fake_resolver(
        tmp_path / "p",
        {
            **our_packages,
            "foxglove_bridge": ["foxglove_bridge"],
            "sick_scan_xd": [],
            "ros2bag": [],
            "rosbag2_storage_mcap": [],
        },
        path_cmds={"ros2"},
    )
    (everything.root / "share/tim240_bridge/launch/sick_scan_xd.launch.py").write_text("")
    plan = build_plan(load_graph(GRAPH), "pi", "all", {"record": "true"}, tmp_path, everything)
    assert plan.names() == [
        "pbt_driver",
        "sick_tim240",
        "sec110_ftp",
        "mcap_recorder",  # the recorder slot prefers ours, installed or not the distribution's
        "web_view",  # the scope's container; foxglove_bridge is no component
        "foxglove_bridge",
        "lab_page",  # the bridge serves no page: the lab page's own HTTP server
        "system_monitor",
    ]
    assert plan.get("web_view").members == ["/pbt/pbt_scope", "/lab/lab_feed"]
    tim = plan.get("sick_tim240")
    params_file = str(CONFIG.resolve() / "tim240_bridge.yaml")
    assert tim.launch_arguments == {
        "hostname": "192.168.0.1",
        "port": "2111",
        "params_file": params_file,
    }
    assert tim.argv[:2] == ["/usr/bin/ros2", "launch"]
    assert tim.argv[2].endswith("share/tim240_bridge/launch/sick_scan_xd.launch.py")
    assert tim.argv[-3:] == ["hostname:=192.168.0.1", "port:=2111", f"params_file:={params_file}"]
    assert "recorder=auto: using mcap_recorder" in plan.notes
    chosen = build_plan(
        load_graph(GRAPH), "pi", "all", {"record": "true", "recorder": "rosbag2"}, tmp_path,
        everything,
    )  # fmt: skip
    rec = chosen.get("rosbag2_recorder")
    assert rec.argv[:3] == ["/usr/bin/ros2", "bag", "record"]  # options: test_distribution_pi
    assert rec.cwd == os.path.join(str(tmp_path.resolve()), "bags")
    bridge = plan.get("foxglove_bridge")
    assert bridge.params_files[-1].endswith("foxglove_bridge.yaml")
    lite = build_plan(load_graph(GRAPH), "lite", "all", {}, tmp_path, everything)
    assert lite.get("foxglove_bridge").params_files[-1].endswith("foxglove_bridge_lite.yaml")
    # explicit choices still pick ours
    mine = build_plan(
        load_graph(GRAPH),
        "pi",
        "all",
        {"web": "gateway", "tim240_driver": "none"},
        tmp_path,
        everything,
    )
    assert mine.names() == ["pbt_driver", "sec110_ftp", "web_view", "system_monitor"]
    assert mine.get("web_view").members == ["/pbt/pbt_scope", "/lab/lab_feed", "/foxglove_gateway"]
    native = build_plan(
        load_graph(GRAPH), "pi", "all", {"tim240_driver": "native"}, tmp_path, everything
    )
    tim = native.get("tim240_bridge")
    assert "tim240_sim" not in native.names() and "sick_tim240" not in native.names()
    assert tim.parameters == {"driver": "native", "hostname": "192.168.0.1", "port": 2111}


def test_lab_page_server_runs_with_foxglove_bridge_only(tmp_path, our_packages, fake_resolver):
    """The gateway serves the lab page itself; next to foxglove_bridge the page's own server
    runs, on lab_port, telling the page the bridge's port."""
    g = load_graph(GRAPH)
    ours = fake_resolver(tmp_path / "ours", our_packages)
    both = fake_resolver(
        tmp_path / "both", {**our_packages, "foxglove_bridge": ["foxglove_bridge"]}
    )
    ports = {"web_port": 9100, "lab_port": 9180}
    bridge = build_plan(
        g, "sim", "web", {"web": "foxglove_bridge"}, tmp_path, both, set_variables=ports
    )
    page = bridge.get("lab_page")
    assert (page.package, page.executable) == ("lab_page", "lab_page")
    assert page.parameters == {"port": 9180, "ws_port": 9100}
    assert page.url == "http://localhost:9180/" and "web" in page.roles
    assert page.scheduling == bridge.get("foxglove_bridge").scheduling
    assert {"foxglove_bridge", "lab_page"} <= set(
        build_plan(g, "pi", "all", {}, tmp_path, both).names()
    )
    for opts, resolver in (({"web": "gateway"}, both), ({}, ours)):
        plan = build_plan(g, "sim", "all", opts, tmp_path, resolver)
        assert "lab_page" not in plan.names(), opts
        assert "/foxglove_gateway" in plan.get("web_view").members
    # the lab page installed alone never makes web:=auto pick the bridge variant
    assert "web=auto: using gateway" in build_plan(g, "pi", "all", {}, tmp_path, ours).notes


def test_roles_are_disjoint_and_cover_all(tmp_path, ours):
    g = load_graph(GRAPH)
    opts = {"record": True}
    sensors = build_plan(g, "sim", "sensors", opts, tmp_path, ours).names()
    web = build_plan(g, "sim", "web", opts, tmp_path, ours).names()
    every = build_plan(g, "sim", "all", opts, tmp_path, ours).names()
    assert sensors == [*SIM_SENSORS, "mcap_recorder", "system_monitor"]
    assert web == ["web_view", "system_monitor"]  # pbt_scope and foxglove_gateway, composed
    assert set(sensors) & set(web) == {"system_monitor"}  # one monitor per host
    assert sorted(set(sensors + web)) == sorted(every)


def test_unknown_variable(tmp_path, ours, edited_graph):
    path = edited_graph(lambda d: node(d, "pbt_sim").update(args=["${nowhere}"]))
    with pytest.raises(GraphError) as ei:
        build_plan(load_graph(path), "sim", "all", {}, tmp_path, ours)
    assert (ei.value.node, ei.value.key) == ("pbt_sim", "args")
    assert "unknown variable ${nowhere}" in str(ei.value)


def test_yaml_values_for_ros_args():
    assert yaml_value(8765) == "8765"
    assert yaml_value("/dev/pbt") == "/dev/pbt"
    assert yaml_value("1") == "'1'"
    assert yaml_value(True) == "true"
    for v in (["/pbt/.*", "/scan"], [1, 2], "a: b", "", 0.5):
        assert yaml.safe_load(yaml_value(v)) == v  # what rcl's YAML parser reads back


def test_cpu_lists_as_yaml_lists_and_ints(tmp_path, ours, edited_graph):
    def mutate(d):
        node(d, "pbt_sim")["profiles"] = {"sim": {"scheduling": {"cpus": [1, 0]}}}
        node(d, "pbt_driver")["profiles"]["sim"]["scheduling"]["cpus"] = 1

    plan = build_plan(load_graph(edited_graph(mutate)), "sim", "sensors", {}, tmp_path, ours)
    assert plan.get("pbt_sim").scheduling["cpus"] == "0,1"
    assert plan.get("pbt_driver").scheduling["cpus"] == "1"


def test_plan_nodes_variable_lists_this_hosts_processes(tmp_path, ours, edited_graph):
    """${plan_nodes}: system_monitor's `expected`, after profile, role and slot selection."""
    from bringup.plan import plan_nodes
    from system_monitor.procinfo import matches, parse_expected_list

    def mutate(d):
        d["nodes"].append(
            {"name": "watcher", "package": "pbt_driver", "executable": "pbt_driver",
             "roles": ["sensors"], "parameters": {"expected": "${plan_nodes}"}}
        )  # fmt: skip

    g = load_graph(edited_graph(mutate))
    plan = build_plan(g, "sim", "sensors", {}, tmp_path / "data", ours)
    exp = plan.get("watcher").parameters["expected"]
    assert isinstance(exp, list) and len(exp) == len(plan.processes)
    by_name = {e.name: e for e in parse_expected_list(exp)}
    assert list(by_name) == plan.names()
    assert exp[plan.names().index("pbt_driver")] == (
        "name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver;nice=0;cpus=1"
    )
    assert by_name["pbt_sim"].kind == "process" and by_name["pbt_sim"].exe == "pbt_driver/pbt_sim"
    assert "foxglove_gateway" not in by_name  # role web
    # each entry matches the command the plan will run (as sched_exec and after its exec)
    for p in plan.processes:
        assert matches(by_name[p.name], p.command), p.name
        assert matches(by_name[p.name], p.argv), p.name
    # the pi profile asks for SCHED_FIFO 80 on CPU 3: the monitor checks that it got it
    pi = build_plan(g, "pi", "sensors", {}, tmp_path / "data", ours)
    drv = parse_expected_list(pi.get("watcher").parameters["expected"])[0]
    assert (drv.name, drv.nice, drv.cpus, drv.rt) == ("pbt_driver", -10, {3}, 80)
    # through the ROS argument path it stays a string array (never an empty one)
    assert yaml.safe_load(yaml_value(exp)) == exp
    web = build_plan(g, "sim", "web", {"web": "none"}, tmp_path / "data", ours)
    mon = (
        "name=system_monitor;kind=ros_node;fqn=/web/system_monitor;"
        "exe=system_monitor/system_monitor;nice=5;cpus=0,1"
    )
    assert web.get("system_monitor").parameters["expected"][-1] == mon
    # a ROS parameter file cannot hold an empty string array: nothing selected is [""]
    assert plan_nodes(g, [], {}, {}, ours) == [""]


def test_set_overrides_graph_variables_with_types(tmp_path, ours):
    from bringup.plan import parse_set

    g = load_graph(GRAPH)
    sets = parse_set(["web_port=9000", "tim240_port=2112", "sec110_users=/x/u.yaml"])
    assert sets == {"web_port": 9000, "tim240_port": 2112, "sec110_users": "/x/u.yaml"}
    plan = build_plan(g, "sim", "all", {}, tmp_path, ours, set_variables=sets)
    gw = plan.get("web_view")  # the gateway's container: its url and parameters
    assert gw.parameters["port"] == 9000 and gw.url == "ws://localhost:9000"
    assert plan.get("tim240_sim").args == ["--host", "127.0.0.1", "--port", "2112"]
    assert plan.get("sec110_ftp").parameters["credentials_file"] == "/x/u.yaml"  # beats sim's
    assert plan.set_variables == sets
    with pytest.raises(GraphError) as ei:
        build_plan(g, "sim", "all", {}, tmp_path, ours, set_variables={"web_prot": 1})
    assert ei.value.key == "variables.web_prot" and "web_port" in str(ei.value)
    for bad in ("web_port", "=1", "9x=1"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_set([bad])


def test_launch_side_variable_overrides():
    """all.launch.py's set:=a=1,b=2 and individual NAME:=VALUE arguments (without launch)."""
    import ast

    from bringup.plan import RESERVED_ARGUMENTS, parse_set, variable_overrides

    known = {"web_port", "tim240_port", "pbt_port"}
    assert parse_set("web_port=9000,tim240_port=2112", split_commas=True) == {
        "web_port": 9000,
        "tim240_port": 2112,
    }
    conf = {"profile": "sim", "web_port": "9100", "set": "x", "pbt_port": "/dev/ttyACM0"}
    assert variable_overrides("web_port=9000,tim240_port=2112", conf, known) == {
        "web_port": 9100,  # the individual argument wins
        "tim240_port": 2112,
        "pbt_port": "/dev/ttyACM0",
    }
    assert variable_overrides("", {}, known) == {}
    # the launch file's own arguments are never taken for graph variables
    src = Path(__file__).parents[1] / "bringup" / "launch_support.py"
    tree = ast.parse(src.read_text())
    args = next(
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS"
    )
    assert {k.value for k in args.keys} == set(RESERVED_ARGUMENTS)


def test_ros_log_dir_follows_the_data_root(tmp_path, ours, edited_graph):
    from bringup.plan import ros_log_dir

    root = str(tmp_path / "d")
    own = os.path.join(root, "logs", "ros")
    assert ros_log_dir(root, {}) == own
    # env.sh's default (derived from its data root) follows this run's data root
    env_sh = {"SENSORHUB_DATA_ROOT": "/w/data", "ROS_LOG_DIR": "/w/data/logs/ros"}
    assert ros_log_dir(root, env_sh) == own
    # anything else is the user's explicit choice
    assert ros_log_dir(root, {**env_sh, "ROS_LOG_DIR": "/var/log/ros"}) == "/var/log/ros"

    env_sh_host = ours.with_environ(env_sh)
    plan = build_plan(load_graph(GRAPH), "sim", "all", {}, root, env_sh_host)
    assert {p.env["ROS_LOG_DIR"] for p in plan.processes} == {own}
    path = edited_graph(lambda d: node(d, "pbt_sim").update(env={"ROS_LOG_DIR": "/l"}))
    plan = build_plan(load_graph(path), "sim", "all", {}, root, env_sh_host)
    assert plan.get("pbt_sim").env["ROS_LOG_DIR"] == "/l"  # the graph entry wins


def test_exponential_variables_are_bounded(tmp_path, ours, edited_graph):
    def bomb(d):
        d["variables"].update({f"v{i}": f"${{v{i + 1}}}${{v{i + 1}}}" for i in range(40)})
        d["variables"]["v40"] = "xxxxxxxx"
        node(d, "pbt_sim")["args"] = ["${v0}"]

    with pytest.raises(GraphError) as ei:
        build_plan(load_graph(edited_graph(bomb)), "sim", "all", {}, tmp_path, ours)
    assert (ei.value.node, ei.value.key) == ("pbt_sim", "args")
    assert "expands to more than" in str(ei.value)

    def cycle(d):
        d["variables"].update(a="x${b}", b="${a}")
        node(d, "pbt_sim")["args"] = ["${a}"]

    with pytest.raises(GraphError, match=r"refers to itself \(\$\{a\} -> \$\{b\} -> \$\{a\}\)"):
        build_plan(load_graph(edited_graph(cycle)), "sim", "all", {}, tmp_path, ours)


def test_a_crash_loop_always_ends_in_a_give_up(tmp_path, ours, edited_graph):
    # within the floors: 100 restarts 0.1 s apart never fill 1 s
    loop = {"delay": 0.1, "max_delay": 0.1, "max_restarts": 100, "window": 1}
    path = edited_graph(lambda d: node(d, "pbt_driver").update(respawn=loop))
    with pytest.raises(GraphError) as ei:
        build_plan(load_graph(path), "sim", "all", {}, tmp_path, ours)
    assert (ei.value.node, ei.value.key) == ("pbt_driver", "respawn.window")
    assert "never be given up" in str(ei.value) and ">= 10" in str(ei.value)
    ok = {**loop, "window": 10}
    path = edited_graph(lambda d: node(d, "pbt_driver").update(respawn=ok))
    build_plan(load_graph(path), "sim", "all", {}, tmp_path, ours)


def test_sim_profile_keeps_discovery_on_this_host_unless_asked(tmp_path, ours):
    """Two students' `make run` on one LAN must not merge into one graph."""
    g = load_graph(GRAPH)
    plan = build_plan(g, "sim", "all", {}, tmp_path, resolver=ours.with_environ({}))
    assert plan.processes
    for p in plan.processes:
        assert p.env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST", p.name
    for environ in ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, {"ROS_LOCALHOST_ONLY": "0"}):
        plan = build_plan(g, "sim", "all", {}, tmp_path, resolver=ours.with_environ(environ))
        assert all("ROS_AUTOMATIC_DISCOVERY_RANGE" not in p.env for p in plan.processes)
    pi = build_plan(g, "pi", "all", {}, tmp_path, resolver=ours.with_environ({}))
    assert all("ROS_AUTOMATIC_DISCOVERY_RANGE" not in p.env for p in pi.processes)


def test_per_host_nodes_get_distinct_names_in_the_two_pi_split(tmp_path, ours):
    g = load_graph(GRAPH)
    names = {}
    for role in ("all", "sensors", "web"):
        plan = build_plan(g, "pi", role, {}, tmp_path, resolver=ours.with_environ({}))
        names[role] = set(plan.ros_node_names())
    assert "/system_monitor" in names["all"]
    assert not names["sensors"] & names["web"]  # both hosts in one domain: no name twice
    assert names["sensors"] | names["web"] >= names["all"] - {"/system_monitor"}
