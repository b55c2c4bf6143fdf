"""The browser test tools: which chromium, what a missing one says, reading the driver's log."""

from __future__ import annotations

import pytest

from sensorhub_testing import browser
from sensorhub_testing.browser import BrowserMissingError, DriverLog, find_chromium


def test_a_chosen_chromium_must_be_an_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("SENSORHUB_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(BrowserMissingError, match="is not an executable file"):
        find_chromium()
    exe = tmp_path / "chromium"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("SENSORHUB_CHROMIUM", str(exe))
    assert find_chromium() == str(exe)


def test_no_chromium_names_the_debian_package_and_the_skip(monkeypatch, tmp_path):
    monkeypatch.delenv("SENSORHUB_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissingError) as e:
        find_chromium()
    assert "apt-get install chromium" in str(e.value)
    assert f"{browser.SKIP_ENV}=1" in str(e.value)


def test_driver_log_keeps_pages_apart_and_skips_what_is_not_json(tmp_path):
    log = tmp_path / "driver.log"
    log.write_text(
        '{"event":"launched","pages":2}\n'
        "(node:12) Warning: something node printed\n"
        '{"event":"state","page":0,"lab":{"status":"live"}}\n'
        '{"event":"state","page":1,"lab":{"status":"full"}}\n'
        '{"event":"error","page":1,"kind":"console","text":"x"}\n'
        '{"event":"state","page":0,"lab":{"status":"lost"}}\n'
        '{"event":"state","page":0,"la'  # cut by a kill
    )
    d = DriverLog(log)
    assert [s["lab"]["status"] for s in d.states(0)] == ["live", "lost"]
    assert d.last(1)["lab"]["status"] == "full"
    assert [e["text"] for e in d.errors()] == ["x"]
    assert d.errors(page=0) == []
    assert d.fatal() is None
    assert DriverLog(tmp_path / "missing.log").states() == []
