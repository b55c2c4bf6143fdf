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

from pyftpdlib.handlers import ThrottledDTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from sec110_ftp.config import FileEvent, ServerConfig, ServerConfigError, Stats
from sec110_ftp.credentials import User
from sec110_ftp.handler import (
    DiskErrorDTP,
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
from sec110_ftp.naming import escape


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
        self._stuck: set[str] = set()  # landing-zone files whose quarantine failed (told once)
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
            # ThrottledDTPHandler sets this after DTPHandler.__init__, which already calls
            # close() for a data connection reset as it is accepted: without a default that
            # close() raises AttributeError and stops the whole IO loop.
            "_throttler": None,
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
            bases = (UploadStartDTP, DiskErrorDTP, tls_dtp, ThrottledDTPHandler)
            dtp = type("LandingTlsDTP", bases, dtp_attrs)
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
        bases = (UploadStartDTP, ResetAbortsUploadDTP, DiskErrorDTP, ThrottledDTPHandler)
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

    def failure(self) -> str:
        """Why the service cannot go on (a thread died while not stopping), or ''."""
        if self._stop.is_set():
            return ""
        for t in (self._thread, self._worker):
            if t.ident is not None and not t.is_alive():
                return self.stats.last_error or f"{t.name} thread stopped"
        return ""

    # -- landing-zone rules (IO-loop thread)
    def begin(self, h: LandingHandler, path: str, fresh: bool = False) -> None:
        self.tracker.begin(path, h.username, h.client, h.sid, time.time(), fresh)

    def writing(self, path: str, sid: int) -> bool:
        """Another session's upload to `path` is under way or not yet confirmed."""
        up = self.tracker.uploads.get(path)
        return up is not None and up.session != sid and self.tracker.busy(path)

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
            self._take_out(user, path)
        if self.cfg.retention_max_bytes > 0 or self.cfg.retention_max_age_s > 0:
            self.jobs.put(("retention",))

    def _take_out(self, user: str, path: str) -> None:
        """Quarantine (or delete) one stale upload; a failure is told once, then retried
        quietly."""
        self.tracker.forget(path)
        try:
            q = self.zone.quarantine(user, path, delete=self.cfg.incomplete_action == "delete")
        except (OSError, PathRefusedError) as e:
            if path not in self._stuck:
                self._stuck.add(path)
                self.stats.add(unrecoverable=1)
                self.stats.last_error = f"cannot quarantine {path}: {e}"
                self.log("error", f"{self.stats.last_error} (left in place, retried quietly)")
            return
        self._stuck.discard(path)
        if q is None:
            self.stats.add(deleted_incomplete=1)
            self.log("warn", f"deleted incomplete upload {path}")
        else:
            self.stats.add(quarantined=1)
            self.log("warn", f"quarantined incomplete upload {path} -> {q}")

    # -- worker thread
    def _work(self) -> None:
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                self._do(job)
        except BaseException as e:  # the node sees failure() and ends the process
            self.stats.last_error = f"ftp-worker died: {type(e).__name__}: {escape(str(e))}"
            raise

    def _do(self, job: tuple) -> None:
        try:
            if job[0] == "announce":
                self._announce(*job[1:])
            elif job[0] == "retention":
                self._retention()
        except Exception as e:  # one job failed; the next file still gets announced
            if job[0] == "announce":
                self.stats.add(announce_errors=1)
            self.stats.last_error = f"{job[0]} failed: {type(e).__name__}: {e}"
            self.log("error", self.stats.last_error)

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
