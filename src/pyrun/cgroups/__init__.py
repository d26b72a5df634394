"""pyrun's cgroups layer: v2, v1 and hybrid hosts, the kubelet's layout, limits that bite.

The runtime needs only this:

    cg = open_cgroups(config)                       # detects the layout once
    pod = cg.pod_path(qos, pod_uid)                 # <parent>/kubepods[/burstable]/pod<uid>
    cg.create(pod, pod_limits(resources_list, qos))
    ctr = cg.container_path(pod, container_id)
    cg.create(ctr, container_limits(resources))
    cg.add_process(ctr, pid)                        # before the child execs
    cg.stats(ctr); cg.oom_killed(ctr); cg.paths(ctr)
    cg.sample(ctr)                                  # usage, counters and limits, for metrics
    cg.remove(ctr); cg.remove(pod)                  # kills what is left first

Modules: names (CgroupPath, pure), limits (kubelet conversions, pure), layout
(mountinfo parsing), cpu / memory / pids / hugetlb (one controller each: pure
render_v1/render_v2 and stats parsing), fs (the side effects), driver (Cgroups).
"""
from pyrun.cgroups.driver import Cgroups, Sample, Stats, open_cgroups
from pyrun.cgroups.layout import Layout, detect_layout, read_host_layout
from pyrun.cgroups.limits import DEFAULT_PIDS_MAX, Limits, container_limits, pod_limits
from pyrun.cgroups.names import CgroupPath

__all__ = ["Cgroups", "CgroupPath", "DEFAULT_PIDS_MAX", "Layout", "Limits", "Sample", "Stats", "container_limits",
           "detect_layout", "open_cgroups", "pod_limits", "read_host_layout"]
