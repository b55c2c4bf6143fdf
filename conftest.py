"""Workspace-wide test setup: the fixtures live in the sensorhub_testing package."""

pytest_plugins = ["sensorhub_testing.plugin"]
