"""The independent JS Foxglove client (src/foxglove_gateway/test/js), installed once per machine.

Every test that needs it (the gateway's, the two-host test) gets it through the ``js_client_dir``
session fixture, so whichever package's tests run first install it (``sensorhub_testing.npm``:
``npm ci`` from the committed lock file when ``node_modules`` is missing, under a file lock).
"""

from __future__ import annotations

from pathlib import Path

from sensorhub_testing import npm as _npm
from sensorhub_testing.npm import NPM_TIMEOUT, missing_tools
from sensorhub_testing.npm import NpmError as JsClientError

JS_CLIENT = Path("src", "foxglove_gateway", "test", "js")
MARKER = Path("node_modules", "@foxglove", "ws-protocol")  # what client.js imports

__all__ = [
    "JS_CLIENT",
    "MARKER",
    "JsClientError",
    "find_js_client",
    "install_js_client",
    "installed",
    "missing_tools",
]


def find_js_client(start: Path) -> Path:
    """test/js of the checkout holding `start` (the pytest root or any path inside it)."""
    return _npm.find_dir(start, JS_CLIENT)


def installed(js_dir: Path) -> bool:
    return _npm.installed(js_dir, MARKER)


def install_js_client(js_dir: Path, npm: str = "npm", timeout: float = NPM_TIMEOUT) -> bool:
    """``npm ci`` in `js_dir` unless already installed; True when it ran."""
    return _npm.npm_ci(js_dir, MARKER, npm=npm, timeout=timeout)
