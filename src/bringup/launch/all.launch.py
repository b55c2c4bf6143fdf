"""ros2 launch bringup all.launch.py [profile:=pi|sim|lite] [role:=all|sensors|web]
[web:=auto|foxglove_bridge|gateway|none] [tim240_driver:=auto|sick_scan_xd|native|none]
[record:=true|false] [data_root:=PATH] [set:=NAME=VALUE,...] [NAME:=VALUE]

`set:=` (or one argument per graph variable, e.g. web_port:=9000, which wins over set:=)
overrides the graph file's variables for this run.

The node list comes from config/graph.yaml through bringup.plan (the same plan `sensorhub up`
runs): parameters, the scheduling prefix (nice, I/O class, CPU affinity) and respawn settings.
A node that crash-loops (more exits than its `max_restarts`, counted over the whole run) ends the
launch with exit code 1, so a systemd unit restarts the whole graph. Unlike `sensorhub up`, launch
stops all nodes at once (no reverse start order); every node still closes cleanly on SIGINT or
SIGTERM, and a SIGTERM or kill of `ros2 launch` itself takes the nodes with it (parent-death
signal).
"""

from launch import LaunchDescription
from launch.actions import OpaqueFunction


def _from_plan(context, *args, **kwargs):
    from bringup.launch_support import actions_from_plan, plan_from_context, refuse_duplicates

    # A graph error, or our nodes already live in this ROS domain, raises here, before any
    # process starts.
    plan = plan_from_context(context)
    refuse_duplicates(plan)
    return actions_from_plan(plan)


def generate_launch_description():
    from bringup.launch_support import declare_arguments

    return LaunchDescription([*declare_arguments(), OpaqueFunction(function=_from_plan)])
