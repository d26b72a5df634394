"""Pod volumes: emptyDir (a directory, or a tmpfs for medium: Memory) and hostPath.

Sources are prepared on the host under the pod directory; each container's init
bind-mounts them at their mountPath inside its own mount namespace.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pyrun.errors import PyrunError, SpecError
from pyrun.linux import syscalls as linux
from pyrun.runtime.records import MountSpec

_HOSTPATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a regular file"),
    "Socket": (stat.S_ISSOCK, "a socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def prepare_volumes(pod_dir: Path, volumes) -> dict[str, str]:
    """Create every volume's source; returns volume name -> host path."""
    out: dict[str, str] = {}
    for i, vol in enumerate(volumes):
        if vol.kind == "emptyDir":
            path = pod_dir / "volumes" / vol.name
            linux.mkdir(str(path), 0o777)
            os.chmod(path, 0o777)  # like the kubelet: writable by any container user
            if vol.medium == "Memory":
                size = f",size={vol.size_limit}" if vol.size_limit else ""
                linux.mount("tmpfs", str(path), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"mode=1777{size}")
            out[vol.name] = str(path)
        elif vol.kind == "hostPath":
            out[vol.name] = prepare_host_path(vol.host_path, vol.host_path_type, f"spec.volumes[{i}].hostPath")
        else:  # the spec layer refuses other kinds; this guards the seam
            raise SpecError([(f"spec.volumes[{i}]", f"volume type {vol.kind!r} is not supported")])
    return out


def prepare_host_path(path: str, type_: str, field: str) -> str:
    """Apply hostPath `type` semantics (create or check), as the kubelet does."""
    if type_ == "DirectoryOrCreate":
        if not os.path.exists(path):
            linux.mkdir(path, 0o755)
        type_ = "Directory"
    elif type_ == "FileOrCreate":
        if not os.path.exists(path):
            linux.mkdir(os.path.dirname(path) or "/")
            linux.write_file(path, b"", mode=0o644)
        type_ = "File"
    if not type_:
        if not os.path.exists(path):
            raise SpecError([(f"{field}.path", f"{path} does not exist on the node")])
        return path
    check, what = _HOSTPATH_CHECKS[type_]
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SpecError([(f"{field}.path", f"{path} does not exist on the node (type {type_})")]) from None
    if not check(mode):
        raise SpecError([(f"{field}.path", f"{path} is not {what} (type {type_})")])
    return path


PROPAGATION_OF = {"None": "", "HostToContainer": "rslave", "Bidirectional": "rshared"}  # -> MountSpec's


def mount_list(container, sources: dict[str, str], etc_dir: Path, host_network: bool = False,
               host_ipc: bool = False) -> list[dict]:
    """The bind mounts an init makes: the pod's /etc files, the node's /dev/shm for a hostIPC pod (as
    containerd), then the container's volumeMounts."""
    mounts = [{"source": str(etc_dir / "hosts"), "destination": "/etc/hosts", "readonly": False},
              {"source": str(etc_dir / "resolv.conf"), "destination": "/etc/resolv.conf", "readonly": False}]
    if not host_network:
        mounts.insert(0, {"source": str(etc_dir / "hostname"), "destination": "/etc/hostname", "readonly": False})
    if host_ipc:
        mounts.append({"source": "/dev/shm", "destination": "/dev/shm", "readonly": False})
    for vm in container.volume_mounts:
        source = sources[vm.name]
        if vm.sub_path:
            source = _sub_path(source, vm.sub_path)
        mounts.append({"source": source, "destination": vm.mount_path, "readonly": bool(vm.read_only),
                       "propagation": PROPAGATION_OF[vm.mount_propagation]})
    return mounts


def propagation_problems(mounts, rootfs_target: str, mountinfo_text: str) -> list[str]:
    """Why the mounts' propagation cannot work on this node (pure), as containerd checks it: an rshared
    (Bidirectional) source must be on a shared mount, an rslave (HostToContainer) one on a shared or
    slave mount; and an rshared source must not be on the mount the rootfs is made on (that one is made
    private in the container, see pyrun.runtime.rootfs)."""
    from pyrun.linux.mounts import propagation_at
    out = []
    rootfs_mount = propagation_at(rootfs_target, mountinfo_text)[0]
    for m in mounts:
        if not m.propagation:
            continue
        point, tags = propagation_at(m.source, mountinfo_text)
        fix = f"make it so with `mount --make-shared {point}` (or bind-mount the directory on itself first)"
        if m.propagation == "rshared" and "shared" not in tags:
            out.append(f"mount {m.destination}: {m.source} is on {point}, which is not a shared mount; "
                       f"Bidirectional propagation needs one: {fix}")
        elif m.propagation == "rslave" and not tags & {"shared", "master"}:
            out.append(f"mount {m.destination}: {m.source} is on {point}, which is not a shared or slave mount; "
                       f"HostToContainer propagation needs one: {fix}")
        elif m.propagation == "rshared" and point == rootfs_mount:
            out.append(f"mount {m.destination}: {m.source} is on {point}, the mount pyrun's state root is on "
                       "(made private in the container); Bidirectional propagation needs the source on a mount "
                       "of its own")
    return out


def check_propagation(mounts, rootfs_target: str, mountinfo: str = "/proc/self/mountinfo") -> None:
    """PyrunError naming every mount whose propagation cannot work (propagation_problems)."""
    mounts = [m if isinstance(m, MountSpec) else MountSpec.from_dict(m) for m in mounts]
    if not any(m.propagation for m in mounts):
        return
    with open(mountinfo) as f:
        problems = propagation_problems(mounts, os.path.realpath(rootfs_target), f.read())
    if problems:
        raise PyrunError("; ".join(problems))


def _sub_path(base: str, sub: str) -> str:
    from pyrun.runtime.rootfs import secure_join
    target = secure_join(base, sub)
    if not os.path.exists(target):
        linux.mkdir(target, 0o777)
    if not target.startswith(os.path.abspath(base)):
        raise PyrunError(f"subPath {sub!r} leaves its volume")
    return target
