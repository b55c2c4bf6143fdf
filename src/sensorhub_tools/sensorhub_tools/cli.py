"""`sensorhub`: start the graph (up), watch it (status), inspect it (plan, check), analyse
recordings (report) and generate the reference docs (docs).

Exit codes of `up`: 0 stopped on request, 1 supervisor error, 2 bad graph/options, the data root
is already supervised, or the graph's nodes are already running in this ROS domain (another
graph), 3 a node crash-looped and was given up.
"""

from __future__ import annotations

import argparse
import sys

from bringup.defaults import GRAPH_ENV, default_graph, resolve_data_root
from bringup.graph import ROLE_CHOICES, GraphError, load_graph
from bringup.plan import (
    build_plan,
    default_profile,
    describe,
    parse_bool,
    parse_set,
)


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--graph", help=f"graph file (default: ${GRAPH_ENV} or the installed one)")
    p.add_argument(
        "--profile", default="auto", help="pi | sim | lite (default auto: pi on a Pi, else sim)"
    )
    p.add_argument("--role", default="all", choices=ROLE_CHOICES)
    p.add_argument("--web", default="auto", help="auto | foxglove_bridge | gateway | none")
    p.add_argument("--tim240-driver", default="auto", help="auto | sick_scan_xd | native | none")
    p.add_argument("--record", action="store_true", help="record to <data_root>/bags")
    p.add_argument("--recorder", default="auto", help="auto | rosbag2 | mcap_recorder")
    p.add_argument(
        "--compose",
        default="auto",
        choices=["auto", "true", "false"],
        help="run the graph's containers (several nodes per process); auto: as the profile says"
        " (lite: all) and those marked default (web_view)",
    )
    p.add_argument("--data-root", help="default $SENSORHUB_DATA_ROOT or ./data")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a graph variable, e.g. --set web_port=9000 (repeatable)",
    )


def plan_from_args(a):
    graph = load_graph(a.graph or default_graph())
    options = {
        "web": a.web,
        "tim240_driver": a.tim240_driver,
        "record": parse_bool(a.record),
        "recorder": a.recorder,
        "compose": a.compose,
    }
    profile = default_profile() if a.profile == "auto" else a.profile
    return build_plan(
        graph,
        profile,
        a.role,
        options,
        resolve_data_root(a.data_root),
        set_variables=parse_set(a.set),
    )


def _positive_mb(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MB") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0 MB")
    return v


def _parser() -> argparse.ArgumentParser:
    from sensorhub_tools import docgen, report

    ap = argparse.ArgumentParser(
        prog="sensorhub", description="Run and watch the sensorhub ROS 2 graph."
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the graph and supervise it (Ctrl-C stops it)")
    _graph_args(up)
    up.add_argument(
        "--exit-on-give-up",
        action="store_true",
        help="stop everything and exit 3 when a node is given up (let systemd restart all)",
    )
    up.add_argument(
        "--log-cap-mb",
        type=_positive_mb,
        default=20.0,
        help="bytes each node's log files keep (a file and 3 rotations; the oldest output is "
        "dropped and counted beyond it; default 20 MB)",
    )
    up.add_argument("--quiet", action="store_true", help="node output only to the log files")
    up.add_argument("--no-color", action="store_true")
    st = sub.add_parser("status", help="table of nodes, diagnostics, topic rates, restarts")
    st.add_argument("--data-root", help="default $SENSORHUB_DATA_ROOT or ./data")
    st.add_argument("--once", action="store_true", help="print once and exit (1 if unhealthy)")
    st.add_argument("--window", type=float, default=3.0, help="seconds to sample with --once")
    pl = sub.add_parser("plan", help="print the processes `up` would start")
    _graph_args(pl)
    ck = sub.add_parser("check", help="validate the graph file (and the plan for the options)")
    _graph_args(ck)
    bag = sub.add_parser("bag", help="recorded bags")
    bag_sub = bag.add_subparsers(dest="bag_cmd", required=True)
    rep = bag_sub.add_parser(
        "repair",
        help="make a killed recorder's bag readable (valid MCAP + metadata.yaml)",
        description="Repair unfinished MCAP files of ROS 2 bags (ours and ros2 bag's). Nothing "
        "is deleted: the original of each repaired file is kept as <file>.orig; a file that is "
        "not a bag of ours (not MCAP, another profile or library) is left untouched and named. "
        "Exit status: 0 repaired and verified, or nothing to do; 1 not repaired (the copy did "
        "not verify, disk error, no complete message: left as it is); 2 not a bag of ours (or "
        "no such path). The worst one wins.",
    )
    rep.add_argument("paths", nargs="+", metavar="PATH", help="bag directory, .mcap, or bags/")
    rep.add_argument(
        "--no-backup",
        action="store_true",
        help="do not keep <file>.orig; the original goes only after the repaired copy was "
        "read back in full",
    )
    report.add_parser(sub)
    docgen.add_parser(sub)
    return ap


def _report(a) -> int:
    from sensorhub_tools import report

    return report.run(a)


def _docs(a) -> int:
    from sensorhub_tools import docgen

    return docgen.run(a)


def _bag(a) -> int:
    try:
        from mcap_recorder.repair_cli import repair_command
    except ImportError as e:
        print(f"sensorhub: mcap_recorder is not installed: {e}", file=sys.stderr)
        return 2
    return repair_command(a.paths, backup=not a.no_backup)


def _status(a) -> int:
    from sensorhub_tools.status import run_status

    return run_status(resolve_data_root(a.data_root), a.once, a.window)


def _plan(plan, _a) -> int:
    print(describe(plan))
    return 0


def _check(plan, _a) -> int:
    print(f"{plan.graph_path}: OK ({len(plan.processes)} processes for this selection)")
    for n in plan.notes:
        print(f"note: {n}")
    return 0


def _up(plan, a) -> int:
    from bringup.supervisor import Supervisor

    sup = Supervisor(
        plan,
        color=False if a.no_color else None,
        echo=not a.quiet,
        exit_on_give_up=a.exit_on_give_up,
        log_cap=int(a.log_cap_mb * 1e6),
    )
    return sup.run()


def _with_plan(handler):
    """A subcommand that needs the plan of the graph options (exit 2 when it cannot be built)."""

    def run(a) -> int:
        try:
            plan = plan_from_args(a)
        except (GraphError, ValueError) as e:
            print(f"sensorhub: {e}", file=sys.stderr)
            return 2
        return handler(plan, a)

    return run


COMMANDS = {
    "up": _with_plan(_up),
    "plan": _with_plan(_plan),
    "check": _with_plan(_check),
    "status": _status,
    "bag": _bag,
    "report": _report,
    "docs": _docs,
}


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    return COMMANDS[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
