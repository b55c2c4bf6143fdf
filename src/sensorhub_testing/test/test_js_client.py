"""The shared JS client install: found from anywhere in the checkout, npm ci only when missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sensorhub_testing import js_client
from sensorhub_testing.js_client import JsClientError, find_js_client, install_js_client

ROOT = Path(__file__).resolve().parents[3]


def fake_npm(tmp_path: Path, body: str) -> str:
    """An `npm` that records its arguments and then runs `body` (a real process)."""
    p = tmp_path / "npm"
    p.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/npm.calls"\n{body}\n')
    p.chmod(0o755)
    return str(p)


def calls(tmp_path: Path) -> list[str]:
    f = tmp_path / "npm.calls"
    return f.read_text().splitlines() if f.exists() else []


def test_found_from_the_root_and_from_inside_another_package():
    if not (ROOT / js_client.JS_CLIENT / "package-lock.json").is_file():
        pytest.skip("not run from a sensorhub checkout")
    want = ROOT / js_client.JS_CLIENT
    assert find_js_client(ROOT) == want
    assert find_js_client(ROOT / "src" / "bringup" / "test") == want


def test_not_found_names_what_is_missing(tmp_path):
    with pytest.raises(JsClientError) as e:
        find_js_client(tmp_path)
    assert "no src/foxglove_gateway/test/js/package-lock.json above" in str(e.value)


def test_npm_ci_runs_once_when_node_modules_is_missing(tmp_path):
    js = tmp_path / "js"
    js.mkdir()
    npm = fake_npm(tmp_path, "mkdir -p node_modules/@foxglove/ws-protocol")
    assert install_js_client(js, npm=npm) is True
    assert install_js_client(js, npm=npm) is False
    assert calls(tmp_path) == ["ci --no-audit --no-fund"]


def test_a_failed_install_says_so_with_npms_output(tmp_path):
    js = tmp_path / "js"
    js.mkdir()
    npm = fake_npm(tmp_path, "echo 'npm ERR! network unreachable' >&2; exit 1")
    with pytest.raises(JsClientError, match=r"failed \(exit 1\)") as e:
        install_js_client(js, npm=npm)
    assert "npm ERR! network unreachable" in str(e.value)


def test_an_install_that_hangs_is_stopped(tmp_path):
    js = tmp_path / "js"
    js.mkdir()
    npm = fake_npm(tmp_path, "exec sleep 30")
    with pytest.raises(JsClientError, match=re.escape("took longer than 0.5 s")):
        install_js_client(js, npm=npm, timeout=0.5)
