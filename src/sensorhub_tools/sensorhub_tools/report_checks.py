"""Which recorded topics the report can use: each of our topics must carry the type the report
expects, under a definition that has the fields the report reads (no rclpy).

A topic that fails is skipped, with a reason naming the topic, the schema found and the one
expected; its messages are counted but not decoded. What could not be read (skipped topics,
undecodable messages, corrupt or cut files) is also why a report may end up without a plot:
:func:`input_problems` lists it.
"""

from __future__ import annotations

import re

T_SAMPLES = "sensorhub_msgs/msg/PbtSamples"
T_EVENT = "sensorhub_msgs/msg/PbtEvent"
T_ZONES = "sensorhub_msgs/msg/ZoneStatus"
T_FILE = "sensorhub_msgs/msg/Sec110File"
T_DIAG = "diagnostic_msgs/msg/DiagnosticArray"
T_PARAM_EVENT = "rcl_interfaces/msg/ParameterEvent"

# our topics under their graph names: another type there is a mistake, not another topic
EXPECTED_TYPES = {
    "/pbt/samples": T_SAMPLES,
    "/pbt/events": T_EVENT,
    "/tim240/zones": T_ZONES,
    "/sec110/files": T_FILE,
    "/diagnostics": T_DIAG,
    "/parameter_events": T_PARAM_EVENT,
}
# the fields the report reads, as "type name" (a field added later, like PbtSamples'
# threshold, is optional: bags recorded before it still read)
REQUIRED_FIELDS = {
    T_SAMPLES: "Header header, uint64 first_index, float64 sample_rate, float32[] values, "
    "float32[] envelope, float32 baseline, uint64 lost_before, uint64 lost_total",
    T_EVENT: "Header header, uint64 peak_index, uint64 start_index, uint64 end_index, "
    "float32 peak, float32 baseline, float32 amplitude, float64 width, float64 area, "
    "float64 rise_time, uint32 missing_slots, bool gap_closed",
    T_ZONES: "Header header, string[] names, bool[] occupied, float32[] nearest_range",
    T_FILE: "Header header, string path, uint64 size, string sha256, string client_address, "
    "float64 transfer_seconds",
    T_DIAG: "Header header, DiagnosticStatus[] status",
    T_PARAM_EVENT: "Time stamp, string node, Parameter[] new_parameters, "
    "Parameter[] changed_parameters",
}
WANTED = tuple(REQUIRED_FIELDS)
_SEPARATOR = re.compile(r"^=+\s*$", re.M)  # between the types of a ros2msg schema


def _short(type_name: str) -> str:
    """'std_msgs/msg/Header', 'std_msgs/Header' -> 'Header' (packages differ in spelling)."""
    return type_name.rsplit("/", 1)[-1]


def schema_fields(schema: bytes) -> dict[str, str]:
    """name -> short type of the top-level fields of a ros2msg schema (constants left out)."""
    fields = {}
    text = _SEPARATOR.split(schema.decode(errors="replace"), maxsplit=1)[0]
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or "=" in "".join(words[:3]):
            continue
        fields[words[1]] = _short(words[0])
    return fields


def _missing(type_name: str, schema: bytes) -> list[str]:
    have = schema_fields(schema)
    need = [f.split() for f in REQUIRED_FIELDS[type_name].split(", ")]
    return [f"{ty} {name}" for ty, name in need if have.get(name) != _short(ty)]


def topic_problem(topic: str, type_name: str, schema: bytes) -> str:
    """Why the report cannot use this topic ('' when it can)."""
    expected = EXPECTED_TYPES.get(topic)
    if expected is not None and type_name != expected:
        return (
            f"{topic}: recorded with schema {type_name or '(none)'!r}, expected {expected!r}: "
            "not analysed"
        )
    if type_name not in REQUIRED_FIELDS:
        return ""
    missing = _missing(type_name, schema)
    if not missing:
        return ""
    shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
    found = ", ".join(f"{ty} {n}" for n, ty in list(schema_fields(schema).items())[:4])
    return (
        f"{topic}: recorded as {type_name} with another definition (fields: {found or 'none'}); "
        f"expected {type_name} with {REQUIRED_FIELDS[type_name]} (missing: {shown}): "
        "not analysed"
    )


def input_problems(rec) -> list[str]:
    """What of the input could not be used: skipped topics, undecodable messages, files that
    are corrupt or cut (the reasons a report can end up empty)."""
    out = list(rec.skipped.values())
    out += [
        f"{t}: {n} messages could not be decoded (first error: {rec.decode_error[t]})"
        for t, n in rec.undecodable.items()
    ]
    out += [f"{f.path}: {f.error or 'cut short'}" for f in rec.truncated]
    return out
