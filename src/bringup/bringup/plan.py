"""One plan from graph + profile + role + options: the processes to run (pure, no rclpy).

Both the supervisor and ``all.launch.py`` consume this plan, so the node list, parameters,
scheduling prefix and respawn settings exist once. What is installed is asked through a
:class:`Resolver` (the ament index by default; a fake in unit tests). The stages are modules:
:mod:`bringup.selection` (which entries), :mod:`bringup.variables` (substitution),
:mod:`bringup.specs` (one entry's process), :mod:`bringup.containers` (composition). This module
is the public face: the names other packages use are importable from here.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bringup import selection
from bringup.containers import Membership, compose, container_command, memberships
from bringup.graph import Graph, GraphError
from bringup.options import (
    RESERVED_ARGUMENTS,
    default_profile,
    parse_bool,
    parse_set,
    variable_overrides,
)
from bringup.param_types import declared_types, type_compatible
from bringup.resolver import Resolver, find_missing
from bringup.specs import (
    SCHED_EXEC_MODULE,
    EntryContext,
    ProcessSpec,
    build_spec,
    yaml_value,
)
from bringup.variables import Variables, builtin_variables, ros_log_dir, user_variables
from sensorhub_common.scheduling import format_cpu_list, parse_cpu_list

__all__ = [
    "RESERVED_ARGUMENTS",
    "SCHED_EXEC_MODULE",
    "Plan",
    "ProcessSpec",
    "Resolver",
    "build_plan",
    "declared_types",
    "default_profile",
    "describe",
    "parse_bool",
    "parse_set",
    "plan_nodes",
    "ros_log_dir",
    "type_compatible",
    "variable_overrides",
    "yaml_value",
]


@dataclass
class Plan:
    graph_path: str
    profile: str
    role: str
    options: dict
    data_root: str
    processes: list[ProcessSpec]
    notes: list[str] = field(default_factory=list)
    set_variables: dict = field(default_factory=dict)  # --set / set:= overrides applied

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def ros_node_names(self) -> list[str]:
        """Fully qualified names of the ROS nodes this plan starts (the domain check)."""
        out = []
        for p in self.processes:
            if p.kind == "ros_node":
                out.append(p.fqn)
            out += p.members
        return out

    def child_env(self) -> dict[str, str]:
        """The environment ROS nodes of this plan get (for probes that must see what they see)."""
        env = dict(os.environ)
        for p in self.processes:
            if p.kind in ("ros_node", "container"):
                env.update(p.env)
                break
        return env

    def get(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.data_root, "run")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.data_root, "logs")


def _profile_env(graph: Graph, profile: str, environ: Mapping[str, str]) -> dict:
    """The profile's defaults for every child (sim: discovery on this host only), unless the
    caller's environment already chose (the user asked otherwise)."""
    chosen = set(environ)
    if "ROS_LOCALHOST_ONLY" in environ:  # the older spelling of the same choice
        chosen.add("ROS_AUTOMATIC_DISCOVERY_RANGE")
    return {k: v for k, v in graph.profile_env(profile).items() if k not in chosen}


def _processes(
    graph: Graph, selected: list[dict], variables: Variables, profile_env: dict
) -> list[ProcessSpec]:
    """One process per selected entry; the first entry this host cannot run is refused."""
    out = []
    for n in selected:
        missing = find_missing(n, variables.resolver)
        if missing is not None:
            raise GraphError(graph.path, missing.message, n["name"], missing.key)
        sub = variables.for_entry(n["name"])
        ctx = EntryContext(
            graph.path, str(graph.path.parent), sub, variables.resolver, profile_env
        )
        out.append(build_spec(n, ctx))
    return out


def build_plan(
    graph: Graph,
    profile: str = "sim",
    role: str = "all",
    options: dict | None = None,
    data_root: str | os.PathLike = "data",
    resolver: Resolver | None = None,
    set_variables: dict | None = None,
) -> Plan:
    """Select, resolve and substitute the graph's entries for one profile/role/option set.

    ``set_variables`` overrides the graph's own variables (``sensorhub up --set``, ``set:=``);
    the resolver's environment (default os.environ) decides where ROS writes its logs
    (:func:`ros_log_dir`) and which profile defaults the children get.
    """
    resolver = resolver or Resolver()
    options = dict(options or {})
    selection.check_role(graph, role)
    graph.profile_chain(profile)  # an unknown profile is refused first
    root = str(Path(data_root).expanduser().resolve())
    variables = Variables(
        graph,
        builtin_variables(graph, profile, role, root, resolver.environ),
        user_variables(graph, profile, set_variables),
        resolver,
    )
    profile_env = _profile_env(graph, profile, resolver.environ)

    entries = selection.candidates(graph, profile, role)
    choice = selection.choose_variants(graph, entries, options, resolver)
    selected = [n for n in entries if choice.keeps(n)]
    composed = selection.composed_containers(graph, profile, options)
    groups = memberships(graph, profile, selected, composed)
    # ${plan_nodes}: what system_monitor must find running on this host
    variables.builtins["plan_nodes"] = _expected(selected, variables, groups)

    processes = _processes(graph, selected, variables, profile_env)
    if groups:
        processes = compose(graph, groups, processes, selected, variables)
    return Plan(
        graph_path=str(graph.path),
        profile=profile,
        role=role,
        options={k: options[k] for k in sorted(options)},
        data_root=root,
        processes=processes,
        notes=choice.notes,
        set_variables=dict(set_variables or {}),
    )


