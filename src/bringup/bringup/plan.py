"""One plan from graph + profile + role + options: the processes to run (pure, no rclpy).

Both the supervisor and ``all.launch.py`` consume this plan, so the node list, parameters,
scheduling prefix and respawn settings exist once. What is installed is asked through a
:class:`Resolver` (the ament index by default; a fake in unit tests).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bringup.backoff import RestartPolicy
from bringup.graph import NAME_RE, ROLE_CHOICES, Graph, GraphError
from sensorhub_common.scheduling import format_cpu_list, parse_cpu_list

TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off", ""}
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z0-9_]+))?\}")
CONTAINER_MODULE = "sensorhub_common.container"
SCHED_EXEC_MODULE = "bringup.sched_exec"
# A variable's expansion longer than this is a mistake (e.g. ${a} = ${b}${b}, ${b} = ${c}${c}...).
MAX_EXPANSION = 65536


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
    members: list[str] = field(default_factory=list)  # kind container: its nodes' fqns

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
    set_variables: dict = field(default_factory=dict)  # --set / set:= overrides applied

    def names(self) -> list[str]:
        return [p.name for p in self.processes]

    def ros_node_names(self) -> list[str]:
        """Fully qualified names of the ROS nodes this plan starts (the domain check)."""
        out = []
        for p in self.processes:
            if p.kind == "ros_node":
                out.append(p.fqn)
            out += p.members
        return out

    def child_env(self) -> dict[str, str]:
        """The environment ROS nodes of this plan get (for probes that must see what they see)."""
        env = dict(os.environ)
        for p in self.processes:
            if p.kind in ("ros_node", "container"):
                env.update(p.env)
                break
        return env

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


def ros_log_dir(data_root: str, environ) -> str:
    """Where every child's ROS logs go: ``<data_root>/logs/ros``, unless ROS_LOG_DIR was chosen.

    env.sh exports ``ROS_LOG_DIR=$SENSORHUB_DATA_ROOT/logs/ros`` as a default; that value (or
    none) follows the data root of this run. Any other ROS_LOG_DIR is the user's explicit choice
    and is kept. A graph entry's own ``env: {ROS_LOG_DIR: ...}`` wins over both.
    """
    own = os.path.join(data_root, "logs", "ros")
    given = environ.get("ROS_LOG_DIR")
    if not given:
        return own
    root = environ.get("SENSORHUB_DATA_ROOT")
    derived = os.path.join(root, "logs", "ros") if root else None
    if derived and os.path.normpath(given) == os.path.normpath(derived):
        return own
    return given


def parse_set(items, split_commas: bool = False) -> dict:
    """``NAME=VALUE`` strings -> {name: value}; values are YAML scalars (9000 is an int).

    ``split_commas`` is for the launch argument ``set:=web_port=9000,tim240_port=2112`` (a value
    cannot then contain a comma; use the individual launch argument ``web_port:=...``).
    """
    if isinstance(items, str):
        items = [items]
    out: dict = {}
    for item in items:
        parts = item.split(",") if split_commas else [item]
        for part in parts:
            if not part.strip() and split_commas:
                continue
            name, eq, text = part.partition("=")
            name = name.strip()
            if not eq or not NAME_RE.match(name):
                raise ValueError(f"--set expects NAME=VALUE, got {part!r}")
            out[name] = scalar(text.strip())
    return out


def scalar(text: str):
    """A command-line value as YAML reads it: '9000' -> 9000, 'x' -> 'x', '' -> ''."""
    if text == "":
        return ""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return v if isinstance(v, (str, int, float, bool)) else text


def variable_overrides(set_text: str, configurations: dict, known) -> dict:
    """The launch side of ``--set``: ``set:=a=1,b=2`` plus individual ``NAME:=VALUE`` arguments
    whose NAME is a graph variable (an individual argument wins over the same name in set:=)."""
    out = parse_set(set_text or "", split_commas=True)
    for name in sorted(known):
        if name in configurations and name not in RESERVED_ARGUMENTS:
            out[name] = scalar(str(configurations[name]))
    return out


# Launch arguments of all.launch.py: never read as graph variables.
RESERVED_ARGUMENTS = frozenset(
    {
        "profile",
        "role",
        "web",
        "tim240_driver",
        "record",
        "recorder",
        "compose",
        "data_root",
        "graph",
        "set",
    }
)


# ---- inline parameter types (checked before anything starts, the same for both launchers)
def _type_name(v) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        inner = {_type_name(x) for x in v}
        if not inner:
            return "list"  # an empty list tells nothing about its elements
        if inner == {"int", "float"}:
            inner = {"float"}
        if len(inner) == 1 and None not in inner:
            return f"{inner.pop()}[]"
        return "list"
    return None


def type_compatible(declared: str, value) -> bool:
    """Whether rcl/rclpy take ``value`` for a parameter declared as ``declared``.

    An integer for a double is fine (rclpy converts it); a string for an integer is not, and a
    float for an integer is not either (the value would be truncated or refused).
    """
    got = _type_name(value)
    if declared == got or got is None or declared == "list":
        return True
    if declared == "float" and got == "int":
        return True
    if declared == "float[]" and got == "int[]":
        return True
    return declared.endswith("[]") and got == "list"  # [] for any array type


def _matches(key: str, name: str, fqn: str) -> bool:
    key = key.strip()
    if key in ("/**", "**"):
        return True
    return key in (name, fqn, fqn.lstrip("/"), "/**/" + name, "**/" + name)


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def declared_types(files, name: str, fqn: str) -> dict[str, tuple[str, str]]:
    """{parameter: (type, file)} from a node's parameter files; the first file that sets a
    parameter (the package's own defaults come first) gives its type."""
    out: dict[str, tuple[str, str]] = {}
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # rcl reports an unreadable file itself; not this check's business
        if not isinstance(data, dict):
            continue
        for key, section in data.items():
            if not isinstance(key, str) or not isinstance(section, dict):
                continue
            if not _matches(key, name, fqn):
                continue
            params = section.get("ros__parameters")
            if not isinstance(params, dict):
                continue
            for pname, v in _flatten(params):
                t = _type_name(v)
                if t is not None and pname not in out:
                    out[pname] = (t, f)
    return out


def check_parameter_types(graph_path, name: str, fqn: str, files, params: dict, keys: dict):
    """Refuse an inline override whose type differs from the parameter file's (GraphError).

    rcl silently ignores a ``-p`` of the wrong type after ``--params-file`` (the file's value
    stays) while a generated parameter file makes the node fail: both launchers refuse it here.
    ``keys`` maps a parameter to the graph key it came from (for the message).
    """
    types = declared_types(files, name, fqn)
    for pname, value in params.items():
        if pname not in types:
            continue
        declared, where = types[pname]
        if not type_compatible(declared, value):
            got = _type_name(value) or type(value).__name__
            raise GraphError(
                graph_path,
                f"{value!r} is a {got}, but {pname!r} is a {declared} (declared in {where})",
                name,
                keys.get(pname, f"parameters.{pname}"),
            )


def sched_prefix(name: str, sched: dict, python: str) -> list[str]:
    """The command prefix that applies nice, I/O class and CPU affinity, then execs the node.

    Always present, even with nothing to apply: the trampoline also gives the child its
    parent-death signal, under the supervisor and under ``ros2 launch`` alike."""
    out: list[str] = []
    if sched.get("nice") is not None:
        out += ["--nice", str(sched["nice"])]
    if sched.get("cpus"):
        out += ["--cpus", str(sched["cpus"])]
    if sched.get("io_class") not in (None, "", "none"):
        out += ["--io-class", str(sched["io_class"])]
        if sched.get("io_level") is not None:
            out += ["--io-level", str(sched["io_level"])]
    return [python, "-m", SCHED_EXEC_MODULE, "--name", name, *out, "--"]


def build_plan(
    graph: Graph,
    profile: str = "sim",
    role: str = "all",
    options: dict | None = None,
    data_root: str | os.PathLike = "data",
    resolver: Resolver | None = None,
    python: str | None = None,
    set_variables: dict | None = None,
    environ: dict | None = None,
) -> Plan:
    """Select, resolve and substitute the graph's entries for one profile/role/option set.

    ``set_variables`` overrides the graph's own variables (``sensorhub up --set``, ``set:=``);
    ``environ`` (default os.environ) decides where ROS writes its logs (:func:`ros_log_dir`).
    """
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
        # per-host nodes (system_monitor) in the two-Pi split: /sensors/..., /web/...; one host
        # running everything keeps the plain names
        "role_ns": "" if role == "all" else role,
        "graph_dir": str(graph.path.parent.resolve()),
    }
    user_vars = graph.profile_variables(profile)
    for k, v in (set_variables or {}).items():
        if k not in graph.settable_variables():
            raise GraphError(
                graph.path,
                f"--set {k}: not a variable of this graph (settable: "
                f"{', '.join(sorted(graph.settable_variables())) or 'none'})",
                key=f"variables.{k}",
            )
        user_vars[k] = v
    environ = os.environ if environ is None else environ
    variables["ros_log_dir"] = ros_log_dir(data_root, environ)
    # The profile's defaults for every child (sim: discovery on this host only), unless the
    # caller's environment already chose (the user asked otherwise).
    chosen = set(environ)
    if "ROS_LOCALHOST_ONLY" in environ:  # the older spelling of the same choice
        chosen.add("ROS_AUTOMATIC_DISCOVERY_RANGE")
    profile_env = {k: v for k, v in graph.profile_env(profile).items() if k not in chosen}
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
    compose = options.get("compose", "auto")
    if compose in ("auto", None, ""):
        composing = graph.profile_composes(profile)
    else:
        try:
            composing = parse_bool(compose, "compose")
        except ValueError as e:
            raise GraphError(graph.path, str(e), key="compose") from None
    groups = _groups(graph, profile, selected) if composing else {}
    variables["plan_nodes"] = plan_nodes(
        graph, selected, variables, user_vars, resolver, groups, python
    )

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
                profile_env,
            )
        )
    if groups:
        processes = _compose(graph, groups, processes, selected, variables, user_vars, resolver,
                             python)  # fmt: skip
    return Plan(
        str(graph.path),
        profile,
        role,
        {k: options[k] for k in sorted(options)},
        data_root,
        processes,
        notes,
        dict(set_variables or {}),
    )


