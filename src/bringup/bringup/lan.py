"""The host's address on the lab network, for links other machines can open.

The banner prints URLs with this address instead of localhost: a phone on the lab Wi-Fi can open
the lab page and the Foxglove desktop app can connect from another laptop; https viewers cannot
(an https page may open ws:// only to localhost).
"""

from __future__ import annotations

import socket
import subprocess
from urllib.parse import urlsplit, urlunsplit

PROBE = ("192.0.2.1", 9)  # TEST-NET-1: connect() on UDP only picks a route, nothing is sent


def lan_address() -> str:
    """The address of the default route's interface, else the first of `hostname -I`, else
    127.0.0.1 (no network at all)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(PROBE)
        addr = s.getsockname()[0]
        if addr and not addr.startswith(("0.", "127.")):
            return addr
    except OSError:
        pass
    finally:
        s.close()
    try:
        out = subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, timeout=2.0, check=False
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    for a in out:
        if "." in a and not a.startswith("127."):
            return a
    return "127.0.0.1"


def on_lan(url: str, addr: str | None = None) -> str:
    """`url` with a localhost/any-address host replaced by the LAN address."""
    u = urlsplit(url)
    if u.hostname not in ("localhost", "127.0.0.1", "0.0.0.0", "::", "::1", None):
        return url
    host = addr or lan_address()
    netloc = f"{host}:{u.port}" if u.port else host
    return urlunsplit((u.scheme, netloc, u.path or "/", u.query, u.fragment))


def page_url(url: str, addr: str | None = None) -> str:
    """The lab page's http:// link for a server announced as ws(s):// or http(s)://."""
    u = urlsplit(on_lan(url, addr))
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    return urlunsplit((scheme, u.netloc, "/", "", ""))


def viewer_lines(url: str, serves_page: bool, addr: str | None = None) -> list[str]:
    """What works from where, first the lab page's link (when `url`'s server serves it or it is
    the lab page's own http:// server), then the Foxglove/Lichtblick rule for ws:// URLs."""
    addr = addr or lan_address()
    lines = []
    if serves_page or urlsplit(url).scheme in ("http", "https"):
        lines.append(f"Lab page (any browser on this network): {page_url(url, addr)}")
    if urlsplit(url).scheme in ("ws", "wss"):
        local = urlsplit(url)
        lines.append(f"Foxglove desktop app: {on_lan(url, addr)}")
        lines.append(
            f"app.foxglove.dev / https viewers: only on this machine "
            f"(ws://localhost:{local.port}), or wss:// with the gateway's TLS (tls_cert/tls_key) "
            "and a certificate the browser trusts"
        )
    return lines
