"""The pbt_pulse firmware, built for the Uno, on an emulated ATmega328P (avr8js): pin widths,
the protocol as the sketch speaks it, the host's reply checks, and the driver end to end.

The board is firmware/emulator/run.js: the built .hex at real-time pace, USART0 on a TCP port
(pyserial's ``socket://``), OC1A's edges in emulated cycles. Skipped with the reason when the AVR
toolchain or node/npm is missing.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbt_driver import offload
from pbt_driver.pulse import SerialOffloadBackend
from pbt_driver.widthmap import WidthMap
from sensorhub_testing.files import read_jsonl
from sensorhub_testing.processes import start_on_free_port

FIRMWARE = Path(__file__).resolve().parents[3] / "firmware"
HEX = FIRMWARE / "pbt_pulse" / "build-uno" / "pbt_pulse.hex"
RUN_JS = FIRMWARE / "emulator" / "run.js"
ARDUINO_MK = Path("/usr/share/arduino/Arduino.mk")
F_CPU = 16e6
FINE_MAX_US = 32767


def tick_us(width_us: int) -> float:
    """Timer1's resolution for this width: clk/8 up to 32767 us, clk/64 above."""
    return 0.5 if width_us <= FINE_MAX_US else 4.0


@pytest.fixture(scope="session")
def firmware_hex() -> Path:
    if not shutil.which("avr-gcc") or not ARDUINO_MK.exists():
        pytest.skip("AVR toolchain missing (apt-get install gcc-avr avr-libc arduino-core-avr "
                    "arduino-mk): the firmware cannot be built")  # fmt: skip
    r = subprocess.run(["make", "-C", FIRMWARE, "build"], capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    if r.returncode != 0:
        pytest.fail(f"firmware build failed:\n{r.stdout}\n{r.stderr}")
    return HEX


@pytest.fixture(scope="session")
def emulator_hex(firmware_hex) -> Path:
    """The built firmware, with the emulator's node packages installed (npm ci, lock file)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm missing: the emulated ATmega328P (avr8js) cannot run")
    if not (RUN_JS.parent / "node_modules" / "avr8js").is_dir():
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=RUN_JS.parent,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        if r.returncode != 0:
            pytest.fail(f"npm ci in {RUN_JS.parent} failed:\n{r.stdout}\n{r.stderr}")
    return firmware_hex


@dataclass
class Board:
    """One emulated board: its TCP port, and OC1A's edges as recorded in emulated time."""

    port: int
    edges_path: Path
    stats_path: Path
    proc: object = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def edges(self) -> list[dict]:
        return read_jsonl(self.edges_path) if self.edges_path.exists() else []

    def pulses(self) -> list[tuple[dict, float]]:
        """(rising edge, width in us) of every complete pulse, in order."""
        e = self.edges()
        return [
            (a, (b["cycle"] - a["cycle"]) / F_CPU * 1e6)
            for a, b in itertools.pairwise(e)
            if a["level"] == 1 and b["level"] == 0
        ]

    def rising(self) -> int:
        return sum(1 for x in self.edges() if x["level"] == 1)

    def stats(self) -> dict:
        """The emulator's summary (written when it stops)."""
        self.proc.stop()
        return json.loads(self.stats_path.read_text())


@pytest.fixture
def board(procs, wait, tmp_path, emulator_hex):
    """start(*extra_args) -> Board."""

    def start(*extra, name="board"):
        edges, stats = tmp_path / f"{name}.edges.jsonl", tmp_path / f"{name}.stats.json"
        argv = [RUN_JS, "--hex", emulator_hex, "--edges", edges, "--stats", stats, *extra]
        p, port = start_on_free_port(procs, wait, name, argv, tmp_path)
        return Board(port, edges, stats, p)

    return start


@dataclass
class Host:
    """The test as the host, over a plain socket; replies go through the host's parser."""

    port: int
    sock: socket.socket = None
    parser: offload.StreamParser = field(default_factory=offload.reply_parser)
    replies: list[offload.Reply] = field(default_factory=list)

    def __post_init__(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.settimeout(0.05)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pulse(self, seq: int, width_us: int) -> None:
        self.send(offload.encode_command(offload.PULSE, seq, width_us, 1.0))

    def poll(self) -> list[offload.Reply]:
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            data = b""
        self.replies += [offload.decode_reply(f) for f in self.parser.feed(data)]
        return self.replies

    def reply(self, wait, seq: int) -> offload.Reply:
        found = wait(lambda: [r for r in self.poll() if r.seq == seq], 20, what=f"reply {seq}")
        return found[0]

    def close(self):
        self.sock.close()


@pytest.fixture
def host(board):
    """(board, host) connected to it."""
    b = board()
    h = Host(b.port)
    yield b, h
    h.close()


WIDTHS = [1, 2, 3, 10, 100, 1000, 10000, 32766, 32767, 32768, 32769, 50001, 100000, 262142,
          262143]  # fmt: skip


def test_firmware_builds_for_the_uno(firmware_hex):
    text = firmware_hex.read_text()
    assert text.startswith(":") and text.rstrip().endswith(":00000001FF")
    n = sum(int(line[1:3], 16) for line in text.splitlines() if line[7:9] == "00")
    assert 0 < n <= 32256  # Uno flash less the bootloader


def test_widths_across_both_prescaler_ranges_within_one_tick(host, wait):
    b, h = host
    for seq, w in enumerate(WIDTHS):
        h.pulse(seq, w)
        r = h.reply(wait, seq)
        assert (r.type, r.status) == (offload.PULSE, offload.STATUS_OK), (w, r)
        wait(lambda n=seq + 1: len(b.pulses()) >= n, 20, what=f"pulse of {w} us on OC1A")
    got = [width for _, width in b.pulses()]
    assert len(got) == len(WIDTHS)
    for w, g in zip(WIDTHS, got, strict=True):
        assert abs(g - w) <= tick_us(w), f"{w} us commanded, {g:.4f} us on the pin"


def test_ok_and_pong_replies_carry_the_command_sequence(host, wait):
    b, h = host
    seqs = [7, 200, 255, 0, 1]
    for s in seqs:
        h.send(offload.encode_command(offload.PING, s))
        h.pulse(s, 20)
        wait(lambda s=s: len([r for r in h.poll() if r.seq == s]) == 2, 20, what=f"seq {s}")
    assert [(r.type, r.seq, r.status) for r in h.replies] == [
        (kind, s, offload.STATUS_OK) for s in seqs for kind in (offload.PING, offload.PULSE)
    ]
    wait(lambda: len(b.pulses()) == len(seqs), 20, what="one pulse per PULSE")


def test_command_during_a_pulse_is_busy_and_makes_no_edge(host, wait):
    b, h = host
    h.pulse(1, 200000)
    h.pulse(2, 100)
    assert h.reply(wait, 1).status == offload.STATUS_OK
    assert h.reply(wait, 2).status == offload.STATUS_BUSY
    wait(lambda: len(b.pulses()) == 1, 20, what="the first pulse ending")
    h.pulse(3, 100)  # free again once the pulse is over
    assert h.reply(wait, 3).status == offload.STATUS_OK
    wait(lambda: len(b.pulses()) == 2, 20, what="the third pulse")
    assert [round(w) for _, w in b.pulses()] == [200000, 100]


def test_width_outside_range_is_bad_and_makes_no_edge(host, wait):
    b, h = host
    for seq, w in enumerate([0, 262144, 0xFFFFFFFF]):
        h.pulse(seq, w)
        r = h.reply(wait, seq)
        assert r.status == offload.STATUS_BAD, (w, r)
    h.send(offload.encode_command(offload.PING, 9))
    h.reply(wait, 9)  # everything before it was handled
    assert b.rising() == 0


def test_bad_crc_is_ignored_without_reply_or_edge(host, wait):
    b, h = host
    fr = bytearray(offload.encode_command(offload.PULSE, 1, 500, 1.0))
    fr[13] ^= 0x40
    h.send(bytes(fr))
    h.pulse(2, 500)  # handled in order: a reply to the bad frame would come first
    assert h.reply(wait, 2).status == offload.STATUS_OK
    wait(lambda: len(b.pulses()) == 1, 20, what="the good command's pulse")
    assert [r.seq for r in h.replies] == [2]


@pytest.mark.parametrize(
    "noise",
    [b"PB", b"\x00\xffPB\x01", b"PBPB", b"PPB\x01\x02", b"P", b"PB" + bytes(range(20)) + b"PB"],
    ids=["PB", "PB-after-junk", "PBPB", "PPB", "lone-P", "long-junk-PB"],
)
def test_noise_with_a_false_header_does_not_swallow_the_next_command(host, wait, noise):
    b, h = host
    h.send(noise + offload.encode_command(offload.PULSE, 42, 300, 1.0))
    r = h.reply(wait, 42)
    assert (r.type, r.status) == (offload.PULSE, offload.STATUS_OK)
    wait(lambda: len(b.pulses()) == 1, 20, what="the real command's pulse")
    assert abs(b.pulses()[0][1] - 300) <= 0.5


def test_host_backend_checks_reply_crc_and_sequence(board, wait):
    """The driver's serial backend over socket://: a reply corrupted on the wire (the emulator
    flips a bit of the 2nd reply's status) is dropped by its CRC, the others match their seq."""
    b = board("--corrupt-tx", str(offload.REPLY_LEN + 4))
    be = SerialOffloadBackend(WidthMap("fixed", width_us=100), b.url)
    be.start()
    try:
        wait(lambda: not be.degraded, 20, what="backend connected")
        recs = [be.command(100, 1.0, time.monotonic()) for _ in range(3)]
        wait(lambda: all(r.sent for r in recs), 20, what="commands written")
        wait(lambda: len(b.pulses()) == 3, 20, what="three pulses")

        def pulse_replies():
            return [r for r in be.recent if r.type == offload.PULSE]

        wait(lambda: be.replies["bad crc"] >= 1 and len(pulse_replies()) >= 2, 20,
             what="the corrupted reply dropped, the pulses' replies booked")  # fmt: skip
        # the corrupted reply's command stays unanswered; no other reply took its place
        wait(lambda: be.unanswered == 1, 20, what="exactly one command unanswered")
        assert be.replies["unmatched"] == 0 and be.replies["busy"] == be.replies["bad"] == 0
        assert {r.status for r in be.recent} == {offload.STATUS_OK}
        assert len({r.seq for r in be.recent}) == len(be.recent)
    finally:
        be.close()


def test_idle_board_sleeps_instead_of_spinning(board, wait):
    """The firmware sleeps between bytes and the emulator skips the sleep (an avr8js workaround
    reading a private field): if either stops, the idle board costs a full emulation."""
    b = board()
    h = Host(b.port)
    h.send(offload.encode_command(offload.PING, 1))
    h.reply(wait, 1)
    h.close()
    st = b.stats()
    assert st["emulated_s"] > 0.5
    assert st["slept_cycles"] > 0.9 * st["cycles"], st


@pytest.mark.integration
def test_driver_events_become_pulses_of_the_mapped_width_on_the_pin(pbt, board, ros_node, wait):
    """pbt_sim at 800 Hz -> pbt_driver (serial backend) -> the emulated board: every event whose
    pulse was sent appears once on OC1A, in order, with the width the width map gave."""
    b = board()
    sim, link = pbt.sim("sim", "--seed", "5", "--pulse-rate", "20")
    wait(link.exists, 20, what="sim pty link")
    wm = WidthMap("linear", min_us=100, max_us=19900, amp_lo=0, amp_hi=600, step_us=100)
    drv = pbt.driver(port=link, pulse_backend="serial", pulse_port=b.url, pulse_mode="linear",
                     pulse_width_min_us=100, pulse_width_max_us=19900, pulse_amp_lo=0.0,
                     pulse_amp_hi=600.0, pulse_width_step_us=100)  # fmt: skip
    c = pbt.Collector(ros_node, link)
    wait(lambda: len(c.events) >= 30 or not drv.alive(), 120, what="30 events")
    assert drv.alive(), drv.output()[-2000:]
    sim.stop()
    out = wait(lambda: c.latest("pulse output"), 20, what="pulse output diagnostics")
    assert out[0] == 0
    assert out[2]["replies busy"] == out[2]["replies bad"] == out[2]["replies unmatched"] == "0"
    drv.stop()  # nothing is commanded from here on
    h = Host(b.port)  # the board handles bytes in order: after this PING's reply, every command
    h.send(offload.encode_command(offload.PING, 1))  # the driver wrote has made its edges
    h.reply(wait, 1)
    h.close()
    wait(lambda: b.edges() and b.edges()[-1]["level"] == 0, 20, what="the last pulse ending")
    got = [w for _, w in b.pulses()]
    assert len(got) == b.rising()

    def sent():
        return [m for _, m in c.events if m.pulse_sent]

    # the last events may still be on their way over DDS
    wait(lambda: len(sent()) >= len(got), 20, what="an event for every pulse on the pin")
    evs = [m for _, m in c.events]
    assert len(sent()) == len(got) >= 25 and all(m.pulse_backend == "serial" for m in evs)
    flags = [m.pulse_sent for m in evs]
    assert all(flags[flags.index(True) :]), flags  # unsent only before the port was open
    assert all(m.pulse_width_us in wm.widths() for m in sent())
    for m, w in zip(sent(), got, strict=True):
        assert abs(w - m.pulse_width_us) <= tick_us(m.pulse_width_us), (m.pulse_width_us, w)
