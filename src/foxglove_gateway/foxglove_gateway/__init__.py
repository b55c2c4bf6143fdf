"""Foxglove WebSocket gateway and MCAP recorder for sensorhub (no ROS distribution needed)."""
