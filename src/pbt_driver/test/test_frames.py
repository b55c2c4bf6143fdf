"""Decoders: garbage, partial frames, overlong lines, non-numeric, NaN/inf, CRC errors."""

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbt_driver.frames import (
    FRAME_LEN,
    AsciiDecoder,
    BinaryDecoder,
    ConfigError,
    MalformedFrameError,
    crc16,
    encode_binary,
    make_decoder,
    parse_ascii_line,
    parse_binary_frame,
)


def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value


def test_binary_roundtrip_and_layout():
    fr = encode_binary(0x1234, 1.5)
    assert len(fr) == FRAME_LEN
    assert fr[:2] == b"\xa5\x5a"
    assert struct.unpack("<H", fr[2:4])[0] == 0x1234
    assert parse_binary_frame(fr) == (0x1234, 1.5)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00" + encode_binary(1, 2.0)[1:], "sync"),
        (encode_binary(1, 2.0)[:-1] + b"\x00", "crc"),
        (encode_binary(1, math.nan), "non_finite"),
        (encode_binary(1, math.inf), "non_finite"),
        (encode_binary(1, 2.0)[:9], "length"),
    ],
)
def test_parse_binary_frame_errors(frame, reason):
    with pytest.raises(MalformedFrameError) as e:
        parse_binary_frame(frame)
    assert e.value.reason == reason


def frames(n, start=0):
    return b"".join(encode_binary(start + i, float(i)) for i in range(n))


def test_binary_garbage_counted_exactly():
    d = BinaryDecoder()
    garbage = bytes(range(0x80, 0x90))
    out = d.feed(frames(3) + garbage + frames(3, 3))
    assert out.keys == [0, 1, 2, 3, 4, 5]
    assert d.stats.discarded_bytes == len(garbage)
    assert d.stats.malformed_total == 0


def test_binary_byte_by_byte_partial_frames():
    d = BinaryDecoder()
    keys, vals = [], []
    for b in frames(20):
        o = d.feed(bytes([b]))
        keys += o.keys
        vals += o.values
    assert keys == list(range(20))
    assert vals == [float(i) for i in range(20)]
    assert d.stats.discarded_bytes == 0


def test_binary_crc_error_counts_one_malformed_and_resyncs():
    d = BinaryDecoder()
    bad = bytearray(encode_binary(3, 3.0))
    bad[5] ^= 0x10
    out = d.feed(frames(3) + bytes(bad) + frames(3, 4))
    assert out.keys == [0, 1, 2, 4, 5, 6]
    assert d.stats.malformed == {"crc": 1}
    assert d.stats.discarded_bytes == FRAME_LEN


def test_binary_nonfinite_dropped():
    d = BinaryDecoder()
    out = d.feed(
        frames(2) + encode_binary(2, math.nan) + encode_binary(3, -math.inf) + frames(1, 4)
    )
    assert out.keys == [0, 1, 4]
    assert d.stats.malformed == {"non_finite": 2}


def test_binary_alignment_at_open_is_not_a_fault():
    d = BinaryDecoder()
    out = d.feed(frames(2)[4:] + frames(2, 2))
    assert out.keys == [1, 2, 3]
    assert d.stats.discarded_bytes == 0
    assert d.stats.discarded_at_open == 6
    assert d.stats.malformed_total == 0


def test_binary_sync_pattern_inside_payload():
    # seq 0x5AA5 puts A5 5A inside the frame: must not confuse an aligned stream
    d = BinaryDecoder()
    out = d.feed(frames(3, 0x5AA4))
    assert out.keys == [0x5AA4, 0x5AA5, 0x5AA6]


