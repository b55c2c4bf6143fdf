"""Integration tests run the installed workspace: they skip, naming what is missing, when it is not
built (a package run alone from a checkout), instead of failing on a missing executable."""

from __future__ import annotations

import shutil

import pytest


def require_sensorhub(*packages: str) -> str:
    """The `sensorhub` command on PATH, with `packages` installed; else skip the whole module."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    missing = []
    for p in packages:
        try:
            get_package_prefix(p)
        except PackageNotFoundError:
            missing.append(p)
    sensorhub = shutil.which("sensorhub")
    if missing or sensorhub is None:
        pytest.skip(
            f"needs {', '.join(missing) or 'sensorhub on PATH'} installed (make build)",
            allow_module_level=True,
        )
    return sensorhub
