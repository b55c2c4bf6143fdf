"""Framing, typed fields and malformed input: counted, skipped, bounded memory, no hang."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tim240_bridge import cola
from tim240_bridge import scandata as sd


def _scan_frame(dialect=cola.BINARY, n=241) -> bytes:
    import numpy as np

    s = sd.Scan(
        serial=7,
        channels16=[
            sd.Channel("DIST1", 1.0, 0.0, -1200000, 10000, np.arange(n, dtype=np.uint16) + 500, 16)
        ],
    )
    return cola.frame(dialect, sd.encode(dialect, s))


def test_checksum_is_xor():
    data = os.urandom(1000)
    x = 0
    for b in data:
        x ^= b
    assert cola.checksum(data) == x


def test_bad_checksum_counted_and_skipped():
    good = _scan_frame()
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    fr = cola.Framer()
    out = fr.feed(bytes(bad) + good)
    assert len(out) == 1 and fr.stats.checksum_errors == 1
    assert fr.stats.discarded_bytes == len(bad)


def test_truncated_frame_then_good_frame():
    good = _scan_frame()
    fr = cola.Framer()
    out = fr.feed(good[: len(good) // 2] + good + good)
    assert len(out) == 2 and fr.stats.truncated == 1
    assert fr.stats.discarded_bytes == len(good) // 2


def test_oversized_length_never_allocated():
    fr = cola.Framer()
    evil = cola.MAGIC + struct.pack(">I", 0xFFFFFFF0) + b"x" * 100
    out = fr.feed(evil + _scan_frame())
    assert len(out) == 1 and fr.stats.oversized == 1
    assert fr.pending == 0


def test_zero_length_is_malformed():
    fr = cola.Framer()
    out = fr.feed(cola.MAGIC + b"\x00\x00\x00\x00" + _scan_frame())
    assert len(out) == 1 and fr.stats.oversized == 1


def test_cola_a_garbage_and_mixed_dialects():
    fr = cola.Framer()
    junk = b"\x02sRA Foo \x01\x7f junk \x03"
    out = fr.feed(junk + _scan_frame(cola.ASCII) + b"noise" + _scan_frame(cola.BINARY))
    assert [f.dialect for f in out] == [cola.ASCII, cola.BINARY]
    assert fr.stats.ascii_garbage == 1
    # an ASCII frame cut by the next STX is a truncated frame
    fr2 = cola.Framer()
    out = fr2.feed(b"\x02sSN LMDscandata 1 1" + _scan_frame(cola.ASCII))
    assert len(out) == 1 and fr2.stats.truncated == 1


def test_unknown_command_decodes_as_sfa_and_names_it():
    d = cola.Framer().feed(cola.sfa(cola.BINARY, 3))[0]
    ctype, _, rest = cola.split_command(d.dialect, d.payload)
    assert ctype == "sFA"
    e = cola.SopasError(cola.sfa_code(d.dialect, rest), "sRN Foo")
    assert e.name == "VARIABLE_UNKNOWNINDEX" and "sRN Foo" in str(e)
    a = cola.Framer().feed(cola.sfa(cola.ASCII, 2))[0]
    assert cola.sfa_code(a.dialect, cola.split_command(a.dialect, a.payload)[2]) == 2


def test_noise_10mb_bounded_memory_no_hang():
    rnd = os.urandom(10 * 1024 * 1024)
    fr = cola.Framer()
    peak = 0
    frames = 0
    for i in range(0, len(rnd), 65536):
        frames += len(fr.feed(rnd[i : i + 65536]))
        peak = max(peak, fr.pending)
    assert peak <= fr.max_payload + 9 + 65536
    out = fr.feed(_scan_frame() * 3)
    # the good frames after the noise are found (the first may be swallowed by a pending
    # pseudo-frame the noise started; the others must come through)
    assert len(out) >= 2
    assert fr.stats.discarded_bytes >= len(rnd) - fr.max_payload - 9


@given(kinds_values=st.lists(st.one_of(
    st.tuples(st.just("u8"), st.integers(0, 255)),
    st.tuples(st.just("u16"), st.integers(0, 65535)),
    st.tuples(st.just("u32"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("i32"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("str"), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                      max_size=20)),
), max_size=8), dialect=st.sampled_from([cola.BINARY, cola.ASCII]))  # fmt: skip
def test_fields_roundtrip(kinds_values, dialect):
    kinds = [k for k, _ in kinds_values]
    values = [v for _, v in kinds_values]
    raw = cola.encode_fields(dialect, kinds, values)
    assert cola.decode_fields(dialect, kinds, raw) == values


def test_dialogue_command_shapes():
    f = cola.Framer().feed(cola.command(cola.ASCII, "sMN", "SetAccessMode", ("u8", "u32"),
                                        (3, 0xF4724744)))[0]  # fmt: skip
    assert f.payload == b"sMN SetAccessMode 3 F4724744"
    f = cola.Framer().feed(cola.command(cola.BINARY, "sRN", "SCdevicestate"))[0]
    assert f.payload == b"sRN SCdevicestate"
    f = cola.Framer().feed(
        cola.command(
            cola.ASCII, "sWN", "LMPoutputRange", cola.LMPOUTPUTRANGE, (1, 10000, -1200000, 1200000)
        )
    )[0]
    assert f.payload == b"sWN LMPoutputRange 1 2710 FFEDB080 124F80"
    assert cola.decode_fields(cola.ASCII, cola.LMPOUTPUTRANGE, b"1 2710 -1200000 +1200000") == [
        1,
        10000,
        -1200000,
        1200000,
    ]


def test_short_fields_raise_typed_errors():
    with pytest.raises(cola.FieldError):
        cola.decode_fields(cola.BINARY, ("u32",), b"\x00")
    with pytest.raises(cola.FieldError):
        cola.decode_fields(cola.ASCII, ("u8", "u8"), b"1")
    with pytest.raises(cola.FieldError):
        cola.decode_fields(cola.ASCII, ("u8",), b"zz")
    with pytest.raises(sd.ScanDataError):
        sd.decode(cola.BINARY, b"sSN LMDscandata \x00\x01")
    with pytest.raises(sd.ScanDataError):
        sd.decode(cola.ASCII, b"sSN LMDscandata 1 1 zz")
