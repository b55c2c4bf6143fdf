"""Process matching and /proc parsing from fixtures (no ROS, no live processes needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system_monitor.procinfo import (
    ExpectedError,
    Finder,
    ProcFS,
    matches,
    parse_cmdline,
    parse_environ,
    parse_expected,
    parse_expected_list,
    parse_stat,
    parse_status,
    top_thread,
)

PY = "/work/.venv/bin/python3"
LIB = "/ws/install/pbt_driver/lib/pbt_driver"


STAT_FIELDS = {"state": "S", "utime": 150, "stime": 50, "nice": 0, "threads": 12, "start": 1000,
               "cpu": 1, "rt": 0, "policy": 0}  # fmt: skip


def stat_line(pid=42, comm="python3", **fields) -> str:
    unknown = set(fields) - set(STAT_FIELDS)
    assert not unknown, unknown
    v = {**STAT_FIELDS, **fields}
    f = ["0"] * 50  # proc(5): field N is f[N - 3]
    f[0], f[1], f[5] = v["state"], "1", "-1"
    f[11], f[12], f[15], f[16], f[17], f[19] = map(
        str, (v["utime"], v["stime"], 20, v["nice"], v["threads"], v["start"])
    )
    f[35], f[36], f[37], f[38] = "17", str(v["cpu"]), str(v["rt"]), str(v["policy"])
    return f"{pid} ({comm}) " + " ".join(f)


STATUS = """Name:\tpython3
State:\tS (sleeping)
Threads:\t12
VmRSS:\t   83800 kB
Cpus_allowed_list:\t0-1
voluntary_ctxt_switches:\t37
nonvoluntary_ctxt_switches:\t600
"""


def test_parse_stat_fields_and_odd_comm():
    s = parse_stat(stat_line(comm="a) b (c", state="T", nice=-10, rt=80, policy=1))
    assert s.comm == "a) b (c"
    assert (s.state, s.state_name, s.nice, s.rt_priority, s.policy_name) == (
        "T", "stopped", -10, 80, "SCHED_FIFO",
    )  # fmt: skip
    assert s.num_threads == 12 and s.starttime == 1000 and s.processor == 1
    assert s.cpu_s == pytest.approx(200 / 100, rel=0.5)  # CLK_TCK is 100 on Linux
    with pytest.raises(ValueError):
        parse_stat("garbage")


def test_parse_status():
    s = parse_status(STATUS)
    assert s.rss_bytes == 83800 * 1024
    assert (s.voluntary, s.involuntary) == (37, 600)
    assert s.cpus == {0, 1}
    assert parse_status("Name:\tkthread\n").rss_bytes is None  # kernel threads have no VmRSS


def test_cmdline_and_environ():
    assert parse_cmdline(b"python3\0-m\0x\0") == ["python3", "-m", "x"]
    assert parse_environ(b"A=1\0ROS_DOMAIN_ID=7\0junk\0B=x=y\0") == {
        "A": "1", "ROS_DOMAIN_ID": "7", "B": "x=y",
    }  # fmt: skip


def test_parse_expected_entries():
    e = parse_expected(
        "name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver;"
        "nice=-10;cpus=3;rt=80"
    )
    assert (e.name, e.namespace, e.nice, e.cpus, e.rt) == ("pbt_driver", "/pbt", -10, {3}, 80)
    assert e.publishes_diagnostics
    sim = parse_expected("name=pbt_sim;kind=process;exe=pbt_driver/pbt_sim")
    assert not sim.publishes_diagnostics and sim.nice is None and sim.cpus is None
    cmd = parse_expected("name=rec;kind=command;cmd=ros2 bag record -s mcap -a")
    assert cmd.cmd == ("ros2", "bag", "record", "-s", "mcap", "-a")
    bare = parse_expected("foxglove_gateway")
    assert (bare.fqn, bare.kind) == ("/foxglove_gateway", "ros_node")
    # a ROS string array parameter cannot be empty: [""] means no processes
    assert parse_expected("  ") is None
    assert parse_expected_list([""]) == []


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("kind=process;exe=a/b", "no name"),
        ("name=x;kind=daemon", "kind 'daemon'"),
        ("name=x;colour=red", "unknown keys"),
        ("name=x;kind=process;exe=b", "package/executable"),
        ("name=x;exe=a/b;cpus=2-1", "descending"),
        ("name=x;exe=a/b;nice", "not key=value"),
    ],
)
def test_parse_expected_errors(entry, text):
    with pytest.raises(ExpectedError, match=text):
        parse_expected(entry)


def test_duplicate_names_refused():
    with pytest.raises(ExpectedError, match="twice"):
        parse_expected_list(["a", "a"])


DRV = parse_expected("name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver")
SIM = parse_expected("name=pbt_sim;kind=process;exe=pbt_driver/pbt_sim")
REC = parse_expected("name=rosbag2_recorder;kind=command;cmd=ros2 bag record -s mcap -a")
TIM = parse_expected("name=sick_tim240;kind=launch;launch=sick_scan_xd/launch/sick_tim_240.launch")


@pytest.mark.parametrize(
    ("exp", "argv", "want"),
    [
        # as the supervisor/launch start it: interpreter + script, remapped name and namespace
        (DRV, [PY, f"{LIB}/pbt_driver", "--ros-args", "-r", "__node:=pbt_driver", "-r",
               "__ns:=/pbt", "-p", "port:=/dev/pbt"], True),
        # without a __node remap the node keeps its default name (the executable's)
        (DRV, [PY, f"{LIB}/pbt_driver", "--ros-args", "-r", "__ns:=/pbt"], True),
        (DRV, [f"{LIB}/pbt_driver", "--ros-args", "-r", "pbt_driver:__ns:=/pbt"], True),
        # another namespace (a second detector /pmt) or name is another node
        (DRV, [PY, f"{LIB}/pbt_driver", "--ros-args", "-r", "__ns:=/pmt"], False),
        (DRV, [PY, f"{LIB}/pbt_driver", "--ros-args", "-r", "__node:=other", "-r",
               "__ns:=/pbt"], False),
        (DRV, [PY, f"{LIB}/pbt_sim", "--link", "/x"], False),
        # sched_exec applies scheduling then execs the node in the same PID
        (DRV, [PY, "-m", "bringup.sched_exec", "--name", "pbt_driver", "--nice", "0", "--",
               PY, f"{LIB}/pbt_driver"], True),
        (SIM, [PY, "-m", "bringup.sched_exec", "--name", "pbt_driver", "--", PY,
               f"{LIB}/pbt_sim"], False),
        (SIM, [PY, f"{LIB}/pbt_sim", "--link", "/run/pbt0"], True),
        (SIM, [f"{LIB}/pbt_sim"], True),
        (SIM, ["/usr/bin/vim", f"{LIB}/pbt_sim_notes.txt"], False),
        (REC, [PY, "/opt/ros/jazzy/bin/ros2", "bag", "record", "-s", "mcap", "-a"], True),
        (REC, ["/opt/ros/jazzy/bin/ros2", "bag", "record", "-s", "mcap", "-a"], True),
        (REC, [PY, "/opt/ros/jazzy/bin/ros2", "bag", "play", "x"], False),
        (TIM, [PY, "/opt/ros/jazzy/bin/ros2", "launch",
               "/opt/ros/jazzy/share/sick_scan_xd/launch/sick_tim_240.launch", "hostname:=x"],
         True),
        (DRV, [], False),
    ],
)  # fmt: skip
def test_matching(exp, argv, want):
    assert matches(exp, argv) is want


@given(st.lists(st.text(min_size=0, max_size=12), max_size=8))
def test_matching_never_raises(argv):
    for e in (DRV, SIM, REC, TIM):
        matches(e, argv)


class FakeProc:
    """A /proc tree in a temp dir: stat, status, cmdline, environ and threads per pid."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, pid, argv, env=None, state="S", start=1000, threads=()):
        d = self.root / str(pid)
        (d / "task").mkdir(parents=True)
        (d / "stat").write_text(stat_line(pid, state=state, start=start))
        (d / "status").write_text(STATUS)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        if env is not None:
            (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in env.items()))
        for tid, comm, policy, rt, cpus in threads or [(pid, "python3", 0, 0, "0-1")]:
            t = d / "task" / str(tid)
            t.mkdir()
            (t / "stat").write_text(stat_line(tid, comm=comm, rt=rt, policy=policy))
            (t / "status").write_text(STATUS.replace("0-1", cpus))


