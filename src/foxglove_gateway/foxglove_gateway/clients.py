"""Per-client figures and the client/server frame tracking of one connection (no I/O).

The tracker also repairs one SDK race (see :class:`ClientTracker`), re-sends retained messages
to a late subscriber (:class:`Replay`) and picks the frames a backed-up client loses first: it
is the only place that reads the content of the SDK's frames, and then only the few text frames
and the message data headers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foxglove_gateway.replay import Replay, RetainedOf
from foxglove_gateway.wsframes import (
    OP_BINARY,
    OP_PONG,
    OP_TEXT,
    FrameScanner,
    ServerStream,
    Verdict,
    encode_frame,
)

UNKNOWN_CHANNEL = "Unknown channel ID: "  # the SDK's status message


@dataclass
class ClientFigures:
    """One client's line in a :class:`~foxglove_gateway.wsfront.FrontSnapshot`."""

    id: int
    peer: str
    connected_s: float
    subscriptions: int
    offered: int  # messages the gateway logged on its channels while it was subscribed
    delivered: int  # message data frames it was sent
    delivered_pct: float
    frames: int
    bytes: int
    pending_bytes: int
    resubscribed: int
    unknown_subscribes: int
    dropped: int  # high-rate frames dropped while it was backed up
    replayed: int  # retained messages re-sent on subscribing


@dataclass
class ClientStats:
    """What one connected client asked for and got (ints under the GIL, read by any thread)."""

    id: int
    peer: str
    connected_at: float
    subscriptions: dict[int, int] = field(default_factory=dict)  # subscription id -> channel id
    offered_base: dict[int, int] = field(default_factory=dict)  # subscription id -> offered then
    offered_closed: int = 0  # offered on subscriptions since removed
    messages_down: int = 0  # binary (message data) frames forwarded
    frames_down: int = 0  # server frames forwarded (messages, advertisements, status)
    bytes_down: int = 0
    pending_bytes: int = 0  # in the front's write buffer towards this client
    resubscribed: int = 0  # subscribes repeated after the SDK's "Unknown channel ID"
    unknown_subscribes: int = 0  # subscribes to channels never (or long ago) advertised
    dropped: int = 0  # droppable frames not sent while the client was backed up
    replayed: int = 0  # retained messages re-sent to it on subscribing
    last_rx: float = 0.0  # monotonic time of the last bytes from the client

    def offered(self, offered_of: Callable[[int], int]) -> int:
        """Messages the gateway logged on this client's channels while it was subscribed."""
        now = sum(
            max(0, offered_of(ch) - self.offered_base.get(sub, 0))
            for sub, ch in list(self.subscriptions.items())
        )
        return self.offered_closed + now

    def figures(self, now: float, offered_of: Callable[[int], int]) -> ClientFigures:
        offered = self.offered(offered_of)
        delivered = self.messages_down
        return ClientFigures(
            id=self.id,
            peer=self.peer,
            connected_s=round(now - self.connected_at, 1),
            subscriptions=len(self.subscriptions),
            offered=offered,
            delivered=delivered,
            delivered_pct=min(100.0, 100.0 * delivered / offered) if offered else 100.0,
            frames=self.frames_down,
            bytes=self.bytes_down,
            pending_bytes=self.pending_bytes,
            resubscribed=self.resubscribed,
            unknown_subscribes=self.unknown_subscribes,
            dropped=self.dropped,
            replayed=self.replayed,
        )


