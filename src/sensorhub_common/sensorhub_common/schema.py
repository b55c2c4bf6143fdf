"""ros2msg schemas built from the installed ``.msg`` files, as Foxglove and rosbag2 expect them.

The schema of a type is its ``.msg`` text followed, for every type it depends on (recursively,
each once, depth first), by a line of 80 ``=``, a ``MSG: pkg/Type`` line and that type's text.
Headers use the two-part name (``std_msgs/Header``): the three-part form breaks Foxglove's and
Lichtblick's parsers. No rclpy import: the search path is ``AMENT_PREFIX_PATH``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

SEPARATOR = "=" * 80
PRIMITIVES = frozenset(
    {
        "bool",
        "byte",
        "char",
        "float32",
        "float64",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "string",
        "wstring",
        # ROS 1 spellings still accepted by the rosidl parser
        "time",
        "duration",
    }
)
_BUILTIN_ALIASES = {"time": "builtin_interfaces/Time", "duration": "builtin_interfaces/Duration"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SchemaError(LookupError):
    """A type or one of its dependencies has no .msg file (or a malformed name)."""


def split_type(type_name: str) -> tuple[str, str]:
    """'pkg/msg/Type' or 'pkg/Type' -> ('pkg', 'Type')."""
    parts = type_name.strip().split("/")
    if len(parts) == 3 and parts[1] == "msg":
        parts = [parts[0], parts[2]]
    if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
        raise SchemaError(f"not a message type name: {type_name!r} (expected pkg/msg/Type)")
    return parts[0], parts[1]


def prefixes_from_env() -> list[Path]:
    return [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def find_msg_file(pkg: str, name: str, prefixes: Sequence[Path] | None = None) -> Path:
    """<prefix>/share/<pkg>/msg/<Name>.msg, first prefix wins (as the ament index resolves)."""
    for prefix in prefixes if prefixes is not None else prefixes_from_env():
        path = Path(prefix, "share", pkg, "msg", f"{name}.msg")
        if path.is_file():
            return path
    raise SchemaError(f"no {pkg}/msg/{name}.msg under the ament prefixes (is {pkg} installed?)")


def _field_base_type(line: str) -> str | None:
    """The type token of a field or constant line, without array or string bounds; None if none."""
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    token = line.split()[0]
    token = token.split("[", 1)[0]
    return token.split("<=", 1)[0]


def dependencies(text: str, pkg: str) -> list[str]:
    """Direct dependencies of a .msg text as two-part names, in order of first use."""
    deps: list[str] = []
    for line in text.splitlines():
        base = _field_base_type(line)
        if base is None or (base in PRIMITIVES and base not in _BUILTIN_ALIASES):
            continue
        if base in _BUILTIN_ALIASES:
            full = _BUILTIN_ALIASES[base]
        elif "/" in base:
            full = "/".join(split_type(base))
        elif base == "Header":
            full = "std_msgs/Header"
        else:
            full = f"{pkg}/{base}"
        if full not in deps:
            deps.append(full)
    return deps


def build_ros2msg(type_name: str, prefixes: Sequence[Path] | None = None) -> str:
    """The complete ros2msg schema text of ``type_name`` ('pkg/msg/Type')."""
    pkg, name = split_type(type_name)
    root_text = find_msg_file(pkg, name, prefixes).read_text()
    parts = [root_text]
    seen = {f"{pkg}/{name}"}

    def visit(text: str, owner_pkg: str) -> None:
        for dep in dependencies(text, owner_pkg):
            if dep in seen:
                continue
            seen.add(dep)
            dpkg, dname = dep.split("/")
            dtext = find_msg_file(dpkg, dname, prefixes).read_text()
            parts.append(f"{SEPARATOR}\nMSG: {dep}\n{dtext}")
            visit(dtext, dpkg)

    visit(root_text, pkg)
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


class SchemaCache:
    """Built schemas by type name; a missing type is remembered so discovery does not retry it."""

    def __init__(self, prefixes: Sequence[Path] | None = None):
        self._prefixes = prefixes
        self._cache: dict[str, str | SchemaError] = {}

    def get(self, type_name: str) -> str:
        hit = self._cache.get(type_name)
        if hit is None:
            try:
                hit = build_ros2msg(type_name, self._prefixes)
            except SchemaError as e:
                hit = e
            self._cache[type_name] = hit
        if isinstance(hit, SchemaError):
            raise hit
        return hit
