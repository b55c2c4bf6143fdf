"""`sensorhub status`: what it prints from the graph's diagnostics."""

from __future__ import annotations


def test_status_renders_the_aggregated_tree():
    """`sensorhub status` shows system_monitor's /diagnostics_agg as Foxglove's panel does."""
    from sensorhub_tools.status import render_tree

    tree = [
        ("/PBT", 2, "ERROR: system_monitor: node pbt_driver: process stopped (SIGSTOP)"),
        ("/PBT/pbt_driver: losses", 0, "no loss in the last period"),
        ("/PBT/system_monitor: node pbt_driver", 2, "process stopped (SIGSTOP)"),
        ("/Host", 0, "OK (1 items)"),
    ]
    lines = render_tree(tree, 0.5)
    assert lines[0] == "DIAGNOSTICS TREE (/diagnostics_agg)"
    assert lines[1].split()[:2] == ["ERROR", "/PBT"]
    assert lines[3].split()[:4] == ["ERROR", "system_monitor:", "node", "pbt_driver"]
    assert lines[3].endswith("process stopped (SIGSTOP)")
    assert "10 s old" in render_tree(tree, 10.0)[0]
    assert "system_monitor running?" in render_tree([], None)[0]
