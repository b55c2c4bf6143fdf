"""spin_node: a node part that calls fatal() from another thread ends the process with exit 1."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from rclpy.node import Node
    from sensorhub_common.runner import fatal, spin_node

    class N(Node):
        def __init__(self):
            super().__init__("fatal_probe")
            self.stopped = False
            threading.Timer(0.5, lambda: fatal("worker thread died: boom")).start()

        def on_shutdown(self):
            print("on_shutdown ran", flush=True)

    sys.exit(spin_node(lambda: N()))
    """
)


def test_fatal_from_a_thread_exits_1_after_clean_shutdown():
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "on_shutdown ran" in p.stdout
    assert "[FATAL] worker thread died: boom" in p.stderr
