"""Turn a plan into launch actions for `ros2 launch bringup all.launch.py` (needs launch_ros).

The plan decides everything (nodes, parameters, scheduling prefix, respawn); this module only
translates it, so `sensorhub up` and `ros2 launch` start the same commands.
"""

from __future__ import annotations

import shlex

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    SetLaunchConfiguration,
)
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bringup.graph import load_graph
from bringup.plan import Plan, ProcessSpec, build_plan, parse_bool, variable_overrides

# name -> (default, choices or None, description)
ARGUMENTS = {
    "profile": ("auto", ["auto", "pi", "sim", "lite"], "pi | sim | lite (auto: pi on a Pi)"),
    "role": ("all", ["all", "sensors", "web"], "all | sensors | web (two-Pi split)"),
    "web": (
        "auto",
        ["auto", "foxglove_bridge", "gateway", "none"],
        "WebSocket server; auto = foxglove_bridge if installed, else our gateway",
    ),
    "tim240_driver": (
        "auto",
        ["auto", "sick_scan_xd", "native", "none"],
        "TiM240 driver; auto = sick_scan_xd if installed, else the native CoLa driver",
    ),
    "record": ("false", ["true", "false"], "record MCAP to <data_root>/bags"),
    "recorder": (
        "auto",
        ["auto", "rosbag2", "mcap_recorder"],
        "recorder; auto = ros2 bag record -s mcap if installed",
    ),
    "data_root": ("", None, "data root (default $SENSORHUB_DATA_ROOT or ./data)"),
    "graph": ("", None, "graph file (default share/bringup/config/graph.yaml)"),
    "set": (
        "",
        None,
        "graph variables, e.g. set:=web_port=9000,tim240_port=2112 (or web_port:=9000 alone)",
    ),
}
# Grace periods: the same order of magnitude as the supervisor's (SIGINT, then SIGTERM, SIGKILL).
SIGTERM_TIMEOUT = "5"
SIGKILL_TIMEOUT = "2"


def declare_arguments() -> list:
    return [
        DeclareLaunchArgument(n, default_value=d, choices=c, description=desc)
        if c
        else DeclareLaunchArgument(n, default_value=d, description=desc)
        for n, (d, c, desc) in ARGUMENTS.items()
    ]


def plan_from_context(context) -> Plan:
    from bringup.cli import default_graph, resolve_data_root
    from bringup.plan import default_profile

    v = {n: LaunchConfiguration(n).perform(context) for n in ARGUMENTS}
    graph = load_graph(v["graph"] or default_graph())
    profile = default_profile() if v["profile"] == "auto" else v["profile"]
    options = {
        "web": v["web"],
        "tim240_driver": v["tim240_driver"],
        "record": parse_bool(v["record"], "record"),
        "recorder": v["recorder"],
    }
    overrides = variable_overrides(
        v["set"], context.launch_configurations, graph.settable_variables()
    )
    return build_plan(
        graph,
        profile,
        v["role"],
        options,
        resolve_data_root(v["data_root"]),
        set_variables=overrides,
    )


def action_for(p: ProcessSpec):
    """One launch action per plan entry."""
    prefix = shlex.join(p.prefix) if p.prefix else None
    common = {
        "respawn": p.respawn.enabled,
        "respawn_delay": p.respawn.delay,
        "additional_env": dict(p.env),
        "output": "screen",
        "sigterm_timeout": SIGTERM_TIMEOUT,
        "sigkill_timeout": SIGKILL_TIMEOUT,
    }
    if prefix:
        common["prefix"] = prefix
    if p.kind == "ros_node":
        params: list = list(p.params_files)
        if p.parameters:
            params.append(dict(p.parameters))
        return Node(
            package=p.package,
            executable=p.executable,
            name=p.name,
            exec_name=p.name,  # log prefix [pbt_driver-1], not [python-1] (the prefix)
            namespace="/" + p.namespace if p.namespace else None,
            parameters=params,
            arguments=list(p.args),
            **common,
        )
    if p.kind in ("process", "command"):
        return ExecuteProcess(cmd=list(p.argv), name=p.name, cwd=p.cwd, **common)
    # launch: nodes of the included file get the same prefix through `launch-prefix`
    actions = []
    if prefix:
        actions.append(SetLaunchConfiguration("launch-prefix", prefix))
    actions.append(
        IncludeLaunchDescription(
            AnyLaunchDescriptionSource(p.launch_file),
            launch_arguments=list(p.launch_arguments.items()),
        )
    )
    return GroupAction(actions, scoped=True)


def actions_from_plan(plan: Plan) -> list:
    out = [
        LogInfo(
            msg=f"sensorhub: profile {plan.profile}, role {plan.role}, data root {plan.data_root},"
            f" {len(plan.processes)} processes"
        )
    ]
    if plan.set_variables:
        sets = ", ".join(f"{k}={v}" for k, v in plan.set_variables.items())
        out.append(LogInfo(msg=f"sensorhub: variables set on the command line: {sets}"))
    out += [LogInfo(msg=f"sensorhub: {n}") for n in plan.notes]
    for p in plan.processes:
        if p.url:
            out.append(
                LogInfo(
                    msg=f"sensorhub: web on {p.url}: https://app.foxglove.dev/?ds=foxglove-websocket"
                    f"&ds.url={p.url} (Lichtblick: Open connection > Foxglove WebSocket)"
                )
            )
    out += [action_for(p) for p in plan.processes]
    return out
