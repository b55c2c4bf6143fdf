"""sec110_ftp test helpers: start the node (port 0, port file), collect sec110/files."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

SIM_USERS = Path(__file__).resolve().parents[2] / "bringup" / "config" / "sec110_users_sim.yaml"


def exe(name: str) -> str:
    from sensorhub_common.paths import executable

    return str(executable("sec110_ftp", name))


def need_tool(name: str) -> str:
    """Path of a client tool; CI must have it (fail), elsewhere skip with the reason."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not installed (apt-get install -y {name})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + ": CI must install it (.ci/run)")
        pytest.skip(msg)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Files:
    """Every Sec110File and the node's diagnostics, as a recorder would see them."""

    def __init__(self, node, hardware_prefix="SEC110 FTP"):
        from sensorhub_common import qos
        from sensorhub_msgs.msg import Sec110File
        from sensorhub_testing import DiagnosticsCollector

        self.lock = threading.Lock()
        self.msgs: list = []
        self.diag = DiagnosticsCollector(
            node,
            select=lambda s: s.hardware_id.startswith(hardware_prefix),
            key=lambda s: s.name.split(": ", 1)[-1],
        )
        self.sub = node.create_subscription(
            Sec110File, "/sec110/files", self._file, qos.SEC110_FILES
        )

    def _file(self, m):
        with self.lock:
            self.msgs.append(m)

    def all(self) -> list:
        with self.lock:
            return list(self.msgs)

    def by_name(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for m in self.all():
            out.setdefault(m.path.rsplit("/", 1)[-1], []).append(m)
        return out

    def latest(self, task: str, after: float = 0.0):
        """(level, message, values, hardware_id) of the newest `task` status since `after`."""
        s = self.diag.latest(task, after)
        return None if s is None else (s.level, s.message, s.values, s.hardware_id)


class Server:
    def __init__(self, proc, port: int, root: Path):
        self.proc, self.port, self.root = proc, port, root

    @property
    def incoming(self) -> Path:
        return self.root / "sec110" / ".incoming" / "sec110"

    @property
    def completed(self) -> Path:
        return self.root / "sec110" / "sec110"

    def completed_files(self) -> list[Path]:
        return sorted(p for p in self.completed.rglob("*") if p.is_file())

    def dated(self) -> Path:
        return self.completed / time.strftime("%Y-%m-%d", time.gmtime())


@pytest.fixture
def ftpd(procs, tmp_path, wait):
    """Factory: start a sec110_ftp node on an ephemeral port; returns a Server."""
    count = [0]

    def start(name="sec110_ftp", root=None, **params) -> Server:
        count[0] += 1
        root = Path(root or tmp_path / f"data{count[0]}")
        pf = tmp_path / f"{name}-{count[0]}.port"
        params.setdefault("address", "127.0.0.1")
        params.setdefault("port", 0)
        params.setdefault("credentials_file", SIM_USERS)
        params.setdefault("auth_failed_delay", 0.1)
        params.setdefault("min_free_bytes", 0)
        params.setdefault("confirm_grace", 1.0)
        params["data_root"] = root
        params["port_file"] = pf
        argv = [exe("sec110_ftp"), "--ros-args"]
        for k, v in params.items():
            v = str(v).lower() if isinstance(v, bool) else v
            argv += ["-p", f"{k}:={v}"]
        p = procs.start(name, argv)
        wait(lambda: pf.exists() or not p.alive(), 60, what="sec110_ftp port file")
        assert p.alive(), p.output()
        return Server(p, int(pf.read_text()), root)

    return start


@pytest.fixture
def h():
    """The helpers above for test modules (import-mode=importlib: no `from conftest import`)."""
    import types

    return types.SimpleNamespace(
        Files=Files, exe=exe, need_tool=need_tool, sha=sha, SIM_USERS=SIM_USERS
    )
