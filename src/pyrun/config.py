"""Where pyrun keeps things. Every side-effecting component takes its roots from here,
so tests point the whole runtime at temporary directories with `--root` and `--data-root`.

Two roots, as containerd (`--state`/`--root`) and podman (runroot/graphroot) have:

  root       runtime state that dies with the machine: pod and container records, pids,
             pinned namespaces, locks, sockets, rootfs mount points. Default /run/pyrun (tmpfs).
  data_root  what must survive a reboot: the image store and the containers' writable
             layers (overlay upper/work). Default /var/lib/pyrun.

A non-default root without an explicit data root is a separate pyrun instance (a test,
a lab, a second runtime beside the system one): its data root is `<root>/data`, so it
never shares, lists or garbage-collects the writable layers of another instance, and
removing the root removes everything it made. A data root serves exactly one state root
(pyrun.runtime.storage enforces it with a marker file).
"""
from __future__ import annotations

import os
from pathlib import Path

from pyrun.frozen import Frozen, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a CLI command's start-up)
if TYPE_CHECKING:
    from typing import Any, Mapping

DEFAULT_ROOT = Path("/run/pyrun")
DEFAULT_DATA_ROOT = Path("/var/lib/pyrun")
DEFAULT_CGROUP_PARENT = "pyrun"


def default_data_root(root: Path) -> Path:
    """The data root of a state root when none is given (pure): /var/lib/pyrun for the
    default state root, `<root>/data` for any other."""
    return DEFAULT_DATA_ROOT if Path(root) == DEFAULT_ROOT else Path(root) / "data"


class Config(Frozen):
    root: Path = DEFAULT_ROOT
    cgroup_parent: str = DEFAULT_CGROUP_PARENT
    cgroup_root: Path = Path("/sys/fs/cgroup")
    explain: bool = False
    data_root: Path | None = None  # None: default_data_root(root)
    # Node settings (were the `extra` grab-bag); None means the documented default.
    network_mode: str = "bridge"                # --network: "bridge" (a veth per pod), "cni" (the CNI plugins)
                                                # or "none" (loopback only)
    network: Mapping[str, Any] = field(default_factory=dict)  # bridge, cidr, mtu, masquerade, state_dir overrides
                                                # (pyrun.netns.settings.NetworkSettings)
    cni: Mapping[str, Any] = field(default_factory=dict)  # --network cni: conf_dir, bin_dirs, timeout
                                                # (pyrun.netns.cni.chain.CniSettings)
    pids_max: int | None = None                 # pids.max of a pod/container without a limit (cgroups default)
    seccomp_default: str | None = None          # profile when none is given: RuntimeDefault (default), Unconfined
    seccomp_profile_root: str | None = None     # Localhost profiles (else $PYRUN_SECCOMP_PROFILE_ROOT, or
                                                # /var/lib/pyrun/seccomp)
    rlimit_nofile: int | str | None = None      # containers' RLIMIT_NOFILE: N or "soft:hard" (default 1048576)
    rlimit_nproc: int | str | None = None       # RLIMIT_NPROC: N or "soft:hard" (default: inherited)

    @property
    def pod_network(self) -> bool:
        """Whether pods get a network of their own (a veth on the node bridge)."""
        return self.network_mode != "none"

    def __post_init__(self) -> None:
        data_root = default_data_root(self.root) if self.data_root is None else Path(self.data_root)
        object.__setattr__(self, "data_root", data_root)

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
                 **kw) -> "Config":
        root = Path(root or os.environ.get("PYRUN_ROOT") or DEFAULT_ROOT).absolute()
        data_root = data_root or os.environ.get("PYRUN_DATA_ROOT") or None
        parent = kw.pop("cgroup_parent", None) or os.environ.get("PYRUN_CGROUP_PARENT") or DEFAULT_CGROUP_PARENT
        return cls(root=root, data_root=Path(data_root).absolute() if data_root else None,
                   cgroup_parent=parent, **kw)

    @property
    def image_root(self) -> Path:
        return self.data_root / "images"

    @property
    def writable_dir(self) -> Path:
        """Parent of the containers' writable layers: <data_root>/containers/<id>/{upper,work}."""
        return self.data_root / "containers"

    @property
    def legacy_image_root(self) -> Path:
        """Where images lived before the data root existed (migrated by pyrun.runtime.storage)."""
        return self.root / "images"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def network_dir(self) -> Path:
        return self.root / "network"


def setup_logging(level: str) -> None:
    """The servers' (`cri serve`, `metrics serve`) log: the "pyrun" loggers to stderr at `level`."""
    import logging
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pyrun")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
