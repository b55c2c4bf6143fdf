"""The supervisor's state file, ``<data_root>/run/supervisor.json``, which `sensorhub status`
reads: written atomically every heartbeat while running; an old one from a live supervisor is
stale (it cannot write, or is wedged)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

from bringup.children import Child, applied

STATE_FILE = "supervisor.json"
HEARTBEAT = 1.0  # s between state file writes while running (``updated`` is the heartbeat)
STALE_AFTER = 10.0  # s: a running supervisor's state file older than this is stale


def node_record(c: Child) -> dict:
    """One child as `sensorhub status` shows it (container members listed under it)."""
    pid = c.pid
    return {
        "name": c.spec.name,
        "fqn": c.spec.fqn,
        "kind": c.spec.kind,
        "members": list(c.spec.members),
        "state": c.state,
        "pid": pid,
        "restarts": c.backoff.restarts,
        "last_exit": c.last_exit,
        "since": c.since_wall,
        "message": c.message,
        "requested": {k: v for k, v in c.spec.scheduling.items() if v not in (None, "")},
        "applied": applied(pid) if pid else {},
        "log": c.log.path,
        "log_dropped_bytes": c.log.dropped_bytes,  # the oldest output its cap deleted
        "command": c.spec.command,
        "url": c.spec.url,
    }


class StateFile:
    """Atomic replace; a failure (full disk) is reported once and leaves the old file, whose
    aging ``updated`` makes `sensorhub status` call it stale."""

    def __init__(self, path: str, say: Callable[[str], None]):
        self.path = path
        self._say = say
        self._failing = False

    def write(self, state: dict) -> None:
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(state, f, indent=1)
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if not self._failing:
                self._say(f"cannot write {self.path}: {e}")
            self._failing = True
            return
        if self._failing:
            self._say(f"state file {self.path} written again")
        self._failing = False


def read_pid(path: str):
    """The supervisor pid a state file names, or None."""
    try:
        with open(path) as f:
            return json.load(f).get("supervisor_pid")
    except (OSError, ValueError):
        return None


def _pid_alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def read_state(data_root: str) -> dict | None:
    """The supervisor's state file, with `alive` telling whether its pid still runs."""
    path = os.path.join(data_root, "run", STATE_FILE)
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return None
    pid = st.get("supervisor_pid")
    st["alive"] = bool(pid and st.get("status") != "stopped" and _pid_alive(pid))
    st["stale"] = stale_for(st)
    return st


def stale_for(st: dict, now: float | None = None) -> float | None:
    """Seconds since a live supervisor last wrote its state, if that is too long (else None).

    The supervisor rewrites the file every ``heartbeat`` s while running; an older file means it
    cannot write (full disk) or is wedged, so what the file says is not the present.
    """
    if st.get("status") == "stopped":
        return None
    now = time.time() if now is None else now
    try:
        age = now - float(st.get("updated", 0))
        beat = float(st.get("heartbeat", HEARTBEAT))
    except (TypeError, ValueError):
        return float("inf")
    limit = max(STALE_AFTER, 5 * beat)
    if st.get("status") == "stopping":
        limit += 30.0  # no heartbeat while the ordered stop runs (bounded by its timeouts)
    return age if age > limit else None
