"""Fixtures of the foxglove_gateway tests: the independent JS client, gateway/recorder processes.

The JS client (test/js) is installed by ``npm ci`` from the committed lock file the first time a
test needs it; tests that need it are skipped with a reason only when node/npm are missing.
"""

from __future__ import annotations

import importlib
import json
import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

JS_DIR = Path(__file__).parent / "js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params_file(path: Path, node: str, params: dict) -> Path:
    path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}))
    return path


@pytest.fixture(scope="session")
def js_client_dir() -> Path:
    """test/js with node_modules installed (npm ci from package-lock.json)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed: the independent JS Foxglove client cannot run")
    if not (JS_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        r = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            pytest.fail(f"npm ci in {JS_DIR} failed:\n{r.stdout}\n{r.stderr}")
    return JS_DIR


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
    """gateway(**params) -> (proc, url): a foxglove_gateway process on a free port."""
    from sensorhub_common.paths import executable

    def start(name: str = "gateway", **params):
        port = params.pop("port", None) or free_port()
        params.setdefault("address", "127.0.0.1")
        params["port"] = port
        pf = params_file(tmp_path / f"{name}.yaml", "/**", params)
        exe = executable("foxglove_gateway", "foxglove_gateway")
        proc = procs.start(name, [exe, "--ros-args", "--params-file", pf])
        return proc, f"ws://127.0.0.1:{port}"

    return start


def wait_listening(url: str, proc, wait, timeout: float = 20.0) -> None:
    host, port = url.split("//")[1].split(":")

    def ok():
        assert proc.alive(), f"{proc.name} exited:\n{proc.output()[-3000:]}"
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    wait(ok, timeout, what=f"{proc.name} listening on {url}")


def _field_class(slot):
    return getattr(importlib.import_module(".".join(slot.namespaces)), slot.name)


def plain(value, slot, from_js: bool = False):
    """A message (or its JSON from client.js) as comparable Python data, typed by the rosidl
    slot: float32 rounded as CDR carries it, uint64 from the JS BigInt strings, bytes as ints."""
    from rosidl_parser import definition as d

    if isinstance(slot, d.NamespacedType):
        cls = _field_class(slot)
        names = list(cls.get_fields_and_field_types())
        get = (lambda n: value[n]) if from_js else (lambda n: getattr(value, n))
        return {n: plain(get(n), t, from_js) for n, t in zip(names, cls.SLOT_TYPES, strict=True)}
    if isinstance(slot, d.AbstractNestedType):
        return [plain(v, slot.value_type, from_js) for v in value]
    if isinstance(slot, d.AbstractGenericString):
        return str(value)
    t = slot.typename
    if t == "float":
        import numpy as np

        return float(np.float32(float(value)))
    if t == "double":
        return float(value)
    if t == "boolean":
        return bool(value)
    if t in ("octet", "char") and isinstance(value, (bytes, bytearray)):
        return value[0]
    if t == "char" and isinstance(value, str):
        return ord(value)
    return int(value)


def msg_plain(msg) -> dict:
    from rosidl_parser import definition as d

    cls = type(msg)
    ns = cls.__module__.split(".")[:2]
    return plain(msg, d.NamespacedType(ns, cls.__name__))


def js_plain(cls, data: dict) -> dict:
    from rosidl_parser import definition as d

    ns = cls.__module__.split(".")[:2]
    return plain(data, d.NamespacedType(ns, cls.__name__), from_js=True)


@pytest.fixture
def tools():
    return SimpleNamespace(
        free_port=free_port,
        params_file=params_file,
        wait_listening=wait_listening,
        msg_plain=msg_plain,
        js_plain=js_plain,
    )


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs of our own (root in CI); skipped where mounting is not permitted."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(d)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
