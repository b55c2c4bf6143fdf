"""pyftpdlib subclasses that apply the landing-zone rules (no rclpy).

Everything goes through pyftpdlib's public extension points: the FTPHandler callbacks
(on_login, on_login_failed, on_disconnect, on_file_received, on_incomplete_file_received,
log_transfer), overridden ftp_* commands (STOR/APPE/RNFR/RNTO refuse a name another session is
writing), pre_process_command and respond(), and DTPHandler
subclasses (enable_receiving, handle_close). The one thing pyftpdlib has no hook for, telling
a TCP reset from an orderly close of a data connection, is isolated in :func:`peer_reset_now`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import sys
from typing import TYPE_CHECKING

from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import FTPHandler

from sec110_ftp.credentials import User, verify_password
from sec110_ftp.landing import climbs_above_root

if TYPE_CHECKING:
    from sec110_ftp.server import FtpService

# Commands whose argument is a path in the user's tree (checked for '..' above the root).
PATH_CMDS = {
    "APPE", "CWD", "XCWD", "DELE", "LIST", "MDTM", "MLSD", "MLST", "MKD", "XMKD", "NLST",
    "RETR", "RMD", "XRMD", "RNFR", "RNTO", "SIZE", "STOR", "STOU", "STAT", "MFMT",
}  # fmt: skip
UPLOAD_CMDS = {"STOR", "APPE", "STOU"}
# pyftpdlib's own refusals, counted by the start of their reply
REFUSAL_REPLIES = (
    ("550", "outside the user's root", "path"),
    ("550 Not enough privileges", "", "permission"),
    ("550 SSL/TLS required", "", "tls required"),
)


class HashedAuthorizer(DummyAuthorizer):
    """DummyAuthorizer whose passwords are pbkdf2/scrypt hashes (credentials.py).

    A verified (user, password) pair is remembered as a salted digest so a device that logs in
    every few seconds costs one slow hash per process lifetime, not one per login on the loop.
    """

    def __init__(self, users: dict[str, User], homes: dict[str, str]):
        super().__init__()
        self._hashes = {}
        self._ok = set()
        self._salt = os.urandom(16)
        for name, u in users.items():
            self.add_user(name, "", homes[name], perm=u.perm)
            self._hashes[name] = u.password_hash

    def _key(self, username, password) -> bytes:
        return hashlib.sha256(self._salt + f"{username}\0{password}".encode()).digest()

    def validate_authentication(self, username, password, handler):
        if username == "anonymous":
            if self.has_user("anonymous"):
                return
            raise AuthenticationFailed("Anonymous access not allowed.")
        h = self._hashes.get(username)
        if h is None:
            raise AuthenticationFailed("Authentication failed.")
        key = self._key(username, password)
        if key in self._ok:
            return
        if not verify_password(password, h):
            raise AuthenticationFailed("Authentication failed.")
        self._ok.add(key)


def peer_reset_now() -> bool:
    """True inside a handle_close() that pyftpdlib calls because the peer reset the connection.

    pyftpdlib reports every end of an upload's data connection the same way. Its
    AsyncChat.recv() catches the ConnectionResetError and calls handle_close() from within the
    except block, so there the reset is the exception being handled. test_handler.py checks
    that against the installed pyftpdlib.
    """
    return isinstance(sys.exc_info()[1], ConnectionResetError)


class UploadStartDTP:
    """DTPHandler mixin: tells the control channel the moment an upload starts receiving.

    pyftpdlib calls enable_receiving() once the file is open and the data connection is up,
    whether the connection came before the STOR/APPE/STOU or after it.
    """

    def enable_receiving(self, type, cmd):
        super().enable_receiving(type, cmd)
        self.cmd_channel.on_upload_started(self.file_obj.name)


class ResetAbortsUploadDTP:
    """DTPHandler mixin for plain data connections: a TCP reset by the peer aborts the upload
    (426, on_incomplete_file_received) instead of pyftpdlib's 226 for any end of the data."""

    def handle_close(self):
        if self.receive and self.connected and peer_reset_now():
            self.transfer_finished = False
            self.cmd_channel.respond(
                "426 Connection reset by client; transfer aborted.", logfun=logging.info
            )
            self.close()
            return
        super().handle_close()


class DiskErrorDTP:
    """DTPHandler mixin: an upload the disk cannot take (full, read-only, I/O error) is aborted
    with a reply that says why, and never counts as received.

    pyftpdlib answers a failed write with "426 None" (it formats the wrapper's empty errno) and
    closes the file only after choosing its reply, so a full disk at the last buffered write
    would still get 226. Here the file is flushed first and any failure turns into a 426.
    """

    def handle_error(self):
        err = sys.exc_info()[1]
        cause = getattr(err, "__cause__", None)  # pyftpdlib wraps the OSError of the write
        cause = cause if isinstance(cause, OSError) else err
        if not (self.receive and isinstance(cause, OSError)):
            super().handle_error()
            return
        self._abort_on_disk_error(cause)
        self.close()

    def close(self):
        f = self.file_obj
        if self.receive and not self._closed and f is not None and not f.closed:
            try:
                f.close()
            except OSError as e:
                self._abort_on_disk_error(e)
        super().close()

    def _abort_on_disk_error(self, e: OSError) -> None:
        reason = os.strerror(e.errno) if e.errno else str(e) or type(e).__name__
        self.transfer_finished = False
        self._resp = (f"426 Transfer aborted: {reason[:1].lower()}{reason[1:]}.", logging.info)
        self.cmd_channel.service.stats.last_error = f"upload failed: {reason}"