class ClientTracker:
    """Client frames (parsed: size limit, subscriptions, keepalive) and the few server text
    frames of one connection; repairs subscriptions the SDK refused as "Unknown channel ID".

    foxglove-sdk 0.30 can send a new channel's advertisement before the server can resolve the
    channel, so a client that subscribes at once (Foxglove does) sometimes gets "Unknown channel
    ID" and never any data on that topic. The tracker then sends the same subscribe again on the
    client's behalf (masked, between client frames), at most ``MAX_RESUBSCRIBE`` times, and only
    for a channel advertised less than ``RECENT_ADVERTISE_S`` ago: a subscription to a channel
    that was never advertised (or long ago) is a client error, answered once by the SDK.

    While ``backed_up`` (set by the splice from the client's write buffer), message data of
    channels whose topic passes ``droppable`` is dropped; everything else goes on.
    """

    MAX_RESUBSCRIBE = 5
    RESUBSCRIBE_DELAY_S = 0.05
    RECENT_ADVERTISE_S = 2.0

    def __init__(
        self,
        stats: ClientStats,
        offered_of: Callable[[int], int],
        max_message: int = 0,
        clock: Callable[[], float] = time.monotonic,
        retained_of: RetainedOf | None = None,
        droppable: Callable[[str], bool] = lambda _topic: False,
    ):
        self.stats = stats
        self._offered_of = offered_of
        self._clock = clock
        self._droppable = droppable
        self.up = FrameScanner(self._client_frame, max_message=max_message)
        self.down = ServerStream(self._server_text, self._decide)
        self.inject_up: Callable[[bytes], None] | None = None
        self.replay = Replay(retained_of, self._send_up)
        self.backed_up = False
        self._retries: dict[int, int] = {}
        self._drop_subs: set[int] = set()  # subscription ids of droppable channels
        self.advertised_at: dict[int, float] = {}  # channel id -> when the client saw it
        self.topics: dict[int, str] = {}  # channel id -> topic, from advertisements

    # -- client frames
    def _client_frame(self, opcode: int, fin: bool, prefix: bytes) -> None:
        if opcode != OP_TEXT or not fin:
            return
        msg = json.loads(prefix)
        if msg.get("op") == "subscribe":
            self._subscribed(msg.get("subscriptions", []))
        elif msg.get("op") == "unsubscribe":
            self._unsubscribed(msg.get("subscriptionIds", []))

    def _subscribed(self, subscriptions: list[dict]) -> None:
        s = self.stats
        for sub in subscriptions:
            sid, ch = int(sub["id"]), int(sub["channelId"])
            s.subscriptions[sid] = ch
            s.offered_base[sid] = self._offered_of(ch)
            if self._droppable(self.topics.get(ch, "")):
                self._drop_subs.add(sid)
        self.replay.subscribed(s.subscriptions, [int(sub["id"]) for sub in subscriptions])

    def _unsubscribed(self, subscription_ids: list) -> None:
        s = self.stats
        for sid in subscription_ids:
            ch = s.subscriptions.pop(int(sid), None)
            self._drop_subs.discard(int(sid))
            self.replay.unsubscribed(int(sid))
            if ch is not None:
                base = s.offered_base.pop(int(sid), 0)
                s.offered_closed += max(0, self._offered_of(ch) - base)

    # -- server text frames
    def _server_text(self, payload: bytes) -> None:
        head = payload[:64]
        if b'"advertise"' in head:
            msg = json.loads(payload)
            if msg.get("op") == "advertise":
                now = self._clock()
                for ch in msg.get("channels", []):
                    self.advertised_at[int(ch["id"])] = now
                    self.topics[int(ch["id"])] = str(ch.get("topic", ""))
        elif b'"unadvertise"' in head:
            msg = json.loads(payload)
            for cid in msg.get("channelIds", []):
                self.advertised_at.pop(int(cid), None)
                self.topics.pop(int(cid), None)
        elif UNKNOWN_CHANNEL.encode() in payload:
            msg = json.loads(payload)
            text = str(msg.get("message", ""))
            if msg.get("op") == "status" and text.startswith(UNKNOWN_CHANNEL):
                self._resubscribe(int(text.rsplit(" ", 1)[1]))

    def _resubscribe(self, channel_id: int) -> None:
        seen = self.advertised_at.get(channel_id)
        if seen is None or self._clock() - seen > self.RECENT_ADVERTISE_S:
            self.stats.unknown_subscribes += 1  # the client's own mistake: no retry
            return
        for sid, ch in list(self.stats.subscriptions.items()):
            if ch != channel_id or self._retries.get(sid, 0) >= self.MAX_RESUBSCRIBE:
                continue
            self._retries[sid] = self._retries.get(sid, 0) + 1
            body = json.dumps(
                {"op": "subscribe", "subscriptions": [{"id": sid, "channelId": ch}]}
            ).encode()
            frame = encode_frame(OP_TEXT, body, mask=os.urandom(4))
            asyncio.get_running_loop().call_later(self.RESUBSCRIBE_DELAY_S, self._inject, frame)

    def _inject(self, frame: bytes) -> None:
        if self.inject_up is not None:
            self.stats.resubscribed += 1
            self.inject_up(frame)

    def _send_up(self, frame: bytes) -> None:
        """A frame of the front's own to the SDK, after the client frame being handled."""
        if self.inject_up is not None:
            asyncio.get_running_loop().call_soon(self.inject_up, frame)

    # -- server frames: what goes on (ServerStream's verdicts)
    def _decide(self, opcode: int, prefix: bytes) -> Verdict:
        if opcode == OP_PONG:
            replayed = self.replay.synced(prefix, self.stats.subscriptions)
            if replayed is None:
                return True  # the client's own pong
            self.stats.replayed += self.replay.last_count
            return replayed
        if opcode != OP_BINARY or len(prefix) < 13 or prefix[0] != 1:
            return True
        sid = int.from_bytes(prefix[1:5], "little")
        if self.replay.marks and self.replay.duplicate(sid, int.from_bytes(prefix[5:], "little")):
            return False
        if self.backed_up and sid in self._drop_subs:
            self.stats.dropped += 1
            return False
        return True
