"""Rewrite the ROS 2 Jazzy wheels' CMake exports to this interpreter's include directories.

Packaging defect worked around: the ``ros-jazzy-*-msgs`` wheels on PyPI ship
``share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake`` files whose
``INTERFACE_INCLUDE_DIRECTORIES`` hard-code the wheel builder's interpreter
(``/opt/python/cp3XX-cp3XX/include/python3.X`` and its numpy include dir). CMake refuses to
generate any package that links those targets (every custom ``.msg`` package) because the paths
do not exist here. We replace them with the venv interpreter's real include directories.

Idempotent: files already rewritten contain no ``/opt/python/`` path and are left alone.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

BUILDER_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILDER_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include"
)


def main(prefix: str) -> int:
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    for path, label in ((py_inc, "Python"), (np_inc, "numpy")):
        if not Path(path, "Python.h" if label == "Python" else "numpy").exists():
            print(f"fix_wheel_cmake: {label} include dir {path} is missing", file=sys.stderr)
            return 1
    changed = 0
    for f in sorted(Path(prefix, "share").glob("*/cmake/*.cmake")):
        text = f.read_text()
        if "/opt/python/" not in text:
            continue
        new = BUILDER_NUMPY_INCLUDE.sub(np_inc, text)
        new = BUILDER_PYTHON_INCLUDE.sub(py_inc, new)
        if "/opt/python/" in new:
            print(f"fix_wheel_cmake: unknown builder path left in {f}", file=sys.stderr)
            return 1
        f.write_text(new)
        changed += 1
    print(f"fix_wheel_cmake: rewrote {changed} CMake export file(s) under {prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
