"""Clock synchronisation from fixture texts, the kernel's adjtimex and real daemon commands."""

from __future__ import annotations

import ctypes
import platform
import sys
import time

import pytest

from sensorhub_common.diagnostics import ERROR, OK, WARN
from system_monitor.clock import (
    STA_NANO,
    STA_UNSYNC,
    ClockLimits,
    ClockParseError,
    ClockReading,
    DaemonClock,
    check_clock,
    decode_timex,
    parse_chrony_tracking,
    parse_systemd_duration,
    parse_timesync,
)
from system_monitor.clock_reader import (
    DaemonPoller,
    DaemonQuery,
    KernelClockReader,
    Timex,
    daemon_queries,
    run_query,
)
from system_monitor.host import NA, LevelTracker, Threshold

CHRONY_SYNCED = (
    "C0A80A01,192.168.10.1,3,1717408800.123456789,0.000012345,-0.000004567,0.000021000,"
    "-12.345,-0.001,0.050,0.000456000,0.000789000,64.2,Normal\n"
)
CHRONY_UNSYNCED = (
    "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
    "1.000000000,1.000000000,0.0,Not synchronised\n"
)
TIMESYNC = """\
SystemNTPServers=
FallbackNTPServers=ntp.ubuntu.com
ServerName=ntp.ubuntu.com
ServerAddress=185.125.190.56
RootDistanceMaxUSec=5s
PollIntervalMinUSec=32s
PollIntervalMaxUSec=34min 8s
PollIntervalUSec=34min 8s
NTPMessage={ Leap=0, Version=4, Mode=4, Stratum=2, Precision=-25, RootDelay=1.129ms, \
RootDispersion=30.517us, Reference=11FD227B, OriginateTimestamp=Mon 2024-06-03 10:00:00 UTC, \
Ignored=no, PacketCount=35, Jitter=1.091ms }
Frequency=-522034
"""
TIMESYNC_NO_ANSWER = """\
SystemNTPServers=
FallbackNTPServers=ntp.ubuntu.com
ServerName=ntp.ubuntu.com
ServerAddress=
PollIntervalUSec=0
"""


def limits(unsynced=WARN) -> ClockLimits:
    return ClockLimits(
        offset=LevelTracker(Threshold(0.005, 0.050)),
        max_error=LevelTracker(Threshold(0.100, 1.000)),
        unsynced=unsynced,
    )


def synced_kernel(offset_us=20, maxerror_us=3000):
    return decode_timex(state=0, status=0x2001, offset=offset_us * 1000, maxerror=maxerror_us,
                        esterror=50)  # fmt: skip


# ---- kernel -----------------------------------------------------------------------------------
def test_timex_nano_offset_and_microsecond_errors():
    k = decode_timex(state=0, status=STA_NANO, offset=-1_500_000, maxerror=2500, esterror=40)
    assert k.synchronised and k.state == "TIME_OK"
    assert k.offset_s == pytest.approx(-0.0015)
    assert k.maxerror_s == pytest.approx(0.0025) and k.esterror_s == pytest.approx(4e-5)


def test_timex_micro_offset_without_sta_nano():
    assert decode_timex(state=0, status=0, offset=250, maxerror=0, esterror=0).offset_s == (
        pytest.approx(0.00025)
    )


@pytest.mark.parametrize("state, status", [(0, STA_UNSYNC), (5, 0), (5, STA_UNSYNC)])
def test_unsync_flag_or_time_error_is_not_synchronised(state, status):
    assert not decode_timex(state=state, status=status, offset=0, maxerror=16_000_000,
                            esterror=16_000_000).synchronised  # fmt: skip


