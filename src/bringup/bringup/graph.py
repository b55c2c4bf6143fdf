"""The graph file: load, validate and merge profiles (pure: no rclpy, no launch, no processes).

Everything that would make a start fail later (an unknown key, a bad CPU list, an unknown role or
profile, a parameter file that is not there) is found here, before anything starts, and reported
as one :class:`GraphError` naming the file, the node and the key. Whether a package is installed
depends on the machine and on which entries a profile/role/option selects, so that check is made
by :mod:`bringup.plan` for the selected entries only.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sensorhub_common.scheduling import IO_CLASSES, parse_cpu_list

ROLES = ("sensors", "web")  # "all" = every role; the two-Pi split runs one role per host
ROLE_CHOICES = ("all", *ROLES)
KINDS = ("ros_node", "process", "command", "launch")

TOP_KEYS = {"version", "description", "variables", "profiles", "slots", "nodes", "containers"}
PROFILE_KEYS = {"description", "extends", "variables", "env", "compose"}
CONTAINER_KEYS = {"members", "scheduling", "respawn"}
SLOT_KEYS = {"description", "option", "default", "enabled_by"}
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
SCHED_KEYS = {"cpus", "nice", "io_class", "io_level", "rt_priority", "rt_cpus"}
RESPAWN_KEYS = {
    "enabled",
    "delay",
    "max_delay",
    "factor",
    "max_restarts",
    "window",
    "stable_after",
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


@dataclass
class Profile:
    name: str
    description: str = ""
    extends: str | None = None
    variables: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)  # defaults for every child; the caller's env wins
    compose: bool | None = None  # run the graph's containers (None: as the profile extended)


@dataclass
class Slot:
    """A choice between alternative entries (e.g. the web server), set by a launch option."""

    name: str
    option: str
    default: str = "auto"
    enabled_by: str | None = None  # a boolean option that switches the whole slot on (record)
    description: str = ""


@dataclass
class Graph:
    path: Path
    variables: dict
    profiles: dict[str, Profile]
    slots: dict[str, Slot]
    nodes: list[dict]  # validated raw entries, in start order
    description: str = ""
    # name -> {members: [node names], scheduling, respawn}: one process for those nodes, in the
    # profiles that compose (or with the compose option)
    containers: dict = field(default_factory=dict)

    def node(self, name: str) -> dict:
        for n in self.nodes:
            if n["name"] == name:
                return n
        raise KeyError(name)

    def profile_chain(self, profile: str) -> list[str]:
        """['pi', 'lite'] for lite (base first): overrides apply in this order."""
        if profile not in self.profiles:
            raise GraphError(
                self.path,
                f"unknown profile {profile!r} (known: {', '.join(self.profiles)})",
                key="profile",
            )
        chain = []
        p: str | None = profile
        while p is not None:
            chain.insert(0, p)
            p = self.profiles[p].extends
        return chain

    def resolved_node(self, name: str, profile: str) -> dict:
        """The entry with its per-profile overrides merged (dicts merged, lists replaced)."""
        raw = self.node(name)
        out = {k: copy.deepcopy(v) for k, v in raw.items() if k != "profiles"}
        for p in self.profile_chain(profile):
            ov = raw.get("profiles", {}).get(p)
            if ov:
                out = merge(out, ov)
        return out

    def settable_variables(self) -> set[str]:
        """Names `--set` may change: the graph's and its profiles' variables."""
        out = set(self.variables)
        for p in self.profiles.values():
            out |= set(p.variables)
        return out

    def profile_composes(self, profile: str) -> bool:
        """Whether the profile runs the graph's containers (`compose:`, inherited)."""
        out = False
        for p in self.profile_chain(profile):
            if self.profiles[p].compose is not None:
                out = self.profiles[p].compose
        return out

    def profile_env(self, profile: str) -> dict:
        out: dict = {}
        for p in self.profile_chain(profile):
            out.update(self.profiles[p].env)
        return out

    def profile_variables(self, profile: str) -> dict:
        out = dict(self.variables)
        for p in self.profile_chain(profile):
            out.update(self.profiles[p].variables)
        return out


