"""Which processes are the graph's, and what the kernel actually gives them (pure, no rclpy).

Everything comes from /proc text (``stat``, ``status``, ``cmdline``, ``environ``) so every
parser can be tested from fixtures. The graph's processes are described by ``expected`` entries
that bringup's ``${plan_nodes}`` produces, one string per process:
``name=pbt_driver;kind=ros_node;fqn=/pbt/pbt_driver;exe=pbt_driver/pbt_driver;nice=0;cpus=1;rt=0``
(``cmd=...`` for commands, ``launch=...`` for launch files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sensorhub_common.scheduling import format_cpu_list, parse_cpu_list

POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE",
            6: "SCHED_DEADLINE"}  # fmt: skip
RT_POLICIES = {1, 2, 6}
STATES = {"R": "running", "S": "sleeping", "D": "disk sleep", "T": "stopped", "t": "tracing stop",
          "Z": "zombie", "X": "dead", "I": "idle", "P": "parked", "W": "paging"}  # fmt: skip
KINDS = ("ros_node", "process", "command", "launch")
SCHED_EXEC = "bringup.sched_exec"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ExpectedError(ValueError):
    """An ``expected`` entry that cannot be understood; names the entry and the problem."""


@dataclass(frozen=True)
class Expected:
    name: str
    kind: str = "ros_node"
    fqn: str = ""
    exe: str = ""  # "package/executable"
    cmd: tuple[str, ...] = ()
    launch: str = ""
    nice: int | None = None
    cpus: frozenset[int] | None = None
    rt: int = 0

    @property
    def namespace(self) -> str:
        return self.fqn.rsplit("/", 1)[0] if self.fqn.count("/") > 1 else ""

    @property
    def publishes_diagnostics(self) -> bool:
        """Our ROS nodes publish REP 107 diagnostics; simulators and commands do not."""
        return self.kind == "ros_node"


def parse_expected(entry: str) -> Expected | None:
    """One ``key=value;...`` entry, or a bare node name; blank entries (a ROS string array
    cannot be empty in a parameter file, so ``[""]`` means none) give None."""
    entry = entry.strip()
    if not entry:
        return None
    if "=" not in entry:
        return Expected(name=entry, fqn="/" + entry.lstrip("/"), exe="")
    kv: dict[str, str] = {}
    for part in entry.split(";"):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise ExpectedError(f"expected entry {entry!r}: {part!r} is not key=value")
        kv[k.strip()] = v.strip()
    unknown = set(kv) - {"name", "kind", "fqn", "exe", "cmd", "launch", "nice", "cpus", "rt"}
    if unknown:
        raise ExpectedError(f"expected entry {entry!r}: unknown keys {sorted(unknown)}")
    name = kv.get("name", "")
    if not name:
        raise ExpectedError(f"expected entry {entry!r}: no name")
    kind = kv.get("kind", "ros_node")
    if kind not in KINDS:
        raise ExpectedError(f"expected entry {entry!r}: kind {kind!r} not one of {KINDS}")
    try:
        nice = int(kv["nice"]) if kv.get("nice", "") != "" else None
        rt = int(kv.get("rt") or 0)
        cpus = parse_cpu_list(kv.get("cpus") or None)
    except ValueError as e:
        raise ExpectedError(f"expected entry {entry!r}: {e}") from None
    exe = kv.get("exe", "")
    if kind in ("ros_node", "process") and exe.count("/") != 1:
        raise ExpectedError(f"expected entry {entry!r}: exe must be 'package/executable'")
    return Expected(
        name=name,
        kind=kind,
        fqn=kv.get("fqn") or ("/" + name if kind == "ros_node" else ""),
        exe=exe,
        cmd=tuple(kv.get("cmd", "").split()),
        launch=kv.get("launch", ""),
        nice=nice,
        cpus=cpus,
        rt=rt,
    )


def parse_expected_list(entries) -> list[Expected]:
    out, seen = [], set()
    for e in entries:
        x = parse_expected(e)
        if x is None:
            continue
        if x.name in seen:
            raise ExpectedError(f"expected: {x.name!r} listed twice")
        seen.add(x.name)
        out.append(x)
    return out


# ---- matching a command line to an expected process -------------------------------------------
def _ros_arg(argv: list[str], key: str) -> str | None:
    """Value of a ``-r [node:]__node:=X`` style remap, wherever it appears."""
    for a in argv:
        i = a.find(key + ":=")
        if i >= 0 and (i == 0 or a[i - 1] == ":"):
            return a[i + len(key) + 2 :]
    return None


def _script(argv: list[str], suffix: str) -> bool:
    """argv[0] is the executable, or argv[1] when an interpreter runs a script."""
    return any(a.endswith("/" + suffix) or a == suffix for a in argv[:2])


def _sched_exec_matches(exp: Expected, argv: list[str]) -> bool:
    try:
        return argv[argv.index("--name") + 1] == exp.name
    except (ValueError, IndexError):
        return False


def _ros_node_matches(exp: Expected, argv: list[str]) -> bool:
    pkg, _, exe = exp.exe.partition("/")
    if "--ros-args" not in argv:
        return False
    if exe and not _script(argv, f"lib/{pkg}/{exe}"):
        return False
    node = _ros_arg(argv, "__node") or exe
    ns = (_ros_arg(argv, "__ns") or "").rstrip("/")
    return node == exp.name and ns == exp.namespace


def _process_matches(exp: Expected, argv: list[str]) -> bool:
    pkg, _, exe = exp.exe.partition("/")
    return _script(argv, f"lib/{pkg}/{exe}")


def _command_matches(exp: Expected, argv: list[str]) -> bool:
    if not exp.cmd:
        return False
    head = os.path.basename(exp.cmd[0])
    want = list(exp.cmd[1:])
    return any(
        len(argv) > start
        and os.path.basename(argv[start]) == head
        and argv[start + 1 :][: len(want)] == want
        for start in (0, 1)
    )


def _launch_matches(exp: Expected, argv: list[str]) -> bool:
    """`ros2 launch <file>` (or package + file name)."""
    return (
        bool(exp.launch)
        and "launch" in argv
        and any(a.endswith(os.path.basename(exp.launch)) for a in argv)
    )


_MATCHERS = {
    "ros_node": _ros_node_matches,
    "process": _process_matches,
    "command": _command_matches,
}


def matches(exp: Expected, argv: list[str]) -> bool:
    """True when a command line is this expected process (also while sched_exec, which keeps
    the PID across exec, is still applying scheduling before it execs the node)."""
    if not argv:
        return False
    if SCHED_EXEC in argv[:4]:
        return _sched_exec_matches(exp, argv)
    return _MATCHERS.get(exp.kind, _launch_matches)(exp, argv)


# ---- /proc parsers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>[/task/<tid>]/stat the monitor uses."""

    comm: str
    state: str
    utime: int  # clock ticks
    stime: int
    nice: int
    num_threads: int
    starttime: int
    processor: int
    rt_priority: int
    policy: int

    @property
    def cpu_s(self) -> float:
        return (self.utime + self.stime) / CLK_TCK

    @property
    def policy_name(self) -> str:
        return POLICIES.get(self.policy, f"policy {self.policy}")

    @property
    def state_name(self) -> str:
        return STATES.get(self.state, self.state)


