"""Turn a plan into launch actions for `ros2 launch bringup all.launch.py` (needs launch_ros).

The plan decides everything (nodes, parameters, scheduling prefix, respawn); this module only
translates it, so `sensorhub up` and `ros2 launch` start the same commands.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    SetLaunchConfiguration,
)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bringup import domain
from bringup.graph import load_graph
from bringup.lan import viewer_lines
from bringup.plan import (
    Plan,
    ProcessSpec,
    build_plan,
    default_profile,
    parse_bool,
    variable_overrides,
)
from bringup.sched_exec import PARENT_ENV, PDEATHSIG_ENV

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
    "compose": (
        "auto",
        ["auto", "true", "false"],
        "run the graph's containers (several nodes per process); auto: those the profile"
        " composes and those marked default",
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
    from bringup.defaults import default_graph, resolve_data_root

    v = {n: LaunchConfiguration(n).perform(context) for n in ARGUMENTS}
    graph = load_graph(v["graph"] or default_graph())
    profile = default_profile() if v["profile"] == "auto" else v["profile"]
    options = {
        "web": v["web"],
        "tim240_driver": v["tim240_driver"],
        "record": parse_bool(v["record"], "record"),
        "recorder": v["recorder"],
        "compose": v["compose"],
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


class GaveUpError(RuntimeError):
    """A node crash-looped: raised inside launch so that `ros2 launch` stops and exits 1."""


def _give_up_handler(p: ProcessSpec, action) -> RegisterEventHandler:
    """End the whole launch, non-zero, when ``action`` exits and launch will not respawn it.

    ``respawn_max_retries`` counts every restart of the run (launch has no time window, unlike
    the supervisor); past it, or for a node without respawn that fails, the graph is incomplete
    and systemd (``Restart=on-failure``) should restart all of it, as with
    ``sensorhub up --exit-on-give-up``.
    """
    exits = []

    def on_exit(event, context):
        if context.is_shutdown:
            return None
        exits.append(event.returncode)
        if p.respawn.enabled and len(exits) <= p.respawn.max_restarts:
            return None
        if not p.respawn.enabled and event.returncode == 0:
            return None
        if p.respawn.enabled:
            why = f"exited {len(exits)} times (respawn_max_retries {p.respawn.max_restarts})"
        else:
            why = f"failed with exit code {event.returncode} and has no respawn"
        msg = f"sensorhub: {p.name} {why}: given up, stopping the graph (exit 1)"

        def fail(_context):
            raise GaveUpError(msg)

        return [LogInfo(msg=msg), OpaqueFunction(function=fail)]

    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))


def action_for(p: ProcessSpec):
    """One launch action per plan entry."""
    # Always through the scheduling trampoline: it also gives the child a parent-death signal,
    # so a SIGTERM (or kill -9) of `ros2 launch` leaves no orphaned node.
    prefix = shlex.join(p.prefix)
    env = dict(p.env)
    env[PDEATHSIG_ENV] = str(int(signal.SIGTERM))
    env[PARENT_ENV] = str(os.getpid())
    common = {
        "respawn": p.respawn.enabled,
        "respawn_delay": p.respawn.delay,
        "respawn_max_retries": p.respawn.max_restarts if p.respawn.enabled else -1,
        "additional_env": env,
        "output": "screen",
        "sigterm_timeout": SIGTERM_TIMEOUT,
        "sigkill_timeout": SIGKILL_TIMEOUT,
    }
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
    if p.kind in ("process", "command", "container"):
        return ExecuteProcess(cmd=list(p.argv), name=p.name, cwd=p.cwd, **common)
    # launch: nodes of the included file get the same prefix through `launch-prefix`, and the
    # same environment (scoped to this group)
    actions = [SetLaunchConfiguration("launch-prefix", prefix)]
    actions += [SetEnvironmentVariable(k, v) for k, v in env.items()]
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
    own_page = any((p.url or "").startswith("http") for p in plan.processes)
    for p in sorted(plan.processes, key=lambda p: not (p.url or "").startswith("http")):
        if p.url:  # the lab page's link first
            # our gateway (it serves the layout) serves the lab page unless its own server runs
            serves_page = bool(p.parameters.get("layout_file")) and not own_page
            out += [LogInfo(msg=f"sensorhub: {line}") for line in viewer_lines(p.url, serves_page)]
            if p.url.startswith("ws"):
                out.append(
                    LogInfo(
                        msg=f"sensorhub: web on {p.url}: https://app.foxglove.dev/?ds=foxglove-"
                        f"websocket&ds.url={p.url} (Lichtblick: Open connection > Foxglove "
                        "WebSocket)"
                    )
                )
    for p in plan.processes:
        action = action_for(p)
        out.append(action)
        if p.kind != "launch":
            out.append(_give_up_handler(p, action))
    return out


def refuse_duplicates(plan: Plan) -> None:
    """Raise (before anything starts) when this plan's nodes are already live in the domain."""
    try:
        live = domain.check(plan.ros_node_names(), sys.executable, plan.child_env())
    except domain.DomainCheckError as e:
        print(f"sensorhub: WARN {e}; starting without it", file=sys.stderr)
        return
    if live:
        raise RuntimeError(domain.refusal(live))
