"""What a graph file may contain: its keys, the rules for their values, and GraphError (pure).

Each check raises one :class:`GraphError` naming the file, the node and the key, before anything
starts. Rules are tables (key -> check) so that a new key is one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from sensorhub_common.scheduling import IO_CLASSES, parse_cpu_list

ROLES = ("sensors", "web")  # "all" = every role; the two-Pi split runs one role per host
ROLE_CHOICES = ("all", *ROLES)
KINDS = ("ros_node", "process", "command", "launch")

TOP_KEYS = {"version", "description", "variables", "profiles", "slots", "nodes", "containers"}
PROFILE_KEYS = {"description", "extends", "variables", "env", "compose"}
CONTAINER_KEYS = {"members", "scheduling", "respawn", "default"}
SLOT_KEYS = {"description", "option", "default", "enabled_by", "prefer"}
NODE_KEYS = {
    "name",
    "description",
    "kind",
    "package",
    "executable",
    "namespace",
    "command",
    "requires",
    "launch_file",
    "launch_arguments",
    "params",
    "parameters",
    "args",
    "env",
    "cwd",
    "scheduling",
    "respawn",
    "roles",
    "only_profiles",
    "slot",
    "variant",
    "external",
    "enabled",
    "url",
    "component",
    "profiles",
}
# What a profile override of a node may change (identity keys like name/package may not).
OVERRIDE_KEYS = {
    "params",
    "parameters",
    "args",
    "env",
    "scheduling",
    "respawn",
    "enabled",
    "launch_arguments",
    "url",
}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Respawn floors: a crash-looping node must not eat the CPU the PBT path needs.
MIN_RESPAWN_DELAY = 0.1  # s, delay and max_delay
MAX_RESTARTS = 100  # within one window
MIN_WINDOW, MAX_WINDOW = 1.0, 86400.0  # s
MIN_STABLE_AFTER = 1.0  # s; below it every exit would count as a healthy run


class GraphError(ValueError):
    """A graph file problem; str() names the file, the node and the key."""

    def __init__(self, file, message: str, node: str | None = None, key: str | None = None):
        self.file = str(file)
        self.node = node
        self.key = key
        self.detail = message
        where = self.file
        if node:
            where += f": node {node!r}"
        if key:
            where += f": key {key!r}"
        super().__init__(f"{where}: {message}")


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def mapping(path, v, node, key, required=False) -> dict:
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise GraphError(path, "must be a mapping", node, key)
    return v


def check_name(path, name, node, key) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GraphError(path, f"bad name {name!r}", node, key)


def no_unknown(path, d: dict, allowed: set, node, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise GraphError(
                path,
                f"unknown key (allowed: {', '.join(sorted(allowed))})",
                node,
                f"{prefix}{k}",
            )


def bool_flag(path, v, key: str) -> bool | None:
    """An optional true/false key (None when absent)."""
    if v is None or isinstance(v, bool):
        return v
    raise GraphError(path, f"must be true or false, not {v!r}", key=key)


# ---- scheduling and respawn: key -> check returning the problem, or None
def _cpus(v) -> str | None:
    if v is None:
        return None
    try:
        parse_cpu_list(v if not isinstance(v, int) else str(v))
    except ValueError as e:
        return str(e)
    return None


SCHED_RULES: dict[str, Callable[[object], str | None]] = {
    "cpus": _cpus,
    "rt_cpus": _cpus,
    "nice": lambda v: None if is_int(v) and -20 <= v <= 19 else f"nice must be -20..19, got {v!r}",
    "io_class": lambda v: (
        None if v in IO_CLASSES else f"unknown I/O class {v!r} (one of {', '.join(IO_CLASSES)})"
    ),
    "io_level": lambda v: None if is_int(v) and 0 <= v <= 7 else "must be 0..7",
    "rt_priority": lambda v: None if is_int(v) and 0 <= v <= 99 else "must be 0 (off) ..99",
}
SCHED_KEYS = set(SCHED_RULES)


def _in_range(lo: float, hi: float, want: str, integer: bool = False):
    number = is_int if integer else is_num
    return (lambda v: number(v) and lo <= v <= hi), want


_DELAY = _in_range(MIN_RESPAWN_DELAY, MAX_WINDOW, f"at least {MIN_RESPAWN_DELAY:g} s")
# key -> (accepts the value, what it must be: said in the message)
RESPAWN_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "enabled": (lambda v: isinstance(v, bool), ""),
    "delay": _DELAY,
    "max_delay": _DELAY,
    "factor": _in_range(1, 10, "1..10"),
    "max_restarts": _in_range(0, MAX_RESTARTS, f"an integer 0..{MAX_RESTARTS}", integer=True),
    "window": _in_range(MIN_WINDOW, MAX_WINDOW, f"{MIN_WINDOW:g}..{MAX_WINDOW:g} s"),
    "stable_after": _in_range(MIN_STABLE_AFTER, MAX_WINDOW, f"at least {MIN_STABLE_AFTER:g} s"),
}
RESPAWN_KEYS = set(RESPAWN_RULES)


def check_scheduling(path, raw, name: str, prefix: str) -> None:
    s = mapping(path, raw, name, prefix + "scheduling")
    no_unknown(path, s, SCHED_KEYS, name, prefix + "scheduling.")
    for key, rule in SCHED_RULES.items():
        problem = rule(s[key]) if key in s else None
        if problem:
            raise GraphError(path, problem, name, f"{prefix}scheduling.{key}")


def check_respawn(path, raw, name: str, prefix: str) -> None:
    if isinstance(raw, bool):
        return
    r = mapping(path, raw, name, prefix + "respawn")
    no_unknown(path, r, RESPAWN_KEYS, name, prefix + "respawn.")
    for key, v in r.items():
        ok, want = RESPAWN_RULES[key]
        if not ok(v):
            msg = f"bad value {v!r}" + (f" (must be {want})" if want else "")
            raise GraphError(path, msg, name, f"{prefix}respawn.{key}")


def _check_params_files(path: Path, files: list[str], name: str, key: str) -> None:
    for p in files:
        if "${" not in p:  # package share files are checked when the plan resolves packages
            f = Path(p) if Path(p).is_absolute() else path.parent / p
            if not f.is_file():
                raise GraphError(path, f"parameter file {str(f)!r} does not exist", name, key)


# keys an entry and its profile overrides share: key -> (accepts the value, message)
_OVERRIDABLE_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "params": (is_str_list, "must be a list of strings"),
    "args": (is_str_list, "must be a list of strings"),
    "parameters": (lambda v: isinstance(v, dict), "must be a mapping"),
    "env": (lambda v: isinstance(v, dict), "must be a mapping"),
    "launch_arguments": (lambda v: isinstance(v, dict), "must be a mapping"),
}


def check_overridable(path: Path, d: dict, name: str, prefix: str) -> None:
    """The keys a node and its per-profile overrides have in common."""
    for key, (ok, message) in _OVERRIDABLE_TYPES.items():
        if key in d and not ok(d[key]):
            raise GraphError(path, message, name, prefix + key)
    _check_params_files(path, d.get("params", []), name, prefix + "params")
    if "enabled" in d and not isinstance(d["enabled"], bool):
        raise GraphError(path, "must be true or false", name, prefix + "enabled")
    if "scheduling" in d:
        check_scheduling(path, d["scheduling"], name, prefix)
    if "respawn" in d:
        check_respawn(path, d["respawn"], name, prefix)


# ---- one node entry
def _check_kind(path, n: dict, name: str) -> None:
    kind = n.get("kind", "ros_node")
    if kind not in KINDS:
        raise GraphError(path, f"unknown kind {kind!r} (one of {', '.join(KINDS)})", name, "kind")
    if kind == "command":
        cmd = n.get("command")
        if not isinstance(cmd, list) or not cmd or not is_str_list(cmd):
            raise GraphError(path, "a command entry needs 'command: [argv...]'", name, "command")
        return
    for key in ("package", "launch_file" if kind == "launch" else "executable"):
        if not isinstance(n.get(key), str) or not n[key]:
            raise GraphError(path, f"required for kind {kind!r}", name, key)


def _check_ros_only(path, n: dict, name: str) -> None:
    kind = n.get("kind", "ros_node")
    bad = next((k for k in ("namespace", "params", "parameters") if k in n), None)
    if kind != "ros_node" and bad:
        raise GraphError(path, f"only ROS nodes (kind ros_node) take {bad!r}", name, bad)
    c = n.get("component")
    if "component" in n and (kind != "ros_node" or not isinstance(c, str) or ":" not in c):
        raise GraphError(
            path,
            "a ROS node's class as 'package.module:Class' (for containers)",
            name,
            "component",
        )


def _check_roles(path, n: dict, name: str, profiles: dict) -> None:
    roles = n.get("roles")
    if not isinstance(roles, list) or not roles:
        raise GraphError(path, f"required: a list of roles from {', '.join(ROLES)}", name, "roles")
    for r in roles:
        if r not in ROLES:
            raise GraphError(
                path, f"unknown role {r!r} (known: {', '.join(ROLES)})", name, "roles"
            )
    only = n.get("only_profiles")
    if only is None:
        return
    if not isinstance(only, list):
        raise GraphError(path, "must be a list of profile names", name, "only_profiles")
    for p in only:
        if p not in profiles:
            raise GraphError(path, f"unknown profile {p!r}", name, "only_profiles")


def _check_slot(path, n: dict, name: str, slots: dict) -> None:
    if ("slot" in n) != ("variant" in n):
        raise GraphError(path, "'slot' and 'variant' go together", name, "slot")
    if "slot" in n and n["slot"] not in slots:
        raise GraphError(path, f"unknown slot {n['slot']!r}", name, "slot")


# entry keys with a plain type: key -> (accepts the value, message)
_NODE_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "requires": (is_str_list, "must be a list of package names"),
    "namespace": (lambda v: isinstance(v, str), "must be a string"),
}
_NODE_FLAGS = ("external", "enabled")


def _check_types(path, n: dict, name: str, table: dict) -> None:
    for key, (ok, message) in table.items():
        if key in n and not ok(n[key]):
            raise GraphError(path, message, name, key)


def _check_profile_overrides(path, n: dict, name: str, profiles: dict) -> None:
    ovs = n.get("profiles", {})
    if not isinstance(ovs, dict):
        raise GraphError(path, "must map profile names to overrides", name, "profiles")
    for pname, ov in ovs.items():
        if pname not in profiles:
            raise GraphError(
                path, f"unknown profile {pname!r} (known: {', '.join(profiles)})", name, "profiles"
            )
        if not isinstance(ov, dict):
            raise GraphError(path, "override must be a mapping", name, f"profiles.{pname}")
        no_unknown(path, ov, OVERRIDE_KEYS, name, f"profiles.{pname}.")
        check_overridable(path, ov, name, f"profiles.{pname}.")


def check_node(path: Path, n: dict, profiles: dict, slots: dict) -> None:
    """One node entry (its name already checked), with its per-profile overrides."""
    name = n["name"]
    no_unknown(path, n, NODE_KEYS, name, "")
    _check_kind(path, n, name)
    _check_ros_only(path, n, name)
    _check_types(path, n, name, _NODE_TYPES)
    _check_roles(path, n, name, profiles)
    _check_slot(path, n, name, slots)
    for key in _NODE_FLAGS:
        if key in n and not isinstance(n[key], bool):
            raise GraphError(path, "must be true or false", name, key)
    check_overridable(path, n, name, "")
    _check_profile_overrides(path, n, name, profiles)


def check_member(path, m, nodes: dict, seen: dict, key: str) -> None:
    """A container member: a ROS node with a `component`, without a real-time thread, in at
    most one container."""
    if m not in nodes:
        raise GraphError(path, f"unknown node {m!r}", key=key)
    if "component" not in nodes[m]:
        raise GraphError(path, f"{m!r} has no 'component' (package.module:Class) to load", key=key)
    if (nodes[m].get("scheduling") or {}).get("rt_priority"):
        raise GraphError(
            path, f"{m!r} has a real-time thread (rt_priority): it runs alone", key=key
        )
    if m in seen:
        raise GraphError(path, f"{m!r} is already in container {seen[m]!r}", key=key)
