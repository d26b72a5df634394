"""The runtime's seam to pyrun.cgroups (placeholder until the cgroups layer lands)."""
from __future__ import annotations


def create_pod_cgroup(cfg, pod, spec):
    return None


def create_container_cgroup(cfg, pod, container, cid):
    return None


def procs_files(cfg, cg) -> list[str]:
    return []


def oom_events_file(cfg, cg):
    return None


def kill_cgroup(cfg, cg) -> None:
    return None


def remove_cgroup(cfg, cg) -> None:
    return None


def describe(cfg, cg):
    return cg
