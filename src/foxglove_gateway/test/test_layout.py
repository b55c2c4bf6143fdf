"""The Foxglove/Lichtblick layout shipped in bringup: every message path in it resolves against
the topics the graph's nodes publish (their create_publisher calls, with graph.yaml's namespaces)
and the installed .msg definitions; every panel shows its title in both viewers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

SRC = Path(__file__).resolve().parents[2]
LAYOUT = SRC / "bringup" / "config" / "foxglove_layout.json"
GRAPH = SRC / "bringup" / "config" / "graph.yaml"

NUMERIC = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
           "int32", "uint32", "int64", "uint64"}  # fmt: skip
PRIMITIVE = NUMERIC | {"string", "wstring"}


# -- the graph's topics -----------------------------------------------------------------------
def _module_of(pkg: str, exe: str) -> Path:
    setup = (SRC / pkg / "setup.py").read_text()
    m = re.search(rf'"{re.escape(exe)}\s*=\s*([\w.]+):main"', setup)
    assert m, f"{pkg}/setup.py has no console script {exe}"
    return SRC / pkg / (m.group(1).replace(".", "/") + ".py")


def _msg_imports(text: str) -> dict[str, str]:
    out = {}
    found = re.findall(r"from (\w+)\.msg import \(([^)]*)\)", text)
    found += re.findall(r"from (\w+)\.msg import ([\w, ]+)$", text, re.M)
    for pkg, names in found:
        for n in re.split(r"[,\s]+", names):
            if n:
                out[n] = f"{pkg}/{n}"
    return out


def graph_topics() -> dict[str, str]:
    """{topic: 'pkg/Type'} for every workspace ROS node graph.yaml starts (any profile/role)."""
    graph = yaml.safe_load(GRAPH.read_text())
    out = {}
    for n in graph["nodes"]:
        if n.get("kind", "ros_node") != "ros_node" or n.get("external"):
            continue
        if not (SRC / n["package"]).is_dir():
            continue
        text = _module_of(n["package"], n["executable"]).read_text()
        types = _msg_imports(text)
        ns = n.get("namespace", "").strip("/")
        consts = dict(re.findall(r'^(\w+)\s*=\s*"(/[^"]+)"', text, re.M))
        for typ, topic in re.findall(r'create_publisher\(\s*(\w+)\s*,\s*"?([\w/]+)"?', text):
            if typ not in types:
                continue  # a type chosen at run time (the gateway's client publishing)
            topic = consts.get(topic, topic)
            if not topic.startswith("/"):
                topic = f"/{ns}/{topic}" if ns else f"/{topic}"
            out[topic] = types[typ]
        if "Updater(" in text:
            out["/diagnostics"] = "diagnostic_msgs/DiagnosticArray"
    return out


# -- installed message definitions --------------------------------------------------------------
_defs: dict[str, dict[str, tuple[str, bool]]] = {}


def msg_fields(full: str) -> dict[str, tuple[str, bool]]:
    """{field: (type, is_array)} from the installed pkg/msg/Type.msg."""
    if full not in _defs:
        from ament_index_python.packages import get_package_share_directory

        pkg, name = full.split("/")
        path = Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg"
        fields = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            typ, fname = line.split()[:2]
            if "=" in fname or "=" in typ:
                continue  # a constant
            is_array = "[" in typ
            typ = re.sub(r"\[.*\]$", "", typ)
            typ = re.sub(r"<=\d+$", "", typ)
            if typ not in PRIMITIVE:
                typ = typ if "/" in typ else f"{pkg}/{typ}"
                typ = typ.replace("/msg/", "/")
            fields[fname] = (typ, is_array)
        _defs[full] = fields
    return _defs[full]


def resolve(path: str, topics: dict[str, str]) -> tuple[str, bool]:
    """(type, is_array) a Foxglove message path points at; AssertionError naming what fails."""
    topic = max((t for t in topics if path == t or path.startswith(t + ".")), key=len,
                default=None)  # fmt: skip
    assert topic, f"{path}: no node of the graph publishes its topic"
    typ, is_array = topics[topic], False
    rest = path[len(topic) :]
    for seg in filter(None, rest.split(".")):
        m = re.fullmatch(r"(\w+)((?:\[[^\]]*\]|\{[^}]*\})*)", seg)
        assert m, f"{path}: cannot parse {seg!r}"
        assert not is_array, f"{path}: {seg} of an array needs an index or slice first"
        assert typ not in PRIMITIVE, f"{path}: {typ} has no field {m.group(1)}"
        fields = msg_fields(typ)
        assert m.group(1) in fields, f"{path}: {typ} has no field {m.group(1)!r}"
        typ, is_array = fields[m.group(1)]
        for sub in re.findall(r"\[[^\]]*\]", m.group(2)):
            assert is_array, f"{path}: {m.group(1)} is not an array ({sub})"
            is_array = False  # an index or a slice: its elements
    return typ, is_array


# -- the layout -----------------------------------------------------------------------------
def _leaves(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    return _leaves(node["first"]) + _leaves(node["second"])


@pytest.fixture(scope="module")
def layout() -> dict:
    if not LAYOUT.is_file():
        pytest.skip(f"{LAYOUT} not present")
    return json.loads(LAYOUT.read_text())


@pytest.fixture(scope="module")
def topics() -> dict[str, str]:
    return graph_topics()


def test_the_graph_publishes_what_the_viewers_need(topics):
    for t in (
        "/pbt/scope",
        "/pbt/event_history",
        "/pbt/events",
        "/diagnostics",
        "/tim240/scan_filtered",
        "/tim240/zones",
        "/tim240/markers",
        "/sec110/files",
    ):
        assert t in topics, t  # fmt: skip
    assert topics["/pbt/scope"] == "sensorhub_msgs/PbtScope"


def test_every_panel_is_placed_once(layout):
    leaves = _leaves(layout["layout"])
    assert sorted(leaves) == sorted(layout["configById"])
    for panel_id in leaves:
        assert re.fullmatch(r"[A-Za-z0-9]+![a-z0-9]+", panel_id), panel_id


def test_every_panel_shows_its_title_in_both_viewers(layout):
    """Foxglove reads foxglovePanelTitle, Lichtblick lichtblickPanelTitle: both get the title."""
    for panel_id, cfg in layout["configById"].items():
        title = cfg.get("foxglovePanelTitle")
        assert title, f"{panel_id} has no foxglovePanelTitle"
        assert cfg.get("lichtblickPanelTitle") == title, panel_id
        assert cfg.get("title") == title, panel_id


def test_every_plot_path_is_a_number_of_a_published_message(layout, topics):
    n = 0
    for panel_id, cfg in layout["configById"].items():
        if not panel_id.startswith("Plot!"):
            continue
        paths = [p["value"] for p in cfg["paths"]]
        if cfg.get("xAxisPath"):
            paths.append(cfg["xAxisPath"]["value"])
        for p in paths:
            typ, is_array = resolve(p, topics)
            assert typ in NUMERIC and not is_array, f"{panel_id}: {p} is {typ}, not plottable"
            n += 1
    assert n >= 8


def _flat(typ: str) -> bool:
    """Every field of typ is a single primitive (a table shows it as one legible column)."""
    return all(t in PRIMITIVE and not arr for t, arr in msg_fields(typ).values())


def test_every_panel_path_resolves(layout, topics):
    for panel_id, cfg in layout["configById"].items():
        kind = panel_id.split("!")[0]
        if kind == "Table":
            # the Table panel has no column choice: it shows every field of the rows, nested
            # ones as "Object"; so only rows of flat messages (no header, no arrays)
            typ, is_array = resolve(cfg["topicPath"], topics)
            assert is_array and typ not in PRIMITIVE, f"{panel_id}: rows must be messages"
            assert _flat(typ), f"{panel_id}: {typ} has nested or array fields"
        elif kind == "RawMessages":
            typ, _ = resolve(cfg["topicPath"], topics)
            assert typ not in PRIMITIVE, f"{panel_id}: {cfg['topicPath']}"
        elif kind == "StateTransitions":
            for p in cfg["paths"]:
                typ, is_array = resolve(p["value"], topics)
                assert typ in PRIMITIVE and not is_array, f"{panel_id}: {p['value']} is {typ}"
        elif kind == "DiagnosticSummary":
            assert resolve(cfg["topicToRender"], topics) == (
                "diagnostic_msgs/DiagnosticArray",
                False,
            )
        elif kind == "3D":
            shown = [t for t, c in cfg["topics"].items() if c.get("visible", True)]
            assert shown
            for t in shown:
                resolve(t, topics)


def test_no_panel_names_a_topic_the_graph_lacks(layout, topics):
    text = json.dumps(layout["configById"])
    used = set(re.findall(r'"(/[a-z0-9_/]+?)(?:[.\[{]|")', text))
    assert used <= set(topics), used - set(topics)


def test_scope_is_one_trace_over_time(layout):
    """One x array (t) for every series of the latest PbtScope: Foxglove draws each array as
    one continuous trace with time on the x axis (Plot: x axis 'path (current)')."""
    scope = layout["configById"]["Plot!pbtscope"]
    assert scope["xAxisVal"] == "currentCustom"
    assert scope["xAxisPath"] == {"value": "/pbt/scope.t[:]", "enabled": True}
    values = {p["value"] for p in scope["paths"]}
    assert values == {f"/pbt/scope.{f}[:]" for f in
                      ("value", "envelope", "baseline", "threshold", "events")}  # fmt: skip
    events = next(p for p in scope["paths"] if p["value"].endswith(".events[:]"))
    assert events["showLine"] is False  # marks, not a line


def test_scope_draws_the_envelope_over_the_value(layout):
    """Both viewers' Plot is chart.js, which draws the series from the last to the first: the
    first ones end on top. The envelope (thicker) must not hide under the value trace."""
    paths = [p["value"].split(".")[1].split("[")[0] for p in
             layout["configById"]["Plot!pbtscope"]["paths"]]  # fmt: skip
    assert paths.index("envelope") < paths.index("value")
    size = {p["label"]: p["lineSize"] for p in layout["configById"]["Plot!pbtscope"]["paths"]}
    assert size["envelope"] > size["value"]


def test_no_legend_floats_over_the_data(layout):
    for panel_id, cfg in layout["configById"].items():
        if panel_id.startswith("Plot!") and cfg.get("showLegend", True):
            assert cfg["legendDisplay"] in ("top", "left"), panel_id


def _zone_names() -> list[str]:
    """The zones tim240_bridge starts with in the graph: bringup's, else the package's."""
    for path in (SRC / "bringup" / "config" / "tim240_bridge.yaml",
                 SRC / "tim240_bridge" / "config" / "tim240_bridge.yaml"):  # fmt: skip
        doc = yaml.safe_load(path.read_text())
        zones = next(iter(doc.values()))["ros__parameters"].get("zones")
        if zones:
            return [z.split()[0] for z in zones]
    return []


def test_zone_panel_has_one_row_per_zone_named_as_the_bridge_names_it(layout):
    paths = layout["configById"]["StateTransitions!zones"]["paths"]
    names = _zone_names()
    assert names
    assert [p["value"] for p in paths] == [f"/tim240/zones.occupied[{i}]"
                                           for i in range(len(names))]  # fmt: skip
    assert [p["label"] for p in paths] == names


def test_3d_panel_frames_the_scan_and_waits_for_its_frame(layout):
    """No TF in the graph: the scan's own frame (tim240 frame_id) exists only once the first
    scan arrives, so no display frame is set (the viewer takes the only frame when it comes
    instead of logging "frame not found" until then). The top-down view shows 10 m around the
    scanner, and labels are scaled up to be read at that distance."""
    cfg = layout["configById"]["3D!tim240"]
    assert "followTf" not in cfg
    cam = cfg["cameraState"]
    assert cam["perspective"] is False
    visible = 2 * cam["distance"] * math.tan(math.radians(cam["fovy"]) / 2)  # ortho view height
    assert visible >= 19.0, visible  # -10..10 m
    assert cfg["scene"]["labelScaleFactor"] >= 2
    assert cfg["layers"]["grid"]["size"] >= 20
