"""Host checks from fixtures: throttling bits, thermal zones, thresholds, kernel log, absence."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensorhub_common.diagnostics import ERROR, OK, WARN
from system_monitor import host
from system_monitor.host import (
    KernelLog,
    LevelTracker,
    NetCounters,
    Threshold,
    ThrottleParseError,
    ThrottleReader,
    Zone,
    check_cpu,
    check_percent,
    check_temperature,
    check_throttled,
    classify,
    decode_throttled,
    net_rates,
    parse_kmsg,
    parse_throttled,
    read_thermal_zones,
)


def values(r) -> dict:
    return dict(r.values)


# ---- throttling -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "flags"),
    [("throttled=0x50005\n", 0x50005), ("throttled=0x0", 0), ("50000\n", 0x50000), ("0", 0),
     ("80008", 0x80008)],
)  # fmt: skip
def test_parse_throttled(text, flags):
    assert parse_throttled(text) == flags


def test_parse_throttled_garbage():
    with pytest.raises(ThrottleParseError):
        parse_throttled('error=1 error_msg="Command not registered"')


def test_decode_throttled_bits():
    d = decode_throttled(0x50005)  # the classic weak-PSU Pi: under-voltage and throttled
    assert d["under-voltage"] == (True, True)
    assert d["throttled"] == (True, True)
    assert d["frequency capped"] == (False, False)
    assert d["soft temperature limit"] == (False, False)
    assert decode_throttled(0x80000)["soft temperature limit"] == (False, True)


def test_check_throttled_levels():
    assert check_throttled(0).level == OK
    r = check_throttled(0x50005, "vcgencmd")
    assert r.level == ERROR
    assert "under-voltage now" in r.message and "throttled now" in r.message
    assert values(r)["flags"] == "0x50005" and values(r)["source"] == "vcgencmd"
    capped = check_throttled(0x2)
    assert capped.level == WARN and "frequency capped now" in capped.message
    past = check_throttled(0x10000)  # under-voltage happened since boot, not now
    assert past.level == WARN and past.message == "since boot: under-voltage"
    assert values(past)["under-voltage since boot"] == "True"


def test_throttling_absent_is_not_available_never_zero(tmp_path):
    r = check_throttled(None)
    assert r.level == OK and "not available" in r.message
    assert values(r)["flags"] == "not available"
    reader = ThrottleReader(str(tmp_path / "nope"), str(tmp_path / "no-vcgencmd"))
    assert reader.read() is None


def test_throttle_reader_sysfs_then_vcgencmd(tmp_path):
    f = tmp_path / "get_throttled"
    f.write_text("50005\n")
    assert ThrottleReader(str(f), "").read() == 0x50005
    fake = tmp_path / "vcgencmd"
    fake.write_text("#!/bin/sh\necho throttled=0x20002\n")
    fake.chmod(0o755)
    r = ThrottleReader(str(tmp_path / "missing"), str(fake))
    assert r.read() == 0x20002 and r.source == "vcgencmd"


# ---- thermal ----------------------------------------------------------------------------------
def make_zone(root, i, typ, temp):
    d = root / f"thermal_zone{i}"
    d.mkdir(parents=True)
    (d / "type").write_text(typ + "\n")
    if temp is not None:
        (d / "temp").write_text(f"{temp}\n")


def test_thermal_zones_parsed_and_hottest_decides(tmp_path):
    make_zone(tmp_path, 0, "cpu-thermal", 71234)
    make_zone(tmp_path, 1, "gpu-thermal", 45000)
    make_zone(tmp_path, 2, "broken", None)  # a zone whose temp cannot be read
    (tmp_path / "cooling_device0").mkdir()
    zones = read_thermal_zones(tmp_path)
    assert zones == [
        Zone("thermal_zone0", "cpu-thermal", 71.234),
        Zone("thermal_zone1", "gpu-thermal", 45.0),
        Zone("thermal_zone2", "broken", None),
    ]
    r = check_temperature(zones, LevelTracker(Threshold(70, 80, 2)))
    assert r.level == WARN and r.message == "cpu-thermal 71.2 degC high"
    v = values(r)
    assert v["max [degC]"] == "71.2" and v["broken (thermal_zone2) [degC]"] == "not available"


def test_no_thermal_zones_is_not_available(tmp_path):
    assert read_thermal_zones(tmp_path / "absent") == []
    r = check_temperature([], LevelTracker(Threshold(70, 80)))
    assert r.level == OK and "not available" in r.message
    assert values(r) == {"thermal zones": "not available"}
    r = check_temperature([Zone("thermal_zone0", "x", None)], LevelTracker(Threshold(70, 80)))
    assert "not available" in r.message and "0" not in values(r).get("max [degC]", "")


# ---- thresholds -------------------------------------------------------------------------------
def test_temperature_transitions_with_hysteresis():
    t = LevelTracker(Threshold(70, 80, hysteresis=2))
    seq = [(60, OK), (70, OK), (70.5, WARN), (68.5, WARN), (67.9, OK), (81, ERROR), (79, ERROR),
           (77.9, WARN), (85, ERROR), (60, OK), (None, OK)]  # fmt: skip
    assert [(v, t.update(v)) for v, _ in seq] == seq


def test_cpu_levels_with_the_default_thresholds():
    t = LevelTracker(Threshold(70, 90, 5))
    assert check_cpu([50, 60], (0.5, 0.4, 0.3), 1500.0, t).level == OK
    r = check_cpu([80, 70], (2.0, 1.0, 0.5), None, t)
    assert r.level == WARN and r.message == "CPU 75% high"
    assert values(r)["frequency [MHz]"] == "not available"
    assert values(r)["core 1 [%]"] == "70.0"
    assert check_cpu([95, 96], None, None, t).level == ERROR
    assert check_cpu([], None, None, t).message == "CPU usage not available"


def test_percent_checks():
    t = LevelTracker(Threshold(90, 95))
    assert check_percent("data root", 50.0, t, free_GB=100.0).level == OK
    r = check_percent("data root", 96.0, t, free_GB=1.0)
    assert r.level == ERROR and "full" in r.message and values(r)["free GB"] == "1.0"
    assert "not available" in check_percent("data root", None, t).message


def test_threshold_refuses_inverted_bounds():
    with pytest.raises(ValueError):
        Threshold(80, 70)


@given(
    warn=st.floats(0, 100),
    span=st.floats(0, 50),
    hyst=st.floats(0, 10),
    values_=st.lists(st.floats(-50, 200), max_size=30),
)
def test_tracker_never_below_raw_and_never_above_error(warn, span, hyst, values_):
    th = Threshold(warn, warn + span, hyst)
    t = LevelTracker(th)
    for v in values_:
        lvl = t.update(v)
        assert th.raw(v) <= lvl <= ERROR
        if v <= th.warn - hyst:
            assert lvl == OK  # far enough below: always clears


# ---- network ----------------------------------------------------------------------------------
def test_net_rates_and_errors():
    a = {"eth0": NetCounters(1000, 2000, 0, 0, 0, 0)}
    b = {"eth0": NetCounters(3000, 12000, 1, 0, 5, 0)}
    first = net_rates({}, a, 0.0)
    assert first.level == OK and values(first)["eth0 rx/tx [kB/s]"] == "not available"
    r = net_rates(a, b, 2.0)
    assert values(r)["eth0 rx/tx [kB/s]"] == "5.0 / 1.0"
    assert r.level == WARN and "eth0: 1 errors" in r.message
    assert "not available" in net_rates({}, {}, 1.0).message


# ---- kernel log -------------------------------------------------------------------------------
def test_parse_kmsg_records():
    r = parse_kmsg(b"3,1234,5678901,-;usb 1-1.3: device descriptor read/64, error -71\n"
                   b" SUBSYSTEM=usb\n")  # fmt: skip
    assert (r.priority, r.seq, r.usec) == (3, 1234, 5678901)
    assert r.message == "usb 1-1.3: device descriptor read/64, error -71"
    assert parse_kmsg(b"no separator") is None
    assert parse_kmsg(b"x,y;msg") is None


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        ("usb 1-1.3: device descriptor read/64, error -71", "usb"),
        ("usb 1-1.2: USB disconnect, device number 5", "usb"),
        ("usb 1-1: reset high-speed USB device number 2 using xhci_hcd", "usb"),
        ("ftdi_sio ttyUSB0: usb_serial_generic_read_bulk_callback - urb stopped: -32", "serial"),
        ("ftdi_sio ttyUSB0: error from flowcontrol urb", "serial"),
        ("cp210x ttyUSB1: failed set request 0x12 status: -19", "serial"),
        ("ttyAMA0: 1 input overrun(s)", "serial"),
        ("hwmon hwmon1: Undervoltage detected!", "power"),  # raspberrypi-hwmon (newer kernels)
        ("Under-voltage detected! (0x00050005)", "power"),
        ("usb 1-1.4: new full-speed USB device number 6 using xhci_hcd", None),
        ("eth0: Link is Up - 1Gbps/Full", None),
    ],
)
def test_kernel_messages_classified(msg, kind):
    assert classify(msg) == kind


def test_kernel_log_counts_and_reports(tmp_path):
    log = KernelLog(str(tmp_path / "kmsg-absent"))
    assert not log.available
    r = log.report()
    assert r.level == OK and "not available" in r.message and "kmsg-absent" in r.message
    # a readable record file stands in for /dev/kmsg (one record per read there; here we feed)
    f = tmp_path / "kmsg"
    f.write_bytes(b"")
    log = KernelLog(str(f))
    assert log.available
    assert log.report().level == OK
    for rec in (b"6,1,100,-;usb 1-1.3: USB disconnect, device number 3",
                b"6,2,200,-;eth0: link up",
                b"3,3,300,-;Under-voltage detected! (0x00050005)"):  # fmt: skip
        log.feed(parse_kmsg(rec))
    r = log.report()
    assert r.level == WARN and "2 new USB/serial/power messages" in r.message
    assert values(r)["usb messages since boot"] == "1"
    assert values(r)["power messages since boot"] == "1"
    assert log.report().level == OK  # only new messages warn
    log.close()


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="/dev/kmsg not readable here")
def test_real_kmsg_reads_without_blocking():
    log = KernelLog()
    log.poll()
    assert log.available or log.error
    log.close()


def test_na_constant_used_for_missing_values():
    r = host.Report()
    r.add("x", None)
    assert r.values == [("x", "not available")]
