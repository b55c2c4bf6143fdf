"""One plan from graph + profile + role + options: the processes to run (pure, no rclpy).

Both the supervisor and ``all.launch.py`` consume this plan, so the node list, parameters,
scheduling prefix and respawn settings exist once. What is installed is asked through a
:class:`Resolver` (the ament index by default; a fake in unit tests).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bringup.backoff import RestartPolicy
from bringup.graph import ROLE_CHOICES, Graph, GraphError
from sensorhub_common.scheduling import format_cpu_list, parse_cpu_list

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z0-9_]+))?\}")
SCHED_EXEC_MODULE = "bringup.sched_exec"


class Resolver:
    """Finds installed packages/executables via the ament index, as ros2 run does."""

    def package_prefix(self, package: str) -> str | None:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix

        try:
            return get_package_prefix(package)
        except (PackageNotFoundError, LookupError, ValueError):
            return None

    def share(self, package: str) -> str | None:
        prefix = self.package_prefix(package)
        return None if prefix is None else os.path.join(prefix, "share", package)

    def executable(self, package: str, name: str) -> str | None:
        prefix = self.package_prefix(package)
        if prefix is None:
            return None
        path = os.path.join(prefix, "lib", package, name)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None

    def which(self, command: str) -> str | None:
        return shutil.which(command)


@dataclass
class ProcessSpec:
    """One process of the plan; ``prefix + argv`` is exactly what runs."""

    name: str
    kind: str  # ros_node | process | command | launch
    argv: list[str]
    prefix: list[str] = field(default_factory=list)
    package: str | None = None
    executable: str | None = None
    namespace: str = ""
    params_files: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    scheduling: dict = field(default_factory=dict)
    respawn: RestartPolicy = field(default_factory=RestartPolicy)
    roles: list[str] = field(default_factory=list)
    slot: str | None = None
    variant: str | None = None
    url: str | None = None
    launch_file: str | None = None
    launch_arguments: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return [*self.prefix, *self.argv]

    @property
    def fqn(self) -> str:
        ns = "/" + self.namespace.strip("/") if self.namespace.strip("/") else ""
        return f"{ns}/{self.name}"


@dataclass
class Plan:
    graph_path: str
    profile: str
    role: str
    options: dict
    data_root: str
    processes: list[ProcessSpec]
    notes: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def get(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.data_root, "run")

    @property
    def log_dir(self) -> str:
        return os.path.join(self.data_root, "logs")


def parse_bool(value, what: str = "option") -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return False
    raise ValueError(f"{what}: expected true or false, got {value!r}")


def yaml_value(v) -> str:
    """A value as the YAML scalar/flow text rcl expects after `-p name:=`."""
    text = yaml.safe_dump(v, default_flow_style=True, width=1 << 20).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


def sched_prefix(name: str, sched: dict, python: str) -> list[str]:
    """The command prefix that applies nice, I/O class and CPU affinity, then execs the node."""
    out: list[str] = []
    if sched.get("nice") is not None:
        out += ["--nice", str(sched["nice"])]
    if sched.get("cpus"):
        out += ["--cpus", str(sched["cpus"])]
    if sched.get("io_class") not in (None, "", "none"):
        out += ["--io-class", str(sched["io_class"])]
        if sched.get("io_level") is not None:
            out += ["--io-level", str(sched["io_level"])]
    if not out:
        return []
    return [python, "-m", SCHED_EXEC_MODULE, "--name", name, *out, "--"]


def build_plan(
    graph: Graph,
    profile: str = "sim",
    role: str = "all",
    options: dict | None = None,
    data_root: str | os.PathLike = "data",
    resolver: Resolver | None = None,
    python: str | None = None,
) -> Plan:
    """Select, resolve and substitute the graph's entries for one profile/role/option set."""
    resolver = resolver or Resolver()
    python = python or sys.executable
    options = dict(options or {})
    if role not in ROLE_CHOICES:
        raise GraphError(
            graph.path, f"unknown role {role!r} (one of {', '.join(ROLE_CHOICES)})", key="role"
        )
    chain = graph.profile_chain(profile)
    data_root = str(Path(data_root).expanduser().resolve())
    variables = {
        "data_root": data_root,
        "run_dir": os.path.join(data_root, "run"),
        "log_dir": os.path.join(data_root, "logs"),
        "bag_dir": os.path.join(data_root, "bags"),
        "profile": profile,
        "role": role,
        "graph_dir": str(graph.path.parent.resolve()),
    }
    user_vars = graph.profile_variables(profile)
    notes: list[str] = []

    # 1. profile/role/enabled filter, with profile overrides merged
    candidates = []
    for raw in graph.nodes:
        n = graph.resolved_node(raw["name"], profile)
        if not n.get("enabled", True):
            continue
        only = n.get("only_profiles")
        if only is not None and not set(only) & set(chain):
            continue
        if role != "all" and role not in n["roles"]:
            continue
        candidates.append(n)

    # 2. slots: one variant per slot, chosen by its option ("auto" = first one installed)
    chosen: dict[str, str | None] = {}
    for slot in graph.slots.values():
        if slot.enabled_by is not None:
            try:
                on = parse_bool(options.get(slot.enabled_by, False), slot.enabled_by)
            except ValueError as e:
                raise GraphError(graph.path, str(e), key=slot.enabled_by) from None
            if not on:
                chosen[slot.name] = None
                continue
        choice = str(options.get(slot.option, slot.default) or "auto")
        all_variants = [n["variant"] for n in graph.nodes if n.get("slot") == slot.name]
        valid = {"auto", "none", *all_variants}
        if choice not in valid:
            raise GraphError(
                graph.path,
                f"{slot.option}:={choice!r} is not provided by any entry "
                f"(choices: {', '.join(sorted(valid))})",
                key=slot.option,
            )
        here = [n for n in candidates if n.get("slot") == slot.name]
        if choice == "none" or not here:
            chosen[slot.name] = None
            continue
        if choice == "auto":
            pick = None
            for n in here:
                missing = _missing(n, resolver)
                if missing is None:
                    pick = n["variant"]
                    break
                notes.append(f"{slot.option}=auto: skipped {n['name']} ({missing})")
            if pick is None:
                notes.append(f"{slot.option}=auto: no variant installed; {slot.name} not started")
            else:
                notes.append(f"{slot.option}=auto: using {pick}")
            chosen[slot.name] = pick
        else:
            chosen[slot.name] = choice
    selected = [
        n for n in candidates if "slot" not in n or chosen.get(n["slot"]) == n.get("variant")
    ]
    # ${plan_nodes}: what system_monitor must find running on this host (after slot selection)
    variables["plan_nodes"] = plan_nodes(graph, selected, variables, user_vars, resolver)

    # 3. resolve and substitute
    processes = []
    for n in selected:
        missing = _missing(n, resolver)
        if missing is not None:
            key = "command" if n.get("kind") == "command" else "package"
            if "executable" in missing:
                key = "executable"
            elif "launch file" in missing:
                key = "launch_file"
            raise GraphError(graph.path, missing, n["name"], key)
        processes.append(
            _spec(
                graph,
                n,
                _Subst(graph, n["name"], variables, user_vars, resolver),
                resolver,
                python,
            )
        )
    return Plan(
        str(graph.path),
        profile,
        role,
        {k: options[k] for k in sorted(options)},
        data_root,
        processes,
        notes,
    )


