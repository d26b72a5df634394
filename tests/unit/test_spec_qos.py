"""QoS classes as Kubernetes ComputePodQOS decides them (only cpu and memory count)."""
from __future__ import annotations

import pytest

from _spec_helpers import container, manifest, ok
from pyrun.spec.qos import qos_class


def res(requests=None, limits=None):
    out = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


FULL = res(limits={"cpu": "1", "memory": "1Gi"})


@pytest.mark.parametrize("resources, expected", [
    ([{}], "BestEffort"),
    ([{}, {}], "BestEffort"),
    ([res(requests={"cpu": "0", "memory": "0"})], "BestEffort"),              # zero values do not count
    ([FULL], "Guaranteed"),                                                     # requests default to limits
    ([res(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([res(requests={"cpu": "1000m", "memory": "1024Mi"}, limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([FULL, FULL], "Guaranteed"),
    ([FULL, {}], "Burstable"),                                                  # every container needs limits
    ([res(requests={"cpu": "500m"}, limits={"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([res(limits={"cpu": "1"})], "Burstable"),                                  # memory limit missing
    ([res(limits={"memory": "1Gi"})], "Burstable"),
    ([res(requests={"cpu": "100m"})], "Burstable"),
    ([res(requests={"memory": "1Mi"})], "Burstable"),
    ([res(requests={"cpu": "0"}, limits={"cpu": "1", "memory": "1Gi"})], "Burstable"),  # 0 request ≠ limit
    ([res(limits={"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "2Mi"})], "Guaranteed"),  # hugepages ignored
    ([res(limits={"hugepages-2Mi": "2Mi", "cpu": "1"})], "Burstable"),
    ([res(limits={"ephemeral-storage": "1Gi"})], "BestEffort"),                 # ignored resources do not count
])
def test_qos_table(resources, expected):
    containers = [container(f"c{i}", resources=r) for i, r in enumerate(resources)]
    assert qos_class(ok(manifest(*containers)).pod) == expected