@pytest.mark.skipif(sys.platform != "linux", reason="adjtimex is Linux's")
def test_adjtimex_reads_this_kernel_without_privilege():
    k = KernelClockReader().read()
    assert k is not None
    assert k.state.startswith("TIME_") and k.maxerror_s >= 0


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="the 64-bit glibc layout",
)
def test_struct_timex_has_the_kernel_layout():
    # A wrong field list would read maxerror/status from the wrong offsets without any error.
    assert ctypes.sizeof(Timex) == 208
    assert Timex.maxerror.offset == 24 and Timex.status.offset == 40 and Timex.tai.offset == 160


# ---- chrony -----------------------------------------------------------------------------------
def test_chrony_synced_tracking():
    d = parse_chrony_tracking(CHRONY_SYNCED)
    assert d.source == "chrony" and d.synchronised
    assert d.server == "192.168.10.1" and d.stratum == 3
    assert d.offset_s == pytest.approx(-12.345e-6)  # 12 us slow of NTP time
    assert d.max_error_s == pytest.approx(12.345e-6 + 0.000228 + 0.000789)
    assert dict(d.details)["leap status"] == "Normal"


def test_chrony_without_a_source_is_not_synchronised():
    d = parse_chrony_tracking(CHRONY_UNSYNCED)
    assert not d.synchronised and d.server == "00000000"


@pytest.mark.parametrize(
    "text, words",
    [
        ("506 Cannot talk to daemon\n", "expected 14 fields, got 1"),
        ("", "expected 14 fields, got 1"),
        (CHRONY_SYNCED.replace(",3,", ",three,"), "three"),
    ],
)
def test_chrony_output_that_is_not_tracking_names_the_problem(text, words):
    with pytest.raises(ClockParseError, match=words):
        parse_chrony_tracking(text)


# ---- systemd-timesyncd ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, seconds",
    [("1.129ms", 0.001129), ("30.517us", 30.517e-6), ("34min 8s", 2048.0), ("5s", 5.0)],
)
def test_systemd_durations(text, seconds):
    assert parse_systemd_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "5 parsecs"])
def test_a_bad_systemd_duration_is_refused(text):
    with pytest.raises(ClockParseError, match="not a systemd duration"):
        parse_systemd_duration(text)


def test_timesyncd_with_an_answering_server():
    d = parse_timesync(TIMESYNC)
    assert d.source == "systemd-timesyncd" and d.synchronised
    assert d.server == "ntp.ubuntu.com" and d.stratum == 2
    assert d.offset_s is None  # timesyncd does not publish its measured offset
    assert d.max_error_s == pytest.approx(0.001129 / 2 + 30.517e-6)
    assert dict(d.details)["jitter"] == "1.091ms"


def test_timesyncd_before_any_answer_is_not_synchronised():
    d = parse_timesync(TIMESYNC_NO_ANSWER)
    assert not d.synchronised and d.max_error_s is None


def test_timedatectl_without_timesyncd_properties_is_refused():
    with pytest.raises(ClockParseError, match="no ServerName or NTPMessage"):
        parse_timesync("NTP=yes\nNTPSynchronized=no\n")


# ---- the status -------------------------------------------------------------------------------
def test_synchronised_by_chrony_is_ok_with_its_offset():
    r = check_clock(ClockReading(synced_kernel(), parse_chrony_tracking(CHRONY_SYNCED)), limits())
    v = dict(r.values)
    assert r.level == OK and r.message.startswith("synchronised: offset -0.012 ms")
    assert v["synchronised"] == "True"
    assert v["source"] == "chrony, 192.168.10.1 stratum 3"
    assert v["kernel state"] == "TIME_OK" and v["kernel offset [ms]"] == "+0.020"


def test_kernel_only_uses_its_offset_and_max_error_and_says_why():
    r = check_clock(ClockReading(synced_kernel(), None, "chronyc not installed"), limits())
    v = dict(r.values)
    assert r.level == OK
    assert v["offset [ms]"] == "+0.020" and v["max error [ms]"] == "3.000"
    assert v["source"] == f"kernel only (daemon {NA}: chronyc not installed)"


