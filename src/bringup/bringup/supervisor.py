"""The supervisor: runs a plan's processes, restarts crashed ones, stops them in order.

No rclpy: it must keep working when a node (or DDS) misbehaves, and it is the Pi's watchdog.
Each child runs ``prefix + argv`` (the same command ``all.launch.py`` starts) in its own process
group, always through the scheduling trampoline with a parent-death signal, so even a
``kill -9`` of the supervisor leaves no orphan. Output goes to the console with a name prefix and
to ``<data_root>/logs/<node>.log`` (rotated). ``<data_root>/run/supervisor.json`` is the state
that ``sensorhub status`` shows, rewritten every second (its ``updated`` is a heartbeat).

Nothing here may wait on the console or the disk: console lines go through a bounded queue to a
writer thread (dropped and counted when nobody reads the pipe), and failed log/state writes are
dropped, so restarts, Ctrl-C and the exit code work with a wedged terminal or a full disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from urllib.parse import urlparse

from bringup import domain
from bringup.backoff import Backoff
from bringup.plan import SCHED_EXEC_MODULE, Plan, ProcessSpec
from bringup.sched_exec import PARENT_ENV, PDEATHSIG_ENV

# Exit codes of `sensorhub up`.
EXIT_OK = 0  # stopped on request (or every node ended cleanly)
EXIT_ERROR = 1  # the supervisor itself failed
EXIT_CONFIG = 2  # bad graph/options, or another supervisor owns this data root
EXIT_GAVE_UP = 3  # a node crash-looped and was given up (or a node without respawn failed)

FOXGLOVE_URL = "https://app.foxglove.dev/?ds=foxglove-websocket&ds.url={ws}"
# Lichtblick opens a connection and applies a layout from its URL; where it is served (its
# Docker image listens on 8080) is the user's choice: SENSORHUB_LICHTBLICK_URL.
LICHTBLICK_BASE = "http://localhost:8080/"
LICHTBLICK_URL = "{base}?ds=foxglove-websocket&ds.url={ws}&layoutUrl={layout}"
STATE_FILE = "supervisor.json"
HEARTBEAT = 1.0  # s between state file writes while running (``updated`` is the heartbeat)
STALE_AFTER = 10.0  # s: a running supervisor's state file older than this is stale
LAYOUT = "foxglove_layout.json"
_COLORS = ["36", "32", "33", "35", "34", "96", "92", "93", "95", "94"]


def signal_name(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    meaning = {0: "clean exit", 1: "crash", 2: "invalid parameters/configuration"}.get(code, "")
    return f"exit code {code}" + (f" ({meaning})" if meaning else "")


class RotatingLog:
    """Size-rotated per-node log (node.log, node.log.1, ...); thread-safe, never raises."""

    def __init__(self, path: str, max_bytes: int = 5_000_000, backups: int = 3):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._fh = None
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(self, line: bytes) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S").encode()
        record = stamp + b" " + line + (b"" if line.endswith(b"\n") else b"\n")
        with self._lock:
            try:
                if self._fh is None:
                    self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open, closed in close()
                if self._fh.tell() and self._fh.tell() + len(record) > self.max_bytes:
                    self._rotate()
                self._fh.write(record)
                self._fh.flush()
            except (OSError, ValueError):  # full disk, or a rotation that failed half-way
                self._drop_handle()  # reopened by the next write; this record is lost

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._fh = open(self.path, "ab")  # noqa: SIM115

    def _drop_handle(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError, ValueError):
                fh.close()

    def close(self) -> None:
        """Never raises: a full disk must not turn a clean stop into a crash (exit codes)."""
        with self._lock:
            self._drop_handle()


class Console:
    """Best-effort console: a bounded queue and a writer thread, so supervision never waits.

    With stdout on a pipe nobody drains, writes block; only the writer thread then waits, and
    lines beyond the queue are dropped and counted (the per-node log files stay complete).
    """

    def __init__(self, stream, max_lines: int = 2000):
        self.stream = stream
        self.dropped = 0
        self._q: queue.Queue[str] = queue.Queue(max_lines)
        try:
            self._fd = stream.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # e.g. a StringIO in tests: written by the thread as well
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        try:
            self._q.put_nowait(text)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            text = self._q.get()
            try:
                if self._fd is not None:
                    data = text.encode(errors="replace")
                    while data:  # os.write: no Python buffer left to flush (or block) at exit
                        data = data[os.write(self._fd, data) :]
                else:
                    self.stream.write(text)
                    self.stream.flush()
            except (OSError, ValueError):
                self.dropped += 1  # console gone (closed pipe, closed file): keep supervising
            finally:
                self._q.task_done()

    @property
    def pending(self) -> int:
        return self._q.unfinished_tasks

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for queued lines to be written; False if still blocked."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True


class Child:
    def __init__(self, spec: ProcessSpec, log: RotatingLog, color: str | None):
        self.spec = spec
        self.log = log
        self.color = color
        self.backoff = Backoff(spec.respawn)
        self.popen: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.state = "pending"
        self.started_at = 0.0
        self.since_wall = time.time()
        self.next_start: float | None = None
        self.last_exit: int | None = None
        self.message = ""
        self.tail: deque[str] = deque(maxlen=12)
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None and self.popen.poll() is None else None


class Supervisor:
    def __init__(
        self,
        plan: Plan,
        console=None,
        color: bool | None = None,
        echo: bool = True,
        exit_on_give_up: bool = False,
        sigint_timeout: float = 6.0,
        sigterm_timeout: float = 2.0,
        python: str | None = None,
    ):
        self.plan = plan
        stream = console or sys.stdout
        self.console = Console(stream)
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.color = tty if color is None else color
        self.echo = echo
        self.exit_on_give_up = exit_on_give_up
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self.python = python or sys.executable
        self.run_dir = plan.run_dir
        self.log_dir = plan.log_dir
        self.state_path = os.path.join(self.run_dir, STATE_FILE)
        self._stop = threading.Event()
        self._signals = 0
        self._exit_code = EXIT_OK
        self._started_wall = time.time()
        self._announced: set[str] = set()
        self._dirty = True  # state file out of date
        self._state_failing = False
        self._own_log = None
        self._width = max([len(p.name) for p in plan.processes] + [9])
        self.children = [
            Child(
                p,
                RotatingLog(os.path.join(self.log_dir, f"{p.name}.log")),
                _COLORS[i % len(_COLORS)] if self.color else None,
            )
            for i, p in enumerate(plan.processes)
        ]

    # ----- output
    def say(self, msg: str, child: Child | None = None) -> None:
        """A supervisor message: console, the supervisor log and (if about a node) its log."""
        line = f"[sensorhub] {msg}"
        self.console.write(line + "\n")
        if self._own_log is not None:
            self._own_log.write(line.encode())
        if child is not None:
            child.log.write(line.encode())

    def _pump(self, child: Child, stream) -> None:
        name = child.spec.name.ljust(self._width)
        tag = f"\033[{child.color}m{name}\033[0m | " if child.color else f"{name} | "
        for raw in iter(stream.readline, b""):
            child.log.write(raw)
            text = raw.decode(errors="replace").rstrip("\n")
            child.tail.append(text)
            if self.echo:
                self.console.write(tag + text + "\n")
        stream.close()

    # ----- processes
    def _start(self, child: Child) -> None:
        spec = child.spec
        env = dict(os.environ)
        env.update(spec.env)
        env["PYTHONUNBUFFERED"] = "1"
        env[PDEATHSIG_ENV] = str(int(signal.SIGTERM))
        env[PARENT_ENV] = str(os.getpid())
        prefix = spec.prefix or [self.python, "-m", SCHED_EXEC_MODULE, "--name", spec.name, "--"]
        cmd = [*prefix, *spec.argv]
        try:
            child.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,  # own group: Ctrl-C reaches only us; we stop in order
            )
        except OSError as e:
            child.popen = None
            child.last_exit = 127
            self.say(f"{spec.name}: cannot start: {e}", child)
            self._on_exit(child, time.monotonic())
            return
        child.starts += 1
        self._dirty = True
        child.state = "running"
        child.started_at = time.monotonic()
        child.since_wall = time.time()
        child.next_start = None
        child.message = ""
        child.reader = threading.Thread(
            target=self._pump, args=(child, child.popen.stdout), daemon=True
        )
        child.reader.start()
        what = "started" if child.starts == 1 else f"restarted (restart {child.backoff.restarts})"
        self.say(f"{spec.name} {what}, pid {child.popen.pid}", child)

    def _on_exit(self, child: Child, now: float) -> None:
        code = child.popen.returncode if child.popen is not None else child.last_exit
        if child.popen is not None:
            _killpg(child.popen.pid, signal.SIGKILL)  # stragglers in its group
            if child.reader is not None:
                child.reader.join(2.0)
        child.last_exit = code
        self._dirty = True
        ran = now - child.started_at if child.started_at else 0.0
        child.since_wall = time.time()
        if self._stop.is_set():
            child.state = "stopped"
            return
        if code == 0 and not child.spec.respawn.enabled:
            child.state = "exited"
            child.message = "finished"
            self.say(f"{child.spec.name} finished (exit code 0)", child)
            return
        delay = child.backoff.on_exit(now, ran)
        if delay is None:
            child.state = "gave_up" if child.spec.respawn.enabled else "failed"
            r = child.spec.respawn
            why = (
                f"{child.backoff.crashes_in_window} exits within {r.window:g} s "
                f"(limit {r.max_restarts} restarts)"
                if r.enabled
                else "respawn is off"
            )
            child.message = f"gave up: {why}; last: {signal_name(code)}"
            tail = "\n".join(f"    {t}" for t in list(child.tail)[-6:])
            self.say(
                f"GAVE UP on {child.spec.name}: {why}; last {signal_name(code)} after "
                f"{ran:.1f} s. Last output:\n{tail}\n    full log: {child.log.path}",
                child,
            )
            self._exit_code = EXIT_GAVE_UP
            if self.exit_on_give_up:
                self.say("stopping everything (--exit-on-give-up)")
                self._stop.set()
            return
        child.state = "backoff"
        child.next_start = now + delay
        child.message = f"{signal_name(code)}; restart in {delay:.1f} s"
        self.say(
            f"{child.spec.name} ended ({signal_name(code)}) after {ran:.1f} s; "
            f"restarting in {delay:.1f} s",
            child,
        )

    def _poll(self) -> None:
        now = time.monotonic()
        for c in self.children:
            if c.state == "running" and c.popen is not None and c.popen.poll() is not None:
                self._on_exit(c, now)
            elif (
                c.state == "backoff"
                and c.next_start is not None
                and now >= c.next_start
                and not self._stop.is_set()
            ):
                self._start(c)

    def _announce(self) -> None:
        for c in self.children:
            url = c.spec.url
            if not url or url in self._announced or c.state != "running":
                continue
            u = urlparse(url)
            if (
                u.port
                and _port_open(u.hostname or "localhost", u.port)
                and c.popen is not None
                and _group_listens(c.popen.pid, u.port)
            ):
                # Our own process holds the port: not some other program (or a second graph's
                # gateway) that happens to answer on it while ours crash-loops.
                self._announced.add(url)
                self.say(self._web_banner(url, bool(c.spec.parameters.get("layout_file"))))

    def _another_graph_running(self) -> bool:
        """Refuse to start nodes whose names are live in this ROS domain (bringup.domain)."""
        names = self.plan.ros_node_names()
        if not names or self._stop.is_set():
            return False
        try:
            live = domain.check(names, self.python, self.plan.child_env())
        except domain.DomainCheckError as e:
            self.say(f"WARN {e}; starting without it")
            return False
        if live:
            self._exit_code = EXIT_CONFIG
            self.say(domain.refusal(live))
            return True
        return False

    def _web_banner(self, url: str, serves_layout: bool) -> str:
        """How to open each viewer; one link where the viewer can take the layout by URL."""
        u = urlparse(url)
        scheme = "https" if u.scheme == "wss" else "http"
        layout_url = f"{scheme}://{u.netloc}/layout.json"
        base = os.environ.get("SENSORHUB_LICHTBLICK_URL") or LICHTBLICK_BASE
        lines = [f"web: {url} is up"]
        if serves_layout:
            link = LICHTBLICK_URL.format(base=base, ws=url, layout=layout_url)
            lines.append(f"    Lichtblick: {link}")
            lines.append("                (connected, with the sensorhub layout)")
        else:
            lines.append(f"    Lichtblick: {base} > Open connection > Foxglove WebSocket > {url},")
            lines.append(
                f"                then Layouts tab > Import from file... > {self._layout()}"
            )
        lines.append(f"    Foxglove:   {FOXGLOVE_URL.format(ws=url)}")
        where = f"{self._layout()}" + (f" (or download {layout_url})" if serves_layout else "")
        lines.append(f"                then Layout menu > Import from file... > {where}")
        return "\n".join(lines)

    def _layout(self) -> str:
        """The installed Foxglove layout (written by the foxglove_gateway engineer)."""
        return os.path.join(os.path.dirname(os.path.abspath(self.plan.graph_path)), LAYOUT)

    def _stop_all(self) -> None:
        """Reverse start order: SIGINT each (consumers before producers), then SIGTERM, SIGKILL."""
        live = [c for c in reversed(self.children) if c.pid is not None]
        deadline = time.monotonic() + self.sigint_timeout
        for c in live:
            self.say(f"stopping {c.spec.name} (SIGINT)", c)
            _killpg(c.popen.pid, signal.SIGINT)
            per_node = min(deadline, time.monotonic() + max(1.0, self.sigint_timeout / 2))
            _wait(c.popen, per_node)
        for c in live:
            _wait(c.popen, deadline)
        for sig, timeout in ((signal.SIGTERM, self.sigterm_timeout), (signal.SIGKILL, 2.0)):
            left = [c for c in live if c.popen.poll() is None]
            if not left:
                break
            for c in left:
                self.say(f"{c.spec.name} still running: {sig.name}", c)
                _killpg(c.popen.pid, sig)
            end = time.monotonic() + timeout
            for c in left:
                _wait(c.popen, end)
        for c in self.children:
            if c.popen is not None:
                c.popen.poll()
                _killpg(c.popen.pid, signal.SIGKILL)
                if c.reader is not None:
                    c.reader.join(2.0)
            if c.state in ("running", "backoff", "pending"):
                c.state = "stopped"
                c.last_exit = c.popen.returncode if c.popen is not None else None

    # ----- state file
    def state(self, status: str) -> dict:
        nodes = []
        for c in self.children:
            pid = c.pid
            nodes.append(
                {
                    "name": c.spec.name,
                    "fqn": c.spec.fqn,
                    "kind": c.spec.kind,
                    "members": list(c.spec.members),
                    "state": c.state,
                    "pid": pid,
                    "restarts": c.backoff.restarts,
                    "last_exit": c.last_exit,
                    "since": c.since_wall,
                    "message": c.message,
                    "requested": {
                        k: v for k, v in c.spec.scheduling.items() if v not in (None, "")
                    },
                    "applied": _applied(pid) if pid else {},
                    "log": c.log.path,
                    "command": c.spec.command,
                    "url": c.spec.url,
                }
            )
        return {
            "supervisor_pid": os.getpid(),
            "status": status,
            "exit_code": self._exit_code if status == "stopped" else None,
            "started": self._started_wall,
            "updated": time.time(),  # the heartbeat: rewritten every HEARTBEAT s while running
            "heartbeat": HEARTBEAT,
            "profile": self.plan.profile,
            "role": self.plan.role,
            "data_root": self.plan.data_root,
            "graph": self.plan.graph_path,
            "notes": self.plan.notes,
            "set": self.plan.set_variables,
            "console_dropped": self.console.dropped,
            "domain_id": os.environ.get("ROS_DOMAIN_ID", "0"),
            "nodes": nodes,
        }

    def write_state(self, status: str) -> None:
        """Atomic replace; a failure (full disk) is reported once and leaves the old file, whose
        aging ``updated`` makes `sensorhub status` call it stale."""
        tmp = self.state_path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.state(status), f, indent=1)
            os.replace(tmp, self.state_path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if not self._state_failing:
                self.say(f"cannot write {self.state_path}: {e}")
            self._state_failing = True
            return
        if self._state_failing:
            self.say(f"state file {self.state_path} written again")
        self._state_failing = False

    def _finish_console(self) -> None:
        """Give the console a moment to take the last lines, never more (nobody may read it)."""
        lost = self.console.dropped
        if not self.console.drain(1.0):
            lost += self.console.pending
        if lost and self._own_log is not None:
            self._own_log.write(
                f"[sensorhub] console: {lost} lines dropped (pipe full or closed); the log "
                "files are complete".encode()
            )

    # ----- main
    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        self._stop.set()
        if self._signals >= 3:  # impatient user: skip the grace periods
            self.sigint_timeout = self.sigterm_timeout = 0.2

    def run(self) -> int:
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        lock = open(os.path.join(self.run_dir, "supervisor.lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = _read_pid(self.state_path)
            self.say(
                f"another supervisor (pid {other or '?'}) is running with data root "
                f"{self.plan.data_root}; stop it first or use another --data-root"
            )
            self._finish_console()
            lock.close()
            return EXIT_CONFIG
        self._own_log = RotatingLog(os.path.join(self.log_dir, "sensorhub.log"))
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_signal)
        try:
            self.say(
                f"profile {self.plan.profile}, role {self.plan.role}, data root "
                f"{self.plan.data_root}, ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}"
            )
            if self.plan.set_variables:
                sets = ", ".join(f"{k}={v}" for k, v in self.plan.set_variables.items())
                self.say(f"variables set on the command line: {sets}")
            for n in self.plan.notes:
                self.say(n)
            if self._another_graph_running():
                self.write_state("stopped")
                self._finish_console()
                return EXIT_CONFIG
            if not self.children:
                self.say("nothing to start for this profile/role/options")
            for c in self.children:
                if self._stop.is_set():
                    break
                self._start(c)
            last_write = 0.0
            while not self._stop.is_set():
                self._poll()
                self._announce()
                now = time.monotonic()
                if self._dirty or now - last_write >= HEARTBEAT:
                    self._dirty = False
                    self.write_state("running")
                    last_write = now
                active = [c for c in self.children if c.state in ("running", "backoff")]
                if self.children and not active:
                    self.say("no node left running")
                    if any(c.state in ("gave_up", "failed") for c in self.children):
                        self._exit_code = EXIT_GAVE_UP
                    break
                self._stop.wait(0.1)
            self.say("shutting down" + (f" (signal x{self._signals})" if self._signals else ""))
            self.write_state("stopping")
            self._stop.set()
            self._stop_all()
            self.write_state("stopped")
            self.say(f"stopped; exit code {self._exit_code}")
            self._finish_console()
            return self._exit_code
        except Exception as e:
            self.say(f"internal error: {type(e).__name__}: {e}; stopping all nodes")
            self._stop.set()
            self._stop_all()
            self.write_state("stopped")
            self._finish_console()
            return EXIT_ERROR
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            for c in self.children:
                c.log.close()
            self._own_log.close()
            lock.close()


def _killpg(pid: int, sig) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait(popen: subprocess.Popen, deadline: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(max(0.0, deadline - time.monotonic()))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (any address, IPv4 and IPv6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if (
                        len(parts) > 9
                        and parts[3] == "0A"
                        and int(parts[1].rsplit(":", 1)[1], 16) == port
                    ):
                        out.add(parts[9])
        except (OSError, ValueError):
            continue
    return out


def _group_listens(pgid: int, port: int) -> bool:
    """True when a process of the group ``pgid`` (a child and what it started) holds the
    listening socket on ``port``."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            fd_dir = f"/proc/{entry}/fd"
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(f"{fd_dir}/{fd}") in wanted:
                        return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def _applied(pid: int) -> dict:
    """What the kernel says this process got (the observable truth, not the request)."""
    out = {}
    try:
        out["cpus"] = _cpu_text(os.sched_getaffinity(pid))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["nice"] = int(fields[16])
    except (OSError, IndexError, ValueError):
        pass
    return out