def plan_nodes(
    graph: Graph,
    selected: list[dict],
    variables,
    user_vars,
    resolver,
    groups: dict | None = None,
    python: str | None = None,
) -> list[str]:
    """One ``key=value;...`` string per selected process, for system_monitor's ``expected``.

    name, kind, fqn (ROS nodes), exe (package/executable), cmd (commands), launch (file), and
    the requested nice/cpus/rt (hot-thread SCHED_FIFO priority) to compare with what the kernel
    applied. Never empty: a ROS string array parameter cannot be ``[]``, so none is ``[""]``.
    """
    out = []
    groups = groups or {}
    done: set[str] = set()
    for n in selected:
        cname = groups.get(n["name"], (None, None))[0]
        if cname is not None:
            if cname in done:
                continue
            done.add(cname)
            n = {**n, "name": cname, "kind": "command", "scheduling": groups[n["name"]][1]}
            n["command"] = [python or sys.executable, "-m", CONTAINER_MODULE, "--name", cname]
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


def _groups(graph: Graph, profile: str, selected: list[dict]) -> dict[str, tuple[str, dict]]:
    """member name -> (container name, the container's raw scheduling) for selected members."""
    names = {n["name"]: n for n in selected}
    out = {}
    for cname, c in graph.containers.items():
        members = [m for m in c["members"] if m in names]
        if not members:
            continue
        first = graph.resolved_node(members[0], profile)
        sched = c.get("scheduling", first.get("scheduling") or {})
        for m in members:
            out[m] = (cname, sched)
    return out