@pytest.mark.parametrize(
    "offset_us, maxerror_us, level, words",
    [
        (6_000, 3000, WARN, "clock offset 6.0 ms too large"),
        (60_000, 3000, ERROR, "clock offset 60.0 ms too large"),
        (20, 150_000, WARN, "clock max error 150.0 ms too large"),
        (20, 2_000_000, ERROR, "clock max error 2000.0 ms too large"),
    ],
)
def test_offset_and_max_error_thresholds(offset_us, maxerror_us, level, words):
    r = check_clock(ClockReading(synced_kernel(offset_us, maxerror_us), None), limits())
    assert r.level == level and r.message == words


@pytest.mark.parametrize("unsynced", [OK, WARN, ERROR])
def test_an_unsynchronised_clock_has_the_configured_level(unsynced):
    k = decode_timex(state=5, status=STA_UNSYNC, offset=0, maxerror=16_000_000,
                     esterror=16_000_000)  # fmt: skip
    r = check_clock(ClockReading(k, None, "timedatectl: no bus"), limits(unsynced))
    assert r.level == unsynced and r.message == "clock not synchronised"
    assert dict(r.values)["synchronised"] == "False"


def test_nothing_readable_is_not_available_not_an_alarm():
    r = check_clock(ClockReading(None, None, "no daemon", "adjtimex: not Linux"), limits())
    v = dict(r.values)
    assert r.level == OK and r.message == f"clock synchronisation {NA}"
    assert v["kernel"] == f"{NA} (adjtimex: not Linux)" and v["offset [ms]"] == NA


def test_the_daemon_alone_decides_without_the_kernel():
    d = DaemonClock(source="chrony", synchronised=False)
    assert check_clock(ClockReading(None, d), limits()).level == WARN


# ---- the daemons' commands, as real processes -------------------------------------------------
def script(tmp_path, name: str, body: str) -> str:
    p = tmp_path / name
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)
    return str(p)


def test_chrony_is_asked_first_and_timesyncd_when_chrony_fails(tmp_path):
    chronyc = script(tmp_path, "chronyc", "echo '506 Cannot talk to daemon' >&2; exit 1")
    timedatectl = script(tmp_path, "timedatectl", f"cat <<'EOF'\n{TIMESYNC}EOF")
    poller = DaemonPoller(daemon_queries(chronyc, timedatectl), period=600, timeout=10)
    try:
        got, why = poller.poll_once()
    finally:
        poller.close()
    assert got is not None and got.source == "systemd-timesyncd" and why == ""


def test_a_missing_or_hung_daemon_is_not_available_within_the_timeout(tmp_path):
    hung = script(tmp_path, "chronyc", "exec sleep 30")
    q = DaemonQuery((hung, "-c", "tracking"), parse_chrony_tracking)
    t0 = time.monotonic()
    got, why = run_query(q, timeout=0.5)
    assert got is None and why == f"{hung} timed out after 0.5 s"
    assert time.monotonic() - t0 < 20  # the timeout, not the 30 s sleep
    got, why = run_query(DaemonQuery(("/nonexistent/chronyc",), parse_chrony_tracking), 1.0)
    assert got is None and why == "/nonexistent/chronyc not installed"


def test_the_poller_answers_at_once_and_fills_in_from_its_thread(tmp_path, wait):
    chronyc = script(tmp_path, "chronyc", f"printf '%s' '{CHRONY_SYNCED.strip()}'")
    poller = DaemonPoller(daemon_queries(chronyc, ""), period=600, timeout=10)
    try:
        assert poller.latest()[0] is None or poller.latest()[0].source == "chrony"
        got = wait(lambda: poller.latest()[0], 30, what="the chrony answer")
        assert got.server == "192.168.10.1"
    finally:
        poller.close()


def test_no_daemon_command_configured():
    poller = DaemonPoller(daemon_queries("", ""), period=1, timeout=1)
    assert poller.latest() == (None, "no daemon command configured")
    poller.close()
