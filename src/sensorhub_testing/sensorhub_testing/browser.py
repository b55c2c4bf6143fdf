"""The real-browser test tools: Debian's chromium driven by puppeteer-core
(src/lab_page/test/browser, installed like the JS client by ``sensorhub_testing.npm``).

puppeteer-core never downloads a browser, so the machine's chromium must be there: CI installs the
Debian package (``.ci/run``). Where it is missing the browser tests fail naming the package, unless
``SENSORHUB_SKIP_BROWSER=1`` says to skip them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sensorhub_testing import npm

BROWSER_DIR = Path("src", "lab_page", "test", "browser")
# what driver.js and v1_server.js import
MARKER = (Path("node_modules", "puppeteer-core"), Path("node_modules", "@foxglove", "ws-protocol"))
SKIP_ENV = "SENSORHUB_SKIP_BROWSER"
# Debian names the command chromium; other distributions' names for the same browser follow
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")


class BrowserMissingError(RuntimeError):
    """No browser or no Node.js here; the message names the Debian packages to install."""


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "") == "1"


def find_chromium() -> str:
    """The chromium executable (``SENSORHUB_CHROMIUM`` if set, else the first on PATH)."""
    given = os.environ.get("SENSORHUB_CHROMIUM")
    if given:
        if not os.access(given, os.X_OK):
            raise BrowserMissingError(f"SENSORHUB_CHROMIUM={given} is not an executable file")
        return given
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserMissingError(
        "chromium is not installed: the lab page's browser tests need Debian's `chromium` "
        f"package (apt-get install chromium), or {SKIP_ENV}=1 to skip them"
    )


def find_browser_dir(start: Path) -> Path:
    """src/lab_page/test/browser of the checkout holding `start`."""
    return npm.find_dir(start, BROWSER_DIR)


def install_browser_dir(browser_dir: Path, npm_cmd: str = "npm") -> bool:
    """``npm ci`` (puppeteer-core) in `browser_dir` unless already installed; True when it ran."""
    absent = npm.missing_tools()
    if absent:
        raise BrowserMissingError(
            f"{absent}: the browser driver needs Debian's `nodejs` and `npm` packages, "
            f"or {SKIP_ENV}=1 to skip the browser tests"
        )
    return npm.npm_ci(browser_dir, MARKER, npm=npm_cmd)


class DriverLog:
    """What driver.js printed (its log file of JSON lines; other lines, e.g. node's warnings,
    are skipped): per page the ``state`` snapshots in order, and the errors it saw."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def events(self, kind: str | None = None) -> list[dict]:
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if kind is None or ev.get("event") == kind:
                out.append(ev)
        return out

    def states(self, page: int = 0) -> list[dict]:
        return [e for e in self.events("state") if e.get("page") == page and e.get("lab")]

    def last(self, page: int = 0) -> dict | None:
        s = self.states(page)
        return s[-1] if s else None

    def errors(self, page: int | None = None) -> list[dict]:
        return [e for e in self.events("error") if page is None or e.get("page") == page]

    def fatal(self) -> str | None:
        f = self.events("fatal")
        return f[0]["text"] if f else None


def driver_argv(browser_dir: Path, chromium: str, url: str, *extra) -> list:
    """The command line of driver.js (see its header for the options and what it prints)."""
    return ["node", browser_dir / "driver.js", "--chromium", chromium, "--url", url, *extra]
