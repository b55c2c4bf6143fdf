"""Sockets for tests: every test picks its own port, and waits until a server really listens."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel just handed out on `host` (never a fixed one such as 8765)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(url: str, proc, wait, timeout: float = 20.0) -> None:
    """Wait until `url`'s host:port accepts a connection, failing early if `proc` exited."""
    host, port = url.split("//")[1].split(":")[:2]
    port = port.split("/")[0]

    def ok():
        assert proc.alive(), f"{proc.name} exited:\n{proc.output()[-3000:]}"
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    wait(ok, timeout, what=f"{proc.name} listening on {url}")
