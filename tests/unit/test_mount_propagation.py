"""Mount propagation checks on the host side (pure): containerd's shared/slave requirements."""
from __future__ import annotations

import pytest

from pyrun.errors import PyrunError
from pyrun.linux.mounts import propagation_at
from pyrun.runtime.records import MountSpec
from pyrun.runtime.volumes import mount_list, propagation_problems

MOUNTINFO = """\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:40 / /srv/shared rw shared:7 - tmpfs tmpfs rw
41 27 0:41 / /srv/slave rw master:7 - tmpfs tmpfs rw
42 27 0:42 / /srv/private rw - tmpfs tmpfs rw
43 27 0:43 / /srv/both rw shared:9 master:7 - tmpfs tmpfs rw
"""


def test_propagation_at_reads_the_optional_fields():
    assert propagation_at("/srv/shared/x/y", MOUNTINFO) == ("/srv/shared", {"shared"})
    assert propagation_at("/srv/slave", MOUNTINFO) == ("/srv/slave", {"master"})
    assert propagation_at("/srv/private/a", MOUNTINFO) == ("/srv/private", set())
    assert propagation_at("/srv/both", MOUNTINFO) == ("/srv/both", {"shared", "master"})
    assert propagation_at("/var/lib", MOUNTINFO) == ("/", {"shared"})


@pytest.mark.parametrize("source, propagation, problem", [
    ("/srv/shared/v", "rshared", None), ("/srv/shared/v", "rslave", None), ("/srv/slave/v", "rslave", None),
    ("/srv/both", "rshared", None),
    ("/srv/slave/v", "rshared", "not a shared mount"), ("/srv/private/v", "rslave", "not a shared or slave mount"),
    ("/srv/private/v", "rshared", "mount --make-shared /srv/private"),
    ("/var/lib/v", "rshared", "the mount pyrun's state root is on"), ("/var/lib/v", "rslave", None),
    ("/srv/private/v", "", None),
])
def test_propagation_problems_as_containerd_checks_them(source, propagation, problem):
    mounts = [MountSpec(source, "/v", propagation=propagation)]
    found = propagation_problems(mounts, "/var/lib/pyrun/containers/c/rootfs", MOUNTINFO)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0] and "mount /v" in found[0], found


def test_mount_list_carries_propagation_and_host_ipc_shm(tmp_path):
    from pyrun.spec.model import ContainerSpec, VolumeMount
    c = ContainerSpec(name="c", image="i", volume_mounts=(VolumeMount("a", "/a", mount_propagation="Bidirectional"),
                                                          VolumeMount("b", "/b", mount_propagation="HostToContainer"),
                                                          VolumeMount("c", "/c")))
    mounts = mount_list(c, {"a": "/s/a", "b": "/s/b", "c": "/s/c"}, tmp_path, host_ipc=True)
    assert [(m["destination"], m.get("propagation")) for m in mounts][-4:] == [
        ("/dev/shm", None), ("/a", "rshared"), ("/b", "rslave"), ("/c", "")]
    assert {"source": "/dev/shm", "destination": "/dev/shm", "readonly": False} in mounts


def test_a_record_with_an_unknown_propagation_is_refused():
    with pytest.raises(PyrunError, match="propagation"):
        MountSpec.from_dict({"source": "/s", "destination": "/d", "propagation": "shared"})
    assert MountSpec.from_dict({"source": "/s", "destination": "/d"}).to_dict() == \
        {"source": "/s", "destination": "/d", "readonly": False}
