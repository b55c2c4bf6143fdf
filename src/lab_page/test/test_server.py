"""The lab page's HTTP server over a real socket (GET/HEAD, types, gzip, cache, 404/405/503,
no way out of www), and the lab_page node as the graph starts it: config.json and its
/diagnostics."""

from __future__ import annotations

import gzip
import http.client
import json
import socket

import pytest

from lab_page.static_server import StaticServer
from sensorhub_testing import DiagnosticsCollector, free_port, wait_listening


@pytest.fixture
def www(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text("<!doctype html><title>lab</title>")
    (d / "app.js").write_bytes(b"console.log(1);" * 200)
    (d / "app.js.gz").write_bytes(gzip.compress(b"console.log(1);" * 200))
    (tmp_path / "secret.txt").write_text("secret")
    return d


@pytest.fixture
def server(www):
    s = StaticServer("127.0.0.1", 0, www, b'{"ws_port": 8765}')
    s.start()
    yield s
    s.stop()


def request(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_get_head_types_and_cache(server):
    status, h, body = request(server.port, "GET", "/")
    assert (status, h["Content-Type"], h["Cache-Control"]) == (
        200, "text/html; charset=utf-8", "no-cache"
    )  # fmt: skip
    assert body.startswith(b"<!doctype html>") and int(h["Content-Length"]) == len(body)
    status, h, body = request(server.port, "HEAD", "/app.js?v=12ab")
    assert status == 200 and body == b"" and int(h["Content-Length"]) == 3000
    assert "immutable" in h["Cache-Control"] and h["Content-Type"].startswith("text/javascript")
    status, h, body = request(server.port, "GET", "/config.json")
    assert json.loads(body) == {"ws_port": 8765} and h["Cache-Control"] == "no-cache"


def test_gzip_only_when_accepted(server):
    status, h, body = request(server.port, "GET", "/app.js", {"Accept-Encoding": "gzip"})
    assert status == 200 and h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == b"console.log(1);" * 200
    _, h, body = request(server.port, "GET", "/app.js", {"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in h and len(body) == 3000


def test_refusals(server):
    assert request(server.port, "GET", "/missing.js")[0] == 404
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        status, h, _ = request(server.port, method, "/")
        assert status == 405 and h["Allow"] == "GET, HEAD", method
    # a raw request line with parent hops, as no browser would send it
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404") and b"secret" not in reply.split(b"\r\n\r\n", 1)[1]
    snap = server.stats.snapshot()
    assert snap["not_found"] == 2 and snap["refused"] == 5 and snap["requests"] == 7


def test_not_built_is_503_with_how_to_build(tmp_path):
    s = StaticServer("127.0.0.1", 0, None, b"{}")
    s.start()
    try:
        status, _, body = request(s.port, "GET", "/")
        assert status == 503 and b"tools/build.sh lab_page" in body
        assert request(s.port, "GET", "/config.json")[0] == 200
    finally:
        s.stop()


def exe(pkg: str, name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable(pkg, name))


@pytest.mark.integration
def test_node_serves_the_installed_page_and_reports(procs, ros_node, wait):
    port, ws_port = free_port(), free_port()
    diags = DiagnosticsCollector(ros_node, select=lambda s: s.name.startswith("lab_page:"))
    p = procs.start(
        "lab_page",
        [exe("lab_page", "lab_page"), "--ros-args", "-p", f"port:={port}",
         "-p", f"ws_port:={ws_port}", "-p", "address:=127.0.0.1"],
    )  # fmt: skip
    wait_listening(f"http://127.0.0.1:{port}/", p, wait, timeout=60.0)
    assert json.loads(request(port, "GET", "/config.json")[2]) == {"ws_port": ws_port}
    status, _, body = request(port, "GET", "/")
    assert status == 200 and b'id="conn-banner"' in body
    assert request(port, "GET", "/nope")[0] == 404

    def served():
        s = diags.latest("lab_page: http")
        return s is not None and int(s.values["requests served"]) >= 3 and s

    st = wait(served, 30.0, what="lab_page diagnostics counting the requests")
    assert st.level == 0 and st.values["not found (404)"] == "1" and st.values["port"] == str(port)
    assert p.alive()
