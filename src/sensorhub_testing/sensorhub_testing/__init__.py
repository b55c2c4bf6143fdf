"""Test support shared by every sensorhub package's tests; never imported by a node."""

from sensorhub_testing.disk import tmpfs
from sensorhub_testing.files import read_jsonl, stamp_s
from sensorhub_testing.net import free_port, wait_listening
from sensorhub_testing.plugin import params_file
from sensorhub_testing.processes import Proc, ProcGroup, wait_for
from sensorhub_testing.ros import DiagnosticsCollector, SpinningNode, Status

__all__ = [
    "DiagnosticsCollector",
    "Proc",
    "ProcGroup",
    "SpinningNode",
    "Status",
    "free_port",
    "params_file",
    "read_jsonl",
    "stamp_s",
    "tmpfs",
    "wait_for",
    "wait_listening",
]
