"""The landing zone under random interleavings, through the real node and real FTP sessions.

Seeded steps over a few ftplib sessions on a small pool of names (the same names at once, a
255-byte name, temp names renamed to final ones): start an upload, send part of it, finish it,
reset its data connection, ABOR it, drop the whole session, rename, restart the node on the same
data root. A model of what each step must lead to is kept alongside; at the end every announced
file equals its bytes on disk and was announced once, and every upload that got 226 (and, for a
temp name, a rename) is announced. A device confirms an upload by its next command, so each 226
is followed by a NOOP (landing.py, the completion rule).
"""

from __future__ import annotations

import ftplib
import os
import random
from dataclasses import dataclass, field

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The asyn.* module is deprecated:DeprecationWarning"),
]
SEEDS = (11, 12, 13, 14)
STEPS = 40
SESSIONS = 3
MAX_RESTARTS = 2
LONG = "L" * 251 + ".csv"
FINAL = ["a.csv", "b.csv", LONG, "sub/c.csv"]
TEMP = ["t1.tmp", "t2.tmp"]
RENAMED = ["r1.csv", "r2.csv"]
OPS = ["start", "send", "finish", "reset", "abor", "drop", "rename", "restart"]
WEIGHTS = [25, 15, 25, 6, 5, 5, 12, 3]


@dataclass
class Session:
    ftp: ftplib.FTP
    conn: object = None  # data socket of the upload in flight
    name: str = ""
    data: bytes = b""
    sent: int = 0


@dataclass
class Run:
    """The test's side of one seed: sessions, the model of the landing zone, what must show."""

    h: object
    srv: object
    rng: random.Random
    sessions: dict[int, Session] = field(default_factory=dict)
    landing: dict[str, str] = field(default_factory=dict)  # name -> sha of a complete temp file
    expected: set[str] = field(default_factory=set)  # sha256 that must be announced
    busy_refusals: int = 0  # 450s seen from the running node
    busy_total: int = 0
    restarts: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # shown when a check fails

    def session(self, k: int) -> Session:
        if k not in self.sessions:
            self.sessions[k] = Session(self.h.login(self.srv))
        return self.sessions[k]

    def idle(self) -> list[int]:
        return [k for k in range(SESSIONS) if k not in self.sessions or not self.sessions[k].conn]

    def flying(self) -> list[int]:
        return [k for k, s in self.sessions.items() if s.conn]


def _start(run: Run, k: int) -> bool:
    s = run.session(k)
    s.name = run.rng.choice(FINAL + TEMP)
    s.data = os.urandom(run.rng.choice((1_000, 60_000, 300_000, 1_200_000)))
    s.sent = 0
    s.ftp.voidcmd("TYPE I")
    try:
        s.conn = s.ftp.transfercmd(f"STOR {s.name}")
    except ftplib.error_temp as e:
        assert str(e).startswith("450"), e  # another session writes this name
        run.busy_refusals += 1
        return True
    run.landing.pop(s.name, None)  # a STOR truncates what was there
    run.history.append(f"  session {k} STOR {s.name[:12]} {len(s.data)} bytes")
    return True