def plan_nodes(graph: Graph, selected: list[dict], variables, user_vars, resolver) -> list[str]:
    """One ``key=value;...`` string per selected process, for system_monitor's ``expected``.

    name, kind, fqn (ROS nodes), exe (package/executable), cmd (commands), launch (file), and
    the requested nice/cpus/rt (hot-thread SCHED_FIFO priority) to compare with what the kernel
    applied. Never empty: a ROS string array parameter cannot be ``[]``, so none is ``[""]``.
    """
    out = []
    for n in selected:
        sub = _Subst(graph, n["name"], variables, user_vars, resolver)
        kind = n.get("kind", "ros_node")
        parts = [f"name={n['name']}", f"kind={kind}"]
        if kind == "ros_node":
            ns = str(sub.value(n.get("namespace", ""), "namespace")).strip("/")
            parts.append(f"fqn={'/' + ns if ns else ''}/{n['name']}")
        if kind in ("ros_node", "process"):
            parts.append(f"exe={n['package']}/{n['executable']}")
        elif kind == "command":
            parts.append("cmd=" + " ".join(str(c) for c in sub.value(n["command"], "command")))
        else:
            parts.append(f"launch={n['package']}/{n['launch_file']}")
        sched = n.get("scheduling") or {}
        if sched.get("nice") is not None:
            parts.append(f"nice={int(sched['nice'])}")
        if sched.get("cpus") not in (None, ""):
            try:
                v = sched["cpus"]
                cpus = parse_cpu_list(v if isinstance(v, list) else str(v))
            except ValueError:
                cpus = None  # reported with the node and key when the entry is resolved
            if cpus:
                parts.append(f"cpus={format_cpu_list(cpus)}")
        if sched.get("rt_priority"):
            parts.append(f"rt={int(sched['rt_priority'])}")
        out.append(";".join(p.replace(";", ",") for p in parts))
    return out or [""]


