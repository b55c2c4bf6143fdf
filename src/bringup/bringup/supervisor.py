"""The supervisor beside `ros2 launch`: the wheels path has no launch, and it adds restart backoff,
an ordered stop and a watchdog (give-up, state heartbeat) that launch lacks.

It runs a plan's processes, restarts crashed ones and stops them in reverse start order. No
rclpy: it must keep working when a node (or DDS) misbehaves, and it is the Pi's watchdog. Each
child runs ``prefix + argv`` (the same command ``all.launch.py`` starts) in its own process
group, always through the scheduling trampoline with a parent-death signal, so even a
``kill -9`` of the supervisor leaves no orphan (:mod:`bringup.children`); what a child starts
outside its group (``setsid``) is found below the supervisor, its subreaper, and stopped too.
An invalid ROS_DOMAIN_ID is refused before anything starts. Output goes to the console with a
name prefix and to ``<data_root>/logs/<node>.log``, capped, saying what the cap dropped
(:mod:`bringup.console`);
``<data_root>/run/supervisor.json`` is the state ``sensorhub status`` shows
(:mod:`bringup.state`).

Nothing here may wait on the console or the disk: console lines go through a bounded queue to a
writer thread (dropped and counted when nobody reads the pipe), and failed log/state writes are
dropped, so restarts, Ctrl-C and the exit code work with a wedged terminal or a full disk.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from urllib.parse import urlparse

from bringup import domain
from bringup.children import (
    SUPERVISED_ENV,
    Child,
    Descendants,
    group_listens,
    killpg,
    owner,
    port_open,
    signal_name,
    wait_until,
)
from bringup.console import DEFAULT_LOG_CAP, Console, RotatingLog
from bringup.lan import viewer_lines
from bringup.plan import Plan
from bringup.sched_exec import PARENT_ENV, PDEATHSIG_ENV
from bringup.state import (
    HEARTBEAT,
    STATE_FILE,
    StateFile,
    node_record,
    read_pid,
    read_state,
    stale_for,
)

__all__ = ["Console", "RotatingLog", "Supervisor", "read_state", "stale_for"]

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
LAYOUT = "foxglove_layout.json"
_COLORS = ["36", "32", "33", "35", "34", "96", "92", "93", "95", "94"]


class Supervisor:
    def __init__(
        self,
        plan: Plan,
        console=None,
        color: bool | None = None,
        echo: bool = True,
        exit_on_give_up: bool = False,
        grace: tuple[float, float] = (6.0, 2.0),  # s after SIGINT, then after SIGTERM
        log_cap: int = DEFAULT_LOG_CAP,
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
        self.sigint_timeout, self.sigterm_timeout = grace
        self.run_dir = plan.run_dir
        self.log_dir = plan.log_dir
        self.state_path = os.path.join(self.run_dir, STATE_FILE)
        self._state_file = StateFile(self.state_path, self.say)
        self._stop = threading.Event()
        self._signals = 0
        self._exit_code = EXIT_OK
        self._started_wall = time.time()
        self._announced: set[str] = set()
        self._dirty = True  # state file out of date
        self._own_log = None
        self._width = max([len(p.name) for p in plan.processes] + [9])
        self._log_part = max(1, log_cap // 4)  # the file and 3 rotations
        self._tree: Descendants | None = None  # made by run()
        self._domain = 0
        self.children = [
            Child(
                p,
                RotatingLog(os.path.join(self.log_dir, f"{p.name}.log"), self._log_part),
                _COLORS[i % len(_COLORS)] if self.color else None,
            )
            for i, p in enumerate(plan.processes)
        ]

    # output
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

    # processes
    def _child_env(self, child: Child) -> dict[str, str]:
        env = dict(os.environ)
        env.update(child.spec.env)
        env["PYTHONUNBUFFERED"] = "1"
        env[PDEATHSIG_ENV] = str(int(signal.SIGTERM))
        env[PARENT_ENV] = str(os.getpid())
        env[SUPERVISED_ENV] = child.spec.name
        return env

    def _start(self, child: Child) -> None:
        name = child.spec.name
        try:
            child.spawn(self._child_env(child))
        except OSError as e:
            child.popen = None
            child.last_exit = 127
            self.say(f"{name}: cannot start: {e}", child)
            self._on_exit(child, time.monotonic())
            return
        self._dirty = True
        child.reader = threading.Thread(
            target=self._pump, args=(child, child.popen.stdout), daemon=True
        )
        child.reader.start()
        what = "started" if child.starts == 1 else f"restarted (restart {child.backoff.restarts})"
        self.say(f"{name} {what}, pid {child.popen.pid}", child)

    def _on_exit(self, child: Child, now: float) -> None:
        code = child.popen.returncode if child.popen is not None else child.last_exit
        child.reap()
        self._stop_left_by(child)
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
            self._give_up(child, code, ran)
            return
        child.state = "backoff"
        child.next_start = now + delay
        child.message = f"{signal_name(code)}; restart in {delay:.1f} s"
        self.say(
            f"{child.spec.name} ended ({signal_name(code)}) after {ran:.1f} s; "
            f"restarting in {delay:.1f} s",
            child,
        )

    def _give_up(self, child: Child, code: int | None, ran: float) -> None:
        r = child.spec.respawn
        child.state = "gave_up" if r.enabled else "failed"
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
                and port_open(u.hostname or "localhost", u.port)
                and c.popen is not None
                and group_listens(c.popen.pid, u.port)
            ):
                # Our own process holds the port: not some other program (or a second graph's
                # gateway) that happens to answer on it while ours crash-loops.
                self._announced.add(url)
                # Our gateway (it serves the layout) serves the lab page too, unless the plan
                # runs the page's own http:// server (next to foxglove_bridge).
                own_page = any((x.spec.url or "").startswith("http") for x in self.children)
                serves_layout = bool(c.spec.parameters.get("layout_file"))
                self.say(self._web_banner(url, serves_layout, serves_layout and not own_page))

    def _another_graph_running(self) -> bool:
        """Refuse to start nodes whose names are live in this ROS domain (bringup.domain)."""
        names = self.plan.ros_node_names()
        if not names or self._stop.is_set():
            return False
        try:
            live = domain.check(names, sys.executable, self.plan.child_env())
        except domain.DomainCheckError as e:
            self.say(f"WARN {e}; starting without it")
            return False
        if live:
            self._exit_code = EXIT_CONFIG
            self.say(domain.refusal(live))
            return True
        return False

    def _web_banner(self, url: str, serves_layout: bool, serves_page: bool = False) -> str:
        """How to open each viewer: first the lab page's LAN link and what works from another
        machine, then one link where the viewer can take the layout by URL."""
        u = urlparse(url)
        viewers = viewer_lines(url, serves_page)
        page = [v for v in viewers if v.startswith("Lab page")]
        lines = [*page, f"web: {url} is up"] + [f"    {v}" for v in viewers if v not in page]
        if u.scheme not in ("ws", "wss"):
            return "\n".join(lines)  # the lab page's own server: no Foxglove viewers here
        scheme = "https" if u.scheme == "wss" else "http"
        layout_url = f"{scheme}://{u.netloc}/layout.json"
        base = os.environ.get("SENSORHUB_LICHTBLICK_URL") or LICHTBLICK_BASE
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
        """The installed Foxglove layout, beside the graph file."""
        return os.path.join(os.path.dirname(os.path.abspath(self.plan.graph_path)), LAYOUT)

    def _known(self) -> set[int]:
        return {c.popen.pid for c in self.children if c.popen is not None}

    def _stop_left_by(self, child: Child | None) -> None:
        """What an ended child (None: any) left running outside its process group."""
        if self._tree is None:
            return
        name = child.spec.name if child is not None else None
        known = self._known() if child is not None else set()
        if child is not None and child.popen is not None:
            known.discard(child.popen.pid)
        left = self._tree.left_by(name, known)
        if not left:
            return
        for pid in left:
            who = child or next((c for c in self.children if c.spec.name == owner(pid)), None)
            self.say(f"stopping pid {pid}, left running by {owner(pid) or 'a node'}", who)
        self._tree.stop(left, self._known(), self.sigterm_timeout)

    def _stop_all(self) -> None:
        """Reverse start order: SIGINT each (consumers before producers), then SIGTERM, SIGKILL;
        last, whatever the nodes started outside their process groups."""
        live = [c for c in reversed(self.children) if c.pid is not None]
        deadline = time.monotonic() + self.sigint_timeout
        for c in live:
            self.say(f"stopping {c.spec.name} (SIGINT)", c)
            killpg(c.popen.pid, signal.SIGINT)
            per_node = min(deadline, time.monotonic() + max(1.0, self.sigint_timeout / 2))
            wait_until(c.popen, per_node)
        for c in live:
            wait_until(c.popen, deadline)
        self._escalate(live)
        for c in self.children:
            if c.popen is not None:
                c.popen.poll()
            c.reap()
            if c.state in ("running", "backoff", "pending"):
                c.state = "stopped"
                c.last_exit = c.popen.returncode if c.popen is not None else None
        self._stop_left_by(None)

    def _escalate(self, live: list[Child]) -> None:
        """SIGTERM, then SIGKILL, for what the SIGINT grace period did not stop."""
        for sig, timeout in ((signal.SIGTERM, self.sigterm_timeout), (signal.SIGKILL, 2.0)):
            left = [c for c in live if c.popen.poll() is None]
            if not left:
                break
            for c in left:
                self.say(f"{c.spec.name} still running: {sig.name}", c)
                killpg(c.popen.pid, sig)
            end = time.monotonic() + timeout
            for c in left:
                wait_until(c.popen, end)

    # state file
    def state(self, status: str) -> dict:
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
            "nodes": [node_record(c) for c in self.children],
        }

    def write_state(self, status: str) -> None:
        self._state_file.write(self.state(status))

    def _finish_console(self) -> None:
        """Give the console a moment to take the last lines, never more (nobody may read it)."""
        lost = self.console.dropped
        if not self.console.drain(1.0):
            lost += self.console.pending
        if lost and self._own_log is not None:
            capped = [c.spec.name for c in self.children if c.log.summary()]
            logs = (
                f"the log files have them, except what the caps of {', '.join(capped)} dropped"
                if capped
                else "the log files are complete"
            )
            self._own_log.write(
                f"[sensorhub] console: {lost} lines dropped (pipe full or closed); {logs}".encode()
            )

    def _report_logs(self) -> None:
        """Per node, what its capped log file no longer holds."""
        for c in self.children:
            text = c.log.summary()
            if text:
                self.say(f"{c.spec.name}: {text}")

    # main
    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        self._stop.set()
        if self._signals >= 3:  # impatient user: skip the grace periods
            self.sigint_timeout = self.sigterm_timeout = 0.2

    def _lock(self):
        """The data root's lock file, held for the run; None if another supervisor has it."""
        lock = open(os.path.join(self.run_dir, "supervisor.lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return None
        return lock

    def _greet(self) -> None:
        self.say(
            f"profile {self.plan.profile}, role {self.plan.role}, data root "
            f"{self.plan.data_root}, ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}"
        )
        for note in domain.domain_notes(self._domain, len(self.children)):
            self.say(f"WARN {note}")
        if self._tree is not None and not self._tree.subreaper:
            self.say("WARN cannot become the nodes' subreaper: what they detach may outlive them")
        if self.plan.set_variables:
            sets = ", ".join(f"{k}={v}" for k, v in self.plan.set_variables.items())
            self.say(f"variables set on the command line: {sets}")
        for n in self.plan.notes:
            self.say(n)

    def _start_all(self) -> None:
        if not self.children:
            self.say("nothing to start for this profile/role/options")
        for c in self.children:
            if self._stop.is_set():
                break
            self._start(c)

    def _supervise(self) -> None:
        """Until a stop is asked for or no node is left: restarts, web banner, heartbeat."""
        last_write = last_reap = 0.0
        while not self._stop.is_set():
            self._poll()
            self._announce()
            now = time.monotonic()
            if self._dirty or now - last_write >= HEARTBEAT:
                self._dirty = False
                self.write_state("running")
                last_write = now
            if self._tree is not None and now - last_reap >= HEARTBEAT:
                last_reap = now
                self._tree.reap(self._known())  # orphans that exited: no zombies piling up
            active = [c for c in self.children if c.state in ("running", "backoff")]
            if self.children and not active:
                self.say("no node left running")
                if any(c.state in ("gave_up", "failed") for c in self.children):
                    self._exit_code = EXIT_GAVE_UP
                return
            self._stop.wait(0.1)

    def _run_graph(self) -> int:
        self._greet()
        if self._another_graph_running():
            self.write_state("stopped")
            self._finish_console()
            return EXIT_CONFIG
        self._start_all()
        self._supervise()
        self.say("shutting down" + (f" (signal x{self._signals})" if self._signals else ""))
        self.write_state("stopping")
        self._stop.set()
        self._stop_all()
        self.write_state("stopped")
        self._report_logs()
        self.say(f"stopped; exit code {self._exit_code}")
        self._finish_console()
        return self._exit_code

    def run(self) -> int:
        try:
            self._domain = domain.domain_id()
        except domain.DomainIdError as e:
            self.say(f"{e}. Not starting anything.")
            self._finish_console()
            return EXIT_CONFIG
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        lock = self._lock()
        if lock is None:
            self.say(
                f"another supervisor (pid {read_pid(self.state_path) or '?'}) is running with "
                f"data root {self.plan.data_root}; stop it first or use another --data-root"
            )
            self._finish_console()
            return EXIT_CONFIG
        self._own_log = RotatingLog(os.path.join(self.log_dir, "sensorhub.log"), self._log_part)
        self._tree = Descendants()
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        old = {s: signal.signal(s, self._on_signal) for s in sigs}
        try:
            return self._run_graph()
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