def parse_stat(text: str) -> Stat:
    """proc(5) stat line; comm may contain spaces and parentheses, so split at the last ')'."""
    head, sep, tail = text.rpartition(")")
    if not sep:
        raise ValueError(f"not a /proc stat line: {text[:60]!r}")
    f = tail.split()
    if len(f) < 39:
        raise ValueError(f"/proc stat line too short ({len(f) + 2} fields)")
    return Stat(
        comm=head.partition("(")[2],
        state=f[0],
        utime=int(f[11]),
        stime=int(f[12]),
        nice=int(f[16]),
        num_threads=int(f[17]),
        starttime=int(f[19]),
        processor=int(f[36]),
        rt_priority=int(f[37]),
        policy=int(f[38]),
    )


@dataclass(frozen=True)
class Status:
    rss_bytes: int | None
    voluntary: int | None
    involuntary: int | None
    cpus: frozenset[int] | None


_STATUS_KEYS = ("VmRSS", "Cpus_allowed_list", "voluntary_ctxt_switches",
                "nonvoluntary_ctxt_switches")  # fmt: skip


def parse_status(text: str) -> Status:
    kv = {}
    for line in text.splitlines():
        if line.startswith(_STATUS_KEYS):
            k, _, v = line.partition(":")
            kv[k.strip()] = v.strip()
    rss = kv.get("VmRSS")
    cpus = kv.get("Cpus_allowed_list")
    return Status(
        rss_bytes=int(rss.split()[0]) * 1024 if rss else None,
        voluntary=int(kv["voluntary_ctxt_switches"]) if "voluntary_ctxt_switches" in kv else None,
        involuntary=(
            int(kv["nonvoluntary_ctxt_switches"]) if "nonvoluntary_ctxt_switches" in kv else None
        ),
        cpus=parse_cpu_list(cpus) if cpus else None,
    )


