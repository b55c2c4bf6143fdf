"""The built lab page (web/dist, installed at share/lab_page/www) as files a server can send.

Shared by every server of the page (the lab_page node next to foxglove_bridge, and the
foxglove_gateway), so both send the same bytes with the same types and cache rules. Pure: no
rclpy; only reads files under the one www directory, whatever the URL path says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

WWW_ENV = "SENSORHUB_LAB_PAGE_DIR"  # overrides the installed www directory (tests, development)
INDEX = "index.html"
CONFIG_PATH = "/config.json"
GZIP_MIN_BYTES = 1024  # smaller files go as they are: gzip would save almost nothing

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


def asset_dir() -> Path | None:
    """The www directory: $SENSORHUB_LAB_PAGE_DIR, else share/lab_page/www; None if not found."""
    env = os.environ.get(WWW_ENV, "")
    candidates = [Path(env)] if env else []
    if not env:
        try:
            from ament_index_python.packages import (
                PackageNotFoundError,
                get_package_share_directory,
            )

            try:
                candidates.append(Path(get_package_share_directory("lab_page"), "www"))
            except PackageNotFoundError:
                pass
        except ImportError:
            pass
    for c in candidates:
        if (c / INDEX).is_file():
            return c.resolve()
    return None


def url_to_relpath(url_path: str) -> str | None:
    """'/a/b.js?x' -> 'a/b.js', '/' -> 'index.html'; None for anything that could leave the dir."""
    path = unquote(urlsplit(url_path).path)
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") or p.startswith(".") for p in parts):
        return None  # no parent hops, no dot-files
    if not parts or path.endswith("/"):
        parts.append(INDEX)
    return "/".join(parts)


def _resolve(url_path: str, root: Path | None) -> Path | None:
    root = root if root is not None else asset_dir()
    rel = url_to_relpath(url_path)
    if root is None or rel is None:
        return None
    root = root.resolve()
    f = (root / rel).resolve()
    if not f.is_relative_to(root) or not f.is_file():
        return None  # a symlink out of the dir counts as absent
    return f


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def read_asset(url_path: str, root: Path | None = None) -> tuple[bytes, str] | None:
    """(bytes, Content-Type) of the file the URL path names, or None (404)."""
    f = _resolve(url_path, root)
    if f is None or (f.suffix == ".gz" and f.with_suffix("").is_file()):
        return None  # the .gz twins are sent only through read_asset_gz
    return f.read_bytes(), content_type(f.name)


def read_asset_gz(url_path: str, root: Path | None = None) -> bytes | None:
    """The precompressed twin (<file>.gz, made at build) of a large asset, or None."""
    f = _resolve(url_path, root)
    if f is None or f.stat().st_size < GZIP_MIN_BYTES:
        return None
    gz = f.with_name(f.name + ".gz")
    return gz.read_bytes() if gz.is_file() else None


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Accept-Encoding names gzip (without q=0)."""
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def cache_control(url_path: str) -> str:
    """index.html and config.json always revalidate; the bundle, named with ?v=<hash> by
    index.html, never changes under that URL."""
    query = urlsplit(url_path).query
    if any(q.startswith("v=") for q in query.split("&")) and url_to_relpath(url_path) != INDEX:
        return IMMUTABLE
    return NO_CACHE


def config_json(ws_port: int, ws_path: str = "/") -> bytes:
    """/config.json: where the page finds its WebSocket (same host, this port and path)."""
    doc = {"ws_port": int(ws_port)}
    if ws_path and ws_path != "/":
        doc["ws_path"] = ws_path
    return json.dumps(doc).encode()
