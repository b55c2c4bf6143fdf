"""The lab page over plain HTTP: GET/HEAD of the built files and /config.json, nothing else.

Pure transport (no rclpy): a ThreadingHTTPServer in its own thread. Files come only through
:mod:`lab_page.assets` (never outside the www directory); large ones go gzip-compressed when the
client accepts it; index.html and config.json are revalidated on every load, the bundle URLs
(``?v=<hash>``) are cached for good. Every other method gets 405, unknown paths 404.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from lab_page import assets

NOT_BUILT = (
    b"The lab page is not built: install Node.js >= 18 and npm, then run "
    b"`tools/build.sh lab_page` (or `make build`).\n"
)


@dataclass
class Stats:
    """Counters the node reports on /diagnostics (updated from the handler threads)."""

    requests: int = 0
    not_found: int = 0
    refused: int = 0  # 405
    errors: int = 0  # 5xx and broken connections
    bytes_sent: int = 0
    by_status: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: int, sent: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes_sent += sent
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status == 404:
                self.not_found += 1
            elif status == 405:
                self.refused += 1
            elif status >= 500:
                self.errors += 1

    def broken(self) -> None:
        with self.lock:
            self.errors += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "not_found": self.not_found,
                "refused": self.refused,
                "errors": self.errors,
                "bytes_sent": self.bytes_sent,
            }


class _Handler(BaseHTTPRequestHandler):
    server_version = "sensorhub-lab-page"
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection frees its thread

    # set per server by StaticServer
    www: Path | None = None
    config: bytes = b"{}"
    stats: Stats

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every method other than GET/HEAD: 405, not 501
            return self._refuse
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse(self) -> None:
        self._send(405, b"method not allowed: the lab page is read-only\n", "text/plain",
                   extra={"Allow": "GET, HEAD"}, body=True)  # fmt: skip

    def _serve(self, body: bool) -> None:
        url = self.path
        if urlsplit(url).path == assets.CONFIG_PATH:
            self._send(200, self.config, "application/json", cache=assets.NO_CACHE, body=body)
            return
        if self.www is None:
            self._send(503, NOT_BUILT, "text/plain; charset=utf-8", body=body)
            return
        hit = assets.read_asset(url, self.www)
        if hit is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", body=body)
            return
        data, ctype = hit
        extra = {"Vary": "Accept-Encoding"}
        if assets.accepts_gzip(self.headers.get("Accept-Encoding")):
            gz = assets.read_asset_gz(url, self.www)
            if gz is not None:
                data, extra["Content-Encoding"] = gz, "gzip"
        self._send(200, data, ctype, cache=assets.cache_control(url), extra=extra, body=body)

    def _send(self, status, data, ctype, cache=None, extra=None, body=True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        if cache:
            self.send_header("Cache-Control", cache)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        sent = 0
        if body:
            self.wfile.write(data)
            sent = len(data)
        self.stats.count(status, sent)

    def log_message(self, format, *args) -> None:
        """Requests are counted, not logged: a phone reloading must not fill the log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-response is counted, not printed as a traceback."""
        self.RequestHandlerClass.stats.broken()


class StaticServer:
    """Serves www (None: 503 'not built') and config.json on address:port in a thread."""

    def __init__(self, address: str, port: int, www: Path | None, config: bytes):
        self.stats = Stats()
        handler = type(
            "LabPageHandler", (_Handler,), {"www": www, "config": config, "stats": self.stats}
        )
        server_cls = _Server
        if ":" in address:
            server_cls = type("LabPageServer6", (_Server,), {"address_family": socket.AF_INET6})
        self._httpd = server_cls((address, port), handler)  # OSError: port taken, bad address
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="lab_page http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5.0)
        self._httpd.server_close()