def parse_cmdline(raw: bytes) -> list[str]:
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def parse_environ(raw: bytes) -> dict[str, str]:
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


@dataclass
class ThreadInfo:
    tid: int
    name: str
    policy: int
    rt_priority: int
    nice: int
    cpus: frozenset[int] | None = None

    @property
    def rank(self) -> tuple[int, int, int]:
        """Real-time threads first (by priority), then the lowest nice."""
        return (1 if self.policy in RT_POLICIES else 0, self.rt_priority, -self.nice)

    def describe(self) -> str:
        pol = POLICIES.get(self.policy, str(self.policy))
        prio = f" {self.rt_priority}" if self.policy in RT_POLICIES else f" nice {self.nice}"
        cpus = f", CPUs {format_cpu_list(self.cpus)}" if self.cpus else ""
        return f"{pol}{prio} (thread {self.tid} '{self.name}'{cpus})"


def top_thread(threads: list[ThreadInfo]) -> ThreadInfo | None:
    return max(threads, key=lambda t: t.rank, default=None)


# ---- reading a live process -------------------------------------------------------------------
@dataclass
class Sample:
    """One reading of a process: what `node <name>` diagnostics report."""

    pid: int
    stat: Stat
    status: Status | None
    threads: list[ThreadInfo] = field(default_factory=list)
    t: float = 0.0  # monotonic time of the reading


class ProcFS:
    """/proc access with an injectable root (tests point it at fixture directories)."""

    def __init__(self, root: str | os.PathLike = "/proc"):
        self.root = Path(root)
        self._prefix = str(self.root)

    def read(self, *parts) -> bytes:
        """Plain os calls and string paths: this runs ~60 times a second."""
        fd = os.open("/".join((self._prefix, *map(str, parts))), os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in os.listdir(self.root) if p.isdigit()]
        except OSError:
            return []

    def stat(self, pid: int) -> Stat | None:
        try:
            return parse_stat(self.read(pid, "stat").decode(errors="replace"))
        except (OSError, ValueError):
            return None

    def cmdline(self, pid: int) -> list[str]:
        try:
            return parse_cmdline(self.read(pid, "cmdline"))
        except OSError:
            return []

    def environ(self, pid: int) -> dict[str, str] | None:
        try:
            return parse_environ(self.read(pid, "environ"))
        except OSError:  # another user's process: unknown, not "different"
            return None

    def sample(self, pid: int, threads: bool = True, now: float = 0.0) -> Sample | None:
        st = self.stat(pid)
        if st is None:
            return None
        try:
            status = parse_status(self.read(pid, "status").decode(errors="replace"))
        except (OSError, ValueError):
            status = None
        s = Sample(pid, st, status, t=now)
        if threads:
            s.threads = self.threads(pid)
        return s

    def threads(self, pid: int) -> list[ThreadInfo]:
        """Every thread's scheduling from task/*/stat; the CPU set only for the top thread (one
        more read: reading every thread's status doubles the cost for nothing)."""
        try:
            tids = [int(t) for t in os.listdir(self.root / str(pid) / "task") if t.isdigit()]
        except OSError:
            return []
        out = []
        for tid in tids:
            try:
                ts = parse_stat(self.read(pid, "task", tid, "stat").decode(errors="replace"))
            except (OSError, ValueError):
                continue  # the thread ended while we looked
            out.append(ThreadInfo(tid, ts.comm, ts.policy, ts.rt_priority, ts.nice))
        top = top_thread(out)
        if top is not None:
            try:
                top.cpus = parse_status(
                    self.read(pid, "task", top.tid, "status").decode(errors="replace")
                ).cpus
            except (OSError, ValueError):
                pass
        return out