def test_finder_prefers_our_domain_and_the_newest_process(tmp_path):
    fp = FakeProc(tmp_path)
    drv = [PY, f"{LIB}/pbt_driver", "--ros-args", "-r", "__ns:=/pbt"]
    fp.add(10, drv, {"ROS_DOMAIN_ID": "5"}, start=100)  # another graph's driver
    fp.add(11, drv, {"ROS_DOMAIN_ID": "7"}, start=200)  # ours
    fp.add(12, drv, {"ROS_DOMAIN_ID": "7"}, state="Z", start=300)  # ours, dead (zombie)
    fp.add(13, [PY, f"{LIB}/pbt_sim"], None, start=50)  # environ unreadable: accepted
    fp.add(14, drv, {"ROS_DOMAIN_ID": "7"}, start=150)  # ours but older than 11
    fp.add(99, drv, {"ROS_DOMAIN_ID": "7"}, start=999)  # the monitor itself is never matched
    found = Finder(ProcFS(tmp_path), domain="7", own_pid=99).find([DRV, SIM, REC])
    assert found == {"pbt_driver": (11, 200), "pbt_sim": (13, 50)}
    # no ROS_DOMAIN_ID anywhere means domain 0 on both sides
    fp.add(20, [PY, f"{LIB}/pbt_sim"], {"HOME": "/root"}, start=60)
    assert Finder(ProcFS(tmp_path), domain="", own_pid=1).find([SIM]) == {"pbt_sim": (20, 60)}


def test_sample_finds_the_real_time_reader_thread(tmp_path):
    fp = FakeProc(tmp_path)
    fp.add(
        30,
        [PY, f"{LIB}/pbt_driver", "--ros-args"],
        {},
        threads=[(30, "python3", 0, 0, "3"), (31, "dds.rx", 0, 0, "3"),
                 (32, "pbt_reader", 1, 80, "3"), (33, "pulse_out", 1, 79, "3")],
    )  # fmt: skip
    s = ProcFS(tmp_path).sample(30)
    assert s.stat.policy_name == "SCHED_OTHER"  # the process: DDS threads stay normal
    assert s.status.cpus == {0, 1}
    top = top_thread(s.threads)
    assert (top.tid, top.name, top.rt_priority, top.cpus) == (32, "pbt_reader", 80, {3})
    assert top.describe() == "SCHED_FIFO 80 (thread 32 'pbt_reader', CPUs 3)"
    assert ProcFS(tmp_path).sample(31) is None  # no such process


def test_real_proc_of_this_process():
    import os

    s = ProcFS().sample(os.getpid())
    assert s is not None and s.stat.state in "RS" and s.threads
    assert any(t.tid == os.getpid() for t in s.threads)
