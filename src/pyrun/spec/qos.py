"""Pod QoS class, computed as Kubernetes ComputePodQOS (pkg/apis/core/v1/helper/qos/qos.go)."""
from __future__ import annotations

from pyrun.spec.model import PodSpec

_QOS_RESOURCES = ("cpu", "memory")


def qos_class(pod: PodSpec) -> str:
    """"Guaranteed", "Burstable" or "BestEffort". Only cpu and memory count; zero values are ignored.

    Guaranteed: every container has non-zero cpu AND memory limits, and the pod's summed requests
    equal its summed limits for the same set of resources. BestEffort: no non-zero request or limit at all.
    """
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for container in pod.containers:
        for name in _QOS_RESOURCES:
            request = container.resources.requests.get(name, 0)
            if request > 0:
                requests[name] = requests.get(name, 0) + request
            limit = container.resources.limits.get(name, 0)
            if limit > 0:
                limits[name] = limits.get(name, 0) + limit
        if not all(container.resources.limits.get(n, 0) > 0 for n in _QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"
