"""/diagnostics_agg grouping from fixtures: paths, worst level, staleness, expected items."""

from __future__ import annotations

import pytest

from sensorhub_common.diagnostics import ERROR, OK, STALE, WARN
from system_monitor.aggregate import DEFAULT_GROUPS, Aggregator, GroupSpecError, parse_groups

GROUPS = parse_groups(DEFAULT_GROUPS)


def tree(agg, now) -> dict:
    return {s.name: (s.level, s.message) for s in agg.tree(now)}


def feed(agg, name, level=OK, msg="fine", hw="hw", t=0.0):
    agg.update(name, level, msg, hw, [("k", "v")], t)


def test_parse_groups():
    assert [g.name for g in GROUPS] == ["PBT", "TiM240", "SEC110", "Web", "Recorder", "Host"]
    for bad in (["PBT"], ["=pbt_*"], ["A/B=x"], ["PBT=pbt_*", "PBT=x"]):
        with pytest.raises(GroupSpecError):
            parse_groups(bad)
    assert parse_groups(["", "X=a"])[0].patterns == ("a",)


def test_groups_paths_and_worst_level():
    agg = Aggregator(GROUPS, topic_owner={"/pbt/samples": "pbt_driver"})
    feed(agg, "pbt_driver: losses", WARN, "3 samples lost")
    feed(agg, "pbt_driver: serial port")
    feed(agg, "system_monitor: node pbt_sim")
    feed(agg, "system_monitor: topic /pbt/samples")
    feed(agg, "system_monitor: cpu")
    feed(agg, "foxglove_gateway: clients")
    feed(agg, "mcap_recorder: bags", ERROR, "disk full")
    feed(agg, "sec110_ftp: uploads")
    feed(agg, "tim240_bridge: scan")
    feed(agg, "somebody_else: thing")
    t = tree(agg, 1.0)
    assert t["/PBT"] == (WARN, "WARN: pbt_driver: losses: 3 samples lost")
    assert t["/PBT/pbt_driver: losses"] == (WARN, "3 samples lost")
    assert "/PBT/system_monitor: node pbt_sim" in t
    assert "/PBT/system_monitor: topic /pbt/samples" in t  # blamed on its owner's group
    assert t["/Host"] == (OK, "OK (1 items)") and "/Host/system_monitor: cpu" in t
    assert t["/Web"][0] == OK and t["/TiM240"][0] == OK and t["/SEC110"][0] == OK
    assert t["/Recorder"] == (ERROR, "ERROR: mcap_recorder: bags: disk full")
    assert t["/Other/somebody_else: thing"] == (OK, "fine")
    names = [s.name for s in agg.tree(1.0)]
    # each group's header comes right before its items, groups in configured order
    assert names.index("/PBT") < names.index("/PBT/pbt_driver: losses") < names.index("/TiM240")
    assert names[-2:] == ["/Other", "/Other/somebody_else: thing"]


def test_stale_items_and_missing_expected_nodes():
    agg = Aggregator(GROUPS, expected=["pbt_driver", "sec110_ftp"], stale_timeout=5)
    feed(agg, "pbt_driver: losses", t=0.0)
    feed(agg, "pbt_driver: serial port", t=0.0)
    t = tree(agg, 1.0)
    assert t["/PBT"][0] == OK
    assert t["/SEC110"][0] == STALE  # expected, never heard of
    assert t["/SEC110/sec110_ftp"] == (STALE, "expected, no diagnostics received")
    t = tree(agg, 7.0)  # the driver went silent: every item stale, so the group is
    assert t["/PBT/pbt_driver: losses"][0] == STALE
    assert t["/PBT"][0] == STALE and "(+1 more)" in t["/PBT"][1]
    t = tree(agg, 100.0)  # forgotten after a minute: one missing item remains
    assert t["/PBT/pbt_driver"] == (STALE, "expected, no diagnostics received")
    assert "/PBT/pbt_driver: losses" not in t


def test_a_task_that_stopped_while_its_node_talks_is_dropped():
    """The updater's start-up broadcast ("node: Node starting up") must not stay stale."""
    agg = Aggregator(GROUPS, stale_timeout=5)
    feed(agg, "pbt_driver: node", msg="Node starting up", t=0.0)
    for t in range(1, 10):
        feed(agg, "pbt_driver: losses", t=float(t))
    t = tree(agg, 9.5)
    assert "/PBT/pbt_driver: node" not in t and t["/PBT"][0] == OK


def test_same_name_from_two_hosts_is_kept_apart():
    agg = Aggregator(GROUPS)
    feed(agg, "system_monitor: cpu", hw="host pi-sensors")
    feed(agg, "system_monitor: cpu", WARN, "CPU 75% high", hw="host pi-web")
    t = tree(agg, 1.0)
    assert t["/Host/system_monitor: cpu [host pi-web]"] == (WARN, "CPU 75% high")
    assert t["/Host/system_monitor: cpu [host pi-sensors]"][0] == OK
    assert t["/Host"][0] == WARN


def test_empty_groups_are_not_published():
    agg = Aggregator(GROUPS)
    assert agg.tree(0.0) == []
