"""The SDK->client stream's per-frame verdicts and the replay bookkeeping, without sockets."""

from __future__ import annotations

import json
import struct

from foxglove_gateway.replay import SYNC_PREFIX, Replay, message_data
from foxglove_gateway.wsframes import FrameScanner, ServerStream, encode_frame

HEAD = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


def _frames_of(data: bytes) -> list:
    got: list = []
    FrameScanner(lambda o, _f, p: got.append((o, p)), binary_prefix=13).feed(data)
    return got


def test_dropped_and_replaced_frames_leave_no_byte_in_any_chunking():
    keep, drop = message_data(1, 5, b"k" * 300), message_data(2, 6, b"d" * 70000)
    text = encode_frame(0x1, json.dumps({"op": "status"}).encode())
    pong = encode_frame(0xA, b"ours")
    stream = HEAD + keep + drop + text + pong + drop + keep + encode_frame(0xA, b"theirs")

    def decide(opcode: int, prefix: bytes):
        if opcode == 0xA:
            return b"REPLACED" if prefix == b"ours" else True
        return int.from_bytes(prefix[1:5], "little") != 2

    want = HEAD + keep + text + b"REPLACED" + keep + encode_frame(0xA, b"theirs")
    for step in (1, 2, 5, 13, 14, 64, 1000, len(stream)):
        ss = ServerStream(lambda _t: None, decide)
        out = b"".join(
            bytes(b"".join(ss.forward(memoryview(stream[i : i + step]))))
            for i in range(0, len(stream), step)
        )
        assert out == want, step
        assert ss.dropped == 2 and ss.binary == 2 and ss.at_boundary


def test_a_frame_goes_on_whole_when_nothing_is_dropped():
    data = HEAD + message_data(1, 1, b"x" * 100) + encode_frame(0x1, b"{}")
    pieces = ServerStream(lambda _t: None, lambda _o, _p: True).forward(memoryview(data))
    assert len(pieces) == 1 and bytes(pieces[0]) == data  # one write, no copy


def test_replay_waits_for_its_pong_then_drops_the_live_duplicates():
    sent: list = []
    retained = {7: (20, [(10, b"a"), (20, b"b")])}
    r = Replay(retained.get, sent.append)
    r.subscribed({1: 7, 2: 8}, [1, 2])  # channel 8 retains nothing: no replay
    assert len(sent) == 1 and list(r.marks) == [1]
    ping = _frames_of(sent[0])  # masked client frame
    assert ping[0][0] == 0x9 and ping[0][1].startswith(SYNC_PREFIX)
    assert r.duplicate(1, 5)  # live before the pong: the replay will carry it
    assert r.synced(b"someone else's", {1: 7}) is None
    frames = _frames_of(r.synced(ping[0][1], {1: 7}))
    assert [(p[0], struct.unpack_from("<IQ", p, 1)) for _o, p in frames] == [
        (1, (1, 10)),
        (1, (1, 20)),
    ]
    assert r.last_count == 2
    assert r.duplicate(1, 20) and not r.duplicate(1, 21) and not r.duplicate(1, 20)
    assert not r.marks  # nothing to check after the first newer frame
