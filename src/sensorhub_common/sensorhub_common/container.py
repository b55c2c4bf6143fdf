"""The stand-in for rclcpp_components: a component container for Python nodes.

Several sensorhub nodes in one process: one interpreter, one DDS participant, one executor.

``python -m sensorhub_common.container --name NAME --member JSON [--member JSON ...]``

Each member is ``{"name": ..., "component": "package.module:Class", "ros_args": [...]}``: the
node class and the ROS arguments its own executable would get (``-r __node:=``, ``-r __ns:=``,
``--params-file``, ``-p``), applied to that node alone. The graph's ``containers`` (a profile
key, bringup/plan.py) build this command, so ``sensorhub up`` and ``ros2 launch`` start the same
process. Small machines save the 30-40 MB that each extra Python process with rclpy costs; the
price is shared fate, so the real-time PBT driver is never a member, and the supervisor
restarts the container as one.

Exit codes as :mod:`sensorhub_common.runner`; 2 also for a member that cannot be loaded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from sensorhub_common import lean_imports
from sensorhub_common.runner import EXIT_CONFIG, spin_nodes


class MemberError(ValueError):
    """A --member that does not name a loadable node class."""


def parse_member(text: str) -> dict:
    try:
        m = json.loads(text)
    except ValueError as e:
        raise MemberError(f"--member is not JSON: {e}") from None
    if not isinstance(m, dict) or not isinstance(m.get("component"), str):
        raise MemberError(f"--member needs a 'component' (module:Class): {text!r}")
    args = m.get("ros_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise MemberError(f"--member {m.get('name', '?')}: 'ros_args' must be a list of strings")
    m.setdefault("name", m["component"])
    m["ros_args"] = args
    return m


def load_class(component: str):
    mod, sep, cls = component.partition(":")
    if not sep or not mod or not cls:
        raise MemberError(f"component {component!r}: expected 'package.module:Class'")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise MemberError(f"component {component!r}: cannot import {mod}: {e}") from None
    try:
        return getattr(module, cls)
    except AttributeError:
        raise MemberError(f"component {component!r}: {mod} has no {cls}") from None


def maker(member: dict):
    cls = load_class(member["component"])
    ros_args = list(member["ros_args"])
    if ros_args and ros_args[0] != "--ros-args":
        ros_args.insert(0, "--ros-args")

    def make():
        # The container's own arguments are not this node's: only its own apply.
        return cls(cli_args=ros_args, use_global_arguments=False)

    return make


def main(argv: list[str] | None = None) -> int:
    lean_imports.install()  # before any node exists: no code generator in this process
    ap = argparse.ArgumentParser(prog="sensorhub_container", description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="container", help="the container's name in the graph")
    ap.add_argument("--member", action="append", default=[], help="JSON, see the module doc")
    a, rest = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        members = [parse_member(t) for t in a.member]
        if not members:
            raise MemberError("no --member given")
        makers = [maker(m) for m in members]
    except MemberError as e:
        print(f"[FATAL] container {a.name}: {e}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    names = ", ".join(m["name"] for m in members)
    print(f"container {a.name}: {names}", file=sys.stderr, flush=True)
    return spin_nodes(makers, args=[sys.argv[0], *rest])


if __name__ == "__main__":
    sys.exit(main())