def plan_nodes(
    graph: Graph,
    selected: list[dict],
    variables: dict,
    user_vars: dict,
    resolver: Resolver,
    groups: dict[str, Membership] | None = None,
) -> list[str]:
    """One ``key=value;...`` string per selected process, for system_monitor's ``expected``.

    name, kind, fqn (ROS nodes), exe (package/executable), cmd (commands), launch (file), and
    the requested nice/cpus/rt (hot-thread SCHED_FIFO priority) to compare with what the kernel
    applied. Never empty: a ROS string array parameter cannot be ``[]``, so none is ``[""]``.
    """
    return _expected(selected, Variables(graph, variables, user_vars, resolver), groups or {})


def _as_process(n: dict, groups: dict[str, Membership], python: str) -> dict:
    """A member stands for its container (a command running the container module)."""
    group = groups.get(n["name"])
    if group is None:
        return n
    return {
        **n,
        "name": group.container,
        "kind": "command",
        "scheduling": group.scheduling,
        "command": container_command(python, group.container),
    }


def _what_runs(n: dict, sub) -> list[str]:
    kind = n.get("kind", "ros_node")
    parts = []
    if kind == "ros_node":
        ns = str(sub.value(n.get("namespace", ""), "namespace")).strip("/")
        parts.append(f"fqn={'/' + ns if ns else ''}/{n['name']}")
    if kind in ("ros_node", "process"):
        parts.append(f"exe={n['package']}/{n['executable']}")
    elif kind == "command":
        parts.append("cmd=" + " ".join(str(c) for c in sub.value(n["command"], "command")))
    else:
        parts.append(f"launch={n['package']}/{n['launch_file']}")
    return parts


def _requested_scheduling(sched: dict) -> list[str]:
    parts = []
    if sched.get("nice") is not None:
        parts.append(f"nice={int(sched['nice'])}")
    if sched.get("cpus") not in (None, ""):
        try:
            v = sched["cpus"]
            cpus = parse_cpu_list(v if isinstance(v, list) else str(v))
        except ValueError:
            cpus = None  # reported with the node and key when the entry is resolved
        if cpus:
            parts.append(f"cpus={format_cpu_list(cpus)}")
    if sched.get("rt_priority"):
        parts.append(f"rt={int(sched['rt_priority'])}")
    return parts


def _expected(selected: list[dict], variables: Variables, groups: dict[str, Membership]):
    out = []
    done: set[str] = set()
    for raw in selected:
        n = _as_process(raw, groups, variables.resolver.python)
        if n["name"] in done:
            continue
        done.add(n["name"])
        sub = variables.for_entry(n["name"])
        parts = [f"name={n['name']}", f"kind={n.get('kind', 'ros_node')}"]
        parts += _what_runs(n, sub)
        parts += _requested_scheduling(n.get("scheduling") or {})
        out.append(";".join(p.replace(";", ",") for p in parts))
    return out or [""]


def _respawn_text(p: ProcessSpec) -> str:
    r = p.respawn
    if not r.enabled:
        return "no respawn"
    return (
        f"respawn after {r.delay:g} s (x{r.factor:g} up to {r.max_delay:g} s, "
        f"give up after {r.max_restarts} in {r.window:g} s)"
    )


def describe(plan: Plan) -> str:
    """Human-readable plan (``sensorhub plan``)."""
    lines = [
        f"graph {plan.graph_path}",
        f"profile {plan.profile}, role {plan.role}, data root {plan.data_root}",
    ]
    lines += [f"note: {n}" for n in plan.notes]
    for p in plan.processes:
        s = p.scheduling
        sched = ", ".join(f"{k} {v}" for k, v in s.items() if v not in (None, "")) or "default"
        lines.append(
            f"- {p.fqn} [{p.kind}] roles {','.join(p.roles)}: {sched}; {_respawn_text(p)}"
        )
        lines.append(f"    {shlex.join(p.command)}")
    return "\n".join(lines)
