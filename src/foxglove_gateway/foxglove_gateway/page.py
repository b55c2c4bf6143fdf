"""The lab page over plain HTTP on the public port: its files and ``/config.json``.

The page (package ``lab_page``, its built files found by ``lab_page.assets``) is a Foxglove
WebSocket client itself; served from the gateway's own port, it needs no second server and its
``ws://`` connection goes back to the host and port the browser already reached. The gateway
works without ``lab_page``: the page's paths then answer 503 naming the missing package.

Every answer is complete bytes (the front closes the connection after it). Files are compressed
once per content (gzip when the browser accepts it) and revalidated by ETag, so a class opening
the page at once costs one compression and a digest per request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from dataclasses import dataclass

from foxglove_gateway.handshake import Request, http_response

CONFIG_PATH = "/config.json"
INDEX_PATHS = ("/", "/index.html")
FAVICON = "/favicon.ico"  # asked for by every browser: "no icon" without a console error
MIN_GZIP = 512  # smaller files are sent as they are
GZIP_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
_SECURITY = "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
_UNSET = object()


def lab_page_assets():
    """(the installed ``lab_page.assets`` module, '') or (None, why there is no page)."""
    try:
        from lab_page import assets
    except ImportError as e:
        return None, f"the lab_page package is not installed ({e})"
    return assets, ""


@dataclass(frozen=True)
class _Encoded:
    etag: str
    body: bytes
    gz: bytes | None  # None: not worth compressing


class PageServer:
    """Answers GET/HEAD for the page's files and ``/config.json`` (any thread; one cache).

    ``assets`` is the ``lab_page.assets`` module (default: imported; None: no page)."""

    def __init__(self, name: str, assets=_UNSET):
        self.name = name
        self._missing = ""
        if assets is _UNSET:
            assets, self._missing = lab_page_assets()
        elif assets is None:
            self._missing = "the lab_page package is not installed"
        self._assets = assets
        self._cache: dict[str, _Encoded] = {}
        self._lock = threading.Lock()
        self.served_total = 0

    @property
    def available(self) -> bool:
        return self._assets is not None and self._assets.asset_dir() is not None

    @property
    def missing(self) -> str:
        """Why the page is not available ('' when it is)."""
        if self._assets is None:
            return self._missing
        return (
            ""
            if self._assets.asset_dir() is not None
            else "lab page not built (tools/build.sh lab_page)"
        )

    def answer(self, request: Request, ws_port: int) -> bytes:
        if request.method not in ("GET", "HEAD"):
            return http_response(405, "Method Not Allowed", "GET or HEAD only\n",
                                 extra="Allow: GET, HEAD\r\n")  # fmt: skip
        a = self._assets
        if request.path == CONFIG_PATH:
            body = a.config_json(ws_port) if a else json.dumps({"ws_port": ws_port}).encode()
            return self._ok(request, "application/json", "no-cache", _Encoded("", body, None))
        root = a.asset_dir() if a is not None else None
        hit = a.read_asset(request.target, root) if root is not None else None
        if hit is None:
            if request.path == FAVICON:
                return (
                    "HTTP/1.1 204 No Content\r\nCache-Control: max-age=86400\r\n"
                    f"{_SECURITY}Connection: close\r\n\r\n"
                ).encode()
            if request.path in INDEX_PATHS and root is None:
                body = (
                    f"{self.name}: no lab page here: {self.missing}. Foxglove and Lichtblick "
                    "connect to ws://<this host>:<this port> (Foxglove WebSocket).\n"
                )
                return http_response(503, "Service Unavailable", body)
            return http_response(404, "Not Found", f"{self.name}: no such file\n")
        data, content_type = hit
        enc = self._encoded(
            request.path, data, content_type, a.read_asset_gz(request.target, root)
        )
        return self._ok(request, content_type, a.cache_control(request.target), enc)

    def _encoded(self, path: str, data: bytes, content_type: str, gz: bytes | None) -> _Encoded:
        """The file with its ETag and gzip form: the build's .gz twin, else compressed here
        once per content."""
        etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
        if gz is not None:
            return _Encoded(etag, data, gz)
        with self._lock:
            hit = self._cache.get(path)
        if hit is not None and hit.etag == etag:
            return hit
        if len(data) >= MIN_GZIP and content_type.startswith(GZIP_TYPES):
            gz = gzip.compress(data, compresslevel=9, mtime=0)
            if len(gz) >= len(data):
                gz = None
        enc = _Encoded(etag, data, gz)
        with self._lock:
            self._cache[path] = enc
        return enc

    def _ok(self, request: Request, content_type: str, cache_control: str, enc: _Encoded) -> bytes:
        self.served_total += 1
        headers = request.headers
        cache = f"Cache-Control: {cache_control}\r\n"
        if enc.etag:
            cache += f"ETag: {enc.etag}\r\n"
            if enc.etag in (t.strip() for t in headers.get("if-none-match", "").split(",")):
                return (
                    f"HTTP/1.1 304 Not Modified\r\n{cache}{_SECURITY}Connection: close\r\n\r\n"
                ).encode()
        body, encoding = enc.body, ""
        if enc.gz is not None:
            encoding = "Vary: Accept-Encoding\r\n"
            if _accepts_gzip(headers.get("accept-encoding", "")):
                body = enc.gz
                encoding += "Content-Encoding: gzip\r\n"
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{encoding}{cache}{_SECURITY}"
            "Connection: close\r\n\r\n"
        ).encode()
        return head + (body if request.method == "GET" else b"")


def _accepts_gzip(value: str) -> bool:
    """``Accept-Encoding`` names gzip (or ``*``) without ``q=0``."""
    for item in value.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() not in ("gzip", "*"):
            continue
        name, _, q = params.replace(" ", "").partition("=")
        try:
            return name != "q" or float(q) > 0
        except ValueError:
            return False
    return False
