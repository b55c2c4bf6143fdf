"""Serial offload protocol frames."""

import pytest

from pbt_driver import offload


def test_command_roundtrip():
    fr = offload.encode_command(offload.PULSE, 300, 750, 123.5)
    assert len(fr) == offload.CMD_LEN and fr[:2] == b"PB"
    c = offload.decode_command(fr)
    assert (c.type, c.seq, c.width_us, c.amplitude) == (offload.PULSE, 300 & 0xFF, 750, 123.5)


def test_bad_crc_rejected():
    fr = bytearray(offload.encode_command(offload.PULSE, 1, 100))
    fr[6] ^= 1
    with pytest.raises(offload.OffloadFrameError):
        offload.decode_command(bytes(fr))


def test_parser_resyncs_over_noise_and_splits():
    p = offload.reply_parser()
    r1 = offload.encode_reply(offload.PULSE, 1, offload.STATUS_OK)
    r2 = offload.encode_reply(offload.PING, 2, offload.STATUS_BUSY)
    data = b"\x00BPx" + r1 + b"junk" + r2
    got = p.feed(data[:9]) + p.feed(data[9:])
    assert got == [r1, r2]


def test_reply_decodes_and_rejects_corruption():
    fr = offload.encode_reply(offload.PULSE, 9, offload.STATUS_BUSY)
    assert offload.decode_reply(fr) == offload.Reply(offload.PULSE, 9, offload.STATUS_BUSY)
    bad = bytearray(fr)
    bad[4] ^= 1
    with pytest.raises(offload.OffloadFrameError, match="crc"):
        offload.decode_reply(bytes(bad))
    with pytest.raises(offload.OffloadFrameError, match="length or sync"):
        offload.decode_reply(fr[:-1])


def test_parser_finds_a_real_reply_inside_a_false_one():
    """A stray 'BP' whose CRC fails gives up one byte: the real reply inside it is kept."""
    p = offload.reply_parser()
    r = offload.encode_reply(offload.PULSE, 3, offload.STATUS_OK)
    assert p.feed(b"BP\x81" + r) == [r]
    assert p.bad == 1
