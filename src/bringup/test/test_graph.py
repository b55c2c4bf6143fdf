"""Graph loading and validation without ROS: every error names the file, the node and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bringup.graph import GraphError, load_graph
from bringup.resolver import Resolver

GRAPH = Path(Resolver().share("bringup") or "", "config", "graph.yaml")  # the installed one
CONFIG = GRAPH.parent


def node(data, name):
    return next(n for n in data["nodes"] if n["name"] == name)


def test_installed_graph_is_valid():
    g = load_graph(GRAPH)
    assert [n["name"] for n in g.nodes][:2] == ["pbt_sim", "pbt_driver"]
    assert g.profile_chain("lite") == ["pi", "lite"]


@pytest.mark.parametrize(
    ("mutate", "node_name", "key", "text"),
    [
        (
            lambda d: node(d, "pbt_driver").update(colour="red"),
            "pbt_driver",
            "colour",
            "unknown key",
        ),
        (
            lambda d: node(d, "pbt_driver")["scheduling"].update(cpus="2-1"),
            "pbt_driver",
            "scheduling.cpus",
            "descending",
        ),
        (
            lambda d: node(d, "pbt_driver")["profiles"]["sim"]["scheduling"].update(cpus="one"),
            "pbt_driver",
            "profiles.sim.scheduling.cpus",
            "not N or N-M",
        ),
        (
            lambda d: node(d, "foxglove_gateway").update(roles=["web", "gui"]),
            "foxglove_gateway",
            "roles",
            "unknown role 'gui'",
        ),
        (
            lambda d: node(d, "pbt_sim")["scheduling"].update(io_class="fast"),
            "pbt_sim",
            "scheduling.io_class",
            "unknown I/O class",
        ),
        (
            lambda d: node(d, "pbt_driver")["profiles"].update(mars={}),
            "pbt_driver",
            "profiles",
            "unknown profile 'mars'",
        ),
        (
            lambda d: node(d, "pbt_driver")["respawn"].update(retries=3),
            "pbt_driver",
            "respawn.retries",
            "unknown key",
        ),
        (
            lambda d: node(d, "pbt_driver").update(params=["nope.yaml"]),
            "pbt_driver",
            "params",
            "does not exist",
        ),
        (lambda d: d.update(nodez=[]), None, "nodez", "unknown key"),
    ],
)
def test_validation_errors_name_file_node_and_key(
    tmp_path, mutate, node_name, key, text, edited_graph
):
    path = edited_graph(mutate)
    with pytest.raises(GraphError) as ei:
        load_graph(path)
    e = ei.value
    assert (e.node, e.key) == (node_name, key)
    assert text in str(e)
    assert str(path) in str(e)
    if node_name:
        assert f"node {node_name!r}" in str(e)
    assert f"key {key!r}" in str(e)


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_container_default_must_be_true_or_false(tmp_path, value, edited_graph):
    path = edited_graph(lambda d: d["containers"]["web_view"].update(default=value))
    with pytest.raises(GraphError) as ei:
        load_graph(path)
    assert ei.value.key == "containers.web_view.default"
    assert str(path) in str(ei.value)
    assert f"must be true or false, not {value!r}" in str(ei.value)


@pytest.mark.parametrize(
    "containers, match",
    [
        ({"c": {"members": ["pbt_driver"]}}, "no 'component'"),
        ({"c": {"members": ["nope"]}}, "unknown node 'nope'"),
        ({"c": {"members": []}}, "needs 'members"),
        ({"pbt_sim": {"members": ["sec110_ftp"]}}, "has the name of a node"),
        (
            {"a": {"members": ["sec110_ftp"]}, "b": {"members": ["sec110_ftp"]}},
            "already in container 'a'",
        ),
    ],
)
def test_bad_containers_are_refused(tmp_path, containers, match, edited_graph):
    path = edited_graph(lambda d: d.update(containers=containers))
    with pytest.raises(GraphError, match=match):
        load_graph(path)


def test_a_real_time_node_is_never_a_member(tmp_path, edited_graph):
    def mutate(d):
        drv = next(n for n in d["nodes"] if n["name"] == "pbt_driver")
        drv["component"] = "pbt_driver.node:PbtDriverNode"
        d["containers"] = {"c": {"members": ["pbt_driver"]}}

    with pytest.raises(GraphError, match="real-time thread"):
        load_graph(edited_graph(mutate))


@pytest.mark.parametrize(
    ("respawn", "key", "text"),
    [
        ({"delay": 0}, "respawn.delay", "at least 0.1 s"),
        ({"max_delay": 0}, "respawn.max_delay", "at least 0.1 s"),
        ({"max_restarts": 100000}, "respawn.max_restarts", "0..100"),
        ({"window": 0.5}, "respawn.window", "1..86400"),
        ({"stable_after": 0}, "respawn.stable_after", "at least 1 s"),
        ({"factor": 0.5}, "respawn.factor", "1..10"),
    ],
)
def test_respawn_floors(tmp_path, respawn, key, text, edited_graph):
    path = edited_graph(lambda d: node(d, "pbt_driver")["respawn"].update(respawn))
    with pytest.raises(GraphError) as ei:
        load_graph(path)
    assert (ei.value.node, ei.value.key) == ("pbt_driver", key)
    assert text in str(ei.value) and str(path) in str(ei.value)


def test_non_utf8_graph_names_the_file(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_bytes(GRAPH.read_bytes().replace(b"sensorhub -", b"sensorhub \xe9", 1))
    with pytest.raises(GraphError) as ei:
        load_graph(path)
    assert str(ei.value).startswith(f"{path}: not UTF-8 text (byte 0xe9")
