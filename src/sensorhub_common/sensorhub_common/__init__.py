"""Shared plumbing for sensorhub nodes; see the package modules.

Importing it has no side effects: a node's entry point calls
:func:`sensorhub_common.lean_imports.install` (or :func:`sensorhub_common.runner.run_node`)
before it creates a node.
"""
