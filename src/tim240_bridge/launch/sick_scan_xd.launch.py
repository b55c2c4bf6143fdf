"""TiM240 on a ROS distribution: SICK's sick_scan_xd drives the scanner, tim240_bridge processes.

sick_scan_xd's own ``launch/sick_tim_240.launch`` publishes ``/scan``; tim240_bridge runs with
``driver: sick_scan_xd`` (it opens no device) and publishes tim240/scan_filtered, tim240/zones
and tim240/markers. Arguments: hostname, port (passed to sick_tim_240.launch), params_file
(tim240_bridge parameters loaded over the package defaults, e.g. bringup's deployment file),
scan_topic (default /scan).

    ros2 launch tim240_bridge sick_scan_xd.launch.py hostname:=192.168.0.1
"""

import os


def generate_launch_description():
    # Imported here: launch is only installed on a ROS distribution, and nothing else in this
    # package may depend on it.
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    own = get_package_share_directory("tim240_bridge")
    sick = get_package_share_directory("sick_scan_xd")
    defaults = os.path.join(own, "config", "tim240_bridge.yaml")
    scan_topic = LaunchConfiguration("scan_topic")

    return LaunchDescription([
        DeclareLaunchArgument("hostname", default_value="192.168.0.1"),
        DeclareLaunchArgument("port", default_value="2111"),
        DeclareLaunchArgument("scan_topic", default_value="/scan"),
        DeclareLaunchArgument("params_file", default_value=defaults,
                              description="tim240_bridge parameters over the package defaults"),
        IncludeLaunchDescription(
            AnyLaunchDescriptionSource(os.path.join(sick, "launch", "sick_tim_240.launch")),
            launch_arguments={
                "hostname": LaunchConfiguration("hostname"),
                "port": LaunchConfiguration("port"),
            }.items(),
        ),
        # The package defaults (zones, filters) first, then params_file, then the mode.
        Node(
            package="tim240_bridge", executable="tim240_bridge", name="tim240_bridge",
            output="screen",
            parameters=[defaults, LaunchConfiguration("params_file"),
                        {"driver": "sick_scan_xd", "scan_topic": scan_topic}],
        ),
    ])  # fmt: skip
