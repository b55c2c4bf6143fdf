"""Real child processes for tests: each in its own process group with its output in a log, always
reaped, and a poll-until helper so tests wait on conditions, never on sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll predicate() until truthy; raise AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL of the whole process group."""
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # reap stragglers left in the group
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode


class ProcGroup:
    """Starts real child processes (own process group, output to a log) and always reaps them."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[Proc] = []

    def start(self, name: str, argv, env: dict | None = None, cwd=None) -> Proc:
        log = self.tmp / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        e = dict(os.environ)
        if env:
            e.update({k: str(v) for k, v in env.items()})
        p = subprocess.Popen(
            [str(a) for a in argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=e,
            cwd=cwd,
            start_new_session=True,
        )
        fh.close()
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def param_args(params: dict) -> list[str]:
    """``-p name:=value`` for each parameter, as a node's command line takes them (bools in
    YAML's spelling, lists as YAML flow sequences of strings)."""
    argv: list[str] = []
    for k, v in params.items():
        if isinstance(v, bool):
            v = str(v).lower()
        elif isinstance(v, list):
            v = "[" + ",".join(f'"{x}"' for x in v) + "]"
        argv += ["-p", f"{k}:={v}"]
    return argv


def start_on_free_port(procs, wait, name: str, argv: list, port_dir: Path, timeout: float = 30.0):
    """Start a simulator with ``--port 0 --port-file F`` and wait for the port it was given:
    no fixed port, and no race between picking a port and binding it."""
    pf = Path(port_dir) / f"{name}.port"
    argv = list(argv)
    p = procs.start(name, [argv[0], "--port", "0", "--port-file", pf, *argv[1:]])
    wait(pf.exists, timeout, what=f"{name} port file")
    return p, int(pf.read_text())
