"""Fixtures of the foxglove_gateway tests: the independent JS client and gateway processes.

The JS client (test/js) comes from sensorhub_testing's ``js_client_dir`` session fixture
(``npm ci`` from the committed lock file the first time any package's test needs it).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from sensorhub_testing import free_port, params_file


class JsClient:
    """One client.js process; its stdout is JSON lines (see client.js)."""

    def __init__(self, proc):
        self.proc = proc

    def events(self, kind: str | None = None) -> list[dict]:
        out = []
        for line in self.proc.output().splitlines():
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if kind is None or ev.get("event") == kind:
                out.append(ev)
        return out

    def last_stamp(self, topic: str) -> int:
        """Newest header.stamp.sec the client reported on topic (count mode with --progress)."""
        last = -1
        for ev in self.events("progress"):
            t = ev["topics"].get(topic)
            if t and t.get("last"):
                last = max(last, int(str(t["last"]).split(".")[0]))
        return last

    def finish(self) -> None:
        """SIGTERM: the client prints its counts and exits."""
        import signal

        if self.proc.alive():
            self.proc.popen.send_signal(signal.SIGTERM)
            try:
                self.proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.stop()


@pytest.fixture
def js(procs, js_client_dir):
    """js(name, url, mode=..., **opts) starts a client.js process."""

    def start(name: str, url: str, mode: str = "decode", **opts) -> JsClient:
        argv = ["node", js_client_dir / "client.js", "--url", url, "--mode", mode]
        for k, v in opts.items():
            argv += [f"--{k.replace('_', '-')}", str(v)]
        return JsClient(procs.start(name, argv))

    return start


@pytest.fixture
def gateway(procs, tmp_path):
    """gateway(**params) -> (proc, url): a foxglove_gateway process on a free port (``env``:
    extra environment variables)."""
    from sensorhub_common.paths import executable

    def start(name: str = "gateway", env: dict | None = None, **params):
        port = params.pop("port", None) or free_port()
        params.setdefault("address", "127.0.0.1")
        params["port"] = port
        pf = params_file(tmp_path / f"{name}.yaml", "/**", params)
        exe = executable("foxglove_gateway", "foxglove_gateway")
        proc = procs.start(name, [exe, "--ros-args", "--params-file", pf], env=env)
        return proc, f"ws://127.0.0.1:{port}"

    return start
