"""One process of a plan from one selected graph entry: its command, parameters, environment,
scheduling prefix and restart policy (pure)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from bringup.backoff import RestartPolicy
from bringup.graph import GraphError
from bringup.param_types import check_parameter_types
from bringup.resolver import Resolver
from bringup.variables import Substitution
from sensorhub_common.scheduling import format_cpu_list, parse_cpu_list

SCHED_EXEC_MODULE = "bringup.sched_exec"


@dataclass
class ProcessSpec:
    """One process of the plan; ``prefix + argv`` is exactly what runs."""

    name: str
    kind: str  # ros_node | process | command | launch | container
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


def yaml_value(v) -> str:
    """A value as the YAML scalar/flow text rcl expects after `-p name:=`."""
    text = yaml.safe_dump(v, default_flow_style=True, width=1 << 20).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


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


def cpu_text(v) -> str:
    """A graph CPU list ("0-2", [1, 0] or 3) as the canonical text ("0,1"); ValueError if bad."""
    return format_cpu_list(parse_cpu_list(v if isinstance(v, list) else str(v)))


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


def restart_policy(graph_path, name: str, raw) -> RestartPolicy:
    """The graph's ``respawn:`` of an entry or container, refused if it never gives up."""
    try:
        policy = RestartPolicy.from_graph(raw)
    except TypeError as e:
        raise GraphError(graph_path, str(e), name, "respawn") from None
    check_gives_up(graph_path, name, policy)
    return policy


@dataclass
class EntryContext:
    """What building one entry's process needs besides the entry itself."""

    graph_path: object
    graph_dir: str
    sub: Substitution
    resolver: Resolver
    profile_env: dict = field(default_factory=dict)

    def error(self, message: str, key: str) -> GraphError:
        return GraphError(self.graph_path, message, self.sub.node, key)


def _scheduling(n: dict, ctx: EntryContext) -> dict:
    sched = dict(ctx.sub.value(n.get("scheduling", {}), "scheduling"))
    for key in ("cpus", "rt_cpus"):
        if sched.get(key) not in (None, ""):
            try:
                sched[key] = cpu_text(sched[key])
            except ValueError as e:
                raise ctx.error(str(e), f"scheduling.{key}") from None
    return sched


def _environment(n: dict, ctx: EntryContext) -> dict[str, str]:
    env = {k: str(v) for k, v in ctx.sub.value(n.get("env", {}), "env").items()}
    env.setdefault("SENSORHUB_DATA_ROOT", ctx.sub.builtins["data_root"])
    env.setdefault("ROS_LOG_DIR", ctx.sub.builtins["ros_log_dir"])
    for k, v in ctx.profile_env.items():
        env.setdefault(k, v)
    return env


def _params_files(n: dict, ctx: EntryContext) -> list[str]:
    files = []
    for p in n.get("params", []):
        f = str(ctx.sub.value(p, "params"))
        f = f if os.path.isabs(f) else os.path.realpath(os.path.join(ctx.graph_dir, f))
        if not os.path.isfile(f):
            raise ctx.error(f"parameter file {f!r} does not exist", "params")
        files.append(f)
    return files


def _node_parameters(n: dict, ctx: EntryContext, sched: dict) -> tuple[dict, dict]:
    """Inline parameters and the graph key each came from; the hot thread's real-time settings
    are node parameters: only the node knows its thread."""
    params = dict(ctx.sub.value(n.get("parameters", {}), "parameters"))
    keys = {k: f"parameters.{k}" for k in params}
    for name in ("rt_priority", "rt_cpus"):
        if sched.get(name) is not None and name not in params:
            params[name] = int(sched[name]) if name == "rt_priority" else sched[name]
            keys[name] = f"scheduling.{name}"
    return params, keys


def _ros_node(spec: ProcessSpec, n: dict, ctx: EntryContext) -> None:
    spec.namespace = str(ctx.sub.value(n.get("namespace", ""), "namespace")).strip("/")
    spec.params_files = _params_files(n, ctx)
    params, keys = _node_parameters(n, ctx, spec.scheduling)
    check_parameter_types(ctx.graph_path, spec.name, spec.fqn, spec.params_files, params, keys)
    spec.parameters = params
    ros_args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        ros_args += ["-r", f"__ns:=/{spec.namespace}"]
    for f in spec.params_files:
        ros_args += ["--params-file", f]
    for k, v in params.items():
        ros_args += ["-p", f"{k}:={yaml_value(v)}"]
    exe = ctx.resolver.executable(n["package"], n["executable"])
    spec.argv = [exe, *spec.args, *ros_args]


def _process(spec: ProcessSpec, n: dict, ctx: EntryContext) -> None:
    spec.argv = [ctx.resolver.executable(n["package"], n["executable"]), *spec.args]


def _command(spec: ProcessSpec, n: dict, ctx: EntryContext) -> None:
    cmd = [str(c) for c in ctx.sub.value(n["command"], "command")]
    cmd[0] = ctx.resolver.which(cmd[0]) or cmd[0]
    spec.argv = [*cmd, *spec.args]


def _arg_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _launch(spec: ProcessSpec, n: dict, ctx: EntryContext) -> None:
    """An included launch file; the supervisor runs it through `ros2 launch`."""
    spec.launch_file = os.path.join(ctx.resolver.share(n["package"]), n["launch_file"])
    la = ctx.sub.value(n.get("launch_arguments", {}), "launch_arguments")
    spec.launch_arguments = {str(k): _arg_text(v) for k, v in la.items()}
    spec.argv = [
        ctx.resolver.which("ros2") or "ros2",
        "launch",
        spec.launch_file,
        *(f"{k}:={v}" for k, v in spec.launch_arguments.items()),
    ]


_ARGV: dict[str, Callable[[ProcessSpec, dict, EntryContext], None]] = {
    "ros_node": _ros_node,
    "process": _process,
    "command": _command,
    "launch": _launch,
}


def build_spec(n: dict, ctx: EntryContext) -> ProcessSpec:
    """The process of one selected, installed entry (variables substituted)."""
    name = n["name"]
    sched = _scheduling(n, ctx)
    args = [str(a) for a in ctx.sub.value(n.get("args", []), "args")]
    env = _environment(n, ctx)
    cwd = ctx.sub.value(n["cwd"], "cwd") if n.get("cwd") else None
    spec = ProcessSpec(
        name=name,
        kind=n.get("kind", "ros_node"),
        argv=[],
        prefix=sched_prefix(name, sched, ctx.resolver.python),
        package=n.get("package"),
        executable=n.get("executable"),
        args=args,
        env=env,
        cwd=str(cwd) if cwd else None,
        scheduling=sched,
        respawn=restart_policy(ctx.graph_path, name, n.get("respawn")),
        roles=list(n["roles"]),
        slot=n.get("slot"),
        variant=n.get("variant"),
        url=ctx.sub.value(n["url"], "url") if n.get("url") else None,
    )
    _ARGV[spec.kind](spec, n, ctx)
    return spec
