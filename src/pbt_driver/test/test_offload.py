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
