"""Keep build-time code out of run-time processes.

Every generated message module imports ``rosidl_generator_py`` for its one run-time helper,
``import_type_support``. That package's ``__init__`` also imports ``generate_py_impl``, the code
generator used by ``colcon build``, and with it empy, lark and the IDL parser: about 3 MB of
private memory and 6 MB of PSS in every node process, and 50 ms of each (re)start. The package
already treats an ImportError there as "generator not available" (it logs at debug level and
offers ``import_type_support`` alone), so refusing that one submodule is all it takes.

Each node's entry point (``main``) calls :func:`install` before it creates a node, itself or
through :func:`sensorhub_common.runner.run_node`; importing this package does nothing by itself.
``SENSORHUB_FULL_IMPORTS=1`` turns it off (for a process that wants to generate code).
"""

from __future__ import annotations

import importlib.abc
import os
import sys

BLOCKED = frozenset({"rosidl_generator_py.generate_py_impl"})


class BuildOnlyModuleError(ImportError):
    """A build-time module was imported in a run-time process."""


class _BuildOnlyFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise BuildOnlyModuleError(
                f"{name} is build-time code, not loaded in sensorhub processes "
                "(SENSORHUB_FULL_IMPORTS=1 allows it)",
                name=name,
            )


def install() -> bool:
    """Add the finder once (True when it is active); a no-op once the generator is loaded."""
    if os.environ.get("SENSORHUB_FULL_IMPORTS", "") not in ("", "0"):
        return False
    if any(isinstance(f, _BuildOnlyFinder) for f in sys.meta_path):
        return True
    if any(name in sys.modules for name in BLOCKED):
        return False
    sys.meta_path.insert(0, _BuildOnlyFinder())
    return True
