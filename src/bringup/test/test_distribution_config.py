"""What the distribution path is given, checked against what its packages read: every key of the
shipped foxglove_bridge files is a parameter foxglove_bridge 3.4.3 reads (with its type), and
every dependency in a package.xml is a workspace package or a verified rosdep key."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from bringup.graph import load_graph
from bringup.plan import Resolver

CONFIG = Path(Resolver().share("bringup") or "", "config")  # the installed one
SRC = Path(__file__).resolve().parents[2]
ROSDEP_KEYS = yaml.safe_load((Path(__file__).parent / "rosdep_keys.yaml").read_text())
BRIDGE = yaml.safe_load((CONFIG / "foxglove_bridge_params.yaml").read_text())
BRIDGE_FILES = sorted(
    p for p in CONFIG.glob("foxglove_bridge*.yaml") if p.name != "foxglove_bridge_params.yaml"
)
DEPEND_TAGS = (
    "depend",
    "build_depend",
    "buildtool_depend",
    "build_export_depend",
    "exec_depend",
    "test_depend",
    "doc_depend",
)
TYPE_CHECKS = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "string_array": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def ros_parameters(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    return data["/**"]["ros__parameters"]


def test_bridge_parameter_list_is_the_jazzy_release():
    assert BRIDGE["package"] == "foxglove_bridge"
    released = ROSDEP_KEYS["jazzy"]["foxglove_bridge"]  # "foxglove-sdk 3.4.3-1"
    assert released.split()[1].startswith(f"{BRIDGE['version']}-"), released
    assert set(BRIDGE["reads"]).isdisjoint(BRIDGE["declared_unread"])
    assert set(BRIDGE["reads"].values()) | set(BRIDGE["declared_unread"].values()) <= set(
        TYPE_CHECKS
    )
    # what the bridge dropped or only declares: a file setting them would do nothing
    assert {"send_buffer_limit", "use_compression"} <= set(BRIDGE["declared_unread"])
    assert "message_backlog_size" in BRIDGE["reads"]


@pytest.mark.parametrize("path", BRIDGE_FILES, ids=lambda p: p.name)
def test_every_shipped_bridge_key_is_read_by_the_bridge(path):
    reads = BRIDGE["reads"]
    for key, value in ros_parameters(path).items():
        assert key not in BRIDGE["declared_unread"], (
            f"{path.name}: {key!r} is declared but never read by foxglove_bridge "
            f"{BRIDGE['version']}"
        )
        assert key in reads, f"{path.name}: foxglove_bridge {BRIDGE['version']} has no {key!r}"
        assert TYPE_CHECKS[reads[key]](value), f"{path.name}: {key} = {value!r} is no {reads[key]}"


def test_bridge_files_cover_both_shipped_profiles():
    assert [p.name for p in BRIDGE_FILES] == ["foxglove_bridge.yaml", "foxglove_bridge_lite.yaml"]
    assert "message_backlog_size" in ros_parameters(CONFIG / "foxglove_bridge.yaml")


def test_graph_sets_only_bridge_parameters_it_reads():
    graph = load_graph(CONFIG / "graph.yaml")
    entry = next(n for n in graph.nodes if n["name"] == "foxglove_bridge")
    assert set(entry.get("parameters", {})) <= set(BRIDGE["reads"])


def package_files() -> list[Path]:
    files = sorted(SRC.glob("*/package.xml"))
    assert len(files) >= 10, f"package.xml files not found under {SRC}"
    return files


def dependencies(path: Path) -> list[tuple[str, str]]:
    root = ET.parse(path).getroot()
    return [(tag, e.text.strip()) for tag in DEPEND_TAGS for e in root.iter(tag)]


def test_every_dependency_is_ours_or_a_verified_rosdep_key():
    ours = {ET.parse(p).getroot().findtext("name") for p in package_files()}
    keys = set(ROSDEP_KEYS["jazzy"]) | set(ROSDEP_KEYS["system"])
    unknown = [
        f"{p.parent.name}/package.xml: <{tag}>{dep}</{tag}>"
        for p in package_files()
        for tag, dep in dependencies(p)
        if dep not in ours and dep not in keys
    ]
    assert not unknown, "not a workspace package nor in rosdep_keys.yaml: " + "; ".join(unknown)


def test_verified_keys_are_still_used():
    used = {dep for p in package_files() for _, dep in dependencies(p)}
    pi_only = {"foxglove_bridge", "sick_scan_xd", "ros2bag", "rosbag2_storage_mcap"}
    stale = (set(ROSDEP_KEYS["jazzy"]) | set(ROSDEP_KEYS["system"])) - used - pi_only
    assert not stale, f"rosdep_keys.yaml lists keys no package.xml uses: {sorted(stale)}"


def test_workflow_builds_jazzy_on_both_architectures():
    wf = SRC.parent / ".github" / "workflows" / "distribution.yml"
    data = yaml.safe_load(wf.read_text())
    job = data["jobs"]["build-and-test"]
    assert {e["arch"] for e in job["strategy"]["matrix"]["include"]} == {"amd64", "arm64"}
    assert job["container"]["image"].startswith("ros:jazzy")
    steps = "\n".join(s.get("run", "") for s in job["steps"])
    for needed in ("rosdep install", "colcon build", "colcon test", "make build"):
        assert needed in steps, needed
    # every Pi distribution package it installs is one the rosdep list verified
    for pkg in re.findall(r"ros-jazzy-([a-z0-9-]+)", steps):
        assert pkg.replace("-", "_") in ROSDEP_KEYS["jazzy"], pkg
