"""Watchdog verdicts with an injected clock: crash, SIGSTOP, hang, stalled topic, recovery."""

from __future__ import annotations

import os

import pytest

from sensorhub_common.diagnostics import ERROR, OK, STALE, WARN
from system_monitor.procinfo import parse_expected
from system_monitor.watchdog import (
    ProcState,
    TopicWatch,
    Watchdog,
    WatchSpecError,
    parse_watch,
    parse_watches,
)

DRV = parse_expected("name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver")
SIM = parse_expected("name=pbt_sim;kind=process;exe=pbt_driver/pbt_sim")
WATCH = TopicWatch("/pbt/samples", "pbt_driver", 0.5)


def test_parse_watch():
    assert parse_watch("/pbt/samples=pbt_driver:0.5") == WATCH
    assert parse_watch(" ") is None
    assert parse_watches(["", "/scan=tim:1"]) == [TopicWatch("/scan", "tim", 1)]
    for bad in ("pbt/samples=pbt_driver:0.5", "/x=:1", "/x=node", "/x=n:soon", "/x=n:0"):
        with pytest.raises(WatchSpecError):
            parse_watch(bad)


def healthy(wd: Watchdog, t: float):
    wd.on_diagnostics("pbt_driver", t)
    wd.on_topic("/pbt/samples", t)


RUNNING = {"pbt_driver": ProcState(10, "S"), "pbt_sim": ProcState(11, "R")}


def test_startup_grace_then_missing_is_an_error():
    wd = Watchdog([DRV, SIM], [WATCH], diag_timeout=2.5, grace=10, start=0)
    v = wd.evaluate(1.0, {})
    assert v["pbt_driver"].level == STALE and "not started yet" in v["pbt_driver"].message
    assert wd.topic_levels["/pbt/samples"][0] == OK  # still in grace
    v = wd.evaluate(11.0, {})
    assert v["pbt_sim"].level == ERROR and v["pbt_sim"].message == "process not found"
    assert v["pbt_driver"].level == ERROR
    assert "no diagnostics received" in v["pbt_driver"].message
    assert "/pbt/samples: no message received" in v["pbt_driver"].message


def test_crash_stop_hang_stall_and_recovery():
    wd = Watchdog([DRV, SIM], [WATCH], diag_timeout=2.5, grace=5, start=0)
    for t in range(1, 7):
        healthy(wd, float(t))
    v = wd.evaluate(6.1, RUNNING)
    assert all(x.level == OK for x in v.values()) and v["pbt_sim"].message == "alive"
    assert wd.unhealthy() == {}

    # SIGSTOP the simulator: its process state says so at once; the driver's stream stalls
    v = wd.evaluate(6.2, {**RUNNING, "pbt_sim": ProcState(11, "T")})
    assert v["pbt_sim"].level == ERROR and "stopped (SIGSTOP)" in v["pbt_sim"].message
    wd.on_diagnostics("pbt_driver", 6.5)
    v = wd.evaluate(6.8, {**RUNNING, "pbt_sim": ProcState(11, "T")})
    assert v["pbt_driver"].level == ERROR
    assert v["pbt_driver"].message == "/pbt/samples silent for 0.8 s (deadline 0.5 s)"
    assert wd.topics["/pbt/samples"].silences == 1
    assert set(wd.unhealthy()) == {"pbt_sim", "pbt_driver"}

    # SIGCONT: data again -> OK
    healthy(wd, 7.0)
    v = wd.evaluate(7.1, RUNNING)
    assert all(x.level == OK for x in v.values())

    # hung driver (process alive, diagnostics silent): STALE after diag_timeout
    wd.on_topic("/pbt/samples", 7.2)
    v = wd.evaluate(9.4, RUNNING)
    assert v["pbt_driver"].level == ERROR  # the stream stopped too
    v = wd.evaluate(9.8, RUNNING)
    assert v["pbt_driver"].level == STALE
    assert "diagnostics silent for 2.8 s" in v["pbt_driver"].message

    # killed: the process is gone (seen before, so not "not started")
    v = wd.evaluate(10.0, {"pbt_sim": RUNNING["pbt_sim"]})
    assert "process not running" in v["pbt_driver"].message
    v = wd.evaluate(10.0, {**RUNNING, "pbt_driver": ProcState(10, "Z")})
    assert "zombie" in v["pbt_driver"].message

    # restarted (new pid) and talking again
    healthy(wd, 12.0)
    v = wd.evaluate(12.1, {**RUNNING, "pbt_driver": ProcState(20, "S")})
    assert v["pbt_driver"].level == OK


def test_nodes_without_diagnostics_are_not_expected_to_publish():
    wd = Watchdog([SIM], [], grace=0, start=0)
    assert wd.evaluate(100.0, {"pbt_sim": ProcState(3, "S")})["pbt_sim"].level == OK


