"""pbt_sim and repeated SIGINT: a terminal Ctrl-C under ros2 launch arrives twice."""

from __future__ import annotations

import os
import signal

from sensorhub_common.paths import executable


def test_repeated_sigint_stops_cleanly(procs, tmp_path, wait):
    link = tmp_path / "pbt0"
    sim = procs.start("pbt_sim", [executable("pbt_driver", "pbt_sim"), "--link", link])
    wait(lambda: link.is_symlink() and "pbt_sim:" in sim.output(), 60, what="pbt_sim's pty")
    for _ in range(3):  # the terminal's, launch's, an impatient user's
        os.kill(sim.pid, signal.SIGINT)
    assert sim.popen.wait(30) == 0, sim.output()
    assert "KeyboardInterrupt" not in sim.output()
    assert not link.is_symlink()  # it cleaned up instead of dying half-way
