"""Launch prefix: apply nice, I/O class and CPU affinity to this process, then exec the node.

``python -m bringup.sched_exec --name N [--nice 5] [--cpus 0-2] [--io-class idle] -- CMD...``

Used the same way by ``all.launch.py`` (as the Node ``prefix``) and by the supervisor, so both
paths start identical commands. Scheduling fails soft (sensorhub_common.scheduling): what could
not be applied is printed as a warning and the node still runs. The exec keeps the PID, so the
settings (inherited across exec) are the node's own.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import sys

from sensorhub_common.scheduling import apply_process

_PR_SET_PDEATHSIG = 1
PDEATHSIG_ENV = "SENSORHUB_PDEATHSIG"  # set by the supervisor: die with it, never orphaned
PARENT_ENV = "SENSORHUB_SUPERVISOR_PID"


def _parent_death_signal() -> None:
    sig = os.environ.pop(PDEATHSIG_ENV, "")
    parent = os.environ.get(PARENT_ENV, "")
    if not sig:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    # The parent may have died before prctl: then we were reparented already.
    if parent and os.getppid() != int(parent):
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("sched_exec: usage: ... -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    i = argv.index("--")
    opts, cmd = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(prog="sched_exec")
    ap.add_argument("--name", default="")
    ap.add_argument("--nice", type=int)
    ap.add_argument("--cpus")
    ap.add_argument("--io-class")
    ap.add_argument("--io-level", type=int, default=4)
    a = ap.parse_args(opts)
    if not cmd:
        print("sched_exec: no command after --", file=sys.stderr)
        return 2
    _parent_death_signal()
    results = apply_process(nice=a.nice, cpus=a.cpus, io_class=a.io_class, io_level=a.io_level)
    tag = f"[{a.name}] " if a.name else ""
    for r in results:
        if not r.ok:
            print(
                f"{tag}WARN scheduling: {r.what} ({r.requested}) not applied: {r.message}",
                file=sys.stderr,
                flush=True,
            )
    applied = "; ".join(r.message for r in results if r.ok)
    if applied:
        print(f"{tag}scheduling: {applied}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        print(f"sched_exec: cannot execute {cmd[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
