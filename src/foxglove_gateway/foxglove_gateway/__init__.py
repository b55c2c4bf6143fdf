"""Foxglove WebSocket gateway for sensorhub (foxglove-sdk; no ROS distribution needed)."""
