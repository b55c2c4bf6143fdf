"""What handler.py relies on in the installed pyftpdlib (fails loudly when pyftpdlib changes)."""

from __future__ import annotations

import inspect
import socket
import struct

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:The asyn.* module is deprecated:DeprecationWarning"
)


def _closed_peer(reset: bool):
    """(server-side socket, the peer already closed: with a TCP reset or an orderly FIN)."""
    lst = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    lst.close()
    if reset:
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cli.close()
    return srv


def _reset_seen_in_handle_close(reset: bool) -> list[bool]:
    from pyftpdlib.ioloop import AsyncChat, IOLoop

    from sec110_ftp.handler import peer_reset_now

    seen: list[bool] = []

    class Probe(AsyncChat):
        def handle_close(self):
            seen.append(peer_reset_now())
            self.close()

    loop = IOLoop()
    try:
        probe = Probe(_closed_peer(reset), ioloop=loop)
        assert probe.recv(4096) == b""
    finally:
        loop.close()
    return seen


def test_a_peer_reset_is_seen_inside_handle_close():
    assert _reset_seen_in_handle_close(reset=True) == [True]


def test_an_orderly_close_is_not_a_reset():
    assert _reset_seen_in_handle_close(reset=False) == [False]


def test_hooks_keep_the_signatures_the_handler_overrides():
    from pyftpdlib.handlers import DTPHandler, FTPHandler

    def params(f):
        return list(inspect.signature(f).parameters)

    assert params(DTPHandler.enable_receiving) == ["self", "type", "cmd"]
    assert params(DTPHandler.handle_close) == ["self"]
    assert params(FTPHandler.log_transfer) == [
        "self", "cmd", "filename", "receive", "completed", "elapsed", "bytes",
    ]  # fmt: skip
    for name in ("receive", "transfer_finished", "file_obj", "cmd_channel"):
        assert name in inspect.getsource(DTPHandler.__init__), name
    # the measures log_transfer records are the ones on_file_received then reads
    close = inspect.getsource(DTPHandler.close)
    assert close.index("log_transfer(") < close.index("on_file_received(")
    assert close.index("log_transfer(") < close.index("on_incomplete_file_received(")


def test_upload_start_and_reset_mixins_sit_before_pyftpdlib_in_the_mro():
    from pyftpdlib.handlers import DTPHandler

    from sec110_ftp.handler import ResetAbortsUploadDTP, UploadStartDTP

    cls = type("D", (UploadStartDTP, ResetAbortsUploadDTP, DTPHandler), {})
    assert cls.enable_receiving is UploadStartDTP.enable_receiving
    assert cls.handle_close is ResetAbortsUploadDTP.handle_close
