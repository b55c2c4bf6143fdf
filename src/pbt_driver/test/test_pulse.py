"""Pulse output: the real pigpio client against pigpiod_sim, the serial offload over a pty, and
both end to end through the driver (events carry what was commanded)."""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest

from pbt_driver import offload
from pbt_driver.pulse import NoneBackend, PigpioBackend, SerialOffloadBackend
from pbt_driver.widthmap import WidthMap
from sensorhub_testing.files import read_jsonl

LINEAR = WidthMap("linear", min_us=50, max_us=1000, amp_lo=0, amp_hi=1000, step_us=10)


def tx_records(pbt, rec):
    return [r for r in read_jsonl(rec) if r.get("cmd") in ("WVTX", "WVTXM")]


def test_none_backend_never_sends():
    r = NoneBackend(LINEAR).command(100, 10.0, 0.0)
    assert r.sent is False and r.width_us == 0


def test_pigpio_backend_prepares_waves_and_sends_mapped_widths(pbt, wait):
    _, port, rec = pbt.pigpiod()
    be = PigpioBackend(LINEAR, gpio=18, host="127.0.0.1", port=port)
    be.start()
    try:
        wait(lambda: not be.degraded, 20, what="backend connected")
        created = [r for r in read_jsonl(rec) if r.get("cmd") == "WVCRE"]
        assert sorted(r["width_us"] for r in created) == LINEAR.widths()
        assert {r["gpio_bits"] for r in created} == {1 << 18}
        amps = [0.0, 37.0, 333.3, 999.0, 5000.0]
        recs = [be.command(LINEAR.map(a), a, time.monotonic()) for a in amps]
        wait(lambda: all(r.sent is not None for r in recs), 20, what="commands written")
        assert all(r.sent for r in recs)
        wait(lambda: len(tx_records(pbt, rec)) == len(amps), 20, what="transmissions recorded")
        tx = tx_records(pbt, rec)
        assert [t["width_us"] for t in tx] == [LINEAR.map(a) for a in amps]
        assert all(t["cmd"] == "WVTXM" and t["mode"] == 2 for t in tx)  # ONE_SHOT_SYNC
        assert not [r for r in read_jsonl(rec) if r.get("cmd") == "WVBSY"]
        # a new mapping re-prepares the waves on the output thread
        fixed = WidthMap("fixed", width_us=333)
        be.set_widthmap(fixed)
        r = be.command(333, 1.0, time.monotonic())
        wait(lambda: r.sent is not None, 20, what="command after remap")
        assert r.sent and tx_records(pbt, rec)[-1]["width_us"] == 333
    finally:
        be.close()


def test_pigpio_command_never_waits_for_pigpiod(pbt, wait):
    """A stuck pigpiod (WVTXM answered after 1.5 s) must not hold up the caller (reader)."""
    _, port, rec = pbt.pigpiod("pigpiod", "--delay", "WVTXM=1.5")
    be = PigpioBackend(WidthMap("fixed", width_us=200), host="127.0.0.1", port=port)
    be.start()
    try:
        wait(lambda: not be.degraded, 20, what="backend connected")
        recs = [be.command(200, 1.0, time.monotonic()) for _ in range(3)]
        # every call returned while pigpiod still sat on the first one: nothing was sent yet
        assert all(r.sent is None for r in recs)
        assert tx_records(pbt, rec) == []
        wait(lambda: all(r.sent for r in recs), 60, what="queued commands eventually sent")
    finally:
        be.close()


def test_pigpio_missing_degrades(wait):
    be = PigpioBackend(LINEAR, host="127.0.0.1", port=1)  # nothing listens on port 1
    be.start()
    try:
        wait(lambda: "not reachable" in be.status()[1], 20, what="degraded status")
        level, msg, _ = be.status()
        assert level == 2 and "events only" in msg
        r = be.command(100, 1.0, time.monotonic())
        assert r.sent is False and be.dropped == 1
    finally:
        be.close()


