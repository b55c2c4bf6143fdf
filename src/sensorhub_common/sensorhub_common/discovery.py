"""Shared rclpy plumbing of the gateway and the recorder: topic discovery, QoS matching, types.

Both follow the graph: every ``discovery_period`` they list topics that have publishers, pass them
through a :class:`~sensorhub_common.topic_filter.TopicFilter`, subscribe raw (CDR bytes) with a QoS
matched to the publishers, and drop topics whose publishers are gone. Both declare the parameters
of that (:func:`follow_params`, :data:`DISCOVERY_PERIOD`) from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from sensorhub_common import qos
from sensorhub_common.params import Param
from sensorhub_common.topic_filter import TopicFilter, check_patterns, without_placeholder

DISCOVERY_PERIOD = Param(
    "discovery_period", 1.0, "Seconds between topic discovery passes", min=0.1, max=60.0
)


def follow_params(verb: str) -> list[Param]:
    """``topics_allow`` and ``topics_deny`` of a node that follows the graph to ``verb`` (a regular
    verb: "forward", "record") the topics."""
    return [
        Param(
            "topics_allow",
            [".*"],
            f"Regexes (full match): topics to {verb}",
            check=check_patterns,
            item_type=str,
        ),
        Param(
            "topics_deny",
            [""],
            f"Regexes (full match): topics never {verb}ed, wins over allow",
            check=check_patterns,
            item_type=str,
        ),
    ]


def follow_filter(values: Mapping) -> TopicFilter:
    """The :class:`TopicFilter` of the :func:`follow_params` values."""
    return TopicFilter(
        without_placeholder(values["topics_allow"]), without_placeholder(values["topics_deny"])
    )


def import_message(type_name: str):
    """'pkg/msg/Type' -> the generated Python class (raises ImportError/AttributeError)."""
    pkg, kind, name = type_name.split("/")
    if kind != "msg":
        raise ImportError(f"{type_name} is not a message type")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def matched_qos(infos, depth: int) -> tuple[QoSProfile, str]:
    """Reliable (and transient local) when every publisher offers it, so nothing is missed and
    late joining works; best effort when any publisher is best effort (reliable would not match).

    Returns the profile and a short key to notice when the publishers' offer changes.
    """
    reliable = bool(infos) and all(
        i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos
    )
    latched = bool(infos) and all(
        i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos
    )
    base = QoSProfile(
        depth=depth,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )
    profile = qos.recorder(base)
    profile.depth = depth
    if not reliable:
        profile = qos.viewer(profile)
    key = ("reliable" if reliable else "best_effort") + ("+transient_local" if latched else "")
    return profile, key


def offered_qos_dicts(infos) -> list[dict]:
    """The publishers' QoS in rosbag2 v9 metadata form (for ros2 bag play to re-offer)."""
    out = []
    for i in infos:
        q = i.qos_profile

        def t(d):
            ns = d.nanoseconds
            if ns >= 2**63 - 1 or ns < 0:
                return {"sec": 2147483647, "nsec": 4294967295}
            return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}

        out.append(
            {
                "history": q.history.name.lower(),
                "depth": int(q.depth),
                "reliability": q.reliability.name.lower(),
                "durability": q.durability.name.lower(),
                "deadline": t(q.deadline),
                "lifespan": t(q.lifespan),
                "liveliness": q.liveliness.name.lower(),
                "liveliness_lease_duration": t(q.liveliness_lease_duration),
                "avoid_ros_namespace_conventions": False,
            }
        )
    return out


@dataclass
class Tracked:
    """One followed topic; ``data`` is the user's per-topic state (channel, bag topic id...)."""

    name: str
    type: str
    qos_key: str
    sub: object = None
    data: object = field(default_factory=dict)
    msg_class: type | None = None
    profile: QoSProfile | None = None  # matched to the publishers
    demanded: bool = True  # on demand: subscribed only while True


