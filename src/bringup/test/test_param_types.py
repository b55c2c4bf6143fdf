"""Inline parameter overrides are checked against the types in the node's parameter files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bringup.graph import GraphError, load_graph
from bringup.plan import Resolver, build_plan

GRAPH = Path(Resolver().share("bringup") or "", "config", "graph.yaml")  # the installed one
CONFIG = GRAPH.parent


def node(data, name):
    return next(n for n in data["nodes"] if n["name"] == name)


PBT_DEFAULTS = """/**:
  ros__parameters:
    port: /dev/ttyUSB0
    batch_size: 40
    threshold: 20.0
    rt_priority: 80
    rt_cpus: ""
    diagnostic_updater:
      period: 1.0
"""


@pytest.fixture
def typed(tmp_path, ours):
    """The fake pbt_driver package with typed defaults, as the real package ships them."""
    (ours.root / "share/pbt_driver/config/pbt_driver.yaml").write_text(PBT_DEFAULTS)
    return ours


@pytest.mark.parametrize(
    ("mutate", "key", "text"),
    [
        (
            lambda d: node(d, "pbt_driver")["parameters"].update(batch_size="forty"),
            "parameters.batch_size",
            "'forty' is a string, but 'batch_size' is a int",
        ),
        (
            lambda d: node(d, "pbt_driver")["parameters"].update(batch_size=40.5),
            "parameters.batch_size",
            "is a float, but 'batch_size' is a int",
        ),
        (
            lambda d: node(d, "pbt_driver")["parameters"].update(port=3),
            "parameters.port",
            "is a int, but 'port' is a string",
        ),
        (
            lambda d: node(d, "pbt_driver")["parameters"].update(
                {"diagnostic_updater.period": "x"}
            ),
            "parameters.diagnostic_updater.period",
            "is a float",
        ),
        (
            lambda d: node(d, "pbt_driver")["profiles"]["sim"].update(
                parameters={"threshold": "hi"}
            ),
            "parameters.threshold",
            "'threshold' is a float",
        ),
        (  # a variable keeps its type: port: ${pbt_port} becomes an integer
            lambda d: d["profiles"]["sim"]["variables"].update(pbt_port=7),
            "parameters.port",
            "7 is a int, but 'port' is a string",
        ),
    ],
)
def test_inline_parameter_of_the_wrong_type_is_refused(
    tmp_path, typed, mutate, key, text, edited_graph
):
    path = edited_graph(mutate)
    with pytest.raises(GraphError) as ei:
        build_plan(load_graph(path), "sim", "all", {}, tmp_path / "data", typed)
    e = ei.value
    assert (e.node, e.key) == ("pbt_driver", key)
    assert text in str(e), str(e)
    assert str(path) in str(e)  # the graph file ...
    assert "share/pbt_driver/config/pbt_driver.yaml" in str(e)  # ... and where the type is from


def test_inline_parameters_of_compatible_types_pass(tmp_path, typed, edited_graph):
    def ok(d):
        node(d, "pbt_driver")["parameters"].update(threshold=30, batch_size=20)  # int for float

    plan = build_plan(load_graph(edited_graph(ok)), "sim", "all", {}, tmp_path, typed)
    p = plan.get("pbt_driver").parameters
    assert (p["threshold"], p["batch_size"], p["rt_cpus"]) == (30, 20, "1")


def test_declared_types_follow_rcl_node_matching(tmp_path):
    from bringup.plan import declared_types, type_compatible

    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters: {a: 1, l: [1.0, 2.0], e: []}\n"
        "/pbt/pbt_driver:\n  ros__parameters: {b: x, a: y}\n"
        "other:\n  ros__parameters: {c: 1.0}\n"
    )
    t = declared_types([f], "pbt_driver", "/pbt/pbt_driver")
    assert {k: v[0] for k, v in t.items()} == {
        "a": "int",
        "l": "float[]",
        "e": "list",
        "b": "string",
    }
    assert type_compatible("float[]", [1, 2]) and type_compatible("string[]", [])
    assert not type_compatible("int[]", ["a"]) and not type_compatible("bool", 1)
