"""lab_page: colcon builds the web page (npm ci + npm run build in web/) before installing it.

The built files (web/dist) go to share/lab_page/www. Without npm the build fails with a message
naming Node.js/npm, unless SENSORHUB_SKIP_LAB_PAGE=1: then a one-page note saying how to build
it is installed instead.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "lab_page"
HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
DIST = WEB / "dist"
SKIP_ENV = "SENSORHUB_SKIP_LAB_PAGE"
BUILD_COMMANDS = {"build", "build_py", "install", "install_data", "develop", "bdist_wheel"}
NEED_NODE = "the lab page needs Node.js >= 18 and npm: apt install nodejs npm"


def _run(cmd: list[str]) -> None:
    print(f"lab_page: {' '.join(cmd)} (in {WEB})", flush=True)
    r = subprocess.run(cmd, cwd=WEB)
    if r.returncode != 0:
        sys.exit(f"lab_page: `{' '.join(cmd)}` failed (exit {r.returncode}) in {WEB}")


def _newest(paths) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def build_web() -> str:
    """web/dist up to date with web/src and the lock; returns the directory to install."""
    if os.environ.get(SKIP_ENV) == "1":
        print(f"lab_page: {SKIP_ENV}=1: installing the 'not built' page only", flush=True)
        return "web/fallback"
    npm = shutil.which("npm")
    node = shutil.which("node") or shutil.which("nodejs")
    if npm is None or node is None:
        sys.exit(f"lab_page: {NEED_NODE} (or set {SKIP_ENV}=1 to install a placeholder page)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0) if version[:2].lstrip("v").isdigit() else 0
    if major < 18:
        sys.exit(f"lab_page: {node} is {version or 'unknown'}; {NEED_NODE}")
    lock = WEB / "package-lock.json"
    stamp = WEB / "node_modules" / ".sensorhub-lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text().strip() != digest:
        _run([npm, "ci", "--no-audit", "--no-fund"])
        stamp.write_text(digest + "\n")
    sources = [*WEB.glob("src/**/*"), lock, WEB / "package.json", WEB / "build.mjs"]
    built = [DIST / "index.html", DIST / "app.js", DIST / "app.css"]
    if not all(p.is_file() for p in built) or _newest(sources) > min(
        p.stat().st_mtime for p in built
    ):
        _run([npm, "run", "build"])
    return "web/dist"


www = "web/dist"
if BUILD_COMMANDS.intersection(sys.argv[1:]):
    www = build_web()

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml", "README.md"]),
        ("share/" + package_name + "/www", sorted(glob(www + "/*"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sensorhub developers",
    maintainer_email="dev@sensorhub.example.org",
    description="The sensor lab's live web page and its static HTTP server",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "lab_page = lab_page.server_node:main",
            "lab_feed = lab_page.feed_node:main",
        ],
    },
)
