"""Shared plumbing for sensorhub nodes; see the package modules.

Importing the package also keeps the ROS message code generator out of node processes (see
:mod:`sensorhub_common.lean_imports`); every node imports this package before it creates a node.
"""

from sensorhub_common import lean_imports as _lean_imports

_lean_imports.install()
