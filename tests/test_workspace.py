"""The workspace tooling fails loudly and never leaves a half-built environment behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WS = Path(__file__).resolve().parents[1]


def _scratch_ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copytree(WS / "tools", ws / "tools")
    shutil.copytree(WS / "requirements", ws / "requirements")
    return ws


def _run(argv, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "ROS_DISTRO"))}
    env.update(env_extra or {})
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_unsupported_python_names_the_step(tmp_path):
    ws = _scratch_ws(tmp_path)
    old = tmp_path / "bin" / "python3.9"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\nexit 1\n")  # answers the version probe like a Python 3.9 would
    old.chmod(0o755)
    r = _run([str(ws / "tools" / "setup_venv.sh")], {"PYTHON": str(old)})
    assert r.returncode != 0
    assert "step 'find Python' failed" in r.stderr
    assert "no Python 3.10-3.13 found" in r.stderr
    assert not (ws / ".venv").exists() and not (ws / ".stamps" / "venv").exists()


def test_failed_download_leaves_no_venv(tmp_path):
    ws = _scratch_ws(tmp_path)
    offline = {
        "PYTHON": sys.executable if (3, 10) <= sys.version_info[:2] <= (3, 13) else "python3",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing listens on the discard port
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_CACHE_DIR": "1",
    }
    r = _run([str(ws / "tools" / "setup_venv.sh")], offline)
    assert r.returncode != 0
    assert "step 'download packages' failed" in r.stderr
    assert not (ws / ".venv").exists(), "a half-built .venv was left behind"
    assert not (ws / ".stamps" / "venv").exists()


def test_failed_colcon_build_names_the_step_and_keeps_no_stamp(tmp_path):
    ws = _scratch_ws(tmp_path)
    (ws / ".venv").symlink_to(WS / ".venv")
    (ws / ".stamps").mkdir()
    (ws / ".stamps" / "venv").write_text(f"venv {ws / '.venv'} Python\n")
    pkg = ws / "src" / "broken_pkg"
    pkg.mkdir(parents=True)
    (pkg / "package.xml").write_text(
        '<?xml version="1.0"?><package format="3"><name>broken_pkg</name><version>0.0.0</version>'
        "<description>d</description>"
        '<maintainer email="dev@sensorhub.example.org">m</maintainer><license>Apache-2.0</license>'
        "<buildtool_depend>ament_cmake</buildtool_depend>"
        "<export><build_type>ament_cmake</build_type></export></package>"
    )
    (pkg / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.8)\nproject(broken_pkg)\nthis_is_not_cmake(\n"
    )
    if not (WS / ".venv" / "bin" / "colcon").exists():
        pytest.skip("wheels path only (no .venv)")
    r = _run([str(ws / "tools" / "build.sh")])
    assert r.returncode != 0
    assert "step 'colcon build' failed" in r.stderr
    assert not (ws / ".stamps" / "build").exists()
    assert not (ws / "env.sh").exists(), "env.sh must only appear after a good build"


def test_fix_wheel_cmake_is_idempotent(tmp_path):
    import sysconfig

    import numpy

    name = "export_std_msgs__rosidl_generator_pyExport.cmake"
    f = tmp_path / "share" / "std_msgs" / "cmake" / name
    f.parent.mkdir(parents=True)
    f.write_text(
        'INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
        '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n'
    )
    tool = [sys.executable, str(WS / "tools" / "fix_wheel_cmake.py"), str(tmp_path)]
    first = subprocess.run(tool, capture_output=True, text=True, check=True)
    assert "rewrote 1 CMake export" in first.stdout
    text = f.read_text()
    assert "/opt/python" not in text
    assert sysconfig.get_paths()["include"] in text and numpy.get_include() in text
    second = subprocess.run(tool, capture_output=True, text=True, check=True)
    assert "rewrote 0 CMake export" in second.stdout
    assert f.read_text() == text


def test_env_script_runs_a_command_from_any_caller():
    """./env.sh CMD works when exec'd directly (not only from bash), with the workspace set up."""
    env_sh = WS / "env.sh"
    if not env_sh.exists():
        pytest.skip("env.sh is written by make build")
    code = "import os, rclpy, sensorhub_msgs.msg; print(os.environ['AMENT_PREFIX_PATH'])"
    r = subprocess.run([str(env_sh), "python", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert str(WS / "install" / "sensorhub_msgs") in r.stdout
