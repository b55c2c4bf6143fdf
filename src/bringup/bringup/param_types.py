"""Inline parameter types, checked before anything starts, the same for both launchers (pure).

rcl silently ignores a ``-p`` of the wrong type after ``--params-file`` (the file's value stays)
while launch's generated parameter file makes the node fail: both launchers refuse it here.
"""

from __future__ import annotations

import yaml

from bringup.graph import GraphError


def type_name(v) -> str | None:
    """The rcl parameter type of a YAML value (None: not a parameter value)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return _array_type(v)
    return None


def _array_type(v: list) -> str:
    inner = {type_name(x) for x in v}
    if not inner:
        return "list"  # an empty list tells nothing about its elements
    if inner == {"int", "float"}:
        inner = {"float"}
    if len(inner) == 1 and None not in inner:
        return f"{inner.pop()}[]"
    return "list"


def type_compatible(declared: str, value) -> bool:
    """Whether rcl/rclpy take ``value`` for a parameter declared as ``declared``.

    An integer for a double is fine (rclpy converts it); a string for an integer is not, and a
    float for an integer is not either (the value would be truncated or refused).
    """
    got = type_name(value)
    if declared == got or got is None or declared == "list":
        return True
    if declared == "float" and got == "int":
        return True
    if declared == "float[]" and got == "int[]":
        return True
    return declared.endswith("[]") and got == "list"  # [] for any array type


def _matches(key: str, name: str, fqn: str) -> bool:
    key = key.strip()
    if key in ("/**", "**"):
        return True
    return key in (name, fqn, fqn.lstrip("/"), "/**/" + name, "**/" + name)


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _read_yaml(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # rcl reports an unreadable file itself; not this check's business


def _sections(data, name: str, fqn: str):
    """The ``ros__parameters`` mappings of a parameter file that apply to this node."""
    if not isinstance(data, dict):
        return
    for key, section in data.items():
        if isinstance(key, str) and isinstance(section, dict) and _matches(key, name, fqn):
            params = section.get("ros__parameters")
            if isinstance(params, dict):
                yield params


def declared_types(files, name: str, fqn: str) -> dict[str, tuple[str, str]]:
    """{parameter: (type, file)} from a node's parameter files; the first file that sets a
    parameter (the package's own defaults come first) gives its type."""
    out: dict[str, tuple[str, str]] = {}
    for f in files:
        for params in _sections(_read_yaml(f), name, fqn):
            for pname, v in _flatten(params):
                t = type_name(v)
                if t is not None and pname not in out:
                    out[pname] = (t, f)
    return out


def check_parameter_types(graph_path, name: str, fqn: str, files, params: dict, keys: dict):
    """Refuse an inline override whose type differs from the parameter file's (GraphError).

    ``keys`` maps a parameter to the graph key it came from (for the message).
    """
    types = declared_types(files, name, fqn)
    for pname, value in params.items():
        if pname not in types:
            continue
        declared, where = types[pname]
        if not type_compatible(declared, value):
            got = type_name(value) or type(value).__name__
            raise GraphError(
                graph_path,
                f"{value!r} is a {got}, but {pname!r} is a {declared} (declared in {where})",
                name,
                keys.get(pname, f"parameters.{pname}"),
            )
