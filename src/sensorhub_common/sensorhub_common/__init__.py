"""Shared plumbing for sensorhub nodes; see the package modules."""
