"""The independent JS Foxglove client (src/foxglove_gateway/test/js), installed once per machine.

Every test that needs it (the gateway's, the two-host test) gets it through the ``js_client_dir``
session fixture, so whichever package's tests run first install it: ``npm ci`` from the
committed lock file when ``node_modules`` is missing, under a file lock so that concurrent test
runs never install into the same directory at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

JS_CLIENT = Path("src", "foxglove_gateway", "test", "js")
MARKER = Path("node_modules", "@foxglove", "ws-protocol")  # what client.js imports
NPM_TIMEOUT = 600.0  # a cold npm cache on a slow link


class JsClientError(RuntimeError):
    """The JS client cannot be found or installed; the message says why."""


def find_js_client(start: Path) -> Path:
    """test/js of the checkout holding `start` (the pytest root or any path inside it)."""
    for d in (start, *start.parents):
        if (d / JS_CLIENT / "package-lock.json").is_file():
            return d / JS_CLIENT
    raise JsClientError(f"no {JS_CLIENT}/package-lock.json above {start}")


def installed(js_dir: Path) -> bool:
    return (js_dir / MARKER).is_dir()


def _lock_path(js_dir: Path) -> Path:
    tag = hashlib.sha1(str(js_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir(), f"sensorhub-npm-ci-{tag}.lock")


def install_js_client(js_dir: Path, npm: str = "npm", timeout: float = NPM_TIMEOUT) -> bool:
    """``npm ci`` in `js_dir` unless already installed; True when it ran."""
    with open(_lock_path(js_dir), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing right now
        if installed(js_dir):
            return False
        try:
            r = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=js_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise JsClientError(f"npm ci in {js_dir} took longer than {timeout:g} s") from None
        if r.returncode != 0 or not installed(js_dir):
            raise JsClientError(
                f"npm ci in {js_dir} failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return True


def missing_tools() -> str | None:
    """Why the client cannot run here (node or npm not on PATH), or None."""
    absent = [t for t in ("node", "npm") if shutil.which(t) is None]
    return f"{' and '.join(absent)} not installed" if absent else None
