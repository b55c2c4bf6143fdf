"""ros2 launch bringup all.launch.py [profile:=pi|sim|lite] [role:=all|sensors|web]
[web:=auto|foxglove_bridge|gateway|none] [tim240_driver:=auto|sick_scan_xd|native|none]
[record:=true|false] [data_root:=PATH] [set:=NAME=VALUE,...] [NAME:=VALUE]

`set:=` (or one argument per graph variable, e.g. web_port:=9000, which wins over set:=)
overrides the graph file's variables for this run.

The node list comes from config/graph.yaml through bringup.plan (the same plan `sensorhub up`
runs): parameters, the scheduling prefix (nice, I/O class, CPU affinity) and respawn settings.
"""

from launch import LaunchDescription
from launch.actions import OpaqueFunction


def _from_plan(context, *args, **kwargs):
    from bringup.launch_support import actions_from_plan, plan_from_context

    # A graph error raises here, before any process starts.
    return actions_from_plan(plan_from_context(context))


def generate_launch_description():
    from bringup.launch_support import declare_arguments

    return LaunchDescription([*declare_arguments(), OpaqueFunction(function=_from_plan)])