def _missing(n: dict, resolver: Resolver) -> str | None:
    """Why an entry cannot run here, or None."""
    kind = n.get("kind", "ros_node")
    for pkg in n.get("requires", []):
        if resolver.package_prefix(pkg) is None:
            return f"package {pkg!r} is not installed"
    if kind == "command":
        cmd = n["command"][0]
        if "${" not in cmd and resolver.which(cmd) is None:
            return f"command {cmd!r} is not on PATH"
        return None
    pkg = n["package"]
    if resolver.package_prefix(pkg) is None:
        return f"package {pkg!r} is not installed (not found on AMENT_PREFIX_PATH)"
    if kind == "launch":
        share = resolver.share(pkg)
        if share is None or not os.path.isfile(os.path.join(share, n["launch_file"])):
            return f"launch file {n['launch_file']!r} not found in package {pkg!r}"
        return None
    if resolver.executable(pkg, n["executable"]) is None:
        return f"executable {n['executable']!r} not found in package {pkg!r} (lib/{pkg}/)"
    return None


class _Subst:
    """${var} and ${share:pkg}; a value that is exactly one variable keeps its type."""

    def __init__(self, graph, node, builtins, user, resolver):
        self.graph, self.node, self.builtins, self.user, self.resolver = (
            graph,
            node,
            builtins,
            user,
            resolver,
        )

    def var(self, name: str, arg: str | None, key: str, depth: int = 0):
        if depth > 10:
            raise GraphError(
                self.graph.path, f"variable ${{{name}}} refers to itself", self.node, key
            )
        if name == "share":
            if not arg:
                raise GraphError(self.graph.path, "use ${share:PACKAGE}", self.node, key)
            share = self.resolver.share(arg)
            if share is None:
                raise GraphError(
                    self.graph.path, f"${{share:{arg}}}: package not installed", self.node, key
                )
            return share
        if name in self.builtins:
            return self.builtins[name]
        if name in self.user:
            return self.value(self.user[name], key, depth + 1)
        known = sorted({*self.builtins, *self.user, "share:PKG"})
        raise GraphError(
            self.graph.path,
            f"unknown variable ${{{name}}} (known: {', '.join(known)})",
            self.node,
            key,
        )

    def value(self, v, key: str, depth: int = 0):
        if isinstance(v, str):
            m = _VAR_RE.fullmatch(v)
            if m:
                return self.var(m.group(1), m.group(2), key, depth)
            return _VAR_RE.sub(lambda m: str(self.var(m.group(1), m.group(2), key, depth)), v)
        if isinstance(v, list):
            return [self.value(x, key, depth) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, f"{key}.{k}", depth) for k, x in v.items()}
        return v


