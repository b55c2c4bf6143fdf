"""Clock synchronisation: the kernel's NTP state and the time daemon's view (pure, no rclpy).

The kernel's ``adjtimex`` answer is the portable source: any NTP daemon (chrony,
systemd-timesyncd, ntpd) disciplines the clock through it, and it clears ``STA_UNSYNC`` only
while one does. ``chronyc -c tracking`` and ``timedatectl show-timesync`` add the daemon's own
view (server, stratum, measured offset) where they can be read. In a two-host graph the stamps
come from one host's clock and the latency figures from the other's, so both must be in sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sensorhub_common.diagnostics import ERROR, OK, WARN
from system_monitor.host import NA, LevelTracker, Report

# <sys/timex.h>
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5
CLOCK_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT",
                5: "TIME_ERROR"}  # fmt: skip
UNSYNCED_LEVELS = {"ok": OK, "warn": WARN, "error": ERROR}


class ClockParseError(ValueError):
    """A time daemon's output that is not what its format promises."""


@dataclass(frozen=True)
class KernelClock:
    """adjtimex(2) with modes 0: the kernel's view of its own discipline."""

    synchronised: bool
    state: str
    offset_s: float  # what the kernel PLL still has to correct
    maxerror_s: float
    esterror_s: float
    status: int


def decode_timex(*, state: int, status: int, offset: int, maxerror: int, esterror: int):
    """The raw fields (``offset`` in ns with STA_NANO, else us; the errors in us)."""
    unit = 1e-9 if status & STA_NANO else 1e-6
    return KernelClock(
        synchronised=not status & STA_UNSYNC and state != TIME_ERROR,
        state=CLOCK_STATES.get(state, f"state {state}"),
        offset_s=offset * unit,
        maxerror_s=maxerror * 1e-6,
        esterror_s=esterror * 1e-6,
        status=status,
    )


@dataclass(frozen=True)
class DaemonClock:
    """What the time daemon says about its source."""

    source: str  # "chrony" or "systemd-timesyncd"
    synchronised: bool
    server: str = ""
    stratum: int | None = None
    offset_s: float | None = None  # local clock minus the source's (positive: ahead)
    max_error_s: float | None = None  # a bound on |offset| from the source's root distance
    details: tuple[tuple[str, str], ...] = ()


# ---- chrony -----------------------------------------------------------------------------------
CHRONY_FIELDS = ("ref_id", "name", "stratum", "ref_time", "system_time", "last_offset",
                 "rms_offset", "frequency", "residual_freq", "skew", "root_delay",
                 "root_dispersion", "update_interval", "leap")  # fmt: skip


