"""Where pyrun keeps things. Every side-effecting component takes its root from here,
so tests point the whole runtime at a temporary directory with `--root`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path("/run/pyrun")
DEFAULT_CGROUP_PARENT = "pyrun"


@dataclass(frozen=True)
class Config:
    root: Path = DEFAULT_ROOT
    cgroup_parent: str = DEFAULT_CGROUP_PARENT
    cgroup_root: Path = Path("/sys/fs/cgroup")
    explain: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None, **kw) -> "Config":
        root = root or os.environ.get("PYRUN_ROOT") or DEFAULT_ROOT
        parent = kw.pop("cgroup_parent", None) or os.environ.get("PYRUN_CGROUP_PARENT") or DEFAULT_CGROUP_PARENT
        return cls(root=Path(root).absolute(), cgroup_parent=parent, **kw)

    @property
    def image_root(self) -> Path:
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
