"""/diagnostics_agg: statuses grouped by subsystem, as diagnostic_aggregator does (pure).

Every status lands under exactly one group (the first whose patterns match its *subject*, else
"Other") as ``/<Group>/<status name>``; each group gets a top-level ``/<Group>`` status whose
level is its worst child's. An item not updated for ``stale_timeout`` becomes STALE, and an
expected node with no status at all is a STALE item of its group, so a group whose node died
before it ever spoke is not silently OK.
The subject is the node a status is about: the part before ``": "``, except that the monitor's
own ``"<monitor>: node X"`` and ``"<monitor>: topic T"`` statuses are about X and T's owner.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from sensorhub_common.diagnostics import LEVEL_NAMES, OK, STALE

OTHER = "Other"
DEFAULT_GROUPS = (
    "PBT=pbt_*,pmt_*,gm_*",
    "TiM240=tim240*,sick*",
    "SEC110=sec110*",
    "Web=foxglove*,rosbridge*,web_view*,lab_*",
    "Recorder=*recorder*,rosbag2*",
    "Host=system_monitor*",
)


class GroupSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Group:
    name: str
    patterns: tuple[str, ...]

    def match(self, subject: str) -> bool:
        return any(fnmatch.fnmatchcase(subject, p) for p in self.patterns)


def parse_groups(specs) -> list[Group]:
    out = []
    for s in specs:
        s = s.strip()
        if not s:
            continue
        name, sep, pats = s.partition("=")
        patterns = tuple(p.strip() for p in pats.split(",") if p.strip())
        if not sep or not name.strip() or not patterns or "/" in name:
            raise GroupSpecError(f"group {s!r}: expected 'Name=pattern,pattern' (no '/')")
        out.append(Group(name.strip(), patterns))
    if len({g.name for g in out}) != len(out):
        raise GroupSpecError("groups: a group name is listed twice")
    return out


@dataclass
class Item:
    name: str
    level: int
    message: str
    hardware_id: str
    values: list[tuple[str, str]]
    t: float
    subject: str
    payload: object = None


@dataclass
class AggStatus:
    name: str
    level: int
    message: str
    hardware_id: str = ""
    values: list[tuple[str, str]] = field(default_factory=list)
    payload: object = None  # the caller's own object for this item (e.g. the received message)


class Aggregator:
    def __init__(
        self,
        groups: list[Group],
        expected: list[str] = (),
        stale_timeout: float = 5.0,
        forget_after: float = 60.0,
        topic_owner: dict[str, str] | None = None,
        monitor_name: str = "system_monitor",
    ):
        self.groups = list(groups)
        self.expected = list(expected)
        self.stale_timeout = stale_timeout
        self.forget_after = forget_after
        self.topic_owner = dict(topic_owner or {})
        self.monitor_name = monitor_name
        self.items: dict[tuple[str, str], Item] = {}

    def subject(self, name: str) -> str:
        node, sep, task = name.partition(": ")
        if sep and node == self.monitor_name:
            if task.startswith("node "):
                return task[5:]
            if task.startswith("topic "):
                return self.topic_owner.get(task[6:], node)
        return node.strip()

    def group_of(self, subject: str) -> str:
        for g in self.groups:
            if g.match(subject):
                return g.name
        return OTHER

    def update(self, name, level, message, hardware_id, values, now, payload=None) -> None:
        self.items[(name, hardware_id)] = Item(
            name, int(level), message, hardware_id, list(values), now, self.subject(name),
            payload,
        )  # fmt: skip

    def tree(self, now: float) -> list[AggStatus]:
        # A task that stopped reporting while its node still reports others (the updater's
        # start-up broadcast, a removed task) is gone, not stale; whatever is silent for
        # forget_after is forgotten (an expected node then shows as one missing item).
        newest: dict[tuple[str, str], float] = {}
        for it in self.items.values():
            k = (it.name.partition(": ")[0], it.hardware_id)
            newest[k] = max(newest.get(k, it.t), it.t)
        for key, it in list(self.items.items()):
            node_fresh = now - newest[(it.name.partition(": ")[0], it.hardware_id)]
            age = now - it.t
            if age > self.forget_after or (
                age > self.stale_timeout and node_fresh <= self.stale_timeout
            ):
                del self.items[key]
        by_group: dict[str, list[AggStatus]] = {}
        names = {}
        for it in self.items.values():
            names.setdefault(it.name, set()).add(it.hardware_id)
        seen_nodes = set()
        for it in sorted(self.items.values(), key=lambda i: (i.name, i.hardware_id)):
            seen_nodes.add(it.name.partition(": ")[0])
            g = self.group_of(it.subject)
            shown = it.name if len(names[it.name]) == 1 else f"{it.name} [{it.hardware_id}]"
            age = now - it.t
            level, msg = it.level, it.message
            if age > self.stale_timeout:
                level, msg = STALE, f"stale ({age:.0f} s without update): {it.message}"
            by_group.setdefault(g, []).append(
                AggStatus(f"/{g}/{shown}", level, msg, it.hardware_id, it.values, it.payload)
            )
        for node in self.expected:
            if node not in seen_nodes:
                g = self.group_of(node)
                by_group.setdefault(g, []).append(
                    AggStatus(f"/{g}/{node}", STALE, "expected, no diagnostics received")
                )
        out = []
        order = [g.name for g in self.groups] + [OTHER]
        for g in order:
            children = by_group.get(g)
            if not children:
                continue
            worst = max(c.level for c in children)
            bad = [c for c in children if c.level == worst]
            if worst == OK:
                msg = f"OK ({len(children)} items)"
            else:
                first = bad[0]
                short = first.name.split("/", 2)[-1]
                more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
                msg = f"{LEVEL_NAMES.get(worst, worst)}: {short}: {first.message}{more}"
            out.append(AggStatus(f"/{g}", worst, msg[:200]))
            out.extend(children)
        return out
