"""Graph variables: the built-in ones of a run and ``${var}`` / ``${share:pkg}`` substitution
(pure; packages are looked up through the resolver)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bringup.graph import Graph, GraphError
from bringup.resolver import Resolver

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z0-9_]+))?\}")
# A variable's expansion longer than this is a mistake (e.g. ${a} = ${b}${b}, ${b} = ${c}${c}...).
MAX_EXPANSION = 65536


def ros_log_dir(data_root: str, environ: Mapping[str, str]) -> str:
    """Where every child's ROS logs go: ``<data_root>/logs/ros``, unless ROS_LOG_DIR was chosen.

    env.sh exports ``ROS_LOG_DIR=$SENSORHUB_DATA_ROOT/logs/ros`` as a default; that value (or
    none) follows the data root of this run. Any other ROS_LOG_DIR is the user's explicit choice
    and is kept. A graph entry's own ``env: {ROS_LOG_DIR: ...}`` wins over both.
    """
    own = os.path.join(data_root, "logs", "ros")
    given = environ.get("ROS_LOG_DIR")
    if not given:
        return own
    root = environ.get("SENSORHUB_DATA_ROOT")
    derived = os.path.join(root, "logs", "ros") if root else None
    if derived and os.path.normpath(given) == os.path.normpath(derived):
        return own
    return given


def builtin_variables(
    graph: Graph, profile: str, role: str, data_root: str, environ: Mapping[str, str]
) -> dict:
    """The variables every graph has (``${data_root}``, ``${role_ns}``, ...)."""
    return {
        "data_root": data_root,
        "run_dir": os.path.join(data_root, "run"),
        "log_dir": os.path.join(data_root, "logs"),
        "bag_dir": os.path.join(data_root, "bags"),
        "profile": profile,
        "role": role,
        # per-host nodes (system_monitor) in the two-Pi split: /sensors/..., /web/...; one host
        # running everything keeps the plain names
        "role_ns": "" if role == "all" else role,
        "graph_dir": str(graph.path.parent.resolve()),
        "ros_log_dir": ros_log_dir(data_root, environ),
    }


def user_variables(graph: Graph, profile: str, set_variables: Mapping | None) -> dict:
    """The graph's and the profile's variables, with the command line's ``--set`` applied."""
    out = graph.profile_variables(profile)
    settable = graph.settable_variables()
    for k, v in (set_variables or {}).items():
        if k not in settable:
            raise GraphError(
                graph.path,
                f"--set {k}: not a variable of this graph (settable: "
                f"{', '.join(sorted(settable)) or 'none'})",
                key=f"variables.{k}",
            )
        out[k] = v
    return out


@dataclass
class Variables:
    """Every variable of one plan; ``for_entry`` substitutes them in one entry's values."""

    graph: Graph
    builtins: dict
    user: dict
    resolver: Resolver

    def for_entry(self, name: str) -> Substitution:
        return Substitution(self, name)


class Substitution:
    """${var} and ${share:pkg} in one entry; a value that is exactly one variable keeps its type.

    Each user variable is expanded once (memoised) and no expansion may exceed MAX_EXPANSION
    characters, so variables that refer to each other cannot make the check run for ever.
    """

    def __init__(self, variables: Variables, node: str):
        self.vars = variables
        self.node = node
        self._done: dict = {}
        self._active: list[str] = []

    @property
    def builtins(self) -> dict:
        return self.vars.builtins

    def _error(self, message: str, key: str) -> GraphError:
        return GraphError(self.vars.graph.path, message, self.node, key)

    def var(self, name: str, arg: str | None, key: str):
        if name == "share":
            return self._share(arg, key)
        if name in self.vars.builtins:
            return self.vars.builtins[name]
        if name in self.vars.user:
            return self._user(name, key)
        known = sorted({*self.vars.builtins, *self.vars.user, "share:PKG"})
        raise self._error(f"unknown variable ${{{name}}} (known: {', '.join(known)})", key)

    def _share(self, arg: str | None, key: str) -> str:
        if not arg:
            raise self._error("use ${share:PACKAGE}", key)
        share = self.vars.resolver.share(arg)
        if share is None:
            raise self._error(f"${{share:{arg}}}: package not installed", key)
        return share

    def _user(self, name: str, key: str):
        if name in self._done:
            return self._done[name]
        if name in self._active:
            cycle = " -> ".join(f"${{{v}}}" for v in [*self._active, name])
            raise self._error(f"variable ${{{name}}} refers to itself ({cycle})", key)
        self._active.append(name)
        try:
            out = self.value(self.vars.user[name], key)
        finally:
            self._active.pop()
        self._done[name] = out
        return out

    def value(self, v, key: str):
        if isinstance(v, str):
            m = _VAR_RE.fullmatch(v)
            if m:
                return self.var(m.group(1), m.group(2), key)
            out = _VAR_RE.sub(lambda m: self._text(m, key), v)
            self._bound(out, key)
            return out
        if isinstance(v, list):
            return [self.value(x, key) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, f"{key}.{k}") for k, x in v.items()}
        return v

    def _text(self, m, key: str) -> str:
        text = str(self.var(m.group(1), m.group(2), key))
        self._bound(text, key)
        return text

    def _bound(self, text: str, key: str) -> None:
        if len(text) > MAX_EXPANSION:
            what = f"${{{self._active[0]}}}" if self._active else "the value"
            raise self._error(
                f"{what} expands to more than {MAX_EXPANSION} characters "
                "(variables that repeat each other?)",
                key,
            )
