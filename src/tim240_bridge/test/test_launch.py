"""The distribution launch file: it must compile here; running it needs launch + sick_scan_xd."""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "sick_scan_xd.launch.py"


def test_launch_file_compiles(tmp_path):
    py_compile.compile(str(LAUNCH), cfile=str(tmp_path / "x.pyc"), doraise=True)


@pytest.mark.launch
def test_launch_description_builds():
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("sick_scan_xd")
    except Exception:
        pytest.skip("sick_scan_xd is not installed (distribution only)")
    spec = importlib.util.spec_from_file_location("sick_scan_xd_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.generate_launch_description().entities
