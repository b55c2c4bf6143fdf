"""The sec110_ftp node: parameters, the sec110/files publisher and diagnostics around FtpService.

Thin on purpose: pyftpdlib runs on its own IO-loop thread and the worker thread hashes and
announces (rclpy publish is thread-safe); the executor only serves parameters and diagnostics.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

from rclpy.node import Node

from sec110_ftp.config import (
    REFUSAL_REASONS,
    FileEvent,
    ServerConfig,
    ServerConfigError,
    parse_port_range,
)
from sec110_ftp.credentials import CredentialsError, load_users
from sec110_ftp.landing import DEFAULT_TEMP_PATTERNS, LandingZone
from sec110_ftp.naming import escape
from sec110_ftp.server import FtpService
from sensorhub_common import diagnostics as diag
from sensorhub_common import paths, qos
from sensorhub_common.params import Param, ParameterError, ParamSet
from sensorhub_common.runner import fatal, run_node
from sensorhub_msgs.msg import Sec110File

DAY = 86400.0
FATAL_AFTER_S = 2.0  # a dead thread is reported as ERROR this long before the process ends


def make_log(logger):
    """log(level, msg) for FtpService: escaped text, one rclpy call site per severity.

    rclpy fixes each call site's severity at its first use and raises ValueError when the same
    line logs at another one, so the severities must not share a line.
    """

    def log(level: str, msg: str) -> None:
        text = escape(msg)
        if level == "error":
            logger.error(text)
        elif level == "warn":
            logger.warning(text)
        else:
            logger.info(text)

    return log


def _ports_check(v: str) -> str | None:
    try:
        parse_port_range(v)
    except ValueError as e:
        return str(e)
    return None


PARAMS = [
    Param("data_root", "", "Data root; completed files go to <data_root>/sec110/<user>/<date>/ "
          "(empty = $SENSORHUB_DATA_ROOT or ./data)", read_only=True),
    Param("address", "0.0.0.0", "Listen address (127.0.0.1 = this host only)", read_only=True),
    Param("port", 2121, "Control port (0 = kernel-chosen, see port_file)", min=0, max=65535,
          read_only=True),
    Param("port_file", "", "Write the bound control port to this file once listening "
          "(tests with port 0)", read_only=True),
    Param("passive_ports", "", "Passive data port range 'lo-hi' (firewalls/NAT); empty = any",
          read_only=True, check=_ports_check),
    Param("masquerade_address", "", "IP to put in PASV replies behind NAT (empty = own)",
          read_only=True),
    Param("max_connections", 16, "Simultaneous FTP sessions in total", min=1, max=1000,
          read_only=True),
    Param("max_connections_per_ip", 8, "Simultaneous sessions from one IP (0 = unlimited)",
          min=0, max=1000, read_only=True),
    Param("idle_timeout", 300.0, "Close a control connection idle this long [s]", min=5.0,
          max=86400.0, read_only=True),
    Param("data_timeout", 60.0, "Abort a data transfer without progress this long [s]",
          min=1.0, max=3600.0, read_only=True),
    Param("credentials_file", "", "YAML users file with hashed passwords (see README; "
          "empty = no users)", read_only=True),
    Param("allow_anonymous", False, "Accept user 'anonymous' (uploads to its own folder)",
          read_only=True),
    Param("auth_failed_delay", 3.0, "Delay before a 530 after a failed login [s] "
          "(slows password guessing)", min=0.0, max=30.0, read_only=True),
    Param("read_limit", 4_000_000, "Upload bandwidth per data connection [bytes/s] "
          "(0 = unlimited); keeps big uploads from competing with the PBT for CPU and disk",
          min=0, max=10**10, read_only=True),
    Param("write_limit", 0, "Download bandwidth per data connection [bytes/s] (0 = unlimited)",
          min=0, max=10**10, read_only=True),
    Param("min_free_bytes", 200_000_000, "Refuse uploads (452) when the data root has less "
          "free space [bytes]", min=0, max=2**62),
    Param("retention_max_bytes", 0, "Delete the oldest announced files beyond this total "
          "[bytes] (0 = off)", min=0, max=2**62),
    Param("retention_max_age_days", 0.0, "Delete announced files older than this [days] "
          "(0 = off)", min=0.0, max=36500.0),
    Param("temp_patterns", list(DEFAULT_TEMP_PATTERNS), "Names (fnmatch, basename) that are "
          "never announced until renamed to a non-matching name", read_only=True),
    Param("confirm_grace", 2.0, "An upload is complete when its client sends another command "
          "or stays connected this long after the data [s]", min=0.05, max=60.0,
          read_only=True),
    Param("resume_timeout", 3600.0, "Incomplete uploads stay resumable (REST/APPE) this long "
          "before they are quarantined [s]", min=1.0, max=30 * DAY, read_only=True),
    Param("incomplete_action", "quarantine", "What happens to an incomplete upload after "
          "resume_timeout: 'quarantine' (sec110/.quarantine/) or 'delete'",
          choices=("quarantine", "delete"), read_only=True),
    Param("sweep_period", 10.0, "Seconds between landing-zone sweeps (stale uploads, "
          "retention, free space)", min=0.1, max=3600.0, read_only=True),
    Param("tls_cert", "", "PEM certificate for explicit FTPS (AUTH TLS); empty = plain FTP",
          read_only=True),
    Param("tls_key", "", "PEM private key for FTPS", read_only=True),
    Param("tls_required", False, "Refuse USER and data transfers before AUTH TLS / PROT P",
          read_only=True),
    Param("frame_id", "sec110", "header.frame_id of sec110/files", read_only=True),
]  # fmt: skip


def cross_check(v: dict) -> str | None:
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        return "tls_cert and tls_key must be given together"
    if v["tls_required"] and not v["tls_cert"]:
        return "tls_required needs tls_cert and tls_key"
    if not v["credentials_file"] and not v["allow_anonymous"]:
        return "no users: set credentials_file (or allow_anonymous for a test bench)"
    return None


def server_config(v: dict) -> ServerConfig:
    """Parameters named like ServerConfig fields map one to one; the rest are converted here."""
    cfg = {f.name: v[f.name] for f in fields(ServerConfig) if f.name in v}
    cfg.update(
        passive_ports=parse_port_range(v["passive_ports"]),
        temp_patterns=tuple(v["temp_patterns"]),
        retention_max_age_s=v["retention_max_age_days"] * DAY,
    )
    return ServerConfig(**cfg)


class Sec110FtpNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sec110_ftp", **kwargs)
        self.params = ParamSet(self, PARAMS, cross_check, self._on_change)
        v = self.params.snapshot()
        self.frame_id = v["frame_id"]
        root = paths.data_root(v["data_root"])
        users = {}
        if v["credentials_file"]:
            try:
                users = load_users(v["credentials_file"])
            except CredentialsError as e:
                raise ParameterError(f"credentials_file: {e}") from None
        self.zone = LandingZone(root)
        self.pub = self.create_publisher(Sec110File, "sec110/files", qos.SEC110_FILES)
        self._log = make_log(self.get_logger())
        self._failed_at = 0.0
        try:
            self.svc = FtpService(server_config(v), self.zone, users, self._publish, self._log)
        except ServerConfigError as e:
            raise ParameterError(str(e)) from None
        host, port = self.svc.address
        self.endpoint = f"{host}:{port}"
        self._last = self.svc.stats.snapshot()
        self.diag = diag.Updater(self, hardware_id=f"SEC110 FTP {self.endpoint}")
        self.diag.add("ftp server", self._diag_server)
        self.diag.add("uploads", self._diag_uploads)
        self.diag.add("refusals", self._diag_refusals)
        self.diag.add("disk", self._diag_disk)
        self.svc.start()
        self.create_timer(0.5, self._watch)
        if v["port_file"]:
            tmp = Path(v["port_file"] + ".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(v["port_file"])
        self.get_logger().info(self._summary(v, users))

    def _summary(self, v: dict, users: dict) -> str:
        """One start-up line: what a person checks first when a device cannot upload."""
        proto = "FTPS (explicit)" if v["tls_cert"] else "FTP"
        who = ", ".join(sorted(users)) or "-"
        anon = " + anonymous" if v["allow_anonymous"] else ""
        return (
            f"{proto} on {self.endpoint}, users: {who}{anon}; landing zone {self.zone.incoming}, "
            f"completed files under {self.zone.sec}; publishing {self.pub.topic_name}"
        )

    def _on_change(self, changed: dict) -> None:
        cfg = self.svc.cfg
        if "min_free_bytes" in changed:
            cfg.min_free_bytes = changed["min_free_bytes"]
        if "retention_max_bytes" in changed:
            cfg.retention_max_bytes = changed["retention_max_bytes"]
        if "retention_max_age_days" in changed:
            cfg.retention_max_age_s = changed["retention_max_age_days"] * DAY

    def _watch(self) -> None:
        """A dead FTP loop or worker: ERROR in diagnostics, then exit 1 so it is restarted."""
        why = self.svc.failure()
        if not why:
            return
        now = time.monotonic()
        if not self._failed_at:
            self._failed_at = now
            self._log("error", f"{why}: files would land unannounced; exiting to be restarted")
            self.diag.update()
        elif now - self._failed_at >= FATAL_AFTER_S:
            fatal(f"sec110_ftp: {escape(why)}")

    # -- worker thread
    def _publish(self, ev: FileEvent) -> None:
        m = Sec110File()
        sec = int(ev.finished)
        m.header.stamp.sec, m.header.stamp.nanosec = sec, int((ev.finished - sec) * 1e9)
        m.header.frame_id = self.frame_id
        m.path = ev.rel
        m.size = ev.size
        m.sha256 = ev.sha256
        m.client_address = ev.client
        m.transfer_seconds = float(ev.transfer_s)
        self.pub.publish(m)
        self._log(
            "info",
            f"file {ev.rel} ({ev.size} bytes, sha256 {ev.sha256[:12]}...) from "
            f"{ev.client or 'a previous run'}",
        )

    # -- diagnostics
    def _delta(self, s: dict, key: str) -> int:
        return s[key] - self._last.get(key, 0)

    def _diag_server(self, st: diag.DiagnosticStatusWrapper) -> None:
        s = self.svc.stats.snapshot()
        why = self.svc.failure()
        if why:
            st.summary(diag.ERROR, escape(why))
        else:
            st.summary(diag.OK, f"{s['sessions_open']} session(s) open")
        st.add("address", self.endpoint)
        st.add("sessions open", s["sessions_open"])
        st.add("sessions total", s["sessions_total"])
        st.add("logins", s["logins"])
        st.add("FTPS", bool(self.params["tls_cert"]))

    def _diag_uploads(self, st: diag.DiagnosticStatusWrapper) -> None:
        s = self.svc.stats.snapshot()
        new_bad = self._delta(s, "incomplete") + self._delta(s, "commit_errors")
        lost = self._delta(s, "announce_errors") + self._delta(s, "unrecoverable")
        if self._delta(s, "commit_errors") or lost:
            st.summary(diag.ERROR, f"files not announced: {escape(s['last_error'])}")
        elif new_bad:
            st.summary(diag.WARN, f"{new_bad} incomplete upload(s) since the last update")
        else:
            st.summary(diag.OK, f"{s['announced']} file(s) announced")
        st.add("files announced", s["announced"])
        st.add("uploads complete", s["uploads_complete"])
        st.add("uploads incomplete", s["incomplete"])
        st.add("incomplete quarantined", s["quarantined"])
        st.add("incomplete deleted", s["deleted_incomplete"])
        st.add("commit errors", s["commit_errors"])
        st.add("announce errors", s["announce_errors"])
        st.add("unrecoverable", s["unrecoverable"])
        st.add("bytes received", s["bytes_received"])
        st.add("retention removed", s["retention_removed"])
        st.add("last file", escape(s["last_file"]) or "-")
        if s["last_file_time"]:
            st.add("last file age (s)", round(time.time() - s["last_file_time"], 1))
        for k in ("incomplete", "commit_errors", "announce_errors", "unrecoverable"):
            self._last[k] = s[k]

    def _diag_refusals(self, st: diag.DiagnosticStatusWrapper) -> None:
        s = self.svc.stats.snapshot()
        r = s["refusals"]
        prev = self._last.get("refusals", {})
        new = sum(r.values()) - sum(prev.values())
        st.summary(diag.OK, f"{new} refused since the last update" if new else "none refused")
        for reason in REFUSAL_REASONS:
            st.add(reason, r.get(reason, 0))
        self._last["refusals"] = r

    def _diag_disk(self, st: diag.DiagnosticStatusWrapper) -> None:
        try:
            free = self.zone.free_bytes()
        except OSError as e:
            st.summary(diag.ERROR, f"cannot stat the data root: {e.strerror}")
            return
        need = self.params["min_free_bytes"]
        if free < need:
            st.summary(diag.ERROR, "disk nearly full: uploads refused (452)")
        elif free < 2 * need:
            st.summary(diag.WARN, "disk space low")
        else:
            st.summary(diag.OK, f"{free / 1e9:.1f} GB free")
        st.add("free bytes", free)
        st.add("min free bytes", need)
        st.add("announced bytes stored", self.zone.stored_bytes())
        st.add("data root", str(self.zone.data_root))

    def on_shutdown(self) -> None:
        self.svc.stop()


def main(args=None) -> None:
    run_node(Sec110FtpNode, args=args)


if __name__ == "__main__":
    main()
