"""Where the graph file and the data root are when the caller names neither: shared by
``ros2 launch bringup all.launch.py`` and the ``sensorhub`` command."""

from __future__ import annotations

import os
from pathlib import Path

from bringup.graph import GraphError
from bringup.resolver import Resolver

GRAPH_ENV = "SENSORHUB_GRAPH"


def default_graph() -> Path:
    """$SENSORHUB_GRAPH, else the installed share/bringup/config/graph.yaml."""
    if os.environ.get(GRAPH_ENV):
        return Path(os.environ[GRAPH_ENV])
    share = Resolver().share("bringup")
    if share is None:
        raise GraphError("graph.yaml", "package bringup is not installed (source env.sh)")
    return Path(share, "config", "graph.yaml")


def resolve_data_root(value: str | None) -> str:
    """The data root (with its run/ directory made) from an option, the environment or ./data."""
    from sensorhub_common.paths import data_root

    root = data_root(value or "")
    (root / "run").mkdir(parents=True, exist_ok=True)
    return str(root)
