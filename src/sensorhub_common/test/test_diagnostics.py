"""diagnostic_updater semantics: pure task tests, then one real /diagnostics round trip."""

import threading

from sensorhub_common.diagnostics import (
    ERROR,
    OK,
    WARN,
    CompositeDiagnosticTask,
    DiagnosticStatusWrapper,
    FrequencyStatus,
    FrequencyStatusParam,
    FunctionDiagnosticTask,
    TimeStampStatus,
    TimeStampStatusParam,
)


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def test_merge_summary_keeps_worst_and_joins_problems():
    s = DiagnosticStatusWrapper()
    s.merge_summary(OK, "fine")  # as in diagnostic_updater: OK into OK keeps the message
    assert (s.level, s.message) == (OK, "")
    s.merge_summary(WARN, "slow")
    assert (s.level, s.message) == (WARN, "slow")
    s.merge_summary(ERROR, "port down")
    assert (s.level, s.message) == (ERROR, "slow; port down")
    s.merge_summary(OK, "ignored")
    assert (s.level, s.message) == (ERROR, "slow; port down")


def test_add_all_adds_each_figure_in_order_formatted_as_add():
    s = DiagnosticStatusWrapper()
    s.add_all({"scans": 3, "ratio": 0.125, "open": False})
    assert s.values == [("scans", "3"), ("ratio", "0.125"), ("open", "False")]


def test_to_msg_levels_are_rep107_bytes():
    s = DiagnosticStatusWrapper(WARN, "n: t", "m", "hw")
    s.add("count", 3)
    s.add("flag", True)
    s.add("ratio", 0.125)
    m = s.to_msg()
    assert m.level == b"\x01" and m.name == "n: t" and m.hardware_id == "hw"
    assert [(kv.key, kv.value) for kv in m.values] == [
        ("count", "3"),
        ("flag", "True"),
        ("ratio", "0.125"),
    ]


def _freq(min_hz, max_hz, clock, window=5):
    return FrequencyStatus(
        FrequencyStatusParam({"min": min_hz, "max": max_hz}, 0.1, window), clock=clock
    )


def test_frequency_status_levels():
    clk = FakeClock()
    f = _freq(20.0, 20.0, clk, window=1)
    clk.t += 1.0
    st = f.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (ERROR, "No events recorded.")
    f.tick(20)
    clk.t += 1.0
    st = f.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (OK, "Desired frequency met")
    assert dict(st.values)["Target frequency (Hz)"] == "20.000000"
    f.tick(10)
    clk.t += 1.0
    assert f.run(DiagnosticStatusWrapper()).message == "Frequency too low."
    f.tick(30)
    clk.t += 1.0
    st = f.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (WARN, "Frequency too high.")
    v = dict(st.values)
    assert v["Events in window"] == "30" and v["Events since startup"] == "60"
    assert v["Minimum acceptable frequency (Hz)"] == "18.000000"
    assert v["Maximum acceptable frequency (Hz)"] == "22.000000"


def test_frequency_window_averages_over_updates():
    clk = FakeClock()
    f = _freq(10.0, 10.0, clk, window=3)
    for _ in range(6):
        f.tick(10)
        clk.t += 1.0
        st = f.run(DiagnosticStatusWrapper())
    assert dict(st.values)["Duration of window (s)"] == "3.000000"
    assert st.level == OK


def test_tick_is_thread_safe():
    clk = FakeClock()
    f = _freq(0.0, float("inf"), clk)

    def hammer():
        for _ in range(20000):
            f.tick()

    ts = [threading.Thread(target=hammer) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    clk.t += 1
    st = f.run(DiagnosticStatusWrapper())
    assert dict(st.values)["Events since startup"] == "80000"
    assert "Maximum acceptable frequency (Hz)" not in dict(st.values)


def test_timestamp_status():
    clk = FakeClock(1000.0)
    ts = TimeStampStatus(TimeStampStatusParam(-1.0, 5.0), clock=clk)
    st = ts.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (WARN, "No data since last update.")
    ts.tick(999.5)
    assert ts.run(DiagnosticStatusWrapper()).message == "Timestamps are reasonable."
    ts.tick(990.0)
    st = ts.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (ERROR, "Timestamps too far in past seen.")
    ts.tick(1002.0)
    st = ts.run(DiagnosticStatusWrapper())
    assert st.message == "Timestamps too far in future seen."
    ts.tick(0)
    st = ts.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (ERROR, "Zero timestamp seen.")
    v = dict(st.values)
    assert v["Late diagnostic update count:"] == "1"
    assert v["Early diagnostic update count:"] == "1"
    assert v["Zero seen diagnostic update count:"] == "1"


def test_composite_merges_tasks():
    c = CompositeDiagnosticTask(
        "all",
        [
            FunctionDiagnosticTask("a", lambda s: s.summary(OK, "a ok")),
            FunctionDiagnosticTask("b", lambda s: s.summary(WARN, "b slow")),
            FunctionDiagnosticTask("c", lambda s: s.summary(ERROR, "c down")),
        ],
    )
    st = c.run(DiagnosticStatusWrapper())
    assert (st.level, st.message) == (ERROR, "b slow; c down")
