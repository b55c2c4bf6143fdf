"""Host health from the kernel and the Pi firmware (pure parsing and decisions, no rclpy).

Each ``check_*`` turns readings into a :class:`Report` (level, short message, key/values) so the
node only copies it into a diagnostic status. A reading that does not exist on this machine is
``None`` and is reported as "not available", never as 0 (a laptop has no throttling flags, a VM
may have no thermal zones).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sensorhub_common.diagnostics import ERROR, OK, WARN

NA = "not available"


@dataclass
class Report:
    level: int = OK
    message: str = ""
    values: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, value) -> None:
        if value is None:
            value = NA
        elif isinstance(value, float):
            value = f"{value:.1f}"
        self.values.append((key, str(value)))

    def worse(self, level: int, message: str) -> None:
        """Keep the worst level; messages of the worst level are joined."""
        if level > self.level:
            self.level, self.message = level, message
        elif level == self.level and level > OK and message:
            self.message = f"{self.message}; {message}" if self.message else message


# ---- thresholds -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    """value > warn is WARN, value > error is ERROR; a level clears only once the value is
    `hysteresis` below its bound, so a temperature hovering at 70 °C does not flap."""

    warn: float
    error: float
    hysteresis: float = 0.0

    def __post_init__(self):
        if not self.warn <= self.error:
            raise ValueError(f"threshold: warn {self.warn} must be <= error {self.error}")
        if self.hysteresis < 0:
            raise ValueError("threshold: hysteresis must be >= 0")

    def bound(self, level: int) -> float:
        return self.error if level >= ERROR else self.warn

    def raw(self, value: float) -> int:
        return ERROR if value > self.error else WARN if value > self.warn else OK


class LevelTracker:
    """The OK/WARN/ERROR state of one reading against a :class:`Threshold`."""

    def __init__(self, threshold: Threshold):
        self.threshold = threshold
        self.level = OK

    def update(self, value: float | None) -> int:
        if value is None:
            self.level = OK
            return OK
        t = self.threshold
        raw = t.raw(value)
        new = raw
        for lvl in (ERROR, WARN):
            if raw < lvl <= self.level and value > t.bound(lvl) - t.hysteresis:
                new = lvl
                break
        self.level = new
        return new


# ---- Raspberry Pi throttling ------------------------------------------------------------------
THROTTLE_BITS = {
    0: ("under-voltage", ERROR),
    1: ("frequency capped", WARN),
    2: ("throttled", ERROR),
    3: ("soft temperature limit", WARN),
}
SINCE_BOOT_SHIFT = 16
SYSFS_THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"


class ThrottleParseError(ValueError):
    pass


def parse_throttled(text: str) -> int:
    """`vcgencmd get_throttled` ("throttled=0x50005") or the sysfs file ("50005", hex)."""
    s = text.strip()
    if s.startswith("throttled="):
        s = s[len("throttled=") :]
    try:
        return int(s, 16)
    except ValueError:
        raise ThrottleParseError(f"cannot parse throttling flags from {text.strip()!r}") from None


def decode_throttled(flags: int) -> dict[str, tuple[bool, bool]]:
    """{condition: (now, since boot)}."""
    return {
        name: (bool(flags >> bit & 1), bool(flags >> (bit + SINCE_BOOT_SHIFT) & 1))
        for bit, (name, _) in THROTTLE_BITS.items()
    }


def check_throttled(flags: int | None, source: str = "") -> Report:
    r = Report()
    if flags is None:
        r.message = f"throttling flags {NA} (not a Raspberry Pi)"
        r.add("flags", None)
        return r
    now, past = [], []
    for bit, (name, level) in THROTTLE_BITS.items():
        active, occurred = flags >> bit & 1, flags >> (bit + SINCE_BOOT_SHIFT) & 1
        if active:
            now.append(name)
            r.worse(level, f"{name} now")
        elif occurred:
            past.append(name)
        r.add(f"{name} now", bool(active))
        r.add(f"{name} since boot", bool(occurred))
    if past:
        r.worse(WARN, "since boot: " + ", ".join(past))
    if r.level == OK:
        r.message = "no throttling"
    r.values.insert(0, ("flags", f"0x{flags:x}"))
    r.add("source", source)
    return r


class ThrottleReader:
    """sysfs first (no process to spawn), else `vcgencmd get_throttled`; None when neither."""

    def __init__(self, sysfs: str = SYSFS_THROTTLED, vcgencmd: str = "vcgencmd"):
        self.sysfs, self.vcgencmd = sysfs, vcgencmd
        self.source = ""

    def read(self) -> int | None:
        if self.sysfs:
            try:
                self.source = self.sysfs
                return parse_throttled(Path(self.sysfs).read_text())
            except (OSError, ThrottleParseError):
                pass
        if self.vcgencmd:
            try:
                out = subprocess.run(
                    [self.vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=2
                )
                if out.returncode == 0:
                    self.source = "vcgencmd"
                    return parse_throttled(out.stdout)
            except (OSError, subprocess.SubprocessError, ThrottleParseError):
                pass
        self.source = ""
        return None


# ---- temperatures -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Zone:
    name: str  # thermal_zone0
    type: str  # cpu-thermal
    celsius: float | None


def read_thermal_zones(root: str | os.PathLike = "/sys/class/thermal") -> list[Zone]:
    """Every thermal zone; a zone whose temp cannot be read (some firmware zones) is None."""
    out = []
    try:
        names = sorted(p for p in os.listdir(root) if p.startswith("thermal_zone"))
    except OSError:
        return []
    for z in names:
        d = Path(root, z)
        try:
            typ = (d / "type").read_text().strip()
        except OSError:
            typ = "?"
        try:
            c = int((d / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            c = None
        out.append(Zone(z, typ, c))
    return out


def check_temperature(zones: list[Zone], tracker: LevelTracker) -> Report:
    r = Report()
    known = [z for z in zones if z.celsius is not None]
    for z in zones:
        r.add(f"{z.type} ({z.name}) [degC]", z.celsius)
    if not known:
        r.message = f"temperature {NA} (no readable thermal zone)"
        if not zones:
            r.add("thermal zones", NA)
        tracker.update(None)
        return r
    hot = max(known, key=lambda z: z.celsius)
    level = tracker.update(hot.celsius)
    words = {OK: "", WARN: "high", ERROR: "too high"}
    r.level = level
    r.message = f"{hot.type} {hot.celsius:.1f} degC" + (f" {words[level]}" if level else "")
    r.values.insert(0, ("max [degC]", f"{hot.celsius:.1f}"))
    t = tracker.threshold
    r.add("warn above [degC]", t.warn)
    r.add("error above [degC]", t.error)
    return r


# ---- CPU, memory, disk, network ---------------------------------------------------------------
def check_cpu(
    per_core: list[float],
    load: tuple[float, float, float] | None,
    freq_mhz: float | None,
    tracker: LevelTracker,
) -> Report:
    r = Report()
    if not per_core:
        r.message = f"CPU usage {NA}"
        return r
    avg = sum(per_core) / len(per_core)
    r.level = tracker.update(avg)
    r.message = f"CPU {avg:.0f}%" + {OK: "", WARN: " high", ERROR: " overloaded"}[r.level]
    r.add("average [%]", avg)
    for i, c in enumerate(per_core):
        r.add(f"core {i} [%]", float(c))
    r.add("load 1/5/15 min", " / ".join(f"{x:.2f}" for x in load) if load else None)
    r.add("frequency [MHz]", freq_mhz)
    r.add("warn above [%]", tracker.threshold.warn)
    r.add("error above [%]", tracker.threshold.error)
    return r


def check_percent(what: str, used_pct: float | None, tracker: LevelTracker, **values) -> Report:
    r = Report()
    if used_pct is None:
        r.message = f"{what} {NA}"
        tracker.update(None)
    else:
        r.level = tracker.update(used_pct)
        r.message = (
            f"{what} {used_pct:.0f}% used" + {OK: "", WARN: " (high)", ERROR: " (full)"}[r.level]
        )
    r.add("used [%]", used_pct)
    for k, v in values.items():
        r.add(k.replace("_", " "), v)
    r.add("warn above [%]", tracker.threshold.warn)
    r.add("error above [%]", tracker.threshold.error)
    return r


@dataclass(frozen=True)
class NetCounters:
    bytes_sent: int
    bytes_recv: int
    errin: int
    errout: int
    dropin: int
    dropout: int


def net_rates(prev: dict[str, NetCounters], cur: dict[str, NetCounters], dt: float) -> Report:
    """Per-interface rates; new errors or drops in the period are a warning."""
    r = Report(message="")
    busiest = None
    for nic in sorted(cur):
        c = cur[nic]
        p = prev.get(nic)
        if p is None or dt <= 0:
            r.add(f"{nic} rx/tx [kB/s]", None)
            continue
        rx = max(0, c.bytes_recv - p.bytes_recv) / dt / 1e3
        tx = max(0, c.bytes_sent - p.bytes_sent) / dt / 1e3
        errs = max(0, c.errin + c.errout - p.errin - p.errout)
        drops = max(0, c.dropin + c.dropout - p.dropin - p.dropout)
        r.add(f"{nic} rx/tx [kB/s]", f"{rx:.1f} / {tx:.1f}")
        r.add(f"{nic} errors/drops total", f"{c.errin + c.errout} / {c.dropin + c.dropout}")
        if errs:
            r.worse(WARN, f"{nic}: {errs} errors")
        if busiest is None or rx + tx > busiest[1]:
            busiest = (nic, rx + tx)
        _ = drops  # drops are common on idle links (multicast); shown, not alarmed
    if not cur:
        r.message = f"network counters {NA}"
    elif r.level == OK:
        r.message = f"busiest {busiest[0]} {busiest[1]:.0f} kB/s" if busiest else "measuring rates"
    return r


# ---- kernel log -------------------------------------------------------------------------------
# "USB errors": the kernel's words for a failing USB link, a serial adapter that drops out,
# and the Pi firmware's under-voltage warning.
KERNEL_PATTERNS = [
    ("usb", re.compile(r"usb \S+: (device (descriptor read|not accepting address)|"
                       r".*error -?\d+|.*over-current|reset .*USB device|USB disconnect)", re.I)),
    ("usb", re.compile(r"(xhci|dwc2|dwc_otg)\S*.*(error|died|halted)", re.I)),
    ("serial", re.compile(r"(ttyUSB|ttyACM|ttyAMA|ttyS)\d+.*"
                          r"(error|overrun|disconnect|urb stopped|fail)", re.I)),
    ("serial", re.compile(r"(ftdi_sio|cp210x|ch341|pl2303|cdc_acm)\b.*(error|fail|disconnect)",
                          re.I)),
    ("power", re.compile(r"under-?voltage detected", re.I)),
]  # fmt: skip


@dataclass(frozen=True)
class KernelRecord:
    seq: int
    usec: int
    priority: int
    message: str


def parse_kmsg(record: bytes | str) -> KernelRecord | None:
    """One /dev/kmsg record: ``prio,seq,usec,flags[,...];message`` (continuation lines dropped)."""
    if isinstance(record, bytes):
        record = record.decode(errors="replace")
    head, sep, msg = record.partition(";")
    if not sep:
        return None
    f = head.split(",")
    try:
        return KernelRecord(int(f[1]), int(f[2]), int(f[0]) & 7, msg.split("\n", 1)[0])
    except (IndexError, ValueError):
        return None


def classify(message: str) -> str | None:
    for kind, rx in KERNEL_PATTERNS:
        if rx.search(message):
            return kind
    return None


class KernelLog:
    """Counts USB/serial/power problems from /dev/kmsg (non-blocking, records since boot first)."""

    def __init__(self, path: str = "/dev/kmsg", keep: int = 5):
        self.path = path
        self.counts: dict[str, int] = {}
        self.recent: list[str] = []
        self.keep = keep
        self.error = ""
        self.new = 0
        self._fd = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            self.error = f"{path}: {e.strerror}"

    @property
    def available(self) -> bool:
        return self._fd is not None

    def feed(self, rec: KernelRecord) -> None:
        kind = classify(rec.message)
        if kind is None:
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.new += 1
        self.recent = [*self.recent, f"[{rec.usec / 1e6:.1f}] {rec.message}"][-self.keep :]

    def poll(self, max_records: int = 2000) -> None:
        if self._fd is None:
            return
        for _ in range(max_records):
            try:
                data = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EPIPE:  # records overwritten before we read them
                    continue
                self.error = f"{self.path}: {e.strerror}"
                self.close()
                return
            if not data:
                return
            rec = parse_kmsg(data)
            if rec is not None:
                self.feed(rec)

    def report(self) -> Report:
        r = Report()
        if not self.available:
            r.message = f"kernel log {NA} ({self.error or 'not opened'})"
            return r
        new, self.new = self.new, 0
        total = sum(self.counts.values())
        if new:
            r.worse(WARN, f"{new} new USB/serial/power messages: {self.recent[-1][:80]}")
        else:
            r.message = f"no new USB/serial errors ({total} since boot)"
        for kind in ("usb", "serial", "power"):
            r.add(f"{kind} messages since boot", self.counts.get(kind, 0))
        for i, line in enumerate(reversed(self.recent)):
            r.add(f"recent {i + 1}", line)
        return r

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
