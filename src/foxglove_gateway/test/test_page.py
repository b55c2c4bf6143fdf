"""The lab page on the gateway's public port: files, gzip, caching headers, /config.json, limits.

The front-level tests use the real ``lab_page.assets`` (installed, else its source in this
checkout) over a www directory of their own; the last test runs the gateway process."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import socket
from pathlib import Path

import pytest

from foxglove_gateway.page import PageServer
from foxglove_gateway.wsfront import ClientLimitFront, FrontConfig, FrontLimits

SRC = Path(__file__).resolve().parents[2]
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
APP_JS = b"// the page\n" + b"console.log('lab page');\n" * 400  # > 1 KiB: has a .gz twin
APP_CSS = b"body { margin: 0 }\n" * 40  # > 512 B, no twin: compressed by the gateway


def _assets():
    """lab_page.assets: installed, else its source (pure, no rclpy) in this checkout."""
    try:
        from lab_page import assets

        return assets
    except ImportError:
        path = SRC / "lab_page" / "lab_page" / "assets.py"
        if not path.is_file():
            pytest.skip("lab_page is neither installed nor in this checkout")
        spec = importlib.util.spec_from_file_location("lab_page_assets_source", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def _www(root: Path) -> Path:
    root.mkdir()
    index = b'<!doctype html><script src="app.js?v=1a2b"></script><link href="app.css?v=1a2b">'
    (root / "index.html").write_bytes(index)
    (root / "app.js").write_bytes(APP_JS)
    (root / "app.js.gz").write_bytes(gzip.compress(APP_JS))
    (root / "app.css").write_bytes(APP_CSS)
    return root


@pytest.fixture
def page_front(tmp_path, monkeypatch):
    """page_front(**limits) -> a started front serving a www dir of its own (no upstream)."""
    monkeypatch.setenv("SENSORHUB_LAB_PAGE_DIR", str(_www(tmp_path / "www")))
    made = []

    def make(**limits):
        with socket.socket() as gone:  # no SDK server: an upgrade gets the front's 502
            gone.bind(("127.0.0.1", 0))
            upstream_port = gone.getsockname()[1]
        config = FrontConfig(
            host="127.0.0.1",
            port=0,
            upstream_port=upstream_port,
            limits=FrontLimits(**limits),
            page=PageServer("test front", assets=_assets()),
        )
        f = ClientLimitFront(config, log=lambda s: None)
        f.start()
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


def _recv_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _get(port: int, target: str, method: str = "GET", headers: str = ""):
    """(status, headers, body) of one request; the front closes after its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        reply = _recv_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), fields, body


