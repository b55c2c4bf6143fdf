"""The FTP transport: pyftpdlib's server on its own IO-loop thread, wired to the landing zone.

No rclpy here. pyftpdlib does the protocol, limits, throttling (ThrottledDTPHandler), TLS
(TLS_FTPHandler) and path confinement (AbstractedFS.validpath resolves symlinks); the handler
subclasses in handler.py add the landing-zone rules through pyftpdlib's hooks.

Threads: the IO loop (all pyftpdlib callbacks, landing-zone moves, the tracker) and one worker
(sha256, announcing, ledger, retention), so hashing a 1 GB file never stalls other sessions.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyftpdlib.handlers import ThrottledDTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from sec110_ftp.credentials import DEFAULT_PERM, User
from sec110_ftp.handler import (
    HashedAuthorizer,
    LandingHandler,
    ResetAbortsUploadDTP,
    UploadStartDTP,
)
from sec110_ftp.landing import (
    Announced,
    CommitError,
    LandingZone,
    PathRefusedError,
    Tracker,
    Upload,
    sha256_file,
)

REFUSAL_REASONS = (
    "bad password", "anonymous", "path", "disk space", "too many connections",
    "too many connections per ip", "permission", "tls required",
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


class FtpService:
    """pyftpdlib server + landing zone + worker; `on_file(FileEvent)` runs on the worker."""

    MOVED_MEMORY = 4096  # SIZE answers for this many recently committed files

    def __init__(
        self,
        cfg: ServerConfig,
        zone: LandingZone,
        users: dict[str, User],
        on_file: Callable[[FileEvent], None],
        log: Callable[[str, str], None] | None = None,
    ):
        self.cfg = cfg
        self.zone = zone
        self.users = users
        self.on_file = on_file
        self.log = log or (lambda level, msg: None)
        self.stats = Stats()
        self.tracker = Tracker(cfg.temp_patterns)
        self.moved: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.free_bytes = zone.free_bytes()
        self.ioloop = IOLoop()
        self.server = self._make_server()
        self._thread = threading.Thread(target=self._run, name="ftp-loop", daemon=True)
        self._worker = threading.Thread(target=self._work, name="ftp-worker", daemon=True)

    # -- construction
    def _handler_classes(self):
        cfg = self.cfg
        dtp_attrs = {
            "timeout": cfg.data_timeout,
            "read_limit": cfg.read_limit,
            "write_limit": cfg.write_limit,
        }
        attrs = {
            "service": self,
            "timeout": cfg.idle_timeout,
            "banner": cfg.banner,
            "passive_ports": (
                list(range(cfg.passive_ports[0], cfg.passive_ports[1] + 1))
                if cfg.passive_ports
                else None
            ),
            "masquerade_address": cfg.masquerade_address or None,
            "auth_failed_timeout": cfg.auth_failed_delay,
            "permit_foreign_addresses": False,
            "permit_privileged_ports": False,
            "use_sendfile": False,
        }
        if cfg.tls_cert or cfg.tls_key:
            tls_handler, tls_dtp = _tls_handlers(cfg)
            dtp = type("LandingTlsDTP", (UploadStartDTP, tls_dtp, ThrottledDTPHandler), dtp_attrs)
            attrs.update(
                certfile=cfg.tls_cert,
                keyfile=cfg.tls_key,
                tls_control_required=cfg.tls_required,
                tls_data_required=cfg.tls_required,
                dtp_handler=dtp,
            )
            return type("LandingTlsHandler", (LandingHandler, tls_handler), attrs)
        if cfg.tls_required:
            raise ServerConfigError("tls_required needs tls_cert and tls_key")
        bases = (UploadStartDTP, ResetAbortsUploadDTP, ThrottledDTPHandler)
        attrs["dtp_handler"] = type("LandingDTP", bases, dtp_attrs)
        return type("LandingPlainHandler", (LandingHandler,), attrs)

    def _make_server(self) -> FTPServer:
        homes = {name: str(self.zone.home(name)) for name in self.users}
        auth = HashedAuthorizer(self.users, homes)
        if self.cfg.allow_anonymous:
            auth.add_anonymous(str(self.zone.home("anonymous")), perm=self.cfg.anonymous_perm)
        handler = self._handler_classes()
        handler.authorizer = auth
        plog = logging.getLogger("pyftpdlib")
        if not plog.handlers:  # keep pyftpdlib from configuring root logging on its own
            plog.addHandler(_Forward(self.log))
            plog.setLevel(logging.WARNING)
            plog.propagate = False
        try:
            server = FTPServer((self.cfg.address, self.cfg.port), handler, ioloop=self.ioloop)
        except OSError as e:
            raise ServerConfigError(
                f"cannot listen on {self.cfg.address}:{self.cfg.port}: {e.strerror or e}"
            ) from None
        # pyftpdlib counts sockets (control + data + passive listeners) against max_cons;
        # sessions are limited in LandingHandler.handle(), this only guards file descriptors.
        server.max_cons = 3 * self.cfg.max_connections + 4
        server.max_cons_per_ip = self.cfg.max_connections_per_ip
        return server

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    # -- lifecycle
    def start(self) -> None:
        self.ioloop.call_every(0.25, self._check_stop)
        self.ioloop.call_every(self.cfg.sweep_period, self._sweep)
        self._worker.start()
        self._thread.start()
        for user, path in self.zone.unannounced():
            # moved into place by a previous run that died before announcing them
            self.jobs.put(("announce", user, str(path), "", time.time(), 0.0, path.name))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.jobs.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _run(self) -> None:
        try:
            self.server.serve_forever(timeout=1.0, blocking=True, handle_exit=False)
        except Exception as e:  # the loop died: say so, the node reports it
            self.stats.last_error = f"FTP loop stopped: {type(e).__name__}: {e}"
            self.log("error", self.stats.last_error)
        finally:
            try:
                self.ioloop.close()
            except Exception:
                pass

    def _check_stop(self) -> None:
        if self._stop.is_set():
            self.server.close_all()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- landing-zone rules (IO-loop thread)
    def begin(self, h: LandingHandler, path: str) -> None:
        self.tracker.begin(path, h.username, h.client, h.sid, time.time())

    def received(self, h: LandingHandler, path: str, ok: bool, elapsed: float, n: int) -> None:
        self.stats.add(bytes_received=n)
        if path not in self.tracker.uploads:  # its start was not seen: track it now
            self.begin(h, path)
        self.tracker.data_closed(path, ok, time.time(), elapsed, n)
        if not ok:
            self.stats.add(incomplete=1)
            self.log("warn", f"incomplete upload {path} from {h.client} ({n} bytes)")
            return
        # still connected after the grace period: the upload stands
        self.ioloop.call_later(self.cfg.confirm_grace, self._grace, h.sid, h)

    def _grace(self, sid: int, h: LandingHandler) -> None:
        if h.connected:
            self.confirm(sid)

    def confirm(self, sid: int) -> None:
        for up in self.tracker.confirm(sid):
            self.stats.add(uploads_complete=1)
            self.commit(up)

    def session_lost(self, sid: int) -> None:
        lost = self.tracker.session_lost(sid)
        for up in lost:
            self.stats.add(incomplete=1)
            self.log(
                "warn",
                f"{up.client} disconnected without confirming {up.path}: kept for resume "
                f"for {self.cfg.resume_timeout:g} s, never announced unless completed",
            )

    def renamed(self, src: str, dst: str) -> None:
        up = self.tracker.renamed(src, dst)
        if up is not None:
            self.commit(up)

    def commit(self, up: Upload) -> None:
        self.tracker.forget(up.path)
        try:
            dest = self.zone.commit(up.user, up.path, time.time())
        except (CommitError, PathRefusedError, OSError) as e:
            self.stats.add(commit_errors=1)
            self.stats.last_error = str(e)
            self.log("error", f"commit failed: {e}")
            return
        self.moved[up.path] = str(dest)
        while len(self.moved) > self.MOVED_MEMORY:
            self.moved.popitem(last=False)
        finished = up.finished or time.time()
        name = os.path.basename(up.path)
        self.jobs.put(("announce", up.user, str(dest), up.client, finished, up.transfer_s, name))

    def _sweep(self) -> None:
        self.free_bytes = self.zone.free_bytes()
        stale = self.zone.stale_incoming(self.cfg.resume_timeout, busy=self.tracker.busy)
        for user, path in stale:
            self.tracker.forget(path)
            try:
                q = self.zone.quarantine(user, path, delete=self.cfg.incomplete_action == "delete")
            except (OSError, PathRefusedError) as e:
                self.log("error", f"cannot quarantine {path}: {e}")
                continue
            if q is None:
                self.stats.add(deleted_incomplete=1)
                self.log("warn", f"deleted incomplete upload {path}")
            else:
                self.stats.add(quarantined=1)
                self.log("warn", f"quarantined incomplete upload {path} -> {q}")
        if self.cfg.retention_max_bytes > 0 or self.cfg.retention_max_age_s > 0:
            self.jobs.put(("retention",))

    # -- worker thread
    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                if job[0] == "announce":
                    self._announce(*job[1:])
                elif job[0] == "retention":
                    self._retention()
            except Exception as e:  # keep the worker alive; diagnostics show the error
                self.stats.last_error = f"{type(e).__name__}: {e}"
                self.log("error", f"worker: {self.stats.last_error}")

    def _announce(self, user, dest, client, finished, transfer_s, source_name) -> None:
        size, digest = sha256_file(dest)
        rel = os.path.relpath(dest, self.zone.data_root)
        ev = FileEvent(user, rel, dest, size, digest, client, finished, transfer_s, source_name)
        self.on_file(ev)
        self.zone.record(Announced(rel, size, digest, finished, client, transfer_s))
        with self.stats.lock:
            self.stats.announced += 1
            self.stats.last_file = rel
            self.stats.last_file_time = finished
        self._retention()

    def _retention(self) -> None:
        res = self.zone.retention(self.cfg.retention_max_bytes, self.cfg.retention_max_age_s)
        if res.removed:
            self.stats.add(retention_removed=len(res.removed))
            self.log(
                "info",
                f"retention removed {len(res.removed)} file(s), {res.freed_bytes} bytes "
                f"(oldest first: {res.removed[0]})",
            )


class _Forward(logging.Handler):
    def __init__(self, log):
        super().__init__()
        self._log = log

    def emit(self, record):
        try:
            level = "error" if record.levelno >= logging.ERROR else "warn"
            self._log(level, f"pyftpdlib: {record.getMessage()}")
        except Exception:
            pass


def _tls_handlers(cfg: ServerConfig) -> tuple[type, type]:
    """pyftpdlib's (TLS_FTPHandler, TLS_DTPHandler) once the FTPS settings are usable."""
    if not (cfg.tls_cert and cfg.tls_key):
        raise ServerConfigError("FTPS needs both tls_cert and tls_key")
    for p in (cfg.tls_cert, cfg.tls_key):
        if not os.access(p, os.R_OK):
            raise ServerConfigError(f"FTPS: cannot read {p}")
    try:
        # exported only when pyOpenSSL imports
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler
    except ImportError as e:
        raise ServerConfigError(
            "FTPS (tls_cert/tls_key set) needs the Python module 'OpenSSL' "
            "(pip package pyOpenSSL, Debian python3-openssl), which is not installed "
            f"({e}); install it or leave tls_cert and tls_key empty"
        ) from None
    return TLS_FTPHandler, TLS_DTPHandler


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
