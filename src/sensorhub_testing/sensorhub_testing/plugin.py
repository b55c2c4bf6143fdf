"""The pytest plugin every sensorhub test run loads (the workspace conftest names it): an isolated
DDS domain per run, real child processes, a spinning rclpy node, a small tmpfs, the JS client, the
browser driver and a second host (network namespace).

Every test run gets its own ROS_DOMAIN_ID and localhost-only discovery, so parallel or stale graphs
never cross, and removes only the Fast DDS shared-memory files its own run created.
"""

from __future__ import annotations

import glob
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sensorhub_testing import browser, js_client, netns, npm
from sensorhub_testing.disk import tmpfs
from sensorhub_testing.messages import js_plain, msg_plain
from sensorhub_testing.net import free_port, wait_listening
from sensorhub_testing.processes import ProcGroup, wait_for
from sensorhub_testing.ros import SpinningNode

_SHM_GLOBS = ("/dev/shm/fastrtps_*", "/dev/shm/fastdds_*", "/dev/shm/sem.fastrtps_*")


def _shm_files() -> set[str]:
    return {f for g in _SHM_GLOBS for f in glob.glob(g)}


def _shm_in_use() -> set[str]:
    """Shared-memory files some live process still maps or holds open (any user, any run)."""
    used: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps") as f:
                used.update(line.split()[-1] for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    used.add(target)
        except OSError:
            continue
    return used


def pytest_configure(config):
    if "SENSORHUB_TEST_DOMAIN" in os.environ:
        domain = int(os.environ["SENSORHUB_TEST_DOMAIN"])
    else:
        domain = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # Real DDS between real processes, over UDP loopback: /dev/shm is shared with every other DDS
    # user of the machine, and tests that SIGKILL nodes leave segments behind, so shared-memory
    # delivery is not what these tests should depend on. SENSORHUB_TEST_SHM=1 tests with it.
    if os.environ.get("SENSORHUB_TEST_SHM", "0") != "1":
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    logdir = tempfile.mkdtemp(prefix="sensorhub-test-roslog-")
    os.environ["ROS_LOG_DIR"] = logdir
    os.environ["PYTHONUNBUFFERED"] = "1"
    config._sensorhub_shm_before = _shm_files()


def pytest_report_header(config):
    return (
        f"sensorhub: ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, localhost discovery, "
        f"transports {os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', 'default (SHM + UDPv4)')}"
    )


def pytest_unconfigure(config):
    before = getattr(config, "_sensorhub_shm_before", None)
    if before is None:
        return
    # Only what appeared during this run and that no live process uses: a concurrent run's
    # segments appear too, and deleting those would silently cut its graph.
    in_use = _shm_in_use()
    for f in _shm_files() - before:
        base = f.removesuffix("_el")
        if f in in_use or base in in_use:
            continue
        try:
            os.unlink(f)
        except OSError:
            pass


@pytest.fixture
def procs(tmp_path, request):
    group = ProcGroup(tmp_path)
    yield group
    group.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for p in group.procs:
            sys.stderr.write(f"\n----- {p.name} (exit {p.popen.returncode}) -----\n")
            sys.stderr.write(p.output()[-6000:])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


@pytest.fixture
def ros_node(request):
    """A spinning rclpy node for the test's subscribers (real DDS)."""
    n = SpinningNode("test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50])
    yield n.node
    n.close()


@pytest.fixture
def wait():
    return wait_for


def params_file(path, node: str, params: dict):
    """A ROS parameter file for `node` (e.g. "/**") holding `params`; returns its path."""
    import yaml

    path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}))
    return path


@pytest.fixture
def tools():
    """Helpers for test modules (import-mode=importlib: no `from conftest import`)."""
    return SimpleNamespace(
        free_port=free_port,
        params_file=params_file,
        wait_listening=wait_listening,
        msg_plain=msg_plain,
        js_plain=js_plain,
    )


@pytest.fixture(scope="session")
def js_client_dir(request) -> Path:
    """src/foxglove_gateway/test/js with node_modules (npm ci from its lock file when missing).

    Skipped, with the reason, only where node/npm are not installed; a failed install fails.
    """
    absent = js_client.missing_tools()
    if absent:
        pytest.skip(f"{absent}: the independent JS Foxglove client cannot run")
    try:
        js_dir = js_client.find_js_client(Path(request.config.rootpath).resolve())
        js_client.install_js_client(js_dir)
    except js_client.JsClientError as e:
        pytest.fail(str(e))
    return js_dir


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium for puppeteer-core: a failure naming the package where it is missing
    (CI installs it), a skip only with SENSORHUB_SKIP_BROWSER=1."""
    if browser.skip_requested():
        pytest.skip(f"{browser.SKIP_ENV}=1: the real-browser tests are skipped")
    try:
        return browser.find_chromium()
    except browser.BrowserMissingError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def browser_dir(request, chromium) -> Path:
    """src/lab_page/test/browser with puppeteer-core installed (npm ci from its lock file when
    missing); fails, naming the Debian packages, where node/npm are not installed."""
    try:
        d = browser.find_browser_dir(Path(request.config.rootpath).resolve())
        browser.install_browser_dir(d)
    except (browser.BrowserMissingError, npm.NpmError) as e:
        pytest.fail(str(e))
    return d


@pytest.fixture
def two_hosts():
    """Hosts "sensors" and "web" in their own network namespaces (``netns.TwoHosts``), joined by
    a veth link; skipped, with the reason, where namespaces cannot be made (not root, no ip)."""
    with netns.two_hosts() as h:
        yield h


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs of our own (root in CI); skipped where mounting is not permitted."""
    with tmpfs(tmp_path / "disk", 8) as d:
        yield d
