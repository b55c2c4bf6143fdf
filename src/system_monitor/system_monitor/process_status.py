"""One expected process as diagnostic key/values: what /proc shows against what was asked for.

Pure (no rclpy): fills a DiagnosticStatusWrapper from two successive procinfo samples.
"""

from __future__ import annotations

from sensorhub_common import diagnostics as diag
from sensorhub_common.scheduling import format_cpu_list
from system_monitor.procinfo import RT_POLICIES, Expected, Sample, ThreadInfo, top_thread


def _switches(stat, s: Sample, prev: Sample | None, dt: float) -> None:
    st = s.status
    if not (st and st.voluntary is not None):
        return
    stat.add("context switches voluntary/involuntary", f"{st.voluntary} / {st.involuntary}")
    if dt and prev.status and prev.status.voluntary is not None:
        stat.add("context switches per s voluntary/involuntary",
                 f"{(st.voluntary - prev.status.voluntary) / dt:.0f} / "
                 f"{(st.involuntary - prev.status.involuntary) / dt:.0f}")  # fmt: skip


def add_sample(stat, s: Sample, prev: Sample | None, restarts: int) -> ThreadInfo | None:
    """State, CPU, memory, threads and scheduling; returns the highest-priority thread.

    CPU and switch rates need `prev`, an earlier sample of the same PID.
    """
    same = prev is not None and prev.pid == s.pid and s.t > prev.t
    dt = s.t - prev.t if same else 0.0
    stat.add("alive", s.stat.state not in ("Z", "X"))
    stat.add("pid", s.pid)
    stat.add("state", s.stat.state_name)
    stat.add("restarts seen", restarts)
    cpu = f"{(s.stat.cpu_s - prev.stat.cpu_s) / dt * 100:.1f}" if same else "measuring"
    stat.add("CPU [% of one core]", cpu)
    st = s.status
    stat.add("RSS [MB]", f"{st.rss_bytes / 1e6:.1f}" if st and st.rss_bytes else "n/a")
    stat.add("threads", s.stat.num_threads)
    _switches(stat, s, prev, dt)
    stat.add("policy", s.stat.policy_name)
    stat.add("RT priority", s.stat.rt_priority)
    stat.add("nice", s.stat.nice)
    cpus = st.cpus if st else None
    stat.add("CPU affinity", format_cpu_list(cpus) if cpus else "n/a")
    top = top_thread(s.threads)
    stat.add("highest-priority thread", top.describe() if top else "n/a")
    return top


def add_requested(stat, exp: Expected, s: Sample, top: ThreadInfo | None) -> None:
    """What the graph asked for (nice, CPUs, SCHED_FIFO): WARN where the kernel differs."""
    req = []
    if exp.nice is not None:
        req.append(f"nice {exp.nice}")
        if s.stat.nice != exp.nice:
            stat.merge_summary(diag.WARN, f"nice {s.stat.nice}, requested {exp.nice}")
    if exp.cpus:
        req.append(f"CPUs {format_cpu_list(exp.cpus)}")
        cpus = s.status.cpus if s.status else None
        if cpus is not None and cpus != exp.cpus:
            stat.merge_summary(
                diag.WARN, f"CPUs {format_cpu_list(cpus)}, requested {format_cpu_list(exp.cpus)}"
            )
    if exp.rt:
        req.append(f"SCHED_FIFO {exp.rt} thread")
        if s.threads and (top is None or top.policy not in RT_POLICIES):
            stat.merge_summary(diag.WARN, f"no real-time thread (requested SCHED_FIFO {exp.rt})")
    stat.add("requested", ", ".join(req) or "defaults")
