"""lab_feed: the feed rules (pure), and the node over real DDS: at most the configured rate,
always the newest message in the end, retained for a late subscriber, refusals that say why."""

from __future__ import annotations

import threading
import time

import pytest

from lab_page.feed import FeedError, Throttle, parse_feeds


def exe(pkg: str, name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable(pkg, name))


def test_feeds_parse_and_refuse_with_the_entry_named():
    assert parse_feeds(["/a/b=2", " /c=0.5 ", ""]) == {"/a/b": 2.0, "/c": 0.5}
    assert parse_feeds([""]) == {}
    for bad, why in [
        ("a/b=2", "absolute"), ("/a=", "not a number"), ("/a=nan", "rate"), ("/a=0", "rate"),
        ("/a=1e9", "rate"), ("/a b=1", "absolute"), ("/a", "absolute"), ("/1a=2", "absolute"),
    ]:  # fmt: skip
        with pytest.raises(FeedError, match=why) as e:
            parse_feeds([bad])
        assert repr(bad) in str(e.value)
    with pytest.raises(FeedError, match="twice"):
        parse_feeds(["/a=1", "/a=2"])


def test_throttle_passes_the_newest_at_most_its_rate():
    th = Throttle(2.0)
    sent = []
    t = 0.0
    for i in range(300):  # 15 Hz for 20 s, flushed at 20 Hz in between
        t = i / 15.0
        out = th.offer(b"%d" % i, t)
        if out is not None:
            sent.append((t, out))
        out = th.due(t + 1 / 40.0)
        if out is not None:
            sent.append((t + 1 / 40.0, out))
    for k in range(40):  # the input stops: what is pending still goes out
        out = th.due(t + 0.05 * (k + 1))
        if out is not None:
            sent.append((t + 0.05 * (k + 1), out))
    span = sent[-1][0] - sent[0][0]
    assert len(sent) <= 2.0 * span + 1.5 + 1
    assert len(sent) >= 2.0 * span - 1
    assert sent[-1][1] == b"299"  # the last state is never lost
    values = [int(d) for _, d in sent]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert th.received == 300 and th.sent == len(sent)
    assert th.due(t + 10.0) is None  # nothing pending: nothing sent twice


class Outputs:
    def __init__(self, node, topic: str, qos):
        from std_msgs.msg import String

        self.lock = threading.Lock()
        self.got: list[tuple[float, str]] = []
        self.sub = node.create_subscription(String, topic, self._cb, qos)

    def _cb(self, m):
        with self.lock:
            self.got.append((time.monotonic(), m.data))

    def all(self):
        with self.lock:
            return list(self.got)


@pytest.mark.integration
def test_the_node_relays_the_newest_at_its_rate_and_retains_it(procs, ros_node, wait):
    from std_msgs.msg import String

    from sensorhub_common import qos

    pub = ros_node.create_publisher(String, "/feedtest/chatter", qos.keep_last(10))
    state = {"i": 0, "on": True}

    def tick():
        if state["on"]:
            state["i"] += 1
            pub.publish(String(data=str(state["i"])))

    timer = ros_node.create_timer(1 / 20.0, tick)
    out = Outputs(ros_node, "/lab/feedtest/chatter", qos.WEB_VIEW)
    p = procs.start(
        "lab_feed",
        [exe("lab_page", "lab_feed"), "--ros-args", "-r", "__ns:=/lab",
         "-p", "feeds:=['/feedtest/chatter=2.0']", "-p", "discovery_period:=0.2"],
    )  # fmt: skip
    wait(lambda: len(out.all()) >= 8, 90, what="8 relayed messages")
    state["on"] = False
    last = str(state["i"])
    wait(lambda: out.all()[-1][1] == last, 30, what="the newest message relayed in the end")
    got = out.all()
    values = [int(v) for _, v in got]
    assert values == sorted(values) and len(set(values)) == len(values)
    # 20 Hz in, <= 2 Hz out (the node's token bucket; delivery jitter allowed for)
    span = got[-1][0] - got[0][0]
    assert len(got) <= 2.0 * span + 4, (len(got), span)
    assert state["i"] > 3 * len(got)
    # a late subscriber gets the newest message at once (reliable, transient local)
    late = Outputs(ros_node, "/lab/feedtest/chatter", qos.WEB_VIEW)
    wait(lambda: [v for _, v in late.all()] == [last], 30, what="the retained message")
    ros_node.destroy_timer(timer)
    assert p.alive()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-r", "__ns:=/lab", "-p", "feeds:=['/x=fast']"], "'/x=fast'"),
        (["-p", "feeds:=['/x=1.0']"], "republished onto itself"),
    ],
)
def test_the_node_refuses_what_it_cannot_do(procs, wait, args, says):
    p = procs.start("lab_feed", [exe("lab_page", "lab_feed"), "--ros-args", *args])
    wait(lambda: not p.alive(), 60, what="lab_feed exits")
    assert p.popen.returncode != 0
    assert says in p.output(), p.output()
