"""Fixtures shared by bringup's graph tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sensorhub_testing import free_port

PORT_VARIABLES = ("web_port", "tim240_port", "sec110_port")  # every port the sim graph listens on


@pytest.fixture
def graph_copy(tmp_path):
    """graph_copy(mutate=None) -> graph.yaml in a private copy of bringup's installed config.

    Every listening port gets a free one, so tests never meet 8765 or 2121 in use;
    `mutate(data)` edits the parsed graph before it is written.
    """
    from bringup.plan import Resolver

    config = Path(Resolver().share("bringup") or "", "config")

    def make(mutate=None) -> Path:
        d = tmp_path / "cfg"
        shutil.copytree(config, d)
        data = yaml.safe_load((d / "graph.yaml").read_text())
        for var in PORT_VARIABLES:
            data["variables"][var] = free_port()
        if mutate:
            mutate(data)
        (d / "graph.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return d / "graph.yaml"

    return make
