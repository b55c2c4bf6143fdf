"""The Pi's plan when the distribution's packages are installed: a temporary ament prefix (index
markers, fake executables) on AMENT_PREFIX_PATH and PATH, found by the real Resolver and by
`sensorhub plan` run as a process. The recorder slot takes our recorder; `recorder: rosbag2`
runs `ros2 bag record` with the same topics, split, compression and transient-local depths."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bringup.graph import load_graph
from bringup.plan import Resolver, build_plan
from sensorhub_common.discovery import follow_filter

GRAPH = Path(Resolver().share("bringup") or "", "config", "graph.yaml")  # the installed one
CONFIG = GRAPH.parent.resolve()
TOPICS_MD = Path(__file__).resolve().parents[3] / "docs" / "topics.md"
DISTRIBUTION = ("foxglove_bridge", "sick_scan_xd", "ros2bag", "rosbag2_storage_mcap")
EXCLUDED = "/parameter_events|/rosout|/pbt/scope|/pbt/scope_preview|/lab/.*"
SENSORHUB = shutil.which("sensorhub")


def _executable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture
def distribution(tmp_path, monkeypatch) -> Path:
    """An install prefix like /opt/ros/jazzy holding the Pi's distribution packages, first on
    AMENT_PREFIX_PATH and PATH (our own packages stay installed behind it)."""
    root = tmp_path / "opt_ros_jazzy"
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for pkg in DISTRIBUTION:
        (index / pkg).write_text("")
        (root / "share" / pkg).mkdir(parents=True)
    _executable(root / "lib" / "foxglove_bridge" / "foxglove_bridge")
    _executable(root / "bin" / "ros2")
    monkeypatch.setenv(
        "AMENT_PREFIX_PATH", os.pathsep.join([str(root), os.environ.get("AMENT_PREFIX_PATH", "")])
    )
    monkeypatch.setenv("PATH", os.pathsep.join([str(root / "bin"), os.environ["PATH"]]))
    return root


def _pi_plan(data: Path, **options):
    return build_plan(
        load_graph(GRAPH), "pi", "all", {"record": True, **options}, data, Resolver()
    )


def rosbag2_argv(ros2: str) -> list[str]:
    return [
        ros2,
        "bag",
        "record",
        "--storage",
        "mcap",
        "--all-topics",
        "--exclude-regex",
        f"^({EXCLUDED})$",
        "--max-bag-duration",
        "3600",
        "--max-bag-size",
        str(1024 * 1024 * 1024),
        "--storage-preset-profile",
        "zstd_fast",
        "--qos-profile-overrides-path",
        str(CONFIG / "rosbag2_qos_overrides.yaml"),
        "--disable-keyboard-controls",
    ]


def test_default_pi_recording_runs_our_recorder_beside_the_distribution(distribution, tmp_path):
    data = tmp_path / "data"
    plan = _pi_plan(data)
    assert plan.names() == [
        "pbt_driver",
        "sick_tim240",
        "sec110_ftp",
        "mcap_recorder",
        "web_view",
        "foxglove_bridge",
        "lab_page",
        "system_monitor",
    ]
    # the fake prefix is what the real resolver found for the distribution's entries
    assert plan.get("foxglove_bridge").argv[0] == str(
        distribution / "lib" / "foxglove_bridge" / "foxglove_bridge"
    )
    assert plan.get("sick_tim240").argv[:2] == [str(distribution / "bin" / "ros2"), "launch"]
    assert "recorder=auto: using mcap_recorder" in plan.notes
    rec = Resolver()
    assert plan.get("mcap_recorder").argv == [
        str(rec.executable("mcap_recorder", "mcap_recorder")),
        "--ros-args",
        "-r",
        "__node:=mcap_recorder",
        "--params-file",
        os.path.join(str(rec.share("mcap_recorder")), "config", "mcap_recorder.yaml"),
        "-p",
        f"data_root:={data.resolve()}",
        "-p",
        f"topics_deny:=[{EXCLUDED}]",
    ]


def test_rosbag2_variant_gets_the_recorder_settings(distribution, tmp_path):
    plan = _pi_plan(tmp_path / "data", recorder="rosbag2")
    assert "mcap_recorder" not in plan.names()
    rec = plan.get("rosbag2_recorder")
    assert rec.argv == rosbag2_argv(str(distribution / "bin" / "ros2"))
    assert rec.cwd == str((tmp_path / "data" / "bags").resolve())
    assert rec.prefix[rec.prefix.index("--io-class") + 1] == "best-effort"


@pytest.mark.skipif(SENSORHUB is None, reason="sensorhub CLI not installed (run under env.sh)")
def test_sensorhub_plan_prints_the_rosbag2_command(distribution, tmp_path):
    argv = [SENSORHUB, "plan", "--profile", "pi", "--record", "--recorder", "rosbag2"]
    argv += ["--data-root", str(tmp_path / "data")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    assert shlex.join(rosbag2_argv(str(distribution / "bin" / "ros2"))) in out
    default = subprocess.run(
        argv[:5] + argv[7:], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "note: recorder=auto: using mcap_recorder" in default
    assert "ros2 bag record" not in default


def published_topics() -> dict[str, str]:
    """docs/topics.md (generated from the code): topic -> its QoS text."""
    rows = re.findall(
        r"^\| `(/[^`]+)` \| [^|]+ \| [^|]+ \| ([^|]+) \|", TOPICS_MD.read_text(), re.M
    )
    assert rows, f"no topic rows in {TOPICS_MD}"
    return dict(rows)


def _mcap_recorder_filter(plan):
    defaults = yaml.safe_load(Path(plan.get("mcap_recorder").params_files[0]).read_text())
    values = {**defaults["/**"]["ros__parameters"], **plan.get("mcap_recorder").parameters}
    return follow_filter(values)


def _rosbag2_exclude(plan) -> str:
    argv = plan.get("rosbag2_recorder").argv
    return argv[argv.index("--exclude-regex") + 1]


def test_both_recorders_record_the_same_topics(distribution, tmp_path):
    ours = _mcap_recorder_filter(_pi_plan(tmp_path / "a"))
    exclude = _rosbag2_exclude(_pi_plan(tmp_path / "b", recorder="rosbag2"))
    topics = [*published_topics(), "/rosout", "/parameter_events", "/tf", "/tf_static",
              "/lab/tim240/zones", "/lab/diagnostics_agg"]  # fmt: skip
    for topic in topics:
        # rosbag2 has matched with std::regex_match and with regex_search: anchored, both agree
        by_rosbag2 = not re.fullmatch(exclude, topic) and not re.search(exclude, topic)
        assert ours(topic) == by_rosbag2, topic
    recorded = {t for t in topics if ours(t)}
    assert recorded.isdisjoint({"/rosout", "/parameter_events", "/pbt/scope", "/lab/tim240/zones"})
    assert set(published_topics()) - recorded == {"/pbt/scope", "/pbt/scope_preview"}


def test_qos_overrides_give_each_recorded_transient_local_topic_its_depth(distribution, tmp_path):
    plan = _pi_plan(tmp_path / "data", recorder="rosbag2")
    argv = plan.get("rosbag2_recorder").argv
    overrides = yaml.safe_load(
        Path(argv[argv.index("--qos-profile-overrides-path") + 1]).read_text()
    )
    ours = _mcap_recorder_filter(_pi_plan(tmp_path / "a"))
    expected = {
        topic: int(re.search(r"keep last (\d+)", q).group(1))
        for topic, q in published_topics().items()
        if "transient local" in q and ours(topic)
    }
    assert set(overrides) == set(expected)
    for topic, depth in expected.items():
        assert overrides[topic] == {
            "history": "keep_last",
            "depth": depth,
            "reliability": "reliable",
            "durability": "transient_local",
        }, topic


def test_prefer_names_only_variants_of_its_slot(edited_graph):
    from bringup.graph import GraphError

    path = edited_graph(lambda d: d["slots"]["recorder"].update(prefer=["mcap_recorder", "bag"]))
    with pytest.raises(GraphError) as ei:
        load_graph(path)
    assert ei.value.key == "slots.recorder.prefer"
    assert "'bag' is not a variant of slot 'recorder'" in str(ei.value)
    assert "rosbag2" in str(ei.value)  # the variants it could have named


def test_rosbag2_splits_and_compresses_like_mcap_recorder(distribution, tmp_path):
    ours = _pi_plan(tmp_path / "a").get("mcap_recorder")
    settings = {
        **yaml.safe_load(Path(ours.params_files[0]).read_text())["/**"]["ros__parameters"],
        **ours.parameters,
    }
    argv = _pi_plan(tmp_path / "b", recorder="rosbag2").get("rosbag2_recorder").argv

    def option(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert int(option("--max-bag-duration")) == settings["split_duration"]
    assert int(option("--max-bag-size")) == settings["split_size_mib"] * 1024 * 1024
    assert settings["compression"] == "zstd" and option("--storage-preset-profile") == "zstd_fast"
    assert option("--storage") == "mcap"


def test_auto_falls_back_to_rosbag2_without_our_recorder(tmp_path, our_packages, fake_resolver):
    del our_packages["mcap_recorder"]
    dist = {"ros2bag": [], "rosbag2_storage_mcap": []}
    res = fake_resolver(tmp_path / "p", {**our_packages, **dist}, path_cmds={"ros2"})
    plan = build_plan(load_graph(GRAPH), "pi", "all", {"record": True}, tmp_path / "d", res)
    assert "rosbag2_recorder" in plan.names() and "mcap_recorder" not in plan.names()
    assert plan.notes.index("recorder=auto: using rosbag2") > plan.notes.index(
        "recorder=auto: skipped mcap_recorder (package 'mcap_recorder' is not installed "
        "(not found on AMENT_PREFIX_PATH))"
    )
