"""The caller's choices as text: booleans, ``--set NAME=VALUE`` / ``set:=`` overrides of graph
variables, and the ``auto`` profile (pure)."""

from __future__ import annotations

import yaml

from bringup.graph import NAME_RE

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}

# Launch arguments of all.launch.py: never read as graph variables.
RESERVED_ARGUMENTS = frozenset(
    {
        "profile",
        "role",
        "web",
        "tim240_driver",
        "record",
        "recorder",
        "compose",
        "data_root",
        "graph",
        "set",
    }
)


def parse_bool(value, what: str = "option") -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return False
    raise ValueError(f"{what}: expected true or false, got {value!r}")


def scalar(text: str):
    """A command-line value as YAML reads it: '9000' -> 9000, 'x' -> 'x', '' -> ''."""
    if text == "":
        return ""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v if isinstance(v, (str, int, float, bool)) else text


def parse_set(items, split_commas: bool = False) -> dict:
    """``NAME=VALUE`` strings -> {name: value}; values are YAML scalars (9000 is an int).

    ``split_commas`` is for the launch argument ``set:=web_port=9000,tim240_port=2112`` (a value
    cannot then contain a comma; use the individual launch argument ``web_port:=...``).
    """
    if isinstance(items, str):
        items = [items]
    out: dict = {}
    for item in items:
        parts = item.split(",") if split_commas else [item]
        for part in parts:
            if not part.strip() and split_commas:
                continue
            name, eq, text = part.partition("=")
            name = name.strip()
            if not eq or not NAME_RE.match(name):
                raise ValueError(f"--set expects NAME=VALUE, got {part!r}")
            out[name] = scalar(text.strip())
    return out


def variable_overrides(set_text: str, configurations: dict, known) -> dict:
    """The launch side of ``--set``: ``set:=a=1,b=2`` plus individual ``NAME:=VALUE`` arguments
    whose NAME is a graph variable (an individual argument wins over the same name in set:=)."""
    out = parse_set(set_text or "", split_commas=True)
    for name in sorted(known):
        if name in configurations and name not in RESERVED_ARGUMENTS:
            out[name] = scalar(str(configurations[name]))
    return out


def default_profile() -> str:
    """`auto`: pi on a Raspberry Pi (device tree model), else sim."""
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return "pi" if b"Raspberry Pi" in f.read() else "sim"
    except OSError:
        return "sim"