def _compose(graph, groups, processes, selected, variables, user_vars, resolver, python):
    """Members of a container become one process at the place of its first member."""
    by_name = {n["name"]: n for n in selected}
    out: list[ProcessSpec] = []
    built: dict[str, ProcessSpec] = {}
    for p in processes:
        if p.name not in groups:
            out.append(p)
            continue
        cname, sched_raw = groups[p.name]
        c = graph.containers[cname]
        spec = built.get(cname)
        if spec is None:
            sub = _Subst(graph, cname, variables, user_vars, resolver)
            sched = dict(sub.value(sched_raw, "scheduling"))
            if sched.get("cpus") not in (None, ""):
                v = sched["cpus"]
                cpus = parse_cpu_list(v if isinstance(v, list) else str(v))
                sched["cpus"] = format_cpu_list(cpus)
            respawn = p.respawn
            if "respawn" in c:
                try:
                    respawn = RestartPolicy.from_graph(c["respawn"])
                except TypeError as e:
                    raise GraphError(graph.path, str(e), cname, "respawn") from None
                check_gives_up(graph.path, cname, respawn)
            spec = ProcessSpec(
                name=cname,
                kind="container",
                argv=[python, "-m", CONTAINER_MODULE, "--name", cname],
                prefix=sched_prefix(cname, sched, python),
                env=dict(p.env),
                cwd=None,
                scheduling=sched,
                respawn=respawn,
                roles=[],
            )
            built[cname] = spec
            out.append(spec)
        i = p.argv.index("--ros-args")
        member = {
            "name": p.name,
            "component": by_name[p.name]["component"],
            "ros_args": p.argv[i:],
        }
        spec.argv += ["--member", json.dumps(member, separators=(",", ":"))]
        spec.members.append(p.fqn)
        spec.roles = sorted({*spec.roles, *p.roles})
        for k, v in p.env.items():
            spec.env.setdefault(k, v)
        if p.url and not spec.url:
            spec.url, spec.parameters = p.url, dict(p.parameters)
    return out


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
    """${var} and ${share:pkg}; a value that is exactly one variable keeps its type.

    Each user variable is expanded once (memoised) and no expansion may exceed MAX_EXPANSION
    characters, so variables that refer to each other cannot make the check run for ever.
    """

    def __init__(self, graph, node, builtins, user, resolver):
        self.graph, self.node, self.builtins, self.user, self.resolver = (
            graph,
            node,
            builtins,
            user,
            resolver,
        )
        self._done: dict = {}
        self._active: list[str] = []

    def var(self, name: str, arg: str | None, key: str, depth: int = 0):
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
            if name in self._done:
                return self._done[name]
            if name in self._active:
                cycle = " -> ".join(f"${{{v}}}" for v in [*self._active, name])
                raise GraphError(
                    self.graph.path, f"variable ${{{name}}} refers to itself ({cycle})",
                    self.node, key,
                )  # fmt: skip
            self._active.append(name)
            try:
                out = self.value(self.user[name], key, depth + 1)
            finally:
                self._active.pop()
            self._done[name] = out
            return out
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
            out = _VAR_RE.sub(lambda m: self._text(m, key, depth), v)
            self._bound(out, key)
            return out
        if isinstance(v, list):
            return [self.value(x, key, depth) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, f"{key}.{k}", depth) for k, x in v.items()}
        return v

    def _text(self, m, key: str, depth: int) -> str:
        text = str(self.var(m.group(1), m.group(2), key, depth))
        self._bound(text, key)
        return text

    def _bound(self, text: str, key: str) -> None:
        if len(text) > MAX_EXPANSION:
            what = f"${{{self._active[0]}}}" if self._active else "the value"
            raise GraphError(
                self.graph.path,
                f"{what} expands to more than {MAX_EXPANSION} characters "
                "(variables that repeat each other?)",
                self.node,
                key,
            )