def test_page_files_with_types_gzip_and_cache_headers(page_front):
    f = page_front()
    status, h, body = _get(f.port, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert h["Content-Type"].startswith("text/html")
    assert int(h["Content-Length"]) == len(body)
    assert h["Cache-Control"] == "no-cache" and h["X-Content-Type-Options"] == "nosniff"
    assert _get(f.port, "/index.html")[2] == body

    status, h, body = _get(f.port, "/app.js?v=1a2b", headers="Accept-Encoding: gzip, br\r\n")
    assert status == 200 and h["Content-Encoding"] == "gzip" and "Accept-Encoding" in h["Vary"]
    assert gzip.decompress(body) == APP_JS and int(h["Content-Length"]) == len(body)
    assert h["Content-Type"].startswith("text/javascript")
    assert "immutable" in h["Cache-Control"]
    status, h2, body = _get(f.port, "/app.js?v=1a2b", "HEAD", "Accept-Encoding: gzip\r\n")
    assert status == 200 and body == b"" and h2["Content-Length"] == h["Content-Length"]
    status, h, body = _get(f.port, "/app.js", headers="Accept-Encoding: gzip;q=0\r\n")
    assert body == APP_JS and "Content-Encoding" not in h and h["Cache-Control"] == "no-cache"

    status, h, body = _get(f.port, "/app.css", headers="Accept-Encoding: gzip\r\n")
    assert h["Content-Encoding"] == "gzip" and gzip.decompress(body) == APP_CSS
    assert h["Content-Type"].startswith("text/css")
    status, _h304, body = _get(f.port, "/app.css", headers=f"If-None-Match: {h['ETag']}\r\n")
    assert status == 304 and body == b""

    status, h, body = _get(f.port, "/config.json")
    assert status == 200 and json.loads(body) == {"ws_port": f.port}
    assert h["Content-Type"] == "application/json" and h["Cache-Control"] == "no-cache"
    for bad in ("/nope.js", "/../etc/passwd", "/%2e%2e/etc/passwd", "/app.js.gz", "/.hidden"):
        assert _get(f.port, bad)[0] == 404, bad
    assert _get(f.port, "/", "POST")[0] == 405
    assert _get(f.port, "/favicon.ico")[:3:2] == (204, b"")  # no icon, and no browser error
    assert f.snapshot().page_served_total == 8

    ws = socket.create_connection(("127.0.0.1", f.port), timeout=10)  # upgrade on any path
    ws.sendall(
        "GET /ws?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: foxglove.websocket.v1, foxglove.sdk.v1\r\n\r\n".encode()
    )
    assert _recv_all(ws).startswith(b"HTTP/1.1 502")  # for the SDK server, not the page
    ws.close()


def test_page_requests_wait_for_a_handshake_slot(page_front, wait):
    """A page request is read within max_handshakes like an upgrade: a burst waits, a pile-up
    beyond that is refused (503), so page loads cannot take the WebSocket's slots."""
    f = page_front(max_handshakes=1, handshake_timeout=30.0)
    idle = socket.create_connection(("127.0.0.1", f.port))
    wait(lambda: f.snapshot().handshaking == 1, 10, what="one idle connection in the slot")
    waiting = socket.create_connection(("127.0.0.1", f.port), timeout=30)
    waiting.sendall(b"GET /config.json HTTP/1.1\r\nHost: x\r\n\r\n")
    wait(lambda: f.snapshot().handshake_waiting == 1, 10, what="the page request waiting")
    with socket.create_connection(("127.0.0.1", f.port)) as third:  # answered before it asks
        reply = _recv_all(third)
    assert reply.startswith(b"HTTP/1.1 503") and b"handshake" in reply
    idle.close()
    assert b"200 OK" in _recv_all(waiting, 30).split(b"\r\n")[0]
    waiting.close()


def test_a_page_reader_that_stops_reading_is_cut_off(page_front, tmp_path, wait):
    big = os.urandom(16 * 1024 * 1024)
    (tmp_path / "www" / "big.bin").write_bytes(big)
    f = page_front(max_handshakes=1, handshake_timeout=2.0)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", f.port))
    stalled.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    wait(lambda: f.snapshot().handshaking == 1, 10, what="the stalled reader in the slot")
    wait(lambda: f.snapshot().handshaking == 0, 30, what="the stalled reader cut off")
    assert _get(f.port, "/config.json")[0] == 200  # the slot is free again
    got = 0
    stalled.settimeout(10)
    try:
        while chunk := stalled.recv(1 << 20):
            got += len(chunk)
    except OSError:
        pass  # reset by the front
    assert got < len(big)
    stalled.close()


@pytest.mark.integration
def test_gateway_serves_the_page_and_the_websocket_on_one_port(gateway, js, tools, wait, tmp_path):
    www = _www(tmp_path / "www")
    gw, url = gateway(env={"SENSORHUB_LAB_PAGE_DIR": www},
                      topics_deny=["/rosout", "/parameter_events"])  # fmt: skip
    tools.wait_listening(url, gw, wait)
    port = int(url.rsplit(":", 1)[1])
    status, _, body = _get(port, "/", headers="Accept-Encoding: gzip\r\n")
    try:
        import lab_page.assets  # noqa: F401 -- what the gateway process imports too
    except ImportError:
        assert status == 503 and b"lab_page" in body  # says what is missing, still serves ws
    else:
        assert status == 200 and body == (www / "index.html").read_bytes()
        status, _, body = _get(port, "/app.js?v=1a2b", headers="Accept-Encoding: gzip\r\n")
        assert status == 200 and gzip.decompress(body) == APP_JS
    assert json.loads(_get(port, "/config.json")[2]) == {"ws_port": port}
    assert _get(port, "/no/such/file")[0] == 404
    client = js("js-page-port", url + "/", mode="decode", duration=30)
    wait(lambda: client.events("serverInfo"), 20, what="the WebSocket on the page's port")
