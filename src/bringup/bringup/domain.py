"""Is another graph already running our nodes in this ROS domain?

Two graphs in one domain (two students' `make run` on one LAN, a second supervisor with another
data root) silently mix their streams: two ``/pbt/pbt_driver`` publish on the same topics. Both
launchers ask this module before they start anything and refuse, naming the nodes.

A node name seen in the graph is only a duplicate if the node answers: a process killed a few
seconds ago stays in DDS discovery until its lease expires, and must not block its own graph's
restart. So each name found is asked for its parameter list; silence within the timeout means a
ghost.

Runs in a child process (``python -m bringup.domain NAME...``) so that neither the supervisor nor
``ros2 launch`` keep a DDS participant (or rclpy's threads) for the life of the graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

# s: long enough for SPDP's first announcements on a busy host (3 s once missed a live graph
# on a loaded 2-core CI machine)
DISCOVERY_WAIT = 5.0
ANSWER_TIMEOUT = 10.0  # s: a live node answers well within this, even on a loaded host
SKIP_ENV = "SENSORHUB_SKIP_DOMAIN_CHECK"


class DomainCheckError(RuntimeError):
    """The probe itself could not run (rclpy missing, DDS failed): not a duplicate."""


# ROS 2 docs, "About Domain ID": DDS maps the domain to UDP ports 7400 + 250 * id + ...; 232 is
# the highest id whose ports fit in 16 bits. On Linux, ids 0-101 and 215-232 stay clear of the
# kernel's ephemeral ports (32768-60999); a high id also limits the processes per computer
# (each participant takes two more ports: 54 at id 101, 63 at id 232, else 120).
DOMAIN_MAX = 232
PORT_BASE, DOMAIN_GAIN, PARTICIPANT_GAIN, UNICAST_OFFSET = 7400, 250, 2, 10
EPHEMERAL = (32768, 60999)
MAX_PARTICIPANTS = 120  # beyond: ports spill into the next domain's


class DomainIdError(ValueError):
    """ROS_DOMAIN_ID is not a domain DDS can use: nothing may start with it."""


def domain_id(environ=None) -> int:
    """The ROS_DOMAIN_ID this run uses (unset or blank: 0); raises DomainIdError."""
    text = (os.environ if environ is None else environ).get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return 0
    try:
        value = int(text, 10)
    except ValueError:
        raise DomainIdError(
            f"ROS_DOMAIN_ID={text!r} is not an integer: it must be 0-{DOMAIN_MAX} "
            "(0-101 is safe on every platform)"
        ) from None
    if not 0 <= value <= DOMAIN_MAX:
        raise DomainIdError(
            f"ROS_DOMAIN_ID={value} is out of range: DDS needs 0-{DOMAIN_MAX} (its UDP ports "
            "must fit in 16 bits); 0-101 is safe on every platform"
        )
    return value


def max_processes(domain: int, ephemeral: tuple[int, int] = EPHEMERAL) -> int:
    """ROS processes one computer can run in ``domain`` before their unicast ports reach the
    ephemeral range, the next domain's ports or 65535 (0 when the domain itself overlaps the
    ephemeral range)."""
    base = PORT_BASE + DOMAIN_GAIN * domain
    lo, hi = ephemeral
    if base <= hi and base + UNICAST_OFFSET + 1 >= lo:
        return 0
    top = lo - 1 if base < lo else 65535
    fit = (top - (base + UNICAST_OFFSET + 1)) // PARTICIPANT_GAIN + 1
    return max(0, min(MAX_PARTICIPANTS, fit))


def linux_ephemeral_ports() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split()[:2])
        return lo, hi
    except (OSError, ValueError):
        return EPHEMERAL


def domain_notes(domain: int, processes: int) -> list[str]:
    """What a valid but high domain id costs on this computer (ROS 2 docs, About Domain ID)."""
    lo, hi = linux_ephemeral_ports()
    limit = max_processes(domain, (lo, hi))
    if limit == 0:
        return [
            f"ROS_DOMAIN_ID={domain} uses ports inside this computer's ephemeral port range "
            f"({lo}-{hi}): DDS may collide with other programs' connections; 0-101 avoids it"
        ]
    if limit < MAX_PARTICIPANTS:
        warn = "; this graph needs more, choose 0-100" if processes >= limit else ""
        return [
            f"ROS_DOMAIN_ID={domain} allows at most {limit} ROS processes on this computer "
            f"before DDS ports reach the ephemeral range ({lo}-{hi}){warn}"
        ]
    return []


def _fq(name: str) -> str:
    return "/" + name.strip("/")


def probe(names: list[str], wait: float = DISCOVERY_WAIT, timeout: float = ANSWER_TIMEOUT):
    """Fully qualified node names (``/pbt/pbt_driver``) among ``names`` that are live now."""
    import rclpy
    from rcl_interfaces.srv import ListParameters
    from rclpy.executors import SingleThreadedExecutor

    wanted = {_fq(n) for n in names}
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node(
            f"sensorhub_domain_probe_{os.getpid()}",
            context=ctx,
            start_parameter_services=False,
            enable_rosout=False,
        )
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        # A node is found by its name (ros_discovery_info) or by its parameter service,
        # whichever discovery delivers first; only an answer makes it live.
        clients = {
            fq: node.create_client(ListParameters, f"{fq}/list_parameters") for fq in wanted
        }
        calls: dict = {}
        seen: set[str] = set()
        live: list[str] = []
        start = time.monotonic()
        while True:
            ex.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            for n, ns in node.get_node_names_and_namespaces():
                fq = (ns.rstrip("/") + "/" + n) if ns else "/" + n
                if fq in wanted:
                    seen.add(fq)
            for fq, cli in clients.items():
                if fq not in calls and cli.service_is_ready():
                    seen.add(fq)
                    calls[fq] = cli.call_async(ListParameters.Request())
            for fq, fut in list(calls.items()):
                if fut.done() and fq not in live:
                    live.append(fq)
            waiting = seen - set(live)
            if now - start >= wait and not waiting:
                break  # discovery had its time and every node found has answered
            if now - start >= wait + timeout:
                break  # what is still silent is a ghost (killed, lease not yet expired)
        return sorted(live)
    finally:
        rclpy.try_shutdown(context=ctx)


def check(names: list[str], python: str | None = None, env: dict | None = None) -> list[str]:
    """Live duplicates among ``names``, probed in a child process (raises DomainCheckError)."""
    if not names or os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return []
    cmd = [python or sys.executable, "-m", "bringup.domain", *names]
    try:
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=DISCOVERY_WAIT + ANSWER_TIMEOUT + 30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DomainCheckError(f"domain check did not run: {e}") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DomainCheckError(f"domain check failed (exit {r.returncode}): {tail[0]}")
    try:
        return list(json.loads(r.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise DomainCheckError(f"domain check printed {r.stdout!r}") from None


def refusal(live: list[str]) -> str:
    domain = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    return (
        f"{', '.join(live)} already running in ROS domain {domain} (another sensorhub graph?): "
        "not starting a second copy, whose streams would mix with it. Stop the other graph, or "
        "give this one its own ROS_DOMAIN_ID (export ROS_DOMAIN_ID=N, 0-101)"
    )


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(probe(names)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
