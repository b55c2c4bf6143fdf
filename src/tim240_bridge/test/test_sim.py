"""tim240_sim on the wire as a raw TCP client sees it: answers, sFA, streaming, dialect, replay."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from tim240_bridge import captures, cola
from tim240_bridge import scandata as sd

pytestmark = pytest.mark.integration

PASSWORD = 0xF4724744
TIM781S = "20210125-tim781s-scandata.pcapng.json"
OTHER = {cola.ASCII: cola.BINARY, cola.BINARY: cola.ASCII}
SIM_DIALECT = {"ascii": cola.ASCII, "binary": cola.BINARY}


class Client:
    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.fr = cola.Framer()
        self.frames: list[cola.Frame] = []
        self.raw = bytearray()  # every byte received, in order

    def _recv(self, timeout: float) -> bytes | None:
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
        except TimeoutError:
            return None
        assert data, "connection closed"
        self.raw += data
        return data

    def next(self, timeout: float = 10.0) -> cola.Frame | None:
        end = time.monotonic() + timeout
        while not self.frames:
            left = end - time.monotonic()
            data = self._recv(left) if left > 0 else None
            if data is None:
                return None
            self.frames += self.fr.feed(data)
        return self.frames.pop(0)

    def silent(self, timeout: float) -> bool:
        """True when not one byte arrives within timeout."""
        return self._recv(timeout) is None

    def send(self, dialect, ctype, name, values=()):
        kinds = cola.DIALOGUE.get((ctype, name), ((), ()))[0] if values else ()
        self.s.sendall(cola.command(dialect, ctype, name, kinds, values))

    def ask(self, dialect, ctype, name, values=()):
        self.send(dialect, ctype, name, values)
        while True:  # the answer, skipping streamed scans
            f = self.next()
            if f is None or not sd.is_scandata(f.payload):
                return f

    def scans(self, n: int) -> list[tuple[str, sd.Scan]]:
        out = []
        while len(out) < n:
            f = self.next()
            assert f is not None, f"{len(out)} of {n} scans"
            if sd.is_scandata(f.payload):
                out.append((f.dialect, sd.decode(f.dialect, f.payload)))
        return out

    def close(self):
        self.s.close()


def test_dialogue_sfa_streaming_and_dialect_persistence(tim):
    _, port = tim.sim("--protocol", "ascii")
    c = Client(port)
    f = c.ask(cola.ASCII, "sRN", "SCdevicestate")
    assert f.dialect == cola.ASCII and f.payload == b"sRA SCdevicestate 1"
    f = c.ask(cola.ASCII, "sMN", "LMCstartmeas")  # not a TiM240 method
    assert cola.split_command(f.dialect, f.payload)[0] == "sFA"
    assert cola.SopasError(cola.sfa_code(f.dialect, f.payload[4:])).name == "METHODIN_UNKNOWNINDEX"
    f = c.ask(cola.ASCII, "sWN", "LMDscandatacfg", (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1))
    assert f.payload.startswith(b"sFA")  # writes need SetAccessMode first
    f = c.ask(cola.ASCII, "sMN", "SetAccessMode", (3, PASSWORD))
    assert f.payload == b"sAN SetAccessMode 1"
    f = c.ask(cola.ASCII, "sRN", "FirmwareVersion")
    assert f.payload == b"sRA FirmwareVersion 5 V1.10"
    f = c.ask(cola.ASCII, "sRN", "LMPoutputRange")
    assert f.payload == b"sRA LMPoutputRange 1 2710 FFEDB080 124F80"
    f = c.ask(cola.ASCII, "sMN", "Run")
    assert f.payload == b"sAN Run 1"
    assert c.next(timeout=0.5) is None  # no scans before sEN LMDscandata 1
    f = c.ask(cola.ASCII, "sEN", "LMDscandata", (1,))
    assert f.payload == b"sEA LMDscandata 1"
    f = c.next()
    s = sd.decode(f.dialect, f.payload)
    assert f.dialect == cola.ASCII and len(s.channel("DIST1").values) == 241
    assert s.channel("DIST1").start_angle == -1200000 and s.scan_frequency == 1500
    # switch to CoLa-B: answered in CoLa-A, then CoLa-B from there on, also after a reconnect
    assert c.ask(cola.ASCII, "sMN", "SetAccessMode", (3, PASSWORD)).payload.endswith(b" 1")
    f = c.ask(cola.ASCII, "sWN", "EIHstCola", (1,))
    assert (f.dialect, f.payload) == (cola.ASCII, b"sWA EIHstCola")
    c.close()
    c2 = Client(port)
    f = c2.ask(cola.BINARY, "sRN", "SCdevicestate")
    assert f.dialect == cola.BINARY and f.payload == b"sRA SCdevicestate \x01"
    c2.close()


def assert_silent_then_answers(c: Client, spoken: str, request: tuple):
    """A request in the other dialect gets no byte back; the same request in the spoken dialect
    is then answered, and it is the first thing on the wire (TCP keeps order: an answer to the
    first request would have come before it)."""
    c.send(OTHER[spoken], *request)
    assert c.silent(3.0), f"answered a {cola.DIALECT_NAMES[OTHER[spoken]]} request: {c.raw!r}"
    f = c.ask(spoken, *request)
    assert f is not None and f.dialect == spoken
    assert bytes(c.raw) == cola.frame(spoken, f.payload)
    c.raw.clear()
    return f


@pytest.mark.parametrize("sim_dialect", ["ascii", "binary"])
def test_request_in_the_other_dialect_gets_no_answer(tim, sim_dialect):
    _, port = tim.sim("--protocol", sim_dialect)
    spoken = SIM_DIALECT[sim_dialect]
    c = Client(port)
    f = assert_silent_then_answers(c, spoken, ("sRN", "SCdevicestate"))
    assert cola.split_command(f.dialect, f.payload)[1] == "SCdevicestate"
    # not even an sFA for a command the device does not know, nor an access refusal
    f = assert_silent_then_answers(c, spoken, ("sMN", "LMCstartmeas"))
    assert cola.split_command(f.dialect, f.payload)[0] == "sFA"
    f = assert_silent_then_answers(c, spoken, ("sMN", "SetAccessMode", (3, PASSWORD)))
    assert cola.decode_fields(f.dialect, ("u8",), cola.split_command(f.dialect, f.payload)[2])[0]
    c.close()


@pytest.mark.parametrize("start,want", [("ascii", cola.BINARY), ("binary", cola.ASCII)])
def test_sick_scan_xd_probe_finds_the_dialect_then_switches_it(tim, start, want):
    """sick_scan_xd's start-up: no answer in its dialect, the other one answers; it switches the
    device with EIHstCola (answered in the old dialect) and from then on only its dialect works."""
    _, port = tim.sim("--protocol", start)
    old = SIM_DIALECT[start]
    c = Client(port)
    assert_silent_then_answers(c, old, ("sMN", "SetAccessMode", (3, PASSWORD)))
    f = c.ask(old, "sWN", "EIHstCola", (int(want == cola.BINARY),))
    assert f.dialect == old and cola.split_command(old, f.payload)[:2] == ("sWA", "EIHstCola")
    c.raw.clear()
    f = assert_silent_then_answers(c, want, ("sRN", "SCdevicestate"))
    assert cola.decode_fields(want, ("u8",), cola.split_command(want, f.payload)[2]) == [1]
    c.close()


def start_streaming(c: Client, dialect: str) -> None:
    assert c.ask(dialect, "sMN", "SetAccessMode", (3, PASSWORD)) is not None
    f = c.ask(dialect, "sEN", "LMDscandata", (1,))
    assert cola.split_command(dialect, f.payload)[:2] == ("sEA", "LMDscandata")


def nearest_captured(cap: sd.Scan, name: str, angle_deg: float, shift_deg: float = -90.0):
    """The capture's value of the beam nearest to angle_deg (ROS frame) and its distance."""
    ch = cap.channel(name)
    ang = (ch.start_angle + ch.step * np.arange(len(ch.values))) * 1e-4 + shift_deg
    j = int(np.argmin(np.abs(ang - angle_deg)))
    return int(ch.values[j]), abs(ang[j] - angle_deg)


