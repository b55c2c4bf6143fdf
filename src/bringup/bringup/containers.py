"""Container composition: the selected members of a container become one process, at the place
of its first member, loading each member with exactly its own executable's ROS arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bringup.graph import Graph
from bringup.specs import ProcessSpec, cpu_text, restart_policy, sched_prefix
from bringup.variables import Variables

CONTAINER_MODULE = "sensorhub_common.container"


@dataclass(frozen=True)
class Membership:
    """Which container a selected node joins, and that container's raw scheduling."""

    container: str
    scheduling: dict


def container_command(python: str, name: str) -> list[str]:
    return [python, "-m", CONTAINER_MODULE, "--name", name]


def memberships(
    graph: Graph, profile: str, selected: list[dict], composed: set[str]
) -> dict[str, Membership]:
    """member name -> its container, for the selected members of the composed containers.

    A container's scheduling is its own, else that of its first member in the plan."""
    names = {n["name"] for n in selected}
    out = {}
    for cname, c in graph.containers.items():
        members = [m for m in c.members if m in names]
        if cname not in composed or not members:
            continue
        sched = c.scheduling
        if sched is None:
            sched = graph.resolved_node(members[0], profile).get("scheduling") or {}
        for m in members:
            out[m] = Membership(cname, sched)
    return out


def _container_spec(
    graph: Graph, cname: str, sched_raw: dict, first: ProcessSpec, variables: Variables
) -> ProcessSpec:
    sched = dict(variables.for_entry(cname).value(sched_raw, "scheduling"))
    if sched.get("cpus") not in (None, ""):
        sched["cpus"] = cpu_text(sched["cpus"])
    c = graph.containers[cname]
    respawn = first.respawn
    if c.respawn is not None:
        respawn = restart_policy(graph.path, cname, c.respawn)
    python = variables.resolver.python
    return ProcessSpec(
        name=cname,
        kind="container",
        argv=container_command(python, cname),
        prefix=sched_prefix(cname, sched, python),
        env=dict(first.env),
        cwd=None,
        scheduling=sched,
        respawn=respawn,
        roles=[],
    )


def _join(spec: ProcessSpec, p: ProcessSpec, component: str) -> None:
    """Add one member process to its container's command."""
    i = p.argv.index("--ros-args")
    member = {"name": p.name, "component": component, "ros_args": p.argv[i:]}
    spec.argv += ["--member", json.dumps(member, separators=(",", ":"))]
    spec.members.append(p.fqn)
    spec.roles = sorted({*spec.roles, *p.roles})
    for k, v in p.env.items():
        spec.env.setdefault(k, v)
    if p.url and not spec.url:
        spec.url, spec.parameters = p.url, dict(p.parameters)


def compose(
    graph: Graph,
    groups: dict[str, Membership],
    processes: list[ProcessSpec],
    selected: list[dict],
    variables: Variables,
) -> list[ProcessSpec]:
    """The plan's processes with each container's members replaced by the container."""
    components = {n["name"]: n.get("component") for n in selected}
    out: list[ProcessSpec] = []
    built: dict[str, ProcessSpec] = {}
    for p in processes:
        group = groups.get(p.name)
        if group is None:
            out.append(p)
            continue
        spec = built.get(group.container)
        if spec is None:
            spec = _container_spec(graph, group.container, group.scheduling, p, variables)
            built[group.container] = spec
            out.append(spec)
        _join(spec, p, components[p.name])
    return out