def _spec(
    graph: Graph,
    n: dict,
    sub: _Subst,
    resolver: Resolver,
    python: str,
    profile_env: dict | None = None,
) -> ProcessSpec:
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
    env.setdefault("ROS_LOG_DIR", sub.builtins["ros_log_dir"])
    for k, v in (profile_env or {}).items():
        env.setdefault(k, v)
    cwd = sub.value(n["cwd"], "cwd") if n.get("cwd") else None
    try:
        respawn = RestartPolicy.from_graph(n.get("respawn"))
    except TypeError as e:
        raise GraphError(graph.path, str(e), name, "respawn") from None
    check_gives_up(graph.path, name, respawn)
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
        keys = {k: f"parameters.{k}" for k in params}
        # The hot thread's real-time settings are node parameters: only the node knows its thread.
        if sched.get("rt_priority") is not None and "rt_priority" not in params:
            params["rt_priority"] = int(sched["rt_priority"])
            keys["rt_priority"] = "scheduling.rt_priority"
        if sched.get("rt_cpus") is not None and "rt_cpus" not in params:
            params["rt_cpus"] = sched["rt_cpus"]
            keys["rt_cpus"] = "scheduling.rt_cpus"
        check_parameter_types(graph.path, name, spec.fqn, files, params, keys)
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


def check_gives_up(graph_path, name: str, r: RestartPolicy) -> None:
    """A crash loop must end in a give-up: the first ``max_restarts`` restart delays have to fit
    in ``window``, else a node that dies at once is restarted for ever (GraphError)."""
    if not r.enabled:
        return
    total, d = 0.0, r.delay
    for _ in range(r.max_restarts):
        total += min(d, max(r.max_delay, r.delay))
        d *= r.factor
    if total > r.window:
        raise GraphError(
            graph_path,
            f"a crash loop would never be given up: {r.max_restarts} restarts take at least "
            f"{total:g} s of delays, longer than window {r.window:g} s (raise window to >= "
            f"{total:g}, or lower max_restarts)",
            name,
            "respawn.window",
        )


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