@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.binary(max_size=30))
def test_binary_any_chunking_same_result(cuts, junk):
    junk = bytes(b for b in junk if b != 0xA5)
    data = frames(10) + junk + frames(10, 10)
    ref = BinaryDecoder().feed(data)
    d = BinaryDecoder()
    got, pos, i = [], 0, 0
    while pos < len(data):
        c = cuts[i % len(cuts)]
        got += d.feed(data[pos : pos + c]).keys
        pos += c
        i += 1
    assert got == ref.keys == list(range(20))
    assert d.stats.discarded_bytes == len(junk)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"abc", "non_numeric"),
        (b"nan", "non_finite"),
        (b"inf", "non_finite"),
        (b"-inf", "non_finite"),
        (b"1.2.3", "non_numeric"),
        (b"1,2", "columns"),
        (b"", "columns"),
    ],
)
def test_parse_ascii_line_errors(line, reason):
    with pytest.raises(MalformedFrameError) as e:
        parse_ascii_line(line, "value")
    assert e.value.reason == reason


def test_parse_ascii_layouts():
    assert parse_ascii_line(b" 12.5 ", "value") == (None, 12.5)
    assert parse_ascii_line(b"7,12.5", "seq,value") == (7, 12.5)
    assert parse_ascii_line(b"1000 12", "time_us,value") == (1000, 12.0)
    with pytest.raises(MalformedFrameError):
        parse_ascii_line(b"x,12", "seq,value")
    with pytest.raises(MalformedFrameError):
        parse_ascii_line(b"-1,12", "seq,value")


def test_ascii_stream_counts_every_bad_line_as_a_slot():
    d = AsciiDecoder("value", max_line=16)
    d._first = False  # as if the port had been open from a line start
    data = b"1\n2\nabc\n3\r\nnan\n" + b"9" * 40 + b"\n4\n\n5\n"
    out = d.feed(data)
    assert out.values == [1.0, 2.0, 3.0, 4.0, 5.0]
    # line numbers: malformed, overlong lines keep their slot; the blank line does not
    assert out.keys == [1, 2, 4, 7, 8]
    assert d.stats.malformed == {"non_numeric": 1, "non_finite": 1, "overlong": 1}


def test_ascii_first_partial_line_is_dropped_not_counted():
    d = AsciiDecoder("value")
    out = d.feed(b"23\n512.5\n513\n")
    assert out.values == [512.5, 513.0]
    assert d.stats.malformed_total == 0
    assert d.stats.discarded_bytes == 0
    assert d.stats.discarded_at_open == 3


def test_ascii_overlong_across_feeds():
    d = AsciiDecoder("value", max_line=10)
    d._first = False
    got = []
    for chunk in (b"1\n" + b"5" * 8, b"5" * 8, b"5" * 8 + b"\n2\n"):
        got += d.feed(chunk).values
    assert got == [1.0, 2.0]
    assert d.stats.malformed == {"overlong": 1}


def test_ascii_garbage_prefix_corrupts_one_line():
    d = AsciiDecoder("seq,value")
    d._first = False
    out = d.feed(b"1,10\n\x80\x81\x822,11\n3,12\n")
    assert out.keys == [1, 3]
    assert d.stats.malformed_total == 1


@given(st.lists(st.integers(1, 20), min_size=1, max_size=20))
def test_ascii_any_chunking_same_result(cuts):
    data = b"".join(f"{i},{i * 0.5}\n".encode() for i in range(50)) + b"bad\n51,1\n"
    ref = AsciiDecoder("seq,value")
    ref._first = False
    r = ref.feed(data)
    d = AsciiDecoder("seq,value")
    d._first = False
    keys, pos, i = [], 0, 0
    while pos < len(data):
        keys += d.feed(data[pos : pos + cuts[i % len(cuts)]]).keys
        pos += cuts[i % len(cuts)]
        i += 1
    assert keys == r.keys
    assert d.stats.malformed == ref.stats.malformed == {"columns": 1}


def test_make_decoder_rejects_unknown():
    with pytest.raises(ConfigError):
        make_decoder("json")
    with pytest.raises(ConfigError):
        make_decoder("ascii", "value,seq")


def test_block_encoder_matches_single_frames():
    import numpy as np

    from pbt_driver.frames import encode_binary_block

    seqs = np.array([0, 1, 65535, 65536 + 7])
    vals = np.array([0.5, -3.0, 1e6, 512.25])
    blob = encode_binary_block(seqs, vals)
    assert blob == b"".join(
        encode_binary(int(s), float(v)) for s, v in zip(seqs, vals, strict=True)
    )
