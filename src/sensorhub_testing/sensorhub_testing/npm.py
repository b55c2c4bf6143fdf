"""npm packages of the checkout's own test tools (the JS Foxglove client, the browser driver),
installed once per machine from their committed lock files.

``npm ci`` runs only when the package's marker (what its script imports) is missing, under a file
lock per directory, so that concurrent test runs never install into the same directory at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

NPM_TIMEOUT = 600.0  # a cold npm cache on a slow link


class NpmError(RuntimeError):
    """An npm test tool cannot be found or installed; the message says why."""


def find_dir(start: Path, rel: Path) -> Path:
    """`rel` (a directory holding package-lock.json) of the checkout holding `start`."""
    for d in (start, *start.parents):
        if (d / rel / "package-lock.json").is_file():
            return d / rel
    raise NpmError(f"no {rel}/package-lock.json above {start}")


def installed(npm_dir: Path, marker: Path | tuple[Path, ...]) -> bool:
    """Every marker directory (what the package's scripts import) is there."""
    markers = marker if isinstance(marker, tuple) else (marker,)
    return all((npm_dir / m).is_dir() for m in markers)


def _lock_path(npm_dir: Path) -> Path:
    tag = hashlib.sha1(str(npm_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir(), f"sensorhub-npm-ci-{tag}.lock")


def npm_ci(
    npm_dir: Path, marker: Path | tuple[Path, ...], npm: str = "npm", timeout: float = NPM_TIMEOUT
) -> bool:
    """``npm ci`` in `npm_dir` unless `marker` is already there; True when it ran."""
    with open(_lock_path(npm_dir), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing right now
        if installed(npm_dir, marker):
            return False
        try:
            r = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=npm_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NpmError(f"npm ci in {npm_dir} took longer than {timeout:g} s") from None
        if r.returncode != 0 or not installed(npm_dir, marker):
            raise NpmError(
                f"npm ci in {npm_dir} failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return True


def missing_tools() -> str | None:
    """Why npm tools cannot run here (node or npm not on PATH), or None."""
    absent = [t for t in ("node", "npm") if shutil.which(t) is None]
    return f"{' and '.join(absent)} not installed" if absent else None
