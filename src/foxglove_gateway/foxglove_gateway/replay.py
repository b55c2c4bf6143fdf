"""Retained messages for a late subscriber (what foxglove_bridge does for latched topics), sent
by the front (no I/O here).

foxglove-sdk cannot send to one client from Python: a listener is told the client's id, while
``Channel.log`` takes a sink id, which the binding never exposes. So the front writes the
retained messages into the client's stream itself, as message data frames of the new
subscription. It does so once the SDK has registered the subscription, so that nothing logged
later is missing and nothing earlier comes twice: right after the client's subscribe the front
sends the SDK a ping of its own. The SDK handles one connection's frames in order and answers
the ping only after the subscribe (tungstenite's automatic pong; ``test_replay_sync`` fails if
that changes). At that pong, which goes no further, the front takes the channel's retained
messages (``retained_of``: the newest log time and the messages up to it) and sends them where
the pong was. Live frames of the subscription logged up to that log time are the replay's own
messages again and are dropped, as are live frames before the pong.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from foxglove_gateway.wsframes import OP_BINARY, OP_PING, encode_frame

SYNC_PREFIX = b"sensorhub-sync-"
# channel id -> (newest log time, [(log time, CDR bytes)...] oldest first), None: not retained
RetainedOf = Callable[[int], "tuple[int, list[tuple[int, bytes]]] | None"]


def message_data(subscription_id: int, log_time: int, data: bytes) -> bytes:
    """A server message data frame (Foxglove WebSocket protocol, binary opcode 1)."""
    return encode_frame(OP_BINARY, b"\x01" + struct.pack("<IQ", subscription_id, log_time) + data)


class Replay:
    """One connection's replays: subscriptions waiting for the SDK's pong, and the newest log
    time replayed per subscription (live frames up to it are duplicates)."""

    def __init__(self, retained_of: RetainedOf | None, send_up: Callable[[bytes], None]):
        self._retained_of = retained_of
        self._send_up = send_up
        self._waiting: dict[bytes, list[int]] = {}  # ping payload -> subscription ids
        self.marks: dict[int, int | None] = {}  # subscription id -> replayed up to (None: waiting)
        self._sent = 0
        self.last_count = 0  # messages in the last replay

    def subscribed(self, subscriptions: dict[int, int], sids: list[int]) -> None:
        """New subscriptions (id -> channel id in ``subscriptions``): a ping for those whose
        channel retains messages."""
        if self._retained_of is None:
            return
        mine = [s for s in sids if self._retained_of(subscriptions.get(s, -1)) is not None]
        if not mine:
            return
        self._sent += 1
        token = SYNC_PREFIX + str(self._sent).encode()
        self._waiting[token] = mine
        for sid in mine:
            self.marks[sid] = None
        self._send_up(encode_frame(OP_PING, token, mask=os.urandom(4)))

    def synced(self, pong: bytes, subscriptions: dict[int, int]) -> bytes | None:
        """The frames replacing our pong (None: not our pong, it goes on to the client)."""
        sids = self._waiting.pop(pong, None)
        if sids is None:
            return None
        self.last_count = 0
        return b"".join(self._frames(sid, subscriptions.get(sid)) for sid in sids)

    def _frames(self, sid: int, channel_id: int | None) -> bytes:
        got = None
        if channel_id is not None and sid in self.marks and self._retained_of is not None:
            got = self._retained_of(channel_id)
        if got is None:
            self.marks.pop(sid, None)
            return b""
        mark, messages = got
        self.marks[sid] = mark
        self.last_count += len(messages)
        return b"".join(message_data(sid, t, data) for t, data in messages)

    def duplicate(self, sid: int, log_time: int) -> bool:
        """True for a live frame the replay carries (or will carry)."""
        if sid not in self.marks:
            return False
        mark = self.marks[sid]
        if mark is None or log_time <= mark:
            return True
        del self.marks[sid]  # the channel's log times only grow: no duplicate after this one
        return False

    def unsubscribed(self, sid: int) -> None:
        self.marks.pop(sid, None)
