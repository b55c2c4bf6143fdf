"""foxglove_gateway: the graph's topics to Foxglove/Lichtblick over WebSocket, read-only, bounded.

The wheels path's stand-in for foxglove_bridge (PyPI has no foxglove_bridge); the graph's web slot.

CDR bytes from raw subscriptions go untouched into foxglove-sdk channels (ros2msg schemas built
from the installed .msg files); the SDK server listens on loopback behind the
:class:`~foxglove_gateway.wsfront.ClientLimitFront`, which owns the public port (client limit,
TLS, per-client figures, priorities, retained messages for late subscribers). Per-topic rate
caps decimate before the SDK, for every web client. A topic's ROS subscription is held only
while a web client is subscribed to its channel; channels are advertised from discovery alone.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass

import foxglove
from foxglove.websocket import Capability
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy

from foxglove_gateway.clients import ClientFigures
from foxglove_gateway.wsfront import ClientLimitFront, FrontConfig, FrontLimits
from sensorhub_common import qos
from sensorhub_common.diagnostics import OK, WARN, Updater
from sensorhub_common.discovery import (
    DISCOVERY_PERIOD,
    TopicFollower,
    follow_filter,
    follow_params,
)
from sensorhub_common.params import Param, ParameterError, ParamSet
from sensorhub_common.runner import run_node
from sensorhub_common.schema import SchemaCache
from sensorhub_common.topic_filter import (
    RateLimiter,
    TopicFilter,
    check_patterns,
    check_rate_rules,
    max_rate_for,
    parse_rate_rules,
    without_placeholder,
)


def parse_depth_rules(items) -> list[tuple[re.Pattern, int]]:
    """``["/pbt/scope=1"]`` -> (pattern, depth) rules; the first full match wins."""
    rules = []
    for item in without_placeholder(items):
        pat, sep, depth = item.rpartition("=")
        if not sep or not pat or not depth.isdigit() or not 1 <= int(depth) <= 10000:
            raise ValueError(f"bad depth rule {item!r}: expected 'TOPIC_REGEX=N', N in 1..10000")
        problem = check_patterns([pat])
        if problem:
            raise ValueError(f"bad depth rule {item!r}: {problem}")
        rules.append((re.compile(pat), int(depth)))
    return rules


def _check_depth_rules(items) -> str | None:
    try:
        parse_depth_rules(items)
    except ValueError as e:
        return str(e)
    return None


# High-rate views and streams: the newest replaces them, so a slow client loses these first.
DROP_FIRST = ["/pbt/samples", "/pbt/scope", "/pbt/scope_preview", "/pbt/debug.*", "/scan",
              "/tim240/scan.*", "/tim240/markers", "/lab/tim240/scan.*", "/rosout"]  # fmt: skip
# The ROS graph does not tell a publisher's depth (rmw reports 0): what our own publishers keep.
RETAINED_DEPTHS = [
    f"{t}={qos.WEB_VIEW.depth}"
    for t in ("/pbt/scope", "/pbt/scope_preview", "/pbt/event_history", "/lab/.*")
]  # lab_feed publishes WEB_VIEW too


def _tls_check(values: dict) -> str | None:
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        return "tls_cert and tls_key must be given together (both empty = plain ws://)"
    return None


PARAMS = [
    Param("address", "0.0.0.0", "Address the public WebSocket port binds to", read_only=True),
    Param("port", 8765, "Public WebSocket port (Foxglove default 8765; 0 = any)",
          min=0, max=65535, read_only=True),
    *follow_params("forward"),
    Param("max_rates", [""], "Per-topic rate caps 'TOPIC_REGEX=HZ' (first match; 0 = none)",
          check=check_rate_rules, item_type=str),
    Param("max_clients", 60, "Concurrent WebSocket clients; the next one gets close 1013 "
          "'server full'",
          min=1, max=1000),
    Param("max_message_kib", 1024,
          "Largest client->server WebSocket message [KiB]; bigger: close 1009", min=1, max=65536),
    Param("ping_interval", 5.0, "Ping a client quiet this long [s] (0 = never)",
          min=0.0, max=3600.0),
    Param("ping_timeout", 10.0, "Close a client silent this long after the ping interval [s]",
          min=0.1, max=3600.0),
    Param("max_handshakes", 64, "Connections allowed in their HTTP request (lab page files, "
          "upgrades) at once; as many more wait for a slot (up to handshake_timeout), beyond "
          "that 503", min=1, max=1000),
    Param("client_backlog", 1024, "Messages queued per client before its oldest are dropped",
          min=16, max=1_000_000, read_only=True),
    Param("tls_cert", "", "PEM certificate file: serve wss:// (with tls_key)", read_only=True),
    Param("tls_key", "", "PEM private key file (PKCS#8) for tls_cert", read_only=True),
    Param("allow_client_publish", False, "Let clients publish to ROS topics (off: read-only)",
          read_only=True),
    Param("client_publish_allow", [".*"], "Regexes: topics clients may publish to, if allowed",
          check=check_patterns, item_type=str, read_only=True),
    DISCOVERY_PERIOD,
    Param("subscription_depth", 100, "Queue depth of each ROS subscription (and the retained "
          "messages of a transient-local topic no retained_depths rule names)",
          min=1, max=10000, read_only=True),
    Param("retained_depths", RETAINED_DEPTHS, "Retained messages re-sent to a late subscriber "
          "of a transient-local topic, 'TOPIC_REGEX=N' (first match; else subscription_depth)",
          check=_check_depth_rules, item_type=str, read_only=True),
    Param("subscribe_on_demand", True, "Hold a topic's ROS subscription only while a web client "
          "is subscribed (false: every allowed topic, all the time)", read_only=True),
    Param("always_subscribed", [""], "Regexes (full match): topics subscribed even with no web "
          "client, so a late page gets their retained messages at once (with subscribe_on_demand)",
          check=check_patterns, item_type=str, read_only=True),
    Param("drop_first", DROP_FIRST, "Regexes (full match): topics a backed-up client loses "
          "first (high rate); other topics' messages are kept", check=check_patterns,
          item_type=str),
    Param("server_name", "sensorhub", "Server name shown by Foxglove", read_only=True),
    Param("layout_file", "",
          "Foxglove/Lichtblick layout served at GET /layout.json on the web port ('' = none)",
          read_only=True),
]  # fmt: skip


def _front_limits(p: dict) -> FrontLimits:
    return FrontLimits(
        max_clients=p["max_clients"],
        max_message_bytes=p["max_message_kib"] * 1024,
        ping_interval=p["ping_interval"],
        ping_timeout=p["ping_timeout"],
        max_handshakes=p["max_handshakes"],
        drop_first=TopicFilter(without_placeholder(p["drop_first"])),
    )


@dataclass
class _TopicState:
    """One forwarded topic: its SDK channel, rate cap and counts (ROS executor thread)."""

    channel: foxglove.Channel
    cid: int  # SDK channel id
    limiter: RateLimiter | None
    retained: deque | None = None  # (log time, CDR bytes) of a transient-local topic
    last_log: int = 0  # log times are unique and grow per channel (the replay relies on it)
    received: int = 0
    forwarded: int = 0  # logged to the SDK: what its web subscribers are offered
    decimated: int = 0


class _SubscriptionListener(foxglove.ServerListener):
    """SDK callbacks for (un)subscriptions: web subscribers per topic, from the SDK itself.

    These run on the SDK's threads and take the GIL, but only when a client (un)subscribes
    (a few per connection), never per message."""

    def __init__(self, node: GatewayNode):
        self.node = node

    def on_subscribe(self, client, channel) -> None:
        subs = self.node.web_subscribers
        subs[channel.id] = subs.get(channel.id, 0) + 1
        self.node.demand_changed.trigger()

    def on_unsubscribe(self, client, channel) -> None:
        subs = self.node.web_subscribers
        subs[channel.id] = max(0, subs.get(channel.id, 0) - 1)
        self.node.demand_changed.trigger()


class _PublishListener(_SubscriptionListener):
    """... and opt-in client publishing (only installed when publishing is allowed)."""

    def on_client_advertise(self, client, channel) -> None:
        self.node.client_advertise(client, channel)

    def on_client_unadvertise(self, client, client_channel_id) -> None:
        self.node.client_unadvertise(client, client_channel_id)

    def on_message_data(self, client, client_channel_id, data) -> None:
        self.node.client_message(client, client_channel_id, data)


class GatewayNode(Node):
    def __init__(self, **kwargs):
        super().__init__("foxglove_gateway", **kwargs)
        self.params = ParamSet(self, PARAMS, cross_check=_tls_check, on_change=self._on_change)
        p = self.params.snapshot()
        self.schemas = SchemaCache()
        self._channels: dict[int, _TopicState] = {}  # SDK channel id -> its topic
        self.web_subscribers: dict[int, int] = {}  # SDK channel id -> subscribed clients (SDK)
        self._client_pubs: dict[tuple[int, int], object] = {}
        self._pub_lock = threading.Lock()
        self._retain_lock = threading.Lock()  # a channel's log and its retained messages
        self._depths = parse_depth_rules(p["retained_depths"])
        self._depth = p["subscription_depth"]
        # the SDK's threads tell the executor that web subscriptions changed
        self.demand_changed = self.create_guard_condition(self._apply_demand)
        self._publish_filter = TopicFilter(p["client_publish_allow"])
        self._apply_filters(p)
        self.ctx = foxglove.Context()
        self.server = self._start_sdk_server(p)
        port = self._start_front(p)
        self.follower = TopicFollower(
            self,
            self._wanted,
            p["subscription_depth"],
            self._on_new,
            self._on_message,
            self._on_gone,
            on_demand=p["subscribe_on_demand"],
        )
        self.follower.always = self._is_always
        self._start_diagnostics(port)
        self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)
        self.follower.refresh()

    # -- start-up steps

    def _start_sdk_server(self, p: dict):
        """The SDK server on an ephemeral loopback port, behind the front."""
        publish = p["allow_client_publish"]
        return foxglove.start_server(
            name=p["server_name"],
            host="127.0.0.1",
            port=0,
            capabilities=[Capability.ClientPublish] if publish else [],
            supported_encodings=["cdr"] if publish else None,
            server_listener=_PublishListener(self) if publish else _SubscriptionListener(self),
            context=self.ctx,
            message_backlog_size=p["client_backlog"],
        )

    def _tls_context(self, p: dict) -> ssl.SSLContext | None:
        if not p["tls_cert"]:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(p["tls_cert"], p["tls_key"])
        except (OSError, ssl.SSLError) as e:
            self.server.stop()
            raise ParameterError(f"tls_cert/tls_key: cannot load: {e}") from None
        return ctx

    def _start_front(self, p: dict) -> int:
        """The public port (stops the SDK server when it cannot listen); returns the port."""
        ssl_ctx = self._tls_context(p)
        config = FrontConfig(
            host=p["address"],
            port=p["port"],
            upstream_port=self.server.port,
            limits=_front_limits(p),
            ssl_context=ssl_ctx,
            name="sensorhub foxglove_gateway",
            layout_file=p["layout_file"],
        )
        self.front = ClientLimitFront(
            config,
            offered_of=self._offered_of,
            log=lambda s: self.get_logger().info(s),
            retained_of=self.retained_of,
        )
        try:
            port = self.front.start()
        except OSError as e:
            self.server.stop()
            raise ParameterError(
                f"port: cannot listen on {p['address']}:{p['port']}: {e}"
            ) from None
        scheme = "wss" if ssl_ctx else "ws"
        mode = "client publish ALLOWED" if p["allow_client_publish"] else "read-only"
        self.get_logger().info(
            f"Foxglove WebSocket on {scheme}://{p['address']}:{port} "
            f"(max {p['max_clients']} clients, {mode})"
        )
        web = "https" if ssl_ctx else "http"
        if self.front.page.available:
            self.get_logger().info(f"lab page on {web}://{p['address']}:{port}/")
        else:
            self.get_logger().warning(
                f"no lab page on {web}://{p['address']}:{port}/: {self.front.page.missing}"
            )
        return port

    def _start_diagnostics(self, port: int) -> None:
        self.updater = Updater(
            self, hardware_id=f"Foxglove WebSocket {socket.gethostname()}:{port}"
        )
        self.updater.add("clients", self._diag_clients)
        self.updater.add("topics", self._diag_topics)

    # -- parameters

    def _apply_filters(self, p: dict) -> None:
        self._filter = follow_filter(p)
        self._always = TopicFilter(without_placeholder(p["always_subscribed"]))
        self._rules = parse_rate_rules(without_placeholder(p["max_rates"]))

    def _is_always(self, topic: str) -> bool:
        return self._always(topic)  # the filter of the current parameters

    def _wanted(self, topic: str) -> bool:
        return self._filter(topic)

    def _on_change(self, changed: dict) -> None:
        p = self.params.snapshot()
        self._apply_filters(p)
        for tr in self.follower.topics.values():
            tr.data.limiter = self._limiter(tr.name)
        self.follower.remove_unwanted()
        self.front.limits = _front_limits(p)  # read per connection in the front's thread
        if "discovery_period" in changed:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(p["discovery_period"], self.follower.refresh)

    def _limiter(self, topic: str) -> RateLimiter | None:
        hz = max_rate_for(self._rules, topic)
        return RateLimiter(hz) if hz > 0 else None

    # -- topics

    def _on_new(self, name: str, type_name: str, infos) -> _TopicState:
        schema = self.schemas.get(type_name)
        channel = foxglove.Channel(
            name,
            message_encoding="cdr",
            schema=foxglove.Schema(name=type_name, encoding="ros2msg", data=schema.encode()),
            context=self.ctx,
        )
        state = _TopicState(channel=channel, cid=channel.id(), limiter=self._limiter(name))
        if all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos):
            state.retained = deque(maxlen=self._retained_depth(name))
        self._channels[state.cid] = state
        return state

    def _retained_depth(self, topic: str) -> int:
        return next((d for pat, d in self._depths if pat.fullmatch(topic)), self._depth)

    def _on_message(self, tr, data: bytes, _info) -> None:
        s: _TopicState = tr.data
        s.received += 1
        if s.limiter is not None and not s.limiter.allow(time.monotonic()):
            s.decimated += 1
            return
        t = max(time.time_ns(), s.last_log + 1)
        if s.retained is None:
            s.channel.log(data, log_time=t)
            s.last_log = t
        else:
            with self._retain_lock:  # a replay's snapshot sees the log and the cache agree
                s.channel.log(data, log_time=t)
                s.last_log = t
                s.retained.append((t, bytes(data)))
        s.forwarded += 1

    def retained_of(self, channel_id: int) -> tuple[int, list[tuple[int, bytes]]] | None:
        """A transient-local channel's newest log time and retained messages (front thread)."""
        state = self._channels.get(channel_id)
        if state is None or state.retained is None:
            return None
        with self._retain_lock:
            return state.last_log, list(state.retained)

    def _apply_demand(self) -> None:
        """Hold the ROS subscriptions of channels with web subscribers, drop the others."""
        if not self.follower.on_demand:
            return
        for tr in list(self.follower.topics.values()):
            s: _TopicState = tr.data
            watched = self.web_subscribers.get(s.cid, 0) > 0 or self._always(tr.name)
            if self.follower.demand(tr.name, watched) and not watched and s.retained is not None:
                with self._retain_lock:  # a new subscription gets the history from DDS again
                    s.retained.clear()

    def _on_gone(self, tr) -> None:
        self._channels.pop(tr.data.cid, None)
        self.web_subscribers.pop(tr.data.cid, None)
        tr.data.channel.close()

    def _offered_of(self, channel_id: int) -> int:
        """Messages logged on an SDK channel (the front's thread asks, for its figures)."""
        state = self._channels.get(channel_id)
        return state.forwarded if state is not None else 0

    # -- client publish (opt-in)

    def client_advertise(self, client, channel) -> None:
        if not self.params["allow_client_publish"]:
            return  # the capability is not advertised; the SDK refuses before we get here
        topic, type_name = channel.topic, channel.schema_name
        if channel.encoding != "cdr" or not self._publish_filter(topic):
            self.get_logger().warning(f"client {client.id}: publish on {topic} refused")
            return
        from sensorhub_common.discovery import import_message

        try:
            msg_class = import_message(type_name)
        except Exception as e:
            self.get_logger().warning(f"client {client.id}: cannot publish {type_name}: {e}")
            return
        pub = self.create_publisher(msg_class, topic, 10)
        with self._pub_lock:
            self._client_pubs[(client.id, channel.id)] = pub
        self.get_logger().info(f"client {client.id} publishes on {topic} [{type_name}]")

    def client_unadvertise(self, client, client_channel_id) -> None:
        with self._pub_lock:
            pub = self._client_pubs.pop((client.id, client_channel_id), None)
        if pub is not None:
            self.destroy_publisher(pub)

    def client_message(self, client, client_channel_id, data) -> None:
        with self._pub_lock:
            pub = self._client_pubs.get((client.id, client_channel_id))
        if pub is not None:
            pub.publish(bytes(data))

    # -- diagnostics

    def _diag_clients(self, stat) -> None:
        snap = self.front.snapshot()
        level = WARN if snap.active >= snap.max_clients else OK
        stat.summary(level, f"{snap.active}/{snap.max_clients} clients")
        stat.add("clients", snap.active)
        stat.add("max clients", snap.max_clients)
        stat.add("accepted total", snap.accepted_total)
        stat.add("refused total", snap.refused_total)
        stat.add("closed too big (1009)", snap.too_big_total)
        stat.add("closed no pong", snap.ping_timeout_total)
        stat.add("in handshake", snap.handshaking)
        stat.add("refused in handshake (503)", snap.handshake_refused_total)
        stat.add("waiting for a handshake slot", snap.handshake_waiting)
        stat.add("refused subprotocol (400)", snap.bad_subprotocol_total)
        stat.add("subscriptions", sum(c.subscriptions for c in snap.clients))
        stat.add("layout served (GET /layout.json)", snap.layout_served_total)
        stat.add("lab page files served", snap.page_served_total)
        stat.add("dropped high-rate frames", sum(c.dropped for c in snap.clients))
        stat.add("retained messages re-sent", sum(c.replayed for c in snap.clients))
        for c in snap.clients:
            stat.add(f"client {c.id} ({c.peer})", _client_line(c))

    def _diag_topics(self, stat) -> None:
        topics = self.follower.topics
        held = sum(1 for tr in topics.values() if tr.sub is not None)
        stat.summary(OK, f"{len(topics)} topics forwarded, {held} subscribed (watched)")
        for name, tr in sorted(topics.items()):
            s: _TopicState = tr.data
            cap = s.limiter.max_hz if s.limiter is not None else 0
            web = self.web_subscribers.get(s.cid, 0)
            stat.add(
                name,
                f"received {s.received}, forwarded {s.forwarded}, decimated {s.decimated}"
                + (f" (cap {cap:g} Hz)" if cap else "")
                + f", {web} web subscriber{'' if web == 1 else 's'}",
            )
        for name, reason in sorted(self.follower.skipped.items()):
            stat.add(f"{name} (skipped)", reason)

    def on_shutdown(self) -> None:
        self.front.stop()
        self.server.stop()


def _client_line(c: ClientFigures) -> str:
    line = (
        f"{c.subscriptions} subs, delivered {c.delivered}/{c.offered} "
        f"({c.delivered_pct:.1f}%), {c.bytes} B, {c.pending_bytes} B pending"
    )
    if c.resubscribed:
        line += f", {c.resubscribed} resubscribed"
    if c.unknown_subscribes:
        line += f", {c.unknown_subscribes} unknown channel subscribes"
    if c.dropped:
        line += f", {c.dropped} high-rate dropped"
    if c.replayed:
        line += f", {c.replayed} retained re-sent"
    return line


def main(args=None) -> None:
    run_node(GatewayNode, args=args)


if __name__ == "__main__":
    main()