@pytest.mark.parametrize("sim_dialect", ["ascii", "binary"])
def test_replay_sends_a_capture_as_a_tim240_would(tim, capture_path, sim_dialect):
    cap = capture_path(TIM781S)
    recorded = [sd.decode(cola.BINARY, p) for p in captures.scandata_payloads(cap)]
    assert len(recorded[0].channel("DIST1").values) == 811  # TiM781S: -45..225 deg at 1/3 deg
    _, port = tim.sim("--protocol", sim_dialect, "--replay", cap)
    dialect = SIM_DIALECT[sim_dialect]
    c = Client(port)
    start_streaming(c, dialect)
    for i, (d, s) in enumerate(c.scans(4)):  # a fresh emulator replays from the first telegram
        assert d == dialect
        assert (s.scan_frequency, s.measurement_frequency) == (1500, 54)  # 15 Hz, 5400 Hz
        assert s.serial == 23160042 and s.encoders == [] and s.time is None
        for name in ("DIST1", "RSSI1"):
            ch = s.channel(name)
            assert (ch.start_angle, ch.step, len(ch.values), ch.bits) == (-1200000, 10000, 241, 16)
            for k, v in enumerate(ch.values.tolist()):
                want, off = nearest_captured(recorded[i], name, -120.0 + k)
                assert off <= 0.3333 / 2 and v == want, (i, name, k)
    c.close()


def test_replay_unchanged_sends_the_other_models_telegrams(tim, capture_path):
    cap = capture_path(TIM781S)
    recorded = [sd.decode(cola.BINARY, p) for p in captures.scandata_payloads(cap)]
    _, port = tim.sim("--protocol", "binary", "--replay", cap, "--replay-unchanged")
    c = Client(port)
    start_streaming(c, cola.BINARY)
    for i, (_, s) in enumerate(c.scans(3)):
        for name in ("DIST1", "RSSI1"):
            got, rec = s.channel(name), recorded[i].channel(name)
            assert (got.start_angle, got.step) == (rec.start_angle, rec.step) == (-450000, 3333)
            assert got.values.tolist() == rec.values.tolist()
        assert s.measurement_frequency == recorded[i].measurement_frequency
    c.close()