_SESSION_IDS = itertools.count(1)


class LandingHandler(FTPHandler):
    """FTPHandler with the landing-zone rules; `service` is set on the per-server subclass."""

    service: FtpService = None  # type: ignore[assignment]
    sid = 0
    last_transfer = (0.0, 0)  # (seconds, bytes) of the latest data transfer
    _counted = False
    _quit_seen = False

    def handle(self):
        svc = self.service
        self.sid = next(_SESSION_IDS)
        with svc.stats.lock:
            full = svc.stats.sessions_open >= svc.cfg.max_connections
        if full:
            self.handle_max_cons()
            return
        svc.stats.add(sessions_open=1, sessions_total=1)
        self._counted = True
        super().handle()

    @property
    def client(self) -> str:
        return f"{self.remote_ip}:{self.remote_port}"

    def handle_max_cons(self):
        self.service.stats.refuse("too many connections")
        super().handle_max_cons()

    def handle_max_cons_per_ip(self):
        self.service.stats.refuse("too many connections per ip")
        super().handle_max_cons_per_ip()

    def on_login(self, username):
        self.service.stats.add(logins=1)

    def on_login_failed(self, username, password):
        self.service.stats.refuse("anonymous" if username == "anonymous" else "bad password")

    def on_disconnect(self):
        svc = self.service
        if self._counted:
            self._counted = False
            svc.stats.add(sessions_open=-1)
        if not self.sid:
            return
        if self._quit_seen:
            svc.confirm(self.sid)
        # what is still receiving (a data connection that never came, or came and hung) cannot
        # be finished by a session that is gone, QUIT or not: partial, kept for resume
        svc.session_lost(self.sid)

    def respond(self, resp, logfun=logging.debug):
        for start, part, reason in REFUSAL_REPLIES:
            if resp.startswith(start) and part in resp:
                self.service.stats.refuse(reason)
                break
        super().respond(resp, logfun)

    def pre_process_command(self, line, cmd, arg):
        if self.authenticated:
            self.service.confirm(self.sid)  # the client talks again: its last upload was complete
            if self._refused(cmd, arg):
                return
        if cmd == "QUIT":
            self._quit_seen = True
        super().pre_process_command(line, cmd, arg)

    def _refused(self, cmd: str, arg: str) -> bool:
        """Answer and count a command the landing zone refuses before pyftpdlib sees it."""
        svc = self.service
        if cmd in PATH_CMDS and arg and climbs_above_root(self.fs.cwd, arg):
            self.respond("550 Path leaves the user's folder; refused.")
            svc.stats.refuse("path")
            self.log_cmd(cmd, arg, 550, "path leaves the user's folder")
            return True
        if cmd in UPLOAD_CMDS and svc.cfg.min_free_bytes > 0:
            free = svc.zone.free_bytes()
            if free < svc.cfg.min_free_bytes:
                self.respond(
                    f"452 Insufficient storage space: {free} bytes free, "
                    f"{svc.cfg.min_free_bytes} required."
                )
                svc.stats.refuse("disk space")
                self.log_cmd(cmd, arg, 452, "insufficient storage space")
                return True
        return False

    def on_upload_started(self, file):
        """Called by UploadStartDTP when an upload's data starts flowing."""
        self.service.begin(self, file)

    def log_transfer(self, cmd, filename, receive, completed, elapsed, bytes):
        # pyftpdlib calls this right before on_(incomplete_)file_received with the measures
        self.last_transfer = (elapsed, bytes)
        super().log_transfer(cmd, filename, receive, completed, elapsed, bytes)

    def on_file_received(self, file):
        self.service.received(self, file, True, *self.last_transfer)

    def on_incomplete_file_received(self, file):
        self.service.received(self, file, False, *self.last_transfer)

    def _busy(self, cmd: str, path: str) -> bool:
        """Refuse (450) a command on a file another upload is still writing or confirming:
        two writers on one file would announce bytes that are not what either sent."""
        if not self.service.writing(path, self.sid):
            return False
        self.respond("450 File busy: an upload to this name is in progress; try again later.")
        self.service.stats.refuse("busy")
        self.log_cmd(cmd, path, 450, "file busy")
        return True

    def ftp_STOR(self, file, mode="w"):
        if self._busy("APPE" if "a" in mode else "STOR", file):
            self._restart_position = 0
            return None
        fresh = mode == "w" and not self._restart_position
        r = super().ftp_STOR(file, mode)
        if r:  # tracked from now: a second STOR to this name before the data flows is refused
            self.service.begin(self, r, fresh)
        return r

    def ftp_RNFR(self, path):
        if not self._busy("RNFR", path):
            super().ftp_RNFR(path)

    def ftp_RNTO(self, path):
        if self._rnfr and (self._busy("RNTO", self._rnfr) or self._busy("RNTO", path)):
            self._rnfr = None
            return None
        r = super().ftp_RNTO(path)
        if r:
            self.service.renamed(*r)
        return r

    def ftp_SIZE(self, path):
        # a file moved to its dated folder still answers under its landing-zone name
        moved = self.service.moved.get(path)
        if moved is not None and not os.path.lexists(path) and os.path.isfile(moved):
            path = moved
        super().ftp_SIZE(path)
