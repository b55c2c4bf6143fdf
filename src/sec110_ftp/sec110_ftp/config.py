"""What the FTP service is configured with, what it counts and what it announces (no rclpy)."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

from sec110_ftp.credentials import DEFAULT_PERM

REFUSAL_REASONS = (
    "bad password", "anonymous", "path", "disk space", "too many connections",
    "too many connections per ip", "permission", "tls required", "busy",
)  # fmt: skip


class ServerConfigError(ValueError):
    """The server cannot start with this configuration (message says what to change)."""


@dataclass
class ServerConfig:
    address: str = "127.0.0.1"
    port: int = 2121
    passive_ports: tuple[int, int] | None = None
    masquerade_address: str = ""
    max_connections: int = 16
    max_connections_per_ip: int = 8
    idle_timeout: float = 300.0
    data_timeout: float = 60.0
    read_limit: int = 0  # bytes/s of uploads per data connection, 0 = unlimited
    write_limit: int = 0  # bytes/s of downloads (uploaders have no RETR; kept for completeness)
    min_free_bytes: int = 0
    temp_patterns: tuple[str, ...] = ("*.tmp", "*.part", ".*")
    confirm_grace: float = 2.0
    resume_timeout: float = 3600.0
    incomplete_action: str = "quarantine"  # or "delete"
    allow_anonymous: bool = False
    anonymous_perm: str = DEFAULT_PERM
    auth_failed_delay: float = 3.0
    tls_cert: str = ""
    tls_key: str = ""
    tls_required: bool = False
    retention_max_bytes: int = 0
    retention_max_age_s: float = 0.0
    sweep_period: float = 10.0
    banner: str = "sensorhub SEC110 landing zone ready."


@dataclass
class FileEvent:
    """One completed file, in place under its final name, hashed: what the node announces."""

    user: str
    rel: str
    path: str
    size: int
    sha256: str
    client: str
    finished: float  # wall clock of completion
    transfer_s: float
    source_name: str = ""


@dataclass
class Stats:
    """Counters for diagnostics (written by the loop and the worker, read by the node)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions_open: int = 0
    sessions_total: int = 0
    logins: int = 0
    uploads_complete: int = 0
    announced: int = 0
    incomplete: int = 0
    quarantined: int = 0
    deleted_incomplete: int = 0
    commit_errors: int = 0
    announce_errors: int = 0  # committed but not announced (hash, ledger or publish failed)
    unrecoverable: int = 0  # stuck in .incoming: could be neither committed nor quarantined
    bytes_received: int = 0
    retention_removed: int = 0
    refusals: collections.Counter = field(default_factory=collections.Counter)
    last_file: str = ""
    last_file_time: float = 0.0
    last_error: str = ""

    def add(self, **kw) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def refuse(self, reason: str) -> None:
        with self.lock:
            self.refusals[reason] += 1

    def snapshot(self) -> dict:
        with self.lock:
            d = {k: v for k, v in vars(self).items() if k not in ("lock", "refusals")}
            d["refusals"] = dict(self.refusals)
        return d


def parse_port_range(value) -> tuple[int, int] | None:
    """'60000-60100', [60000, 60100] or ''/[] (kernel-chosen ports) -> (lo, hi) or None."""
    if value in ("", None) or value == []:
        return None
    if isinstance(value, str):
        parts = value.replace(" ", "").split("-")
        if len(parts) != 2:
            raise ValueError(f"expected 'lo-hi', got {value!r}")
        lo, hi = int(parts[0]), int(parts[1])
    else:
        if len(value) != 2:
            raise ValueError(f"expected [lo, hi], got {value!r}")
        lo, hi = int(value[0]), int(value[1])
    if not (1024 <= lo <= hi <= 65535):
        raise ValueError(f"passive ports must satisfy 1024 <= lo <= hi <= 65535, got {lo}-{hi}")
    return lo, hi
