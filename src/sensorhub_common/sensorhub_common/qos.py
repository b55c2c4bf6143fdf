"""QoS profiles of the sensorhub graph (docs/design.md, "QoS"), defined once for every node.

Publishers and must-not-miss subscribers (recorder, monitor) use these as they are; viewers may
take :func:`viewer` of a profile to get a best-effort copy.
"""

from __future__ import annotations

import copy

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

PBT_SAMPLES_DEPTH = 100
PBT_EVENTS_DEPTH = 1000
SCAN_DEPTH = 5
ZONES_DEPTH = 10
SEC110_FILES_DEPTH = 100
DIAGNOSTICS_DEPTH = 10
PBT_LIVELINESS_LEASE_S = 1.0


def keep_last(depth: int, reliable: bool = True, transient_local: bool = False, **extra):
    """A keep-last profile: the shape every sensorhub profile has."""
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE
        ),
        **extra,
    )


def pbt_samples(batch_period_s: float) -> QoSProfile:
    """Reliable keep-last-100; the deadline (2 batch periods) makes a stalled reader visible.

    Transient local: a subscriber that matches late (the recorder after a restart, any
    subscriber of a respawned driver before DDS has matched it) still gets the last 100 batches
    (5 s at the defaults) instead of losing them; the recorder drops those it already has."""
    if not batch_period_s > 0.0:
        raise ValueError(f"batch period must be > 0 s, got {batch_period_s!r}")
    return keep_last(
        PBT_SAMPLES_DEPTH,
        transient_local=True,
        deadline=Duration(nanoseconds=round(2.0 * batch_period_s * 1e9)),
        liveliness=LivelinessPolicy.AUTOMATIC,
        liveliness_lease_duration=Duration(nanoseconds=round(PBT_LIVELINESS_LEASE_S * 1e9)),
    )


# Events are never dropped by the driver; late joiners (the web view) get the recent ones.
PBT_EVENTS = keep_last(PBT_EVENTS_DEPTH, transient_local=True)

# The sensor-data profile: a late scan is worthless, a newer one is coming.
SCAN = keep_last(SCAN_DEPTH, reliable=False)

# Zone states (and their markers), derived per scan: reliable, so a zone change is not lost;
# volatile, since the next scan restates every zone.
ZONES = keep_last(ZONES_DEPTH)

SEC110_FILES = keep_last(SEC110_FILES_DEPTH, transient_local=True)

# Views rendered for web clients (pbt_scope): only the newest matters, and a viewer that
# connects gets it at once instead of waiting for the next one.
WEB_VIEW = keep_last(1, transient_local=True)

# REP 107 /diagnostics.
DIAGNOSTICS = keep_last(DIAGNOSTICS_DEPTH)


def viewer(profile: QoSProfile) -> QoSProfile:
    """Best-effort, volatile copy for viewers that may miss data (matches any publisher)."""
    p = copy.copy(profile)
    p.reliability = ReliabilityPolicy.BEST_EFFORT
    p.durability = DurabilityPolicy.VOLATILE
    return p


def live(profile: QoSProfile) -> QoSProfile:
    """Reliable and volatile: only what comes next, in publication order.

    For consumers of a stream that would rather start late than be handed the publisher's
    history: DDS may deliver a late joiner's history after the first live samples, which a
    rolling view (pbt_scope) would show as holes.
    """
    p = recorder(profile)
    p.durability = DurabilityPolicy.VOLATILE
    return p


def recorder(profile: QoSProfile) -> QoSProfile:
    """Reliable subscriber copy without deadline/liveliness requirements (never incompatible)."""
    p = keep_last(max(profile.depth, 100))
    p.durability = profile.durability
    return p
