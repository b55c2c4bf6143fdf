"""The graph file: load, validate and merge profiles (pure: no rclpy, no launch, no processes).

Everything that would make a start fail later (an unknown key, a bad CPU list, an unknown role or
profile, a parameter file that is not there) is found here, before anything starts, and reported
as one :class:`GraphError` naming the file, the node and the key. Whether a package is installed
depends on the machine and on which entries a profile/role/option selects, so that check is made
by :mod:`bringup.plan` for the selected entries only. What a file may contain (keys,
value rules) is :mod:`bringup.schema`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bringup import schema
from bringup.schema import NAME_RE, ROLE_CHOICES, ROLES, GraphError

__all__ = [
    "NAME_RE",
    "ROLES",
    "ROLE_CHOICES",
    "Container",
    "Graph",
    "GraphError",
    "Profile",
    "Slot",
    "load_graph",
    "merge",
    "parse_graph",
]


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
    prefer: tuple[str, ...] = ()  # the order `auto` tries variants in; unlisted ones follow

    def auto_order(self, entries: list[dict]) -> list[dict]:
        """``entries`` (this slot's, in file order) in the order ``auto`` tries them."""
        rank = {v: i for i, v in enumerate(self.prefer)}
        return sorted(entries, key=lambda n: rank.get(n["variant"], len(rank)))


@dataclass
class Container:
    """Several nodes in one process: in the profiles that compose, with the compose option, or
    (``default: true``) whenever the caller does not say ``compose false``."""

    name: str
    members: list[str]
    scheduling: dict | None = None  # None: that of its first member in the plan
    respawn: Any = None  # the graph's respawn value; None: that of its first member
    default: bool = False


@dataclass
class Graph:
    path: Path
    variables: dict
    profiles: dict[str, Profile]
    slots: dict[str, Slot]
    nodes: list[dict]  # validated raw entries, in start order
    description: str = ""
    containers: dict[str, Container] = field(default_factory=dict)

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
    """Validate a parsed graph file; raises GraphError naming the file, the node and the key."""
    path = Path(path)
    if not isinstance(data, dict):
        raise GraphError(path, "the graph file must be a mapping with 'nodes:'")
    schema.no_unknown(path, data, schema.TOP_KEYS, None, "")
    if data.get("version", 1) != 1:
        raise GraphError(path, f"unsupported version {data.get('version')!r} (expected 1)")
    variables = schema.mapping(path, data.get("variables", {}), None, "variables")
    for k in variables:
        schema.check_name(path, k, None, "variables")
    profiles = _parse_profiles(path, data.get("profiles"))
    slots = _parse_slots(path, data.get("slots", {}))
    nodes = _parse_nodes(path, data.get("nodes"), profiles, slots)
    _check_preferences(path, slots, nodes)
    containers = _parse_containers(
        path, schema.mapping(path, data.get("containers", {}), None, "containers"),
        {n["name"]: n for n in nodes},
    )  # fmt: skip
    return Graph(
        path, variables, profiles, slots, nodes, str(data.get("description", "")), containers
    )


def _parse_profile(path: Path, pname, pdata) -> Profile:
    schema.check_name(path, pname, None, "profiles")
    key = f"profiles.{pname}"
    pdata = schema.mapping(path, pdata or {}, None, key)
    schema.no_unknown(path, pdata, schema.PROFILE_KEYS, None, key + ".")
    variables = schema.mapping(path, pdata.get("variables", {}), None, key + ".variables")
    env = schema.mapping(path, pdata.get("env", {}), None, key + ".env")
    return Profile(
        name=pname,
        description=str(pdata.get("description", "")),
        extends=pdata.get("extends"),
        variables=variables,
        env={str(k): str(v) for k, v in env.items()},
        compose=schema.bool_flag(path, pdata.get("compose"), key + ".compose"),
    )


def _parse_profiles(path: Path, raw) -> dict[str, Profile]:
    raw = schema.mapping(path, raw, None, "profiles", required=True)
    profiles = {pname: _parse_profile(path, pname, pdata) for pname, pdata in raw.items()}
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
    return profiles


def _parse_slots(path: Path, raw) -> dict[str, Slot]:
    slots: dict[str, Slot] = {}
    for sname, sdata in schema.mapping(path, raw, None, "slots").items():
        schema.check_name(path, sname, None, "slots")
        sdata = schema.mapping(path, sdata or {}, None, f"slots.{sname}")
        schema.no_unknown(path, sdata, schema.SLOT_KEYS, None, f"slots.{sname}.")
        slots[sname] = Slot(
            name=sname,
            option=str(sdata.get("option", sname)),
            default=str(sdata.get("default", "auto")),
            enabled_by=sdata.get("enabled_by"),
            description=str(sdata.get("description", "")),
            prefer=_prefer_list(path, sdata.get("prefer", []), f"slots.{sname}.prefer"),
        )
    return slots


def _prefer_list(path: Path, raw, key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise GraphError(path, f"expected a list of variant names, got {raw!r}", key=key)
    return tuple(raw)


def _check_preferences(path: Path, slots: dict[str, Slot], nodes: list[dict]) -> None:
    """Every name in a slot's ``prefer`` is one of that slot's variants."""
    for slot in slots.values():
        variants = [n["variant"] for n in nodes if n.get("slot") == slot.name]
        for v in slot.prefer:
            if v not in variants:
                raise GraphError(
                    path,
                    f"{v!r} is not a variant of slot {slot.name!r} "
                    f"(variants: {', '.join(variants) or 'none'})",
                    key=f"slots.{slot.name}.prefer",
                )


def _node_name(path: Path, i: int, n, names: set[str]) -> str:
    if not isinstance(n, dict):
        raise GraphError(path, f"entry #{i + 1} is not a mapping", key="nodes")
    name = n.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GraphError(
            path,
            f"entry #{i + 1}: 'name' must be a ROS node name (letters, digits, _), got {name!r}",
            key="name",
        )
    if name in names:
        raise GraphError(path, "duplicate node name", node=name, key="name")
    return name


def _parse_nodes(path: Path, raw, profiles: dict, slots: dict) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise GraphError(path, "'nodes' must be a non-empty list", key="nodes")
    names: set[str] = set()
    for i, n in enumerate(raw):
        names.add(_node_name(path, i, n, names))
        schema.check_node(path, n, profiles, slots)
    # A variant may be several entries (foxglove_bridge and the lab page's own server): they
    # run together, and `auto` takes the variant only when every one of them is installed.
    return list(raw)


def _parse_containers(path: Path, raw: dict, nodes: dict) -> dict[str, Container]:
    """Members are ROS nodes with a `component`, never one with a real-time thread, each in at
    most one container; a container's name is not a node's."""
    seen: dict[str, str] = {}
    out = {}
    for cname, c in raw.items():
        key = f"containers.{cname}"
        schema.check_name(path, cname, None, key)
        c = schema.mapping(path, c, None, key)
        schema.no_unknown(path, c, schema.CONTAINER_KEYS, None, key + ".")
        if cname in nodes:
            raise GraphError(path, f"container {cname!r} has the name of a node", key=key)
        members = c.get("members")
        if not isinstance(members, list) or not members:
            raise GraphError(path, "needs 'members: [node names]'", key=key + ".members")
        for m in members:
            schema.check_member(path, m, nodes, seen, key + ".members")
            seen[m] = cname
        out[cname] = Container(
            name=cname,
            members=list(members),
            scheduling=(
                schema.mapping(path, c["scheduling"], None, key + ".scheduling")
                if "scheduling" in c
                else None
            ),
            respawn=c.get("respawn"),
            default=bool(schema.bool_flag(path, c.get("default"), key + ".default")),
        )
    return out