class TopicFollower:
    """Keeps one raw subscription per wanted topic in step with the graph.

    ``on_new(name, type, infos) -> state | None`` prepares per-topic state (None = skip the topic),
    ``on_message(tracked, data, info)`` gets the CDR bytes, ``on_gone(tracked)`` (optional) cleans
    up. With ``on_demand`` a topic is followed (``on_new``) without a subscription until
    :meth:`demand` asks for one (the gateway: while a web client watches it), except the topics
    ``always(name)`` names (an attribute): those are subscribed from the start, so their newest
    messages are at hand when someone asks.
    """

    def __init__(
        self,
        node,
        wanted: Callable[[str], bool],
        depth: int,
        on_new,
        on_message,
        on_gone: Callable[[Tracked], object] | None = None,
        on_demand: bool = False,
    ):
        self.node = node
        self.on_demand = on_demand
        self.always: Callable[[str], bool] = lambda _name: False  # set before the first refresh
        self.wanted = wanted
        self.depth = depth
        self.on_new = on_new
        self.on_message = on_message
        self.on_gone = on_gone
        self.topics: dict[str, Tracked] = {}
        self.skipped: dict[str, str] = {}  # topic -> reason (logged once)

    def refresh(self) -> None:
        present = self._present()
        for name in list(self.topics):
            tr = self.topics[name]
            if name not in present or tr.type not in present[name][0]:
                self._remove(name)
        for name, (types, infos) in present.items():
            if len(types) != 1:
                self._skip(name, f"several types on one topic: {', '.join(types)}")
                continue
            self._follow(name, types[0], infos)

    def _present(self) -> dict:
        """Wanted topics with publishers: name -> (types, publisher infos)."""
        node = self.node
        present = {}
        for name, types in node.get_topic_names_and_types():
            if not self.wanted(name):
                continue
            infos = node.get_publishers_info_by_topic(name)
            if infos:
                present[name] = (types, infos)
        return present

    def _follow(self, name: str, type_name: str, infos) -> None:
        """Start following a topic, or resubscribe when its publishers' QoS changed."""
        node = self.node
        profile, key = matched_qos(infos, self.depth)
        tr = self.topics.get(name)
        if tr is not None and tr.qos_key == key:
            return
        if tr is None:
            try:
                msg_class = import_message(type_name)
                data = self.on_new(name, type_name, infos)
            except Exception as e:
                self._skip(name, f"{type(e).__name__}: {e}")
                return
            if data is None:
                return
            tr = Tracked(name, type_name, key, data=data, msg_class=msg_class)
            tr.demanded = not self.on_demand or self.always(name)
            self.topics[name] = tr
            self.skipped.pop(name, None)
            node.get_logger().info(f"following {name} [{type_name}] ({key})")
        elif tr.sub is not None:
            node.destroy_subscription(tr.sub)
            tr.sub = None
            node.get_logger().info(f"publishers of {name} changed: resubscribing ({key})")
        tr.qos_key, tr.profile = key, profile
        if tr.demanded:
            self._subscribe(tr)

    def demand(self, name: str, wanted: bool) -> bool:
        """Hold (or drop) the subscription of a followed topic; True when that changed it."""
        tr = self.topics.get(name)
        if tr is None or tr.demanded == wanted:
            return False
        tr.demanded = wanted
        if wanted:
            self._subscribe(tr)
        elif tr.sub is not None:
            self.node.destroy_subscription(tr.sub)
            tr.sub = None
        return True

    def _subscribe(self, tr: Tracked) -> None:
        tr.sub = self.node.create_subscription(
            tr.msg_class,
            tr.name,
            lambda data, info, tr=tr: self.on_message(tr, data, info),
            tr.profile,
            raw=True,
            # No QoS event handlers: the QoS is taken from the publishers (resubscribed when
            # they change), and rclpy's executor rebuilds its wait set on every wake-up with
            # two handlers per subscription: most of the gateway's and recorder's CPU time
            # (profiled).
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False),
        )

    def _skip(self, name: str, reason: str) -> None:
        if self.skipped.get(name) != reason:
            self.skipped[name] = reason
            self.node.get_logger().warning(f"not following {name}: {reason}")

    def _remove(self, name: str) -> None:
        tr = self.topics.pop(name)
        if tr.sub is not None:
            self.node.destroy_subscription(tr.sub)
        self.node.get_logger().info(f"{name} has no publishers any more: dropped")
        if self.on_gone is not None:
            self.on_gone(tr)

    def remove_unwanted(self) -> None:
        for name in list(self.topics):
            if not self.wanted(name):
                self._remove(name)
