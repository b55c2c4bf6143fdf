"""sd_notify over a real unix datagram socket (what systemd listens on)."""

from __future__ import annotations

import socket

from system_monitor.sdnotify import SdNotify


def test_notify_reaches_the_socket(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        srv.settimeout(5)
        sd = SdNotify({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        assert sd.enabled and sd.watchdog_s == 30.0 and sd.interval == 15.0
        assert sd.notify("WATCHDOG=1")
        assert srv.recv(100) == b"WATCHDOG=1"


def test_abstract_socket_address():
    name = f"sensorhub-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        srv.settimeout(5)
        assert SdNotify({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert srv.recv(100) == b"READY=1"


def test_disabled_without_socket_and_failure_is_reported(tmp_path):
    sd = SdNotify({"WATCHDOG_USEC": "1000000"})
    assert not sd.enabled and sd.interval == 0 and not sd.notify("WATCHDOG=1")
    gone = SdNotify({"NOTIFY_SOCKET": str(tmp_path / "nobody"), "WATCHDOG_USEC": "x"})
    assert gone.interval == 0
    assert not gone.notify("WATCHDOG=1") and gone.error
