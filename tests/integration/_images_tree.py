"""Describe a directory tree file by file (type, mode, owner, content digest, link target, device),
and look at an image's layers through a real overlay mount in a private mount namespace."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DESCRIBE = r'''
import hashlib, json, os, stat, sys
def describe(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            d = {"mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                d.update(type="file", sha256=h.hexdigest())
            elif stat.S_ISDIR(st.st_mode):
                d["type"] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                d.update(type="symlink", target=os.readlink(p))
                del d["mode"]
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                d.update(type="chr" if stat.S_ISCHR(st.st_mode) else "blk", rdev=[os.major(st.st_rdev), os.minor(st.st_rdev)])
            elif stat.S_ISFIFO(st.st_mode):
                d["type"] = "fifo"
            else:
                d["type"] = "other"
            out[rel] = d
    return out
'''

OVERLAY_WALK = DESCRIBE + r'''
from pyrun.linux import syscalls as linux
from pyrun.images.overlay import compact_mount_data
from pathlib import Path
lower = [Path(p) for p in json.loads(sys.argv[1])]
target = sys.argv[2]
linux.make_private("/")
data, cwd = compact_mount_data(lower)
if cwd:
    os.chdir(cwd)
linux.mount("overlay", target, "overlay", os.MS_RDONLY if hasattr(os, "MS_RDONLY") else 1, data)
try:
    print(json.dumps(describe(target)))
finally:
    linux.umount(target)
'''


def describe(root: Path) -> dict:
    ns: dict = {}
    exec(DESCRIBE, ns)
    return ns["describe"](str(root))


def overlay_tree(layer_dirs: list[Path], target: Path) -> dict:
    """What a container sees: mount the layers (top first) read-only in a private mount namespace, walk."""
    target.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", OVERLAY_WALK,
                        json.dumps([str(d) for d in layer_dirs]), str(target)], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr[-3000:])
    return json.loads(p.stdout)


def diff_trees(a: dict, b: dict) -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {a.get(k)} != {b.get(k)}")
    return out


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True,
                   capture_output=True)
    return bundle / "rootfs"