def _spec(graph: Graph, n: dict, sub: _Subst, resolver: Resolver, python: str) -> ProcessSpec:
    name = n["name"]
    kind = n.get("kind", "ros_node")
    sched = dict(sub.value(n.get("scheduling", {}), "scheduling"))
    for key in ("cpus", "rt_cpus"):
        if sched.get(key) not in (None, ""):
            try:
                v = sched[key]
                cpus = parse_cpu_list(v if isinstance(v, list) else str(v))
            except ValueError as e:
                raise GraphError(graph.path, str(e), name, f"scheduling.{key}") from None
            sched[key] = format_cpu_list(cpus) if cpus else ""
    args = [str(a) for a in sub.value(n.get("args", []), "args")]
    env = {k: str(v) for k, v in sub.value(n.get("env", {}), "env").items()}
    env.setdefault("SENSORHUB_DATA_ROOT", sub.builtins["data_root"])
    cwd = sub.value(n["cwd"], "cwd") if n.get("cwd") else None
    try:
        respawn = RestartPolicy.from_graph(n.get("respawn"))
    except TypeError as e:
        raise GraphError(graph.path, str(e), name, "respawn") from None
    spec = ProcessSpec(
        name=name,
        kind=kind,
        argv=[],
        prefix=sched_prefix(name, sched, python),
        package=n.get("package"),
        executable=n.get("executable"),
        args=args,
        env=env,
        cwd=str(cwd) if cwd else None,
        scheduling=sched,
        respawn=respawn,
        roles=list(n["roles"]),
        slot=n.get("slot"),
        variant=n.get("variant"),
        url=sub.value(n["url"], "url") if n.get("url") else None,
    )
    if kind == "ros_node":
        spec.namespace = str(sub.value(n.get("namespace", ""), "namespace")).strip("/")
        files = []
        for p in n.get("params", []):
            f = str(sub.value(p, "params"))
            f = f if os.path.isabs(f) else str((graph.path.parent / f).resolve())
            if not os.path.isfile(f):
                raise GraphError(
                    graph.path, f"parameter file {f!r} does not exist", name, "params"
                )
            files.append(f)
        spec.params_files = files
        params = dict(sub.value(n.get("parameters", {}), "parameters"))
        # The hot thread's real-time settings are node parameters: only the node knows its thread.
        if sched.get("rt_priority") is not None:
            params.setdefault("rt_priority", int(sched["rt_priority"]))
        if sched.get("rt_cpus") is not None:
            params.setdefault("rt_cpus", sched["rt_cpus"])
        spec.parameters = params
        exe = resolver.executable(n["package"], n["executable"])
        ros_args = ["--ros-args", "-r", f"__node:={name}"]
        if spec.namespace:
            ros_args += ["-r", f"__ns:=/{spec.namespace}"]
        for f in files:
            ros_args += ["--params-file", f]
        for k, v in params.items():
            ros_args += ["-p", f"{k}:={yaml_value(v)}"]
        spec.argv = [exe, *args, *ros_args]
    elif kind == "process":
        spec.argv = [resolver.executable(n["package"], n["executable"]), *args]
    elif kind == "command":
        cmd = [str(c) for c in sub.value(n["command"], "command")]
        cmd[0] = resolver.which(cmd[0]) or cmd[0]
        spec.argv = [*cmd, *args]
    else:  # launch: an included launch file; the supervisor runs it through `ros2 launch`
        share = resolver.share(n["package"])
        spec.launch_file = os.path.join(share, n["launch_file"])
        la = sub.value(n.get("launch_arguments", {}), "launch_arguments")
        spec.launch_arguments = {str(k): _arg_text(v) for k, v in la.items()}
        spec.argv = [
            resolver.which("ros2") or "ros2",
            "launch",
            spec.launch_file,
            *(f"{k}:={v}" for k, v in spec.launch_arguments.items()),
        ]
    return spec


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def describe(plan: Plan) -> str:
    """Human-readable plan (``sensorhub plan``)."""
    lines = [
        f"graph {plan.graph_path}",
        f"profile {plan.profile}, role {plan.role}, data root {plan.data_root}",
    ]
    lines += [f"note: {n}" for n in plan.notes]
    for p in plan.processes:
        s = p.scheduling
        sched = ", ".join(f"{k} {v}" for k, v in s.items() if v not in (None, "")) or "default"
        r = p.respawn
        resp = (
            f"respawn after {r.delay:g} s (x{r.factor:g} up to {r.max_delay:g} s, "
            f"give up after {r.max_restarts} in {r.window:g} s)"
            if r.enabled
            else "no respawn"
        )
        lines.append(f"- {p.fqn} [{p.kind}] roles {','.join(p.roles)}: {sched}; {resp}")
        lines.append(f"    {shlex.join(p.command)}")
    return "\n".join(lines)


def default_profile() -> str:
    """`auto`: pi on a Raspberry Pi (device tree model), else sim."""
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return "pi" if b"Raspberry Pi" in f.read() else "sim"
    except OSError:
        return "sim"
