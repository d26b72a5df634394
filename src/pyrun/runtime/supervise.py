"""Pods that look after themselves: restartPolicy, probes and lifecycle hooks of `pyrun pod create` pods.

The work is done by the container's C monitor (csrc/supervise.c), which is already the workload's
parent and runs a poll loop; nothing here stays resident. This module holds the pure parts:

  plan()            the container's Supervision (config.json), or None when there is nothing to do:
                    restartPolicy Never without probes or hooks costs what a pod always cost;
  supervise_argv()  the C monitor's extra arguments for it (one word per probe or hook, see below).

Never for a CRI container: the kubelet probes, restarts and runs hooks itself.

The C monitor, per container (see csrc/supervise.c for the details):
  * restarts the workload as restartPolicy says, after the back-off: the first restart at once, then
    10 s, doubling up to 5 min, reset once an instance ran 10 min (the kubelet's numbers); meanwhile
    the container is `waiting` with reason CrashLoopBackOff. A restart execve()s the Python monitor
    in the same process (`python -m pyrun.runtime.monitor --restart`), which forks a new init (new
    mount namespace, the same writable layer, the log appended) and execs the C monitor again;
  * runs the probes on their timers: exec in C (a join of the workload's namespaces and cgroups, its
    credentials, capabilities, no_new_privs and seccomp filter), tcpSocket and httpGet from a socket
    made in the pod's network namespace; HTTPS and gRPC probes by a short-lived helper process per
    period (pyrun.runtime.probehelper, forked into the pod's network namespace);
  * runs postStart after the start (failure kills the container) and preStop on `stop` before the
    SIGTERM, inside the grace period.
"""
from __future__ import annotations

from pyrun.frozen import as_dict
from pyrun.runtime.records import Supervision

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`pod ls` imports this module)
if TYPE_CHECKING:
    from typing import Any, Mapping

PROBE_KINDS = ("liveness", "readiness", "startup")
HOOK_KINDS = ("post_start", "pre_stop")


def plan(restart_policy: str, container: Any, grace_period: float, pod_ip: str | None) -> Supervision | None:
    """The Supervision of one container of a `pyrun pod create` pod (a pyrun.spec ContainerSpec), or None."""
    probes = {kind: _probe_dict(getattr(container, f"{kind}_probe", None)) for kind in PROBE_KINDS}
    probes = {k: v for k, v in probes.items() if v}
    lifecycle = getattr(container, "lifecycle", None)
    hooks = {kind: as_dict(getattr(lifecycle, kind)) for kind in HOOK_KINDS
             if lifecycle is not None and getattr(lifecycle, kind) is not None}
    if restart_policy == "Never" and not probes and not hooks:
        return None
    return Supervision(restart_policy=restart_policy, grace_period=grace_period, pod_ip=pod_ip, probes=probes,
                       hooks=hooks)


def _probe_dict(probe: Any) -> dict | None:
    return as_dict(probe) if probe is not None else None


def _hex(text: str) -> str:
    return text.encode().hex() or "-"


def handler_words(handler: Mapping[str, Any]) -> list[str]:
    """A probe's or hook's action as the C monitor reads it: TYPE and its arguments, strings in hex
    ("-" for an empty one), lists of strings as comma-separated hex."""
    kind = handler["kind"]
    if kind == "exec":
        return ["exec", ",".join(_hex(word) for word in handler["command"])]
    if kind == "tcpSocket":
        return ["tcp", str(handler["port"]), _hex(handler.get("host") or "")]
    if kind == "grpc":
        return ["grpc", str(handler["port"]), _hex(handler.get("service") or "")]
    headers = "".join(f"{name}: {value}\r\n" for name, value in handler.get("headers") or ())
    scheme = "https" if handler.get("scheme") == "HTTPS" else "http"
    return [scheme, str(handler["port"]), _hex(handler.get("host") or ""), _hex(handler.get("path") or "/"),
            _hex(headers)]


def supervise_argv(sup: Supervision, *, python: str, netns: str | None, cgroup_procs: tuple[str, ...],
                   workdir: str, seccomp_bpf: str | None, state: str | None) -> list[str]:
    """The C monitor's supervision arguments (pure). state: the opaque restart state the C monitor
    handed to the Python monitor at its last restart (None for the first instance)."""
    grace = max(0, int(sup.grace_period))
    argv = ["--restart-policy", sup.restart_policy.lower(), "--grace", str(grace), "--python", python,
            "--netns", netns or "", "--pod-ip", sup.pod_ip or "127.0.0.1",
            "--cgroup-procs", ",".join(_hex(p) for p in cgroup_procs), "--workdir", _hex(workdir or "/"),
            "--seccomp-bpf", seccomp_bpf or ""]
    if state:
        argv += ["--sup-state", state]
    for kind in PROBE_KINDS:
        probe = sup.probes.get(kind)
        if probe:
            numbers = [probe["initial_delay"], probe["period"], probe["timeout"], probe["success_threshold"],
                       probe["failure_threshold"]]
            argv += [f"--probe-{kind}", " ".join([*map(str, numbers), *handler_words(probe["handler"])])]
    for kind in HOOK_KINDS:
        hook = sup.hooks.get(kind)
        if hook:  # a hook: one try, within the grace period
            argv += [f"--hook-{kind.replace('_', '')}",
                     " ".join(["0", "1", str(max(grace, 1)), "1", "1", *handler_words(hook)])]
    return argv
