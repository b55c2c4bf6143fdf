"""sec110_ftp test helpers: start the node (port 0, port file), collect sec110/files."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import shutil
import socket
import struct
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


def login(srv, user="sec110", pw="sec110") -> ftplib.FTP:
    f = ftplib.FTP(timeout=60)
    f.connect("127.0.0.1", srv.port)
    f.login(user, pw)
    return f


def marker(srv, files, wait, name="zz_marker.csv"):
    """Upload one more file and wait for it: everything announced before is in `files` now
    (one worker announces in order), so 'exactly once' can be checked without sleeping."""
    f = login(srv)
    f.storbinary(f"STOR {name}", io.BytesIO(b"marker"))
    f.quit()
    wait(lambda: name in files.by_name(), 60, what=f"announcement of {name}")


def rst(conn) -> None:
    """Close a socket or an ftplib session's control connection with a TCP reset (a cable
    pulled / a client killed), not an orderly FIN. ftplib's reply reader holds the control
    socket open after ``sock.close()``: it is closed too, or no reset would be sent at all."""
    if isinstance(conn, ftplib.FTP):
        if conn.file is not None:
            conn.file.close()
        conn = conn.sock
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def set_params(node, wait, target: str = "/sec110_ftp", **values) -> None:
    """Set parameters of a running node over its SetParameters service (as `ros2 param set`)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    cli = node.create_client(SetParameters, f"{target}/set_parameters")
    try:
        assert cli.wait_for_service(timeout_sec=60), f"{target}/set_parameters not available"
        req = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        fut = cli.call_async(req)
        wait(fut.done, 60, what=f"set_parameters {values}")
        results = fut.result().results
        assert all(r.successful for r in results), [r.reason for r in results]
    finally:
        node.destroy_client(cli)


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
        Files=Files, exe=exe, need_tool=need_tool, sha=sha, SIM_USERS=SIM_USERS, login=login,
        marker=marker, rst=rst, set_params=set_params,
    )  # fmt: skip