class Finder:
    """Maps expected processes to live PIDs by command line, within this graph's DDS domain.

    Other graphs (a developer's second checkout, parallel test runs) run the same executables;
    their ROS_DOMAIN_ID differs, so a candidate whose environment says another domain is not
    ours. A process whose environment is unreadable (another user) is accepted only if nothing
    better matches.
    """

    def __init__(self, procfs: ProcFS, domain: str | None = None, own_pid: int | None = None):
        self.procfs = procfs
        self.domain = (
            domain if domain is not None else os.environ.get("ROS_DOMAIN_ID", "")
        ) or "0"
        self.own_pid = os.getpid() if own_pid is None else own_pid

    def find(self, expected: list[Expected]) -> dict[str, tuple[int, int]]:
        """{name: (pid, starttime)} for those found; a restarted process (newest start) wins."""
        best: dict[str, tuple[int, int, int]] = {}  # name -> (preference, starttime, pid)
        for pid in self.procfs.pids():
            if pid == self.own_pid:
                continue
            argv = None
            for exp in expected:
                if argv is None:
                    argv = self.procfs.cmdline(pid)
                    if not argv:
                        break
                if not matches(exp, argv):
                    continue
                st = self.procfs.stat(pid)
                if st is None or st.state in ("Z", "X"):
                    continue
                env = self.procfs.environ(pid)
                if env is None:
                    pref = 1
                elif (env.get("ROS_DOMAIN_ID", "") or "0") == self.domain:
                    pref = 2
                else:
                    continue
                cand = (pref, st.starttime, pid)
                if exp.name not in best or cand > best[exp.name]:
                    best[exp.name] = cand
        return {name: (pid, start) for name, (_, start, pid) in best.items()}


FASTDDS_VENDOR = b"\x01\x0f"


def gid_pid16(gid) -> int | None:
    """The low 16 bits of the writer's process id, where the DDS GUID carries them.

    A Fast DDS GUID prefix is vendor id (01.0f), host id (2 bytes), the pid's 16 low bits
    (little endian), 2 random bytes, participant id; other vendors' prefixes say nothing here.
    """
    b = bytes(gid or b"")
    if len(b) < 6 or b[:2] != FASTDDS_VENDOR:
        return None
    return b[4] | (b[5] << 8)


def writer_pid(gid, known: list[int], procfs: ProcFS) -> tuple[int | None, str]:
    """(pid, label) of the process behind a writer's gid: a known (expected) pid whose low 16
    bits match first, else the one live process that matches; (None, "") when the GUID says
    nothing. When no single process matches, a pid no process has (so never the expected one)
    and a label saying what is known."""
    low = gid_pid16(gid)
    if low is None:
        return None, ""
    for pid in known:
        if pid & 0xFFFF == low:
            return pid, ""
    found = [p for p in procfs.pids() if p & 0xFFFF == low]
    if len(found) == 1:
        return found[0], ""
    # Not an expected process either way: a pid that no expected one has, and an honest label
    return low | 1 << 62, f"pid {low} (mod 65536)"