def merge(base: dict, override: dict) -> dict:
    """Deep-merge mappings; any other value (lists included) is replaced, so a profile can
    shorten a list such as a topic whitelist."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_graph(path) -> Graph:
    """Read and validate a graph file; raises GraphError."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise GraphError(path, f"cannot read graph file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise GraphError(
            path, f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GraphError(path, f"not valid YAML: {e}") from None
    return parse_graph(data, path)


def parse_graph(data: Any, path) -> Graph:
    path = Path(path)
    if not isinstance(data, dict):
        raise GraphError(path, "the graph file must be a mapping with 'nodes:'")
    _no_unknown(path, data, TOP_KEYS, None, "")
    if data.get("version", 1) != 1:
        raise GraphError(path, f"unsupported version {data.get('version')!r} (expected 1)")
    variables = _mapping(path, data.get("variables", {}), None, "variables")
    for k in variables:
        _check_name(path, k, None, "variables")

    raw_profiles = _mapping(path, data.get("profiles"), None, "profiles", required=True)
    profiles: dict[str, Profile] = {}
    for pname, pdata in raw_profiles.items():
        _check_name(path, pname, None, "profiles")
        pdata = _mapping(path, pdata or {}, None, f"profiles.{pname}")
        _no_unknown(path, pdata, PROFILE_KEYS, None, f"profiles.{pname}.")
        profiles[pname] = Profile(
            pname,
            str(pdata.get("description", "")),
            pdata.get("extends"),
            _mapping(path, pdata.get("variables", {}), None, f"profiles.{pname}.variables"),
            {
                str(k): str(v)
                for k, v in _mapping(
                    path, pdata.get("env", {}), None, f"profiles.{pname}.env"
                ).items()
            },
            _compose_flag(path, pdata.get("compose"), f"profiles.{pname}.compose"),
        )
    for p in profiles.values():
        seen = {p.name}
        cur = p
        while cur.extends is not None:
            if cur.extends not in profiles:
                raise GraphError(
                    path, f"extends unknown profile {cur.extends!r}", key=f"profiles.{p.name}"
                )
            if cur.extends in seen:
                raise GraphError(path, "profiles extend each other in a cycle", key=p.name)
            seen.add(cur.extends)
            cur = profiles[cur.extends]

    slots: dict[str, Slot] = {}
    for sname, sdata in _mapping(path, data.get("slots", {}), None, "slots").items():
        _check_name(path, sname, None, "slots")
        sdata = _mapping(path, sdata or {}, None, f"slots.{sname}")
        _no_unknown(path, sdata, SLOT_KEYS, None, f"slots.{sname}.")
        slots[sname] = Slot(
            sname,
            str(sdata.get("option", sname)),
            str(sdata.get("default", "auto")),
            sdata.get("enabled_by"),
            str(sdata.get("description", "")),
        )

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise GraphError(path, "'nodes' must be a non-empty list", key="nodes")
    nodes: list[dict] = []
    names: set[str] = set()
    variants: set[tuple[str, str]] = set()
    for i, n in enumerate(raw_nodes):
        if not isinstance(n, dict):
            raise GraphError(path, f"entry #{i + 1} is not a mapping", key="nodes")
        name = n.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise GraphError(
                path,
                f"entry #{i + 1}: 'name' must be a ROS node name (letters, digits, _), "
                f"got {name!r}",
                key="name",
            )
        if name in names:
            raise GraphError(path, "duplicate node name", node=name, key="name")
        names.add(name)
        _validate_node(path, n, profiles, slots)
        if "slot" in n:
            key = (n["slot"], n["variant"])
            if key in variants:
                raise GraphError(
                    path,
                    f"slot {n['slot']!r} already has a variant {n['variant']!r}",
                    name,
                    "variant",
                )
            variants.add(key)
        nodes.append(n)
    containers = _validate_containers(
        path, _mapping(path, data.get("containers", {}), None, "containers"),
        {n["name"]: n for n in nodes},
    )  # fmt: skip
    return Graph(
        path, variables, profiles, slots, nodes, str(data.get("description", "")), containers
    )


def _compose_flag(path: Path, v, key: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise GraphError(path, f"must be true or false, not {v!r}", key=key)


def _validate_containers(path: Path, raw: dict, nodes: dict) -> dict:
    """Members are ROS nodes with a `component`, never one with a real-time thread, each in at
    most one container; a container's name is not a node's."""
    seen: dict[str, str] = {}
    out = {}
    for cname, c in raw.items():
        key = f"containers.{cname}"
        _check_name(path, cname, None, key)
        c = _mapping(path, c, None, key)
        _no_unknown(path, c, CONTAINER_KEYS, None, key + ".")
        if cname in nodes:
            raise GraphError(path, f"container {cname!r} has the name of a node", key=key)
        members = c.get("members")
        if not isinstance(members, list) or not members:
            raise GraphError(path, "needs 'members: [node names]'", key=key + ".members")
        for m in members:
            if m not in nodes:
                raise GraphError(path, f"unknown node {m!r}", key=key + ".members")
            if "component" not in nodes[m]:
                raise GraphError(
                    path,
                    f"{m!r} has no 'component' (package.module:Class) to load",
                    key=key + ".members",
                )
            if (nodes[m].get("scheduling") or {}).get("rt_priority"):
                raise GraphError(
                    path,
                    f"{m!r} has a real-time thread (rt_priority): it runs alone",
                    key=key + ".members",
                )
            if m in seen:
                raise GraphError(
                    path, f"{m!r} is already in container {seen[m]!r}", key=key + ".members"
                )
            seen[m] = cname
        if "scheduling" in c:
            _mapping(path, c["scheduling"], None, key + ".scheduling")
        out[cname] = c
    return out


def _validate_node(path: Path, n: dict, profiles: dict, slots: dict) -> None:
    name = n["name"]
    _no_unknown(path, n, NODE_KEYS, name, "")
    kind = n.get("kind", "ros_node")
    if kind not in KINDS:
        raise GraphError(path, f"unknown kind {kind!r} (one of {', '.join(KINDS)})", name, "kind")
    if kind == "command":
        cmd = n.get("command")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
            raise GraphError(path, "a command entry needs 'command: [argv...]'", name, "command")
    else:
        for key in ("package",) + (("executable",) if kind != "launch" else ("launch_file",)):
            if not isinstance(n.get(key), str) or not n[key]:
                raise GraphError(path, f"required for kind {kind!r}", name, key)
    if kind not in ("ros_node",) and ("namespace" in n or "params" in n or "parameters" in n):
        bad = next(k for k in ("namespace", "params", "parameters") if k in n)
        raise GraphError(path, f"only ROS nodes (kind ros_node) take {bad!r}", name, bad)
    if "component" in n and (
        kind != "ros_node" or not isinstance(n["component"], str) or ":" not in n["component"]
    ):
        raise GraphError(
            path,
            "a ROS node's class as 'package.module:Class' (for containers)",
            name,
            "component",
        )
    if "requires" in n and not (
        isinstance(n["requires"], list) and all(isinstance(x, str) for x in n["requires"])
    ):
        raise GraphError(path, "must be a list of package names", name, "requires")
    if "namespace" in n and not isinstance(n["namespace"], str):
        raise GraphError(path, "must be a string", name, "namespace")
    roles = n.get("roles")
    if not isinstance(roles, list) or not roles:
        raise GraphError(path, f"required: a list of roles from {', '.join(ROLES)}", name, "roles")
    for r in roles:
        if r not in ROLES:
            raise GraphError(
                path, f"unknown role {r!r} (known: {', '.join(ROLES)})", name, "roles"
            )
    only = n.get("only_profiles")
    if only is not None:
        if not isinstance(only, list):
            raise GraphError(path, "must be a list of profile names", name, "only_profiles")
        for p in only:
            if p not in profiles:
                raise GraphError(path, f"unknown profile {p!r}", name, "only_profiles")
    if ("slot" in n) != ("variant" in n):
        raise GraphError(path, "'slot' and 'variant' go together", name, "slot")
    if "slot" in n and n["slot"] not in slots:
        raise GraphError(path, f"unknown slot {n['slot']!r}", name, "slot")
    for key in ("external", "enabled"):
        if key in n and not isinstance(n[key], bool):
            raise GraphError(path, "must be true or false", name, key)
    _validate_overridable(path, n, name, "")
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
        _no_unknown(path, ov, OVERRIDE_KEYS, name, f"profiles.{pname}.")
        _validate_overridable(path, ov, name, f"profiles.{pname}.")


def _validate_overridable(path: Path, d: dict, name: str, prefix: str) -> None:
    for key in ("params", "args"):
        if key in d and not (isinstance(d[key], list) and all(isinstance(x, str) for x in d[key])):
            raise GraphError(path, "must be a list of strings", name, prefix + key)
    for key in ("parameters", "env", "launch_arguments"):
        if key in d and not isinstance(d[key], dict):
            raise GraphError(path, "must be a mapping", name, prefix + key)
    for p in d.get("params", []):
        if "${" not in p:  # package share files are checked when the plan resolves packages
            f = Path(p) if Path(p).is_absolute() else path.parent / p
            if not f.is_file():
                raise GraphError(
                    path, f"parameter file {str(f)!r} does not exist", name, prefix + "params"
                )
    if "enabled" in d and not isinstance(d["enabled"], bool):
        raise GraphError(path, "must be true or false", name, prefix + "enabled")
    if "scheduling" in d:
        s = _mapping(path, d["scheduling"], name, prefix + "scheduling")
        _no_unknown(path, s, SCHED_KEYS, name, prefix + "scheduling.")
        for key in ("cpus", "rt_cpus"):
            if key in s and s[key] is not None:
                try:
                    parse_cpu_list(s[key] if not isinstance(s[key], int) else str(s[key]))
                except ValueError as e:
                    raise GraphError(path, str(e), name, f"{prefix}scheduling.{key}") from None
        if "nice" in s and not (_is_int(s["nice"]) and -20 <= s["nice"] <= 19):
            raise GraphError(
                path, f"nice must be -20..19, got {s['nice']!r}", name, prefix + "scheduling.nice"
            )
        if "io_class" in s and s["io_class"] not in IO_CLASSES:
            raise GraphError(
                path,
                f"unknown I/O class {s['io_class']!r} (one of {', '.join(IO_CLASSES)})",
                name,
                prefix + "scheduling.io_class",
            )
        if "io_level" in s and not (_is_int(s["io_level"]) and 0 <= s["io_level"] <= 7):
            raise GraphError(path, "must be 0..7", name, prefix + "scheduling.io_level")
        if "rt_priority" in s and not (_is_int(s["rt_priority"]) and 0 <= s["rt_priority"] <= 99):
            raise GraphError(path, "must be 0 (off) ..99", name, prefix + "scheduling.rt_priority")
    if "respawn" in d:
        r = d["respawn"]
        if isinstance(r, bool):
            return
        r = _mapping(path, r, name, prefix + "respawn")
        _no_unknown(path, r, RESPAWN_KEYS, name, prefix + "respawn.")
        for key, v in r.items():
            want = ""
            if key == "enabled":
                ok = isinstance(v, bool)
            elif key == "max_restarts":
                ok = _is_int(v) and 0 <= v <= MAX_RESTARTS
                want = f"an integer 0..{MAX_RESTARTS}"
            elif key == "factor":
                ok = _is_num(v) and 1 <= v <= 10
                want = "1..10"
            elif key in ("delay", "max_delay"):
                ok = _is_num(v) and MIN_RESPAWN_DELAY <= v <= MAX_WINDOW
                want = f"at least {MIN_RESPAWN_DELAY:g} s"
            elif key == "window":
                ok = _is_num(v) and MIN_WINDOW <= v <= MAX_WINDOW
                want = f"{MIN_WINDOW:g}..{MAX_WINDOW:g} s"
            else:  # stable_after
                ok = _is_num(v) and MIN_STABLE_AFTER <= v <= MAX_WINDOW
                want = f"at least {MIN_STABLE_AFTER:g} s"
            if not ok:
                msg = f"bad value {v!r}" + (f" (must be {want})" if want else "")
                raise GraphError(path, msg, name, f"{prefix}respawn.{key}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mapping(path, v, node, key, required=False) -> dict:
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise GraphError(path, "must be a mapping", node, key)
    return v


def _check_name(path, name, node, key) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GraphError(path, f"bad name {name!r}", node, key)


def _no_unknown(path, d: dict, allowed: set, node, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise GraphError(
                path,
                f"unknown key (allowed: {', '.join(sorted(allowed))})",
                node,
                f"{prefix}{k}",
            )
