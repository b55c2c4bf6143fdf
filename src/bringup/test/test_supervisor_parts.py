"""The supervisor's parts without a supervisor: restart backoff, the scheduling prefix, the
console, the rotating logs and the state file's staleness (the processes: test_supervisor.py)."""

from __future__ import annotations

import contextlib
import os

from bringup.backoff import Backoff, RestartPolicy


def test_backoff_grows_then_gives_up():
    b = Backoff(RestartPolicy(delay=0.5, factor=2, max_delay=3, max_restarts=4, window=60))
    delays = [b.on_exit(now=t, ran_for=0.1) for t in range(6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, None, None]


def test_backoff_resets_after_stable_run_and_window():
    b = Backoff(RestartPolicy(delay=0.5, max_restarts=2, window=10, stable_after=30))
    assert b.on_exit(0, 1) == 0.5
    assert b.on_exit(1, 1) == 1.0
    assert b.on_exit(100, 40) == 0.5  # ran 40 s: healthy again, the crash count restarts
    assert b.on_exit(200, 1) == 1.0  # old crashes fell out of the window
    assert not Backoff(RestartPolicy(enabled=False)).on_exit(0, 1)


def test_sched_exec_applies_then_execs_and_fails_soft():
    """The launch/supervisor prefix on a real process: applied settings, then the same PID."""
    import subprocess
    import sys

    probe = "import os; print(os.getpid(), sorted(os.sched_getaffinity(0)), os.nice(0))"
    cmd = [sys.executable, "-m", "bringup.sched_exec", "--name", "t", "--nice", "7"]

    def run(cpus: str):
        r = subprocess.run(
            [*cmd, "--cpus", cpus, "--", sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        return r

    r = run("0")
    assert r.stdout.split()[1:] == ["[0]", "7"]
    assert "[t] scheduling: nice 7; pinned to CPUs 0" in r.stderr
    # A CPU that does not exist (the pi profile's CPU 3 on a small machine): warned, still runs.
    r = run("999")
    assert "WARN scheduling: affinity (999) not applied: CPUs 999 do not exist" in r.stderr
    assert r.stdout.split()[-1] == "7"


def test_rotating_log_keeps_a_bounded_history(tmp_path):
    from bringup.supervisor import RotatingLog

    log = RotatingLog(str(tmp_path / "logs" / "n.log"), max_bytes=200, backups=2)
    for i in range(60):
        log.write(f"line {i:03d}\n".encode())
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["n.log", "n.log.1", "n.log.2"]
    assert "line 059" in (tmp_path / "logs" / "n.log").read_text()
    assert all(p.stat().st_size <= 200 for p in (tmp_path / "logs").iterdir())


def test_console_never_blocks_and_counts_what_it_drops():
    from bringup.supervisor import Console

    r, w = os.pipe()
    os.set_blocking(w, False)
    with contextlib.suppress(BlockingIOError):
        while True:  # a pipe nobody reads, already full
            os.write(w, b"x" * 4096)
    os.set_blocking(w, True)
    try:
        with os.fdopen(w, "w", closefd=False) as stream:
            con = Console(stream, max_lines=50)
            for i in range(20000):  # must not block
                con.write(f"line {i:06d} {'x' * 50}\n")
            assert con.dropped > 0
            assert not con.drain(0.2)  # still blocked: drain gives up instead of waiting
    finally:
        os.close(r)  # the writer thread's write fails; it counts and goes on
        os.close(w)


def test_stale_state_file():
    from bringup.supervisor import stale_for

    now = 1000.0
    assert stale_for({"status": "running", "updated": now - 2, "heartbeat": 1.0}, now) is None
    assert stale_for({"status": "running", "updated": now - 60, "heartbeat": 1.0}, now) == 60
    assert stale_for({"status": "stopped", "updated": now - 600}, now) is None
    assert stale_for({"status": "running", "updated": "x"}, now) == float("inf")
    assert stale_for({"status": "stopping", "updated": now - 20, "heartbeat": 1.0}, now) is None


def test_rotating_log_on_a_full_disk_never_raises(tmp_path):
    from bringup.supervisor import RotatingLog

    (tmp_path / "full.log").symlink_to("/dev/full")
    log = RotatingLog(str(tmp_path / "full.log"), max_bytes=100)
    for _ in range(5):
        log.write(b"x" * 80)  # ENOSPC on flush, and rotations that fail half-way
    log.close()
    log.close()


def test_rotating_log_counts_and_marks_what_its_cap_dropped(tmp_path):
    from bringup.supervisor import RotatingLog

    path = tmp_path / "logs" / "n.log"
    log = RotatingLog(str(path), max_bytes=1000, backups=1)
    assert log.summary() is None
    for i in range(100):
        log.write(f"line {i:03d} {'x' * 40}".encode())
    log.close()
    kept = (path.with_name("n.log.1").read_text() + path.read_text()).splitlines()
    numbers = [int(x.split()[2]) for x in kept if " line " in x]
    assert numbers == list(range(numbers[0], 100))
    markers = [x for x in kept if "[sensorhub] log capped at" in x]
    assert markers and path.read_text().splitlines()[0] == markers[-1]
    assert len(kept) == (100 - numbers[0]) + len(markers)  # the lines kept and the markers
    # every line not kept is counted: the oldest ones, and the markers that went with them
    assert numbers[0] <= log.dropped_lines <= numbers[0] + 10
    assert log.dropped_bytes > numbers[0] * 60
    assert log.summary().startswith(f"log capped at 0.0 MB, 0.0 MB dropped ({log.dropped_lines}")
