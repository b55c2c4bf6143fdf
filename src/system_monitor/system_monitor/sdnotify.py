"""systemd's sd_notify(3) without libsystemd: one datagram on $NOTIFY_SOCKET.

The monitor is a grandchild of the unit's main process (launcher -> sched_exec -> node), so the
unit needs NotifyAccess=all; $WATCHDOG_PID names the main process and is deliberately ignored.
"""

from __future__ import annotations

import os
import socket


class SdNotify:
    def __init__(self, env: dict[str, str] | None = None):
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        self.watchdog_s = usec / 1e6 if self.address else 0.0
        self.sent = 0
        self.error = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def interval(self) -> float:
        """Pet twice per WatchdogSec, as sd_watchdog_enabled(3) recommends."""
        return self.watchdog_s / 2.0

    def notify(self, state: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(self.address)
                s.sendall(state.encode())
            self.sent += 1
            return True
        except OSError as e:
            self.error = str(e)
            return False