class FakeMcu:
    """The test's end of a pty pair: decodes commands, answers like the reference sketch."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.port = os.ttyname(self.slave)
        self.commands: list[offload.Command] = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        import select

        parser = offload.command_parser()
        while not self._stop:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for fr in parser.feed(data):
                c = offload.decode_command(fr)
                self.commands.append(c)
                os.write(self.master, offload.encode_reply(c.type, c.seq, offload.STATUS_OK))

    def close(self):
        self._stop = True
        self._t.join(2)
        for fd in (self.master, self.slave):
            os.close(fd)


def test_serial_offload_backend_frames(wait):
    mcu = FakeMcu()
    be = SerialOffloadBackend(LINEAR, mcu.port)
    be.start()
    try:
        wait(lambda: not be.degraded, 20, what="offload port open")
        recs = [be.command(LINEAR.map(a), a, time.monotonic()) for a in (10.0, 500.0)]
        wait(lambda: len([c for c in mcu.commands if c.type == offload.PULSE]) == 2, 20,
             what="two pulse commands at the MCU")  # fmt: skip
        pulses = [c for c in mcu.commands if c.type == offload.PULSE]
        assert [c.width_us for c in pulses] == [r.width_us for r in recs] == [60, 530]
        wait(lambda: be.replies["ok"] >= 2, 20, what="replies counted")
    finally:
        be.close()
        mcu.close()


@pytest.mark.integration
def test_driver_pigpio_end_to_end(pbt, ros_node, wait):
    _, port, rec = pbt.pigpiod()
    sim, link = pbt.sim("sim", "--seed", "3", "--pulse-rate", "30")
    wait(link.exists, 20, what="sim pty link")
    pbt.driver(port=link, pulse_backend="pigpio", pigpio_host="127.0.0.1", pigpio_port=port,
               pulse_mode="linear", pulse_width_min_us=50, pulse_width_max_us=1000,
               pulse_amp_lo=0.0, pulse_amp_hi=1000.0, pulse_width_step_us=10)  # fmt: skip
    c = pbt.Collector(ros_node, link)
    wait(lambda: len(c.events) >= 45, 90, what="45 events")
    sim.stop()
    time.sleep(0.5)
    evs = [m for _, m in c.events]
    assert all(m.pulse_backend == "pigpio" for m in evs)
    flags = [m.pulse_sent for m in evs]
    first = flags.index(True)  # events before pigpiod was connected and waves prepared: not sent
    assert all(flags[first:]), flags
    sent = evs[first:]
    assert len(sent) >= 30
    for m in sent:
        assert m.pulse_width_us in LINEAR.widths()
        assert m.pulse_delay >= 0.0
        # mapped from the peak at confirmation, which is at most the final amplitude
        assert m.pulse_width_us <= LINEAR.map(m.amplitude) + 10
    wait(lambda: len(tx_records(pbt, rec)) >= len(sent), 20, what="transmissions recorded")
    tx = [t["width_us"] for t in tx_records(pbt, rec)]
    assert sorted(tx[: len(sent)]) == sorted(m.pulse_width_us for m in sent)
    assert not [r for r in read_jsonl(rec) if r.get("cmd") == "WVBSY"]
    out = wait(lambda: c.latest("pulse output"), 20, what="pulse output diagnostics")
    assert out[0] == 0


@pytest.mark.integration
def test_two_instances_side_by_side_one_degraded(pbt, ros_node, wait):
    """/pbt (ascii, pigpio missing -> events only) and /pmt (binary, 400 Hz) run together; run-time
    parameter changes are validated."""
    _, l1 = pbt.sim("sim1", "--seed", "1", "--pulse-rate", "20")
    _, l2 = pbt.sim("sim2", "--seed", "2", "--format", "binary", "--rate", "400",
                    "--amp-min", "80")  # fmt: skip
    wait(lambda: l1.exists() and l2.exists(), 20, what="both pty links")
    pbt.driver("drv_pbt", "/pbt", port=l1, pulse_backend="pigpio", pigpio_host="127.0.0.1",
               pigpio_port=1)  # fmt: skip
    pbt.driver("drv_pmt", "/pmt", port=l2, frame_format="binary", sample_rate=400.0,
               batch_size=20, threshold=40.0, hysteresis=10.0)  # fmt: skip
    a = pbt.Collector(ros_node, l1, "/pbt")
    b = pbt.Collector(ros_node, l2, "/pmt")
    wait(lambda: len(a.events) >= 5 and len(b.events) >= 5, 90, what="events from both")
    wait(lambda: a.n_samples >= 1600 and b.n_samples >= 800, 60, what="samples from both")
    assert all(len_ == 20 for _, len_, *_ in b.batches)
    assert {m.pulse_sent for _, m in a.events} == {False}
    assert {m.pulse_backend for _, m in a.events} == {"pigpio"}
    wait(lambda: (a.latest("pulse output") or (0,))[0] == 2, 30, what="pulse output ERROR")
    assert wait(lambda: b.latest("pulse output"), 30, what="/pmt pulse output")[0] == 0

    set_param = pbt.param_setter(ros_node, "/pmt/pbt_driver")
    assert set_param("threshold", 60.0).successful
    assert not set_param("hysteresis", 80.0).successful  # must stay below the threshold
    assert not set_param("port", "/dev/null").successful  # read-only
    n = len(b.events)
    wait(lambda: len(b.events) >= n + 3, 60, what="events after the change")


@pytest.mark.integration
def test_driver_serial_offload_end_to_end(pbt, ros_node, wait):
    mcu = FakeMcu()
    try:
        sim, link = pbt.sim("sim", "--seed", "4", "--pulse-rate", "30")
        wait(link.exists, 20, what="sim pty link")
        pbt.driver(port=link, pulse_backend="serial", pulse_port=mcu.port, pulse_mode="fixed",
                   pulse_width_us=250)  # fmt: skip
        c = pbt.Collector(ros_node, link)
        wait(lambda: len(c.events) >= 20, 90, what="20 events")
        sim.stop()
        evs = [m for _, m in c.events]
        flags = [m.pulse_sent for m in evs]
        first = flags.index(True)
        assert all(flags[first:]) and all(m.pulse_backend == "serial" for m in evs)
        wait(lambda: len([x for x in mcu.commands if x.type == offload.PULSE]) >= len(evs) - first,
             20, what="every sent pulse at the MCU")  # fmt: skip
        pulses = [x for x in mcu.commands if x.type == offload.PULSE]
        assert {x.width_us for x in pulses} == {250}
        # 20 events can arrive before the first 1 Hz diagnostics array does
        out = wait(lambda: c.latest("pulse output"), 20, what="pulse output diagnostics")
        assert out[0] == 0
    finally:
        mcu.close()
