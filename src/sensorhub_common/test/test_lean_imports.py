"""A node process never loads the message code generator, and messages still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json, sys
from sensorhub_common import lean_imports
lean_imports.install()  # what every node's entry point does before it creates a node
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

rclpy.init()
node = rclpy.create_node("lean_imports_probe")
pub = node.create_publisher(String, "lean_imports_probe", 10)
got = []
node.create_subscription(String, "lean_imports_probe", lambda m: got.append(m.data), 10)
ex = SingleThreadedExecutor()
ex.add_node(node)
import time
deadline = time.monotonic() + 60
while not got and time.monotonic() < deadline:
    pub.publish(String(data="hello"))
    ex.spin_once(timeout_sec=0.2)
import rosidl_generator_py
print(json.dumps({
    "got": got[:1],
    "generator": "rosidl_generator_py.generate_py_impl" in sys.modules,
    "lark": "lark" in sys.modules,
    "em": "em" in sys.modules,
    "import_type_support": hasattr(rosidl_generator_py, "import_type_support"),
}))
node.destroy_node()
rclpy.shutdown()
"""


def run_probe(**env) -> dict:
    e = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", **env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=e, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_node_process_does_not_load_the_generator():
    r = run_probe()
    assert r["got"] == ["hello"]
    assert r["import_type_support"]
    assert not r["generator"] and not r["lark"] and not r["em"]


def test_opt_out_loads_it():
    r = run_probe(SENSORHUB_FULL_IMPORTS="1")
    assert r["got"] == ["hello"]
    assert r["generator"]


def test_blocked_import_names_the_reason():
    from sensorhub_common import lean_imports

    assert lean_imports.install() in (True, False)
    if "rosidl_generator_py.generate_py_impl" in sys.modules:
        return  # loaded before the finder (another test imported it): nothing to refuse
    try:
        import rosidl_generator_py.generate_py_impl  # noqa: F401
    except ImportError as e:
        assert "build-time" in str(e)
    else:
        raise AssertionError("the generator was imported")


def _first_call(tree, name: str) -> str:
    """The callee of the first statement (after the docstring) of the module-level `name`."""
    import ast

    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
    first = body[0]
    call = first.value if isinstance(first, ast.Expr) else None
    return ast.unparse(call.func) if isinstance(call, ast.Call) else ""


def test_run_node_installs_it_first():
    import ast
    from pathlib import Path

    runner = Path(__file__).resolve().parents[1] / "sensorhub_common" / "runner.py"
    assert _first_call(ast.parse(runner.read_text()), "run_node") == "lean_imports.install"


def test_every_node_entry_point_installs_it_first():
    """Each console script that makes a node calls install() (itself or through run_node, which
    calls it first) as the first statement of main()."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[2]
    mains = [
        "foxglove_gateway/foxglove_gateway/gateway_node.py",
        "mcap_recorder/mcap_recorder/node.py",
        "pbt_driver/pbt_driver/node.py",
        "pbt_scope/pbt_scope/node.py",
        "sec110_ftp/sec110_ftp/node.py",
        "system_monitor/system_monitor/node.py",
        "tim240_bridge/tim240_bridge/node.py",
        "sensorhub_common/sensorhub_common/container.py",
    ]
    for rel in mains:
        first = _first_call(ast.parse((src / rel).read_text()), "main")
        assert first in ("lean_imports.install", "run_node"), (
            f"{rel}: main() must start with lean_imports.install() or run_node()"
        )


def test_importing_the_package_installs_nothing():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, sensorhub_common; "
         "print(any(type(f).__name__ == '_BuildOnlyFinder' for f in sys.meta_path))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
