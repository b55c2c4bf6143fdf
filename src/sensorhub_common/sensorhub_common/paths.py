"""Where things live: the data root and installed executables."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "SENSORHUB_DATA_ROOT"
DATA_SUBDIRS = ("bags", "sec110", "logs")


def data_root(param_value: str = "") -> Path:
    """Parameter wins, then $SENSORHUB_DATA_ROOT, then ./data; created with bags/ sec110/ logs/."""
    root = Path(param_value or os.environ.get(DATA_ROOT_ENV, "") or "data").expanduser()
    root = root.resolve()
    for sub in DATA_SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def executable(package: str, name: str) -> Path:
    """<prefix>/lib/<package>/<name> from the ament index, as ros2 run finds it."""
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix(package), "lib", package, name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"executable {name!r} of package {package!r} not found at {path}")
    return path
