"""What this host offers a plan: installed packages and executables, commands on PATH, the
caller's environment and the interpreter for our own modules (a fake in unit tests)."""

from __future__ import annotations

import copy
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass


class Resolver:
    """Finds installed packages/executables via the ament index, as ros2 run does."""

    _environ: Mapping[str, str] | None = None  # None: os.environ

    @property
    def environ(self) -> Mapping[str, str]:
        """The caller's environment: where ROS logs go, which profile defaults it overrides."""
        return os.environ if self._environ is None else self._environ

    @property
    def python(self) -> str:
        """The interpreter that runs bringup.sched_exec and the containers."""
        return sys.executable

    def with_environ(self, environ: Mapping[str, str]) -> Resolver:
        """This resolver, seeing ``environ`` as the caller's environment."""
        out = copy.copy(self)
        out._environ = environ
        return out

    def package_prefix(self, package: str) -> str | None:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        try:
            return get_package_prefix(package)
        except (PackageNotFoundError, LookupError, ValueError):
            return None

    def share(self, package: str) -> str | None:
        prefix = self.package_prefix(package)
        return None if prefix is None else os.path.join(prefix, "share", package)

    def executable(self, package: str, name: str) -> str | None:
        prefix = self.package_prefix(package)
        if prefix is None:
            return None
        path = os.path.join(prefix, "lib", package, name)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None

    def which(self, command: str) -> str | None:
        return shutil.which(command)


@dataclass(frozen=True)
class Missing:
    """Why an entry cannot run here, and the graph key that names what is missing."""

    message: str
    key: str


def find_missing(n: dict, resolver: Resolver) -> Missing | None:
    """What an entry needs that this host lacks, or None."""
    kind = n.get("kind", "ros_node")
    for pkg in n.get("requires", []):
        if resolver.package_prefix(pkg) is None:
            key = "command" if kind == "command" else "package"
            return Missing(f"package {pkg!r} is not installed", key)
    if kind == "command":
        cmd = n["command"][0]
        if "${" not in cmd and resolver.which(cmd) is None:
            return Missing(f"command {cmd!r} is not on PATH", "command")
        return None
    pkg = n["package"]
    if resolver.package_prefix(pkg) is None:
        return Missing(
            f"package {pkg!r} is not installed (not found on AMENT_PREFIX_PATH)", "package"
        )
    if kind == "launch":
        share = resolver.share(pkg)
        if share is None or not os.path.isfile(os.path.join(share, n["launch_file"])):
            return Missing(
                f"launch file {n['launch_file']!r} not found in package {pkg!r}", "launch_file"
            )
        return None
    if resolver.executable(pkg, n["executable"]) is None:
        return Missing(
            f"executable {n['executable']!r} not found in package {pkg!r} (lib/{pkg}/)",
            "executable",
        )
    return None