def test_unknown_topic_owner_gets_its_own_verdict():
    wd = Watchdog([], [TopicWatch("/scan", "tim240_bridge", 1.0)], grace=0, start=0)
    wd.topics["/scan"].publishers = 0
    v = wd.evaluate(5.0, {})
    assert (v["tim240_bridge"].level, v["tim240_bridge"].message) == (ERROR, "/scan: no publisher")
    wd.on_topic("/scan", 5.5)
    assert wd.evaluate(6.0, {})["tim240_bridge"].level == OK


def test_warn_does_not_count_as_unhealthy():
    wd = Watchdog([DRV], [], grace=0, start=0)
    v = wd.evaluate(1.0, {"pbt_driver": ProcState(1, "S")})
    assert v["pbt_driver"].level == WARN and wd.unhealthy() == {}


def test_a_second_writer_under_a_nodes_name_is_named_and_cannot_hide_a_silent_one():
    wd = Watchdog([DRV], [], diag_timeout=2.5, grace=0, start=0)
    procs = {"pbt_driver": ProcState(10, "S")}
    for t in (1.0, 2.0):
        wd.on_diagnostics("pbt_driver", t, b"real", 10)
    wd.on_diagnostics("pbt_driver", 2.5, b"fake", 77)
    wd.on_diagnostics("pbt_driver", 3.0, b"real", 10)
    v = wd.evaluate(3.1, procs)["pbt_driver"]
    assert v.level == ERROR
    assert v.message == "two processes publish as pbt_driver: pid 10 (expected), pid 77"
    # the real one freezes; the other keeps publishing: STALE, and the other one is named
    for t in (4.0, 5.0, 6.0):
        wd.on_diagnostics("pbt_driver", t, b"fake", 77)
    v = wd.evaluate(6.1, procs)["pbt_driver"]
    assert v.level == STALE and "diagnostics silent for 3.1 s" in v.message
    assert "pid 77 publishes as pbt_driver, not the expected pid 10" in v.message
    assert set(wd.unhealthy()) == {"pbt_driver"}


def test_a_restart_is_not_two_writers():
    wd = Watchdog([DRV], [], diag_timeout=2.5, grace=0, start=0)
    wd.on_diagnostics("pbt_driver", 1.0, b"old", 10)
    wd.on_diagnostics("pbt_driver", 1.0, b"new", 20)  # the same batch: the old one's last
    wd.on_diagnostics("pbt_driver", 2.0, b"new", 20)
    v = wd.evaluate(2.1, {"pbt_driver": ProcState(20, "S")})["pbt_driver"]
    assert v.level == OK, v.message


def test_writers_of_unknown_process_count_as_the_expected_one():
    """Another RMW's gid carries no pid: the node's writer cannot be told from its process."""
    wd = Watchdog([DRV], [], diag_timeout=2.5, grace=0, start=0)
    wd.on_diagnostics("pbt_driver", 1.0, b"x", None)
    assert wd.evaluate(1.5, {"pbt_driver": ProcState(10, "S")})["pbt_driver"].level == OK
    wd.on_diagnostics("pbt_driver", 1.6, b"y", None)
    wd.on_diagnostics("pbt_driver", 1.7, b"x", None)
    v = wd.evaluate(1.8, {"pbt_driver": ProcState(10, "S")})["pbt_driver"]
    assert v.message == "two processes publish as pbt_driver: pid unknown, pid unknown"


def test_gid_pid_is_read_from_a_fast_dds_guid_only():
    from system_monitor.procinfo import ProcFS, gid_pid16, writer_pid

    gid = bytes([0x01, 0x0F, 0xAA, 0xBB, 0x39, 0x30, 1, 2, 0, 0, 0, 0]) + bytes(12)
    assert gid_pid16(gid) == 0x3039
    assert gid_pid16(b"\x01\x10" + gid[2:]) is None and gid_pid16(b"") is None
    assert writer_pid(gid, [0x3039 + 65536], ProcFS())[0] == 0x3039 + 65536  # expected first
    me = os.getpid()
    mine = gid[:4] + bytes([me & 0xFF, (me >> 8) & 0xFF]) + gid[6:]
    pid, _ = writer_pid(mine, [], ProcFS())
    assert pid == me or pid & 0xFFFF == me & 0xFFFF


def test_process_tag_names_host_and_pid():
    from sensorhub_common.diagnostics import parse_process_tag, process_tag

    host, pid = parse_process_tag(process_tag())
    assert pid == os.getpid() and host
    assert parse_process_tag("") is None and parse_process_tag("map") is None
    assert parse_process_tag("pi-a:host:12") == ("pi-a:host", 12)
