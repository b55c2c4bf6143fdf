"""The HTTP side of the public port: the request head, the front's own answers, the layout.

Every answer here is complete bytes (the connection closes after it), so the front can write it
and be done; only an admitted upgrade goes on to the SDK server.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from foxglove_gateway.wsframes import (
    CLOSE_TRY_AGAIN_LATER,
    MAX_CLOSE_REASON,
    OP_CLOSE,
    OP_TEXT,
    accept_key,
    encode_frame,
)

# What the SDK server speaks (foxglove-sdk 0.30 has no foxglove.websocket.v1): a client that
# offers neither gets an HTTP 400 naming it, instead of the SDK's bare 400.
SUBPROTOCOLS = ("foxglove.sdk.v1",)
LAYOUT_PATH = "/layout.json"
MAX_LAYOUT = 4 * 1024 * 1024  # GET /layout.json: a Foxglove layout is a few 10 kB
_CORS = "Access-Control-Allow-Origin: *\r\n"


@dataclass(frozen=True)
class Request:
    """An HTTP/1.1 request head: method, target, lower-cased headers and the bytes as read."""

    method: str
    target: str
    headers: dict[str, str]
    head: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def is_upgrade(self) -> bool:
        return is_websocket_upgrade(self.headers)


def parse_request_head(head: bytes) -> Request:
    """Raises ValueError on a malformed request line."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 3:
        raise ValueError(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            k = k.strip().lower()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    return Request(method=parts[0], target=parts[1], headers=headers, head=head)


def is_websocket_upgrade(headers: dict[str, str]) -> bool:
    return "websocket" in headers.get("upgrade", "").lower() and "sec-websocket-key" in headers


def choose_subprotocol(headers: dict[str, str]) -> str | None:
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    return next((p for p in SUBPROTOCOLS if p in offered), None)


def http_response(code: int, text: str, body: str, extra: str = "") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + data


def websocket_ish(headers: dict[str, str]) -> bool:
    """Headers only a WebSocket client sends: a request with them but no valid upgrade."""
    return "upgrade" in headers or any(k.startswith("sec-websocket-") for k in headers)


def refusal(headers: dict[str, str], message: str, reason: str = "") -> bytes:
    """Handshake + Foxglove status error + close 1013: Foxglove shows the status ``message``,
    a browser's WebSocket sees the close ``reason`` (``message`` when empty)."""
    proto = choose_subprotocol(headers)
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}",
    ]
    if proto:
        lines.append(f"Sec-WebSocket-Protocol: {proto}")
    status = json.dumps({"op": "status", "level": 2, "message": message, "id": "client-limit"})
    close_reason = (reason or message).encode()[:MAX_CLOSE_REASON]
    return (
        ("\r\n".join(lines) + "\r\n\r\n").encode()
        + encode_frame(OP_TEXT, status.encode())
        + encode_frame(OP_CLOSE, struct.pack(">H", CLOSE_TRY_AGAIN_LATER) + close_reason)
    )


def too_many_handshakes(name: str, max_handshakes: int) -> bytes:
    body = (
        f"{name}: too many connections still in the WebSocket handshake "
        f"({max_handshakes}); try again later\n"
    )
    return http_response(503, "Service Unavailable", body)


def bad_request() -> bytes:
    return http_response(400, "Bad Request", "bad or slow HTTP request\n")


def upgrade_required(name: str) -> bytes:
    body = (
        f"{name}: this is a Foxglove WebSocket server. Open Foxglove or "
        "Lichtblick and connect to ws://<this host>:<port> (Foxglove WebSocket).\n"
    )
    return http_response(426, "Upgrade Required", body)


def unsupported_subprotocol(name: str, headers: dict[str, str]) -> bytes:
    offered = headers.get("sec-websocket-protocol", "").strip() or "none"
    body = (
        f"{name}: unsupported WebSocket subprotocol (offered: {offered}). "
        f"This server speaks {', '.join(SUBPROTOCOLS)} only (foxglove-sdk); "
        "use a current Foxglove or Lichtblick.\n"
    )
    extra = f"Sec-WebSocket-Protocol: {SUBPROTOCOLS[0]}\r\n"
    return http_response(400, "Bad Request", body, extra=extra)


def bad_gateway(error: OSError) -> bytes:
    return http_response(502, "Bad Gateway", f"upstream unavailable: {error}\n")


def _read_layout(path: str) -> bytes:
    if not path:
        raise FileNotFoundError("layout_file not set")
    with open(path, "rb") as f:
        body = f.read(MAX_LAYOUT + 1)
    if len(body) > MAX_LAYOUT:
        raise OSError(f"larger than {MAX_LAYOUT} bytes")
    return body


def layout_response(method: str, path: str, name: str) -> tuple[bytes, bool]:
    """(response, served) for GET /layout.json: the layout file, readable by Foxglove/Lichtblick
    in a browser (``layoutUrl``), so it needs CORS; 404 when ``path`` is unset or unreadable."""
    if method not in ("GET", "HEAD"):
        return http_response(405, "Method Not Allowed", "GET only\n", extra=_CORS), False
    try:
        body = _read_layout(path)
    except OSError as e:
        return http_response(404, "Not Found", f"{name}: no layout ({e})\n", extra=_CORS), False
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-cache\r\n{_CORS}"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + (body if method == "GET" else b""), True
