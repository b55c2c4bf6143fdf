"""The Foxglove layout shipped in bringup: well formed, and it only shows topics the graph has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

LAYOUT = Path(__file__).resolve().parents[2] / "bringup" / "config" / "foxglove_layout.json"
GRAPH_TOPICS = {
    "/pbt/samples",
    "/pbt/events",
    "/diagnostics",
    "/diagnostics_agg",
    "/scan",
    "/tim240/scan_filtered",
    "/tim240/zones",
    "/tim240/markers",
    "/sec110/files",
}


def _leaves(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    return _leaves(node["first"]) + _leaves(node["second"])


@pytest.fixture(scope="module")
def layout() -> dict:
    if not LAYOUT.is_file():
        pytest.skip(f"{LAYOUT} not present")
    return json.loads(LAYOUT.read_text())


def test_every_panel_is_placed_once(layout):
    leaves = _leaves(layout["layout"])
    assert sorted(leaves) == sorted(layout["configById"])
    for panel_id in leaves:
        assert re.fullmatch(r"[A-Za-z0-9]+![a-z0-9]+", panel_id), panel_id


def test_panels_use_graph_topics(layout):
    text = json.dumps(layout["configById"])
    used = set(re.findall(r'"(/[a-z0-9_/]+?)(?:[.\[]|")', text))
    assert used <= GRAPH_TOPICS, used - GRAPH_TOPICS
    kinds = {k.split("!")[0] for k in layout["configById"]}
    assert {"Plot", "3D", "DiagnosticSummary", "Table"} <= kinds
    scope = next(c for k, c in layout["configById"].items() if k.startswith("Plot!pbtscope"))
    assert scope["xAxisVal"] == "index"  # the latest batch, not a time series
    assert {p["value"] for p in scope["paths"]} == {
        "/pbt/samples.values[:]",
        "/pbt/samples.envelope[:]",
    }


def test_every_panel_shows_its_title(layout):
    """Foxglove reads foxglovePanelTitle, Lichtblick lichtblickPanelTitle: both get the title."""
    for panel_id, cfg in layout["configById"].items():
        title = cfg.get("foxglovePanelTitle")
        assert title, f"{panel_id} has no foxglovePanelTitle"
        assert cfg.get("lichtblickPanelTitle") == title, panel_id