def parse_chrony_tracking(text: str) -> DaemonClock:
    """``chronyc -c tracking``: one CSV line, seconds; ``system_time`` positive means slow."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    cols = line.strip().split(",")
    if len(cols) < len(CHRONY_FIELDS):
        raise ClockParseError(
            f"chronyc -c tracking: expected {len(CHRONY_FIELDS)} fields, got {len(cols)}: "
            f"{line.strip()[:80]!r}"
        )
    f = dict(zip(CHRONY_FIELDS, cols, strict=False))
    try:
        stratum = int(f["stratum"])
        correction, delay, disp = (float(f[k]) for k in
                                   ("system_time", "root_delay", "root_dispersion"))  # fmt: skip
        rms = float(f["rms_offset"])
    except ValueError as e:
        raise ClockParseError(f"chronyc -c tracking: {e}: {line.strip()[:80]!r}") from None
    synced = f["leap"].strip() != "Not synchronised" and int(f["ref_id"] or "0", 16) != 0
    return DaemonClock(
        source="chrony",
        synchronised=synced,
        server=f["name"] or f["ref_id"],
        stratum=stratum,
        offset_s=-correction,
        max_error_s=abs(correction) + delay / 2 + disp,
        details=(("leap status", f["leap"]), ("rms offset [ms]", f"{rms * 1e3:.3f}"),
                 ("root delay [ms]", f"{delay * 1e3:.3f}"),
                 ("root dispersion [ms]", f"{disp * 1e3:.3f}")),
    )  # fmt: skip


# ---- systemd-timesyncd ------------------------------------------------------------------------
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"([\d.]+)\s*(us|ms|min|s|h|d)")


def parse_systemd_duration(text: str) -> float:
    """``1.129ms``, ``34min 8s``, ``5s`` -> seconds."""
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ClockParseError(f"not a systemd duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _ntp_message(text: str) -> dict[str, str]:
    """``{ Leap=0, Version=4, ..., Ignored=no PacketCount=35, Jitter=1.091ms }``."""
    return dict(re.findall(r"(\w+)=([^,\s}]+)", text))


def parse_timesync(text: str) -> DaemonClock:
    """``timedatectl show-timesync``: key=value lines; a server is in use once it answered."""
    props = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    if "ServerName" not in props and "NTPMessage" not in props:
        raise ClockParseError("timedatectl show-timesync: no ServerName or NTPMessage")
    msg = _ntp_message(props.get("NTPMessage", ""))
    server = props.get("ServerName") or props.get("ServerAddress", "")
    try:
        stratum = int(msg["Stratum"]) if "Stratum" in msg else None
        delay = parse_systemd_duration(msg["RootDelay"]) if "RootDelay" in msg else None
        disp = parse_systemd_duration(msg["RootDispersion"]) if "RootDispersion" in msg else None
    except ValueError as e:
        raise ClockParseError(f"timedatectl show-timesync: {e}") from None
    synced = bool(msg) and msg.get("Leap") != "3" and stratum is not None and 0 < stratum < 16
    details = [("server address", props.get("ServerAddress") or NA)]
    if "Jitter" in msg:
        details.append(("jitter", msg["Jitter"]))
    if "PollIntervalUSec" in props:
        details.append(("poll interval", props["PollIntervalUSec"]))
    return DaemonClock(
        source="systemd-timesyncd",
        synchronised=synced,
        server=server,
        stratum=stratum,
        max_error_s=delay / 2 + disp if delay is not None and disp is not None else None,
        details=tuple(details),
    )


# ---- the status -------------------------------------------------------------------------------
@dataclass
class ClockLimits:
    """Offset and max-error trackers (seconds) and the level of an unsynchronised clock."""

    offset: LevelTracker
    max_error: LevelTracker
    unsynced: int = WARN


@dataclass(frozen=True)
class ClockReading:
    kernel: KernelClock | None
    daemon: DaemonClock | None
    daemon_note: str = ""  # why there is no daemon view
    kernel_note: str = ""


def _ms(x: float | None, signed: bool = False) -> str:
    return NA if x is None else f"{x * 1e3:{'+' if signed else ''}.3f}"


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _synchronised(k: KernelClock | None, d: DaemonClock | None) -> bool | None:
    if k is not None:
        return k.synchronised
    return None if d is None else d.synchronised


def _source(d: DaemonClock | None, note: str) -> str:
    if d is None:
        return f"kernel only (daemon {NA}{': ' + note if note else ''})"
    who = f"{d.source}, {d.server or 'no server'}"
    return who + (f" stratum {d.stratum}" if d.stratum is not None else "")


def check_clock(reading: ClockReading, limits: ClockLimits) -> Report:
    k, d = reading.kernel, reading.daemon
    r = Report()
    synced = _synchronised(k, d)
    offset = _first(d and d.offset_s, k and k.offset_s)  # the daemon measured it
    max_err = _first(d and d.max_error_s, k and k.maxerror_s)
    r.add("synchronised", NA if synced is None else synced)
    r.add("source", _source(d, reading.daemon_note))
    r.add("offset [ms]", _ms(offset, signed=True))
    r.add("max error [ms]", _ms(max_err))
    if k is not None:
        r.add("kernel state", k.state)
        r.add("kernel offset [ms]", _ms(k.offset_s, signed=True))
        r.add("kernel max error [ms]", _ms(k.maxerror_s))
        r.add("kernel estimated error [ms]", _ms(k.esterror_s))
    else:
        r.add("kernel", f"{NA} ({reading.kernel_note or 'adjtimex failed'})")
    for key, value in d.details if d is not None else ():
        r.add(key, value)
    t_off, t_err = limits.offset.threshold, limits.max_error.threshold
    r.add("offset warn/error above [ms]", f"{t_off.warn * 1e3:g} / {t_off.error * 1e3:g}")
    r.add("max error warn/error above [ms]", f"{t_err.warn * 1e3:g} / {t_err.error * 1e3:g}")
    if synced is None:
        r.message = f"clock synchronisation {NA}"
        return r
    if not synced:
        limits.offset.update(None)
        limits.max_error.update(None)
        r.worse(limits.unsynced, "clock not synchronised")
        r.message = r.message or "clock not synchronised"
        return r
    _grade(r, "offset", None if offset is None else abs(offset), limits.offset)
    _grade(r, "max error", max_err, limits.max_error)
    if r.level == OK:
        r.message = f"synchronised: offset {_ms(offset, True)} ms, max error {_ms(max_err)} ms"
    return r


def _grade(r: Report, what: str, value: float | None, tracker: LevelTracker) -> None:
    level = tracker.update(value)
    if level > OK and value is not None:
        r.worse(level, f"clock {what} {value * 1e3:.1f} ms too large")
