"""Fixtures shared by bringup's tests: copies of the installed graph, a fake ament prefix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sensorhub_testing import free_port

PORT_VARIABLES = ("web_port", "lab_port", "tim240_port", "sec110_port")  # every listening port
# Our node packages and their executables, as a fake ament prefix holds them.
OUR_PACKAGES = {
    "pbt_driver": ["pbt_driver", "pbt_sim"],
    "foxglove_gateway": ["foxglove_gateway"],
    "mcap_recorder": ["mcap_recorder"],
    "pbt_scope": ["pbt_scope"],
    "tim240_bridge": ["tim240_bridge", "tim240_sim"],
    "sec110_ftp": ["sec110_ftp", "sec110_sim"],
    "system_monitor": ["system_monitor"],
    "lab_page": ["lab_page", "lab_feed"],
}


@pytest.fixture
def our_packages() -> dict[str, list[str]]:
    """{package: [executables]} of this workspace's nodes and simulators."""
    return {k: list(v) for k, v in OUR_PACKAGES.items()}


@pytest.fixture
def graph_copy(tmp_path):
    """graph_copy(mutate=None, free_ports=True) -> graph.yaml in a private copy of bringup's
    installed config (the same copy again on a second call).

    With ``free_ports`` every listening port gets a free one, so tests never meet 8765 or 2121
    in use; `mutate(data)` edits the parsed graph before it is written.
    """
    from bringup.resolver import Resolver

    config = Path(Resolver().share("bringup") or "", "config")

    def make(mutate=None, free_ports: bool = True) -> Path:
        d = tmp_path / "cfg"
        shutil.copytree(config, d, dirs_exist_ok=True)
        data = yaml.safe_load((d / "graph.yaml").read_text())
        for var in PORT_VARIABLES if free_ports else ():
            data["variables"][var] = free_port()
        if mutate:
            mutate(data)
        (d / "graph.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return d / "graph.yaml"

    return make


@pytest.fixture
def edited_graph(graph_copy):
    """edited_graph(mutate) -> a copy of the installed graph (its own ports) with one change."""
    return lambda mutate: graph_copy(mutate, free_ports=False)


def _fake_resolver_class():
    from bringup.resolver import Resolver

    class FakeResolver(Resolver):
        """An ament prefix in a temp dir holding exactly the packages/executables we say."""

        def __init__(self, root: Path, packages: dict[str, list[str]], path_cmds=()):
            super().__init__()
            self.root = root
            self.cmds = set(path_cmds)
            for pkg, exes in packages.items():
                (root / "share" / pkg / "config").mkdir(parents=True, exist_ok=True)
                (root / "share" / pkg / "launch").mkdir(parents=True, exist_ok=True)
                (root / "share" / pkg / "config" / f"{pkg}.yaml").write_text("/**:\n")
                (root / "lib" / pkg).mkdir(parents=True, exist_ok=True)
                for exe in exes:
                    (root / "share" / pkg / "config" / f"{exe}.yaml").write_text("/**:\n")
                    f = root / "lib" / pkg / exe
                    f.write_text("#!/bin/sh\n")
                    f.chmod(0o755)
            self.packages = set(packages)

        def package_prefix(self, package):
            return str(self.root) if package in self.packages else None

        def which(self, command):
            return f"/usr/bin/{command}" if command in self.cmds else None

    return FakeResolver


@pytest.fixture
def fake_resolver():
    """FakeResolver(root, packages, path_cmds=()): a Resolver seeing only that fake prefix."""
    return _fake_resolver_class()


@pytest.fixture
def ours(tmp_path, fake_resolver, our_packages):
    """A resolver with exactly our packages installed (no distribution packages)."""
    return fake_resolver(tmp_path / "prefix", our_packages)
