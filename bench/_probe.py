#!/usr/bin/env python3
"""The load benchmarks' PbtEvent observer, a process of its own (not a benchmark:
tools/run_bench.sh skips `_*.py`).

Run in the bench process, the observer shared its GIL and its SCHED_FIFO level with the sample
and scan subscriptions and the bench's own sampling, and their work, not the graph's, made most
of the detection latency's p99 under load. Alone, with ``--fifo N`` for the whole process (its
DDS threads included, set before the participant exists), it measures what a latency-minded
consumer of /pbt/events gets.

One JSON line per event to ``--out``: receive time, the DDS source timestamp (the driver's
publish) and reception timestamp (host clock, s), and the event fields the benches use.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON lines file")
    ap.add_argument("--topic", default="/pbt/events")
    ap.add_argument("--fifo", type=int, default=0, help="SCHED_FIFO priority (0 = normal)")
    ap.add_argument("--name", default="bench_event_probe")
    a = ap.parse_args()
    if a.fifo:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(a.fifo))

    import rclpy

    from sensorhub_common import qos
    from sensorhub_msgs.msg import PbtEvent

    out = open(a.out, "a", buffering=1)  # noqa: SIM115 - one line per event, kept open
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    rclpy.init(signal_handler_options=rclpy.SignalHandlerOptions.NO)
    # no parameter services, no rosout: nothing but the one subscription
    node = rclpy.create_node(a.name, start_parameter_services=False, enable_rosout=False)

    def on_event(m, info) -> None:
        t = time.time()
        out.write(
            json.dumps(
                {
                    "t_rx": t,
                    "src": info["source_timestamp"] * 1e-9,
                    "rx": info["received_timestamp"] * 1e-9,
                    "sec": m.header.stamp.sec,
                    "nanosec": m.header.stamp.nanosec,
                    "peak_index": m.peak_index,
                    "end_index": m.end_index,
                    "pulse_sent": m.pulse_sent,
                    "pulse_delay": m.pulse_delay,
                }
            )
            + "\n"
        )

    sub = node.create_subscription(PbtEvent, a.topic, lambda m: None, qos.PBT_EVENTS)
    # rclpy's own wait_for_message pattern, in a loop: one wait set holding this subscription,
    # no executor. The executor rebuilds its wait set and runs its task machinery in Python at
    # every wake-up; on a core shared with CPU hogs that alone took milliseconds (p99).
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    ws = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, node.context.handle)
    # an instrument, alive for minutes: no garbage-collector pause in what it measures
    gc.collect()
    gc.freeze()
    gc.disable()
    while not stop:
        ws.clear_entities()
        ws.add_subscription(sub.handle)
        ws.wait(200_000_000)
        if sub.handle.pointer not in ws.get_ready_entities("subscription"):
            continue
        while (got := sub.handle.take_message(sub.msg_type, False)) is not None:
            on_event(*got)
    node.destroy_node()
    rclpy.try_shutdown()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
