"""Merge a container spec with its image config into the process to exec, as kubelet + containerd do.

- argv (containerd, after moby's daemon/commit.go): `command` replaces the image Entrypoint and then the
  image Cmd is ignored; `args` replaces Cmd; an empty list counts as "not set".
- env: containerd's defaults (PATH, HOSTNAME), then the image Env, then the container env; a later value
  replaces an earlier one with the same name in place (order of first appearance is kept).
- $(VAR) in env values sees the container's earlier env vars only (the kubelet expands before the image
  env is known); $(VAR) in command/args sees the container's final env vars.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:  # keep typing out of the import path
    from typing import Any

from pyrun.errors import SpecError
from pyrun.spec.expand import expand
from pyrun.spec.model import ContainerSpec, EnvVar, PodSpec, ProcessSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def field_value(field_path: str, pod: PodSpec, pod_ip: str | None, node_name: str, host_ip: str | None) -> str:
    """The downward-API value of a validated fieldRef path."""
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid or "",
        "spec.nodeName": node_name,
        "spec.serviceAccountName": str(pod.raw.get("spec", {}).get("serviceAccountName") or "default"),
        "status.podIP": pod_ip or "",
        "status.hostIP": host_ip or "",
    }
    if field_path in simple:
        return simple[field_path]
    for prefix, mapping in (("metadata.labels['", pod.labels), ("metadata.annotations['", pod.annotations)):
        if field_path.startswith(prefix) and field_path.endswith("']"):
            return mapping.get(field_path[len(prefix):-2], "")
    raise ValueError(f"unsupported fieldRef {field_path!r}")  # parse_pod refuses these earlier


def container_env(env: Sequence[EnvVar], resolve_field: Callable[[str], str]) -> dict[str, str]:
    """The container's own env, as the kubelet computes it (later duplicates win, $(VAR) sees earlier ones)."""
    values: dict[str, str] = {}
    for var in env:
        if var.field_ref is not None:
            values[var.name] = resolve_field(var.field_ref.field_path)
        else:
            values[var.name] = expand(var.value or "", values)
    return values


def _merge_env(*layers: Mapping[str, str] | Sequence[str]) -> list[str]:
    merged: dict[str, str] = {}
    for layer in layers:
        pairs = layer.items() if isinstance(layer, Mapping) else (e.partition("=")[::2] for e in layer)
        for key, value in pairs:
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _argv(container: ContainerSpec, entrypoint: Sequence[str], cmd: Sequence[str]) -> list[str]:
    command, args = list(container.command or ()), list(container.args or ())
    if command:
        return command + args
    if entrypoint == [""]:
        entrypoint = []  # an explicitly empty Entrypoint (["" ]) means "none", as containerd treats it
    return list(entrypoint) + (args or list(cmd))


def _user(container: ContainerSpec, pod: PodSpec, image_user: str) -> str:
    """The OCI user string: runAsUsername (a CRI request's run_as_username, resolved by name in the
    container's /etc/passwd) wins over runAsUser, as in containerd; runAsGroup replaces the group."""
    def pick(key: str) -> Any:
        for context in (container.security_context, pod.security_context):
            if context.get(key) is not None:
                return context[key]
        return None

    name, uid, gid = container.security_context.get("runAsUsername"), pick("runAsUser"), pick("runAsGroup")
    if not name and uid is None and gid is None:
        return image_user
    user = name or (str(uid) if uid is not None else (image_user.partition(":")[0] or "0"))
    return f"{user}:{gid}" if gid is not None else user


def _strings(config: Mapping[str, Any], key: str) -> list[str]:
    value = config.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def resolve_process(container: ContainerSpec, image_config: Mapping[str, Any] | None, pod: PodSpec,
                    pod_ip: str | None = None, node_name: str = "", host_ip: str | None = None) -> ProcessSpec:
    """The argv, env, cwd and user of `container`, merging the OCI image config ("config" object) like k8s.

    Raises SpecError naming spec.containers[i] when nothing is left to run.
    """
    config = image_config or {}
    own_env = container_env(container.env, lambda f: field_value(f, pod, pod_ip, node_name, host_ip))
    argv = [expand(a, own_env) for a in _argv(container, _strings(config, "Entrypoint"), _strings(config, "Cmd"))]
    if not argv:
        index = next((i for i, c in enumerate(pod.containers) if c.name == container.name), 0)
        raise SpecError([(f"spec.containers[{index}]",
                          "no command: the image has no Entrypoint/Cmd and the container sets none")])
    env = _merge_env({"PATH": DEFAULT_PATH, "HOSTNAME": pod.hostname}, _strings(config, "Env"), own_env)
    cwd = container.working_dir or str(config.get("WorkingDir") or "") or "/"
    return ProcessSpec(args=tuple(argv), env=tuple(env), cwd=cwd,
                       user=_user(container, pod, str(config.get("User") or "")))
