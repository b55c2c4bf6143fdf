"""The scheduling helper applies what is permitted and reports, never raises, what is not."""

import os
import threading

import pytest

from sensorhub_common import scheduling as s
from sensorhub_common.diagnostics import OK, WARN, DiagnosticStatusWrapper


@pytest.mark.parametrize(
    ("spec", "cpus"),
    [("0", {0}), ("0-2,5", {0, 1, 2, 5}), (" 1 , 3-4", {1, 3, 4}), ([0, 2], {0, 2})],
)
def test_parse_cpu_list(spec, cpus):
    assert s.parse_cpu_list(spec) == frozenset(cpus)


@pytest.mark.parametrize("spec", ["a", "1-", "3-1", "1,,2", "-1", [0, -1], [True]])
def test_parse_cpu_list_errors_name_the_input(spec):
    with pytest.raises(ValueError, match="bad CPU"):
        s.parse_cpu_list(spec)


def test_no_pinning_requested():
    assert s.parse_cpu_list("") is None
    assert s.apply_process() == []


def _in_child(fn):
    """Run fn in a forked child so the test process keeps its own scheduling."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            out = repr(fn())
        except BaseException as e:
            out = repr(("raised", type(e).__name__, str(e)))
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    return data.decode()


def test_permitted_settings_are_applied_and_observable_in_proc():
    cpu = max(os.sched_getaffinity(0))

    def child():
        res = s.apply_process(nice=7, cpus=str(cpu), io_class="idle")
        with open(f"/proc/{os.getpid()}/stat") as f:
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
        return [r.ok for r in res], nice, sorted(os.sched_getaffinity(0))

    oks, nice, aff = eval(_in_child(child))
    assert oks == [True, True, True]
    assert nice == 7
    assert aff == [cpu]


def test_impossible_cpu_set_is_reported_not_raised():
    before = os.sched_getaffinity(0)
    r = s.set_affinity("63")
    assert not r.ok and "do not exist" in r.message and r.requested == "63"
    assert os.sched_getaffinity(0) == before


def test_out_of_range_values_are_reported():
    assert not s.set_nice(25).ok
    assert not s.set_io_class("turbo").ok
    assert not s.set_realtime(100).ok
    assert "outside" in s.set_realtime(0).message


def test_thread_level_fifo_leaves_other_threads_alone():
    results = {}

    def hot():
        results["res"] = s.apply_current_thread(
            rt_priority=10, cpus=str(min(os.sched_getaffinity(0)))
        )
        results["policy"] = os.sched_getscheduler(threading.get_native_id())

    def child():
        t = threading.Thread(target=hot)
        t.start()
        t.join()
        return [r.ok for r in results["res"]], results["policy"], os.sched_getscheduler(0)

    out = eval(_in_child(child))
    oks, hot_policy, main_policy = out
    assert main_policy == os.SCHED_OTHER
    if all(oks):  # root / CAP_SYS_NICE: applied to the thread only
        assert hot_policy == os.SCHED_FIFO
    else:  # unprivileged: reported, thread keeps running SCHED_OTHER
        assert hot_policy == os.SCHED_OTHER


def test_unprivileged_realtime_is_reported_with_the_limit():
    def child():
        import resource

        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
        if os.geteuid() == 0:
            os.setuid(65534)  # drop root so the limit applies
        r = s.set_realtime(80)
        return r.ok, r.message

    ok, msg = eval(_in_child(child))
    assert not ok
    assert "RLIMIT_RTPRIO" in msg


def test_lock_memory_reports_when_limit_forbids():
    def child():
        import resource

        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
        if os.geteuid() == 0:
            os.setuid(65534)
        r = s.lock_memory()
        return r.ok, r.message

    ok, msg = eval(_in_child(child))
    assert not ok and "RLIMIT_MEMLOCK" in msg


def test_scheduling_status_is_a_diagnostics_task():
    st = s.SchedulingStatus()
    stat = st.run(DiagnosticStatusWrapper())
    assert stat.level == OK and stat.message == "no scheduling requested"
    st.record(s.SchedResult("affinity", "0", True, "pinned to CPUs 0"))
    st.record([s.set_affinity("63")], scope="reader thread")
    stat = st.run(DiagnosticStatusWrapper())
    assert st.degraded
    assert stat.level == WARN and "reader thread affinity" in stat.message
    assert dict(stat.values)["reader thread affinity"].startswith("FAILED")
