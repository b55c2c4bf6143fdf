"""The one main() every sensorhub node uses: init, spin a SingleThreadedExecutor, shut down clean.

SingleThreadedExecutor because MultiThreadedExecutor loses messages at 100 Hz+ with the Jazzy
wheels and EventsExecutor.spin() busy-spins a core (docs/design.md). Hot paths run in their
own threads.
Exit codes: 0 clean stop (SIGINT/SIGTERM), 2 bad parameters, 1 crash, including a part of the
node that called :func:`fatal` (e.g. a reader thread that died): the process must end so the
supervisor or launch respawns it instead of running on half-dead.
"""

from __future__ import annotations

import gc
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from sensorhub_common import lean_imports

EXIT_OK, EXIT_CRASH, EXIT_CONFIG = 0, 1, 2
_fatal: list[str] = []


def fatal(reason: str) -> None:
    """From any thread: this node cannot go on. spin_node shuts down cleanly and returns 1."""
    first = not _fatal
    _fatal.append(reason)
    if first:
        print(f"[FATAL] {reason}", file=sys.stderr, flush=True)
    import rclpy

    rclpy.try_shutdown()  # wakes the executor (ExternalShutdownException in spin)


def run_node(
    make_node: Callable[[], object], args=None, switch_interval: float | None = None
) -> NoReturn:
    """The whole main() of a node executable: lean imports, spin the node, exit with its code.

    `switch_interval` (s) is how soon a waiting thread gets the GIL: a real-time reader thread
    sets it shorter than CPython's 5 ms.
    """
    lean_imports.install()  # before any node exists: no code generator in this process
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    sys.exit(spin_node(make_node, args=args))


def spin_node(make_node: Callable[[], object], args=None, freeze_gc: bool = True) -> int:
    return spin_nodes([make_node], args=args, freeze_gc=freeze_gc)


def spin_nodes(makers: list[Callable[[], object]], args=None, freeze_gc: bool = True) -> int:
    """One process, one context (one DDS participant), one executor for every node made.

    Several nodes only for the graph's containers (sensorhub_common.container): nodes are made
    in order and shut down in reverse; any of them failing ends the process, which is then
    restarted as one.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from sensorhub_common.params import ParameterError

    rclpy.init(args=args if args is not None else sys.argv)
    nodes: list = []
    code = EXIT_OK
    _fatal.clear()
    try:
        # The executor exists before the node: a SIGTERM during a slow start-up then ends in a
        # clean shutdown instead of an RCLError from an executor built on a dead context.
        executor = SingleThreadedExecutor()
        for make in makers:
            nodes.append(make())
            executor.add_node(nodes[-1])
        if freeze_gc:
            # Start-up garbage moves to the permanent generation: later collections stay short.
            gc.collect()
            gc.freeze()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as e:
        print(f"[FATAL] invalid parameter: {e}", file=sys.stderr, flush=True)
        code = EXIT_CONFIG
    except Exception:
        if rclpy.ok():
            traceback.print_exc()
            code = EXIT_CRASH
        # else: asked to stop (SIGINT/SIGTERM) while starting up; not a crash
    finally:
        # A second Ctrl-C (terminal signals reach ros2 launch and its nodes) must not interrupt
        # destroy_node half-way; the first one already asked us to stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for node in reversed(nodes):
            stop = getattr(node, "on_shutdown", None)
            if callable(stop):
                try:
                    stop()
                except Exception:
                    traceback.print_exc()
            try:
                node.destroy_node()
            except Exception:
                pass
        rclpy.try_shutdown()
    if _fatal and code == EXIT_OK:
        code = EXIT_CRASH
    return code