def _send(run: Run, k: int) -> bool:
    s = run.sessions[k]
    n = run.rng.randint(1, max(1, (len(s.data) - s.sent) // 2))
    s.conn.sendall(s.data[s.sent : s.sent + n])
    s.sent += n
    return True


def _finish(run: Run, k: int) -> bool:
    s = run.sessions[k]
    s.conn.sendall(s.data[s.sent :])
    s.conn.close()
    s.conn = None
    assert s.ftp.voidresp().startswith("226")
    s.ftp.voidcmd("NOOP")  # confirms it
    digest = run.h.sha(s.data)
    run.history.append(f"  session {k} 226 {s.name[:12]} {digest[:8]}")
    if s.name in TEMP:
        run.landing[s.name] = digest
    else:
        run.expected.add(digest)
    return True


def _cut(run: Run, s: Session) -> None:
    """Reset the data connection of the upload in flight: the server answers 426."""
    run.h.rst(s.conn)
    s.conn = None
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        s.ftp.voidresp()


def _reset(run: Run, k: int) -> bool:
    _cut(run, run.sessions[k])
    return True


def _abor(run: Run, k: int) -> bool:
    s = run.sessions[k]
    s.ftp.putcmd("ABOR")
    first = s.ftp.getmultiline()
    if first.startswith("426"):  # data had flowed: 426 for the transfer, then 226 for ABOR
        first = s.ftp.getmultiline()
        assert first.startswith("226"), first
    else:  # nothing received yet: one 225
        assert first.startswith("225"), first
    s.conn.close()
    s.conn = None
    return True


def _drop(run: Run, k: int) -> bool:
    s = run.sessions.pop(k)
    if s.conn:
        run.h.rst(s.conn)
    run.h.rst(s.ftp)
    return True


def _rename(run: Run, k: int) -> bool:
    s = run.session(k)
    src, dst = run.rng.choice(TEMP), run.rng.choice(RENAMED)
    try:
        s.ftp.rename(src, dst)
    except ftplib.error_temp as e:
        assert str(e).startswith("450"), e
        run.busy_refusals += 1
        return True
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), e  # no such file (committed, or never uploaded)
        return True
    digest = run.landing.pop(src, None)
    run.history.append(f"  session {k} renamed {src} -> {dst}")
    if digest is not None:  # a complete temp upload under a final name: committed now
        run.expected.add(digest)
    return True


def _restart(run: Run, ftpd, files, wait) -> bool:
    """Stop the node and start it again on the same data root, as the supervisor would.

    Its announcements go out first: one published within milliseconds of the stop can miss a
    subscriber (rclpy's signal handler ends the context; the ledger has it already).
    """
    if run.restarts >= MAX_RESTARTS:
        return False
    wait(lambda: run.expected <= {m.sha256 for m in files.all()}, 60, what="announced so far")
    for k in list(run.sessions):
        s = run.sessions.pop(k)
        if s.conn:
            _cut(run, s)
        s.ftp.quit()
    assert run.srv.proc.stop() == 0
    run.srv = ftpd(root=run.srv.root)
    run.restarts += 1
    run.busy_total += run.busy_refusals
    run.busy_refusals = 0
    run.landing.clear()  # a new process trusts no earlier upload as complete
    return True


def _step(run: Run, op: str, ftpd, files, wait) -> bool:
    if op == "restart":
        return _restart(run, ftpd, files, wait)
    pool = run.idle() if op in ("start", "rename") else run.flying()
    if op == "drop":
        pool = list(run.sessions)
    if not pool:
        return False
    fn = {"start": _start, "send": _send, "finish": _finish, "reset": _reset, "abor": _abor,
          "drop": _drop, "rename": _rename}[op]  # fmt: skip
    return fn(run, run.rng.choice(pool))


def _check(h, run: Run, files, wait) -> int:
    for k in list(run.sessions):  # finish cleanly: nothing in flight, every session says QUIT
        s = run.sessions.pop(k)
        if s.conn:
            _cut(run, s)
        s.ftp.quit()
    got = lambda: {m.sha256 for m in files.all()}  # noqa: E731
    wait(lambda: run.expected <= got(), 60, what="every 226 upload announced")
    h.marker(run.srv, files, wait, name=f"zz_marker_{run.rng.random():.6f}.csv")
    msgs = [m for m in files.all() if "zz_marker" not in m.path]
    paths = [m.path for m in msgs]
    assert len(paths) == len(set(paths)), "a path announced twice"
    assert sorted(m.sha256 for m in msgs) == sorted(run.expected), "announced != 226 uploads"
    for m in msgs:
        data = (run.srv.root / m.path).read_bytes()
        assert (m.size, m.sha256) == (len(data), h.sha(data)), m.path
    r = wait(
        lambda: (x := files.diag.latest("refusals")) and x.values["busy"] == str(run.busy_refusals)
        and x, 30, what="busy refusals in diagnostics",
    )  # fmt: skip
    assert all(s.level < 2 for s in files.diag.all("uploads")) and r is not None
    return len(msgs)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_interleavings_lose_nothing(h, ftpd, ros_node, wait, seed, tmp_path):
    root = tmp_path / "data"
    srv = ftpd(root=root)
    (srv.incoming / "sub").mkdir()
    files = h.Files(ros_node)
    run = Run(h, srv, random.Random(seed))
    done = 0
    while done < STEPS:
        op = run.rng.choices(OPS, WEIGHTS)[0]
        if _step(run, op, ftpd, files, wait):
            done += 1
            run.counts[op] = run.counts.get(op, 0) + 1
            run.history.append(f"{op}: {sorted(run.landing.items())} {len(run.expected)}")
    try:
        n = _check(h, run, files, wait)
    except AssertionError as e:
        raise AssertionError(f"{e}\nsteps:\n" + "\n".join(run.history)) from None
    busy = run.busy_total + run.busy_refusals
    print(f"seed {seed}: {STEPS} steps {run.counts}, {n} files announced, {busy} refused busy")
