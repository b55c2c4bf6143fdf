"""tim240_sim on the wire, as a raw TCP client sees it: answers, sFA, streaming, dialect."""

from __future__ import annotations

import socket
import time

import pytest

from tim240_bridge import cola
from tim240_bridge import scandata as sd

pytestmark = pytest.mark.integration


class Client:
    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.fr = cola.Framer()
        self.frames: list[cola.Frame] = []

    def next(self, timeout: float = 10.0) -> cola.Frame | None:
        end = time.monotonic() + timeout
        while not self.frames:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(65536)
            except TimeoutError:
                return None
            assert data, "connection closed"
            self.frames += self.fr.feed(data)
        return self.frames.pop(0)

    def ask(self, dialect, ctype, name, values=()):
        kinds = cola.DIALOGUE.get((ctype, name), ((), ()))[0] if values else ()
        self.s.sendall(cola.command(dialect, ctype, name, kinds, values))
        while True:  # the answer, skipping streamed scans
            f = self.next()
            if f is None or not sd.is_scandata(f.payload):
                return f

    def close(self):
        self.s.close()


def test_dialogue_sfa_streaming_and_dialect_persistence(tim):
    _, port = tim.sim("--protocol", "ascii")
    c = Client(port)
    f = c.ask(cola.BINARY, "sRN", "SCdevicestate")  # asked in CoLa-B, answered in CoLa-A
    assert f.dialect == cola.ASCII and f.payload == b"sRA SCdevicestate 1"
    f = c.ask(cola.ASCII, "sMN", "LMCstartmeas")  # not a TiM240 method
    assert cola.split_command(f.dialect, f.payload)[0] == "sFA"
    assert cola.SopasError(cola.sfa_code(f.dialect, f.payload[4:])).name == "METHODIN_UNKNOWNINDEX"
    f = c.ask(cola.ASCII, "sWN", "LMDscandatacfg", (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1))
    assert f.payload.startswith(b"sFA")  # writes need SetAccessMode first
    f = c.ask(cola.ASCII, "sMN", "SetAccessMode", (3, 0xF4724744))
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
    assert c.ask(cola.ASCII, "sMN", "SetAccessMode", (3, 0xF4724744)).payload.endswith(b" 1")
    f = c.ask(cola.ASCII, "sWN", "EIHstCola", (1,))
    assert (f.dialect, f.payload) == (cola.ASCII, b"sWA EIHstCola")
    c.close()
    c2 = Client(port)
    f = c2.ask(cola.ASCII, "sRN", "SCdevicestate")
    assert f.dialect == cola.BINARY and f.payload == b"sRA SCdevicestate \x01"
    c2.close()