def _cpu_text(cpus) -> str:
    from sensorhub_common.scheduling import format_cpu_list

    return format_cpu_list(cpus)


def _read_pid(path: str):
    try:
        with open(path) as f:
            return json.load(f).get("supervisor_pid")
    except (OSError, ValueError):
        return None


def read_state(data_root: str) -> dict | None:
    """The supervisor's state file, with `alive` telling whether its pid still runs."""
    path = os.path.join(data_root, "run", STATE_FILE)
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return None
    pid = st.get("supervisor_pid")
    alive = False
    if pid and st.get("status") != "stopped":
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:  # another user's live process
            alive = True
    st["alive"] = alive
    st["stale"] = stale_for(st)
    return st


def stale_for(st: dict, now: float | None = None) -> float | None:
    """Seconds since a live supervisor last wrote its state, if that is too long (else None).

    The supervisor rewrites the file every ``heartbeat`` s while running; an older file means it
    cannot write (full disk) or is wedged, so what the file says is not the present.
    """
    if st.get("status") == "stopped":
        return None
    now = time.time() if now is None else now
    try:
        age = now - float(st.get("updated", 0))
        beat = float(st.get("heartbeat", HEARTBEAT))
    except (TypeError, ValueError):
        return float("inf")
    limit = max(STALE_AFTER, 5 * beat)
    if st.get("status") == "stopping":
        limit += 30.0  # no heartbeat while the ordered stop runs (bounded by its timeouts)
    return age if age > limit else None
