"""The hugetlb controller: a cap on huge pages per page size.

Kernel docs: Documentation/admin-guide/cgroup-v2.rst ("HugeTLB"), cgroup-v1/hugetlb.rst.
Size names are the kernel's: "2MB", "1GB" (resources hugepages-2Mi / hugepages-1Gi).

- v2: hugetlb.<size>.max limits pages at *fault* time (a task touching a page
  over the limit gets SIGBUS); hugetlb.<size>.rsvd.max (kernel >= 5.7) limits
  *reservations*, so mmap() itself fails with ENOMEM. Like runc, pyrun sets both
  to the same value, the rsvd file only where it exists.
- v1: hugetlb.<size>.limit_in_bytes and hugetlb.<size>.rsvd.limit_in_bytes.
- Usage: hugetlb.<size>.current (v2) / hugetlb.<size>.usage_in_bytes (v1).

On hybrid hosts (this VM) hugetlb is often bound to the cgroup2 hierarchy
(/sys/fs/cgroup/unified) only, so a task must also join that cgroup to be limited.
"""
from __future__ import annotations

from pyrun.cgroups.cpu import Reader
from pyrun.cgroups.limits import HUGEPAGE_RESOURCES, Limits

CONTROLLER = "hugetlb"
SIZES = tuple(HUGEPAGE_RESOURCES.values())
OPTIONAL_FILES = frozenset({f"hugetlb.{s}.rsvd.max" for s in SIZES} |
                           {f"hugetlb.{s}.rsvd.limit_in_bytes" for s in SIZES})


def render_v2(limits: Limits) -> dict[str, str]:
    files: dict[str, str] = {}
    for size, value in sorted(limits.hugetlb.items()):
        files[f"hugetlb.{size}.max"] = str(value)
        files[f"hugetlb.{size}.rsvd.max"] = str(value)
    return files


def render_v1(limits: Limits) -> dict[str, str]:
    files: dict[str, str] = {}
    for size, value in sorted(limits.hugetlb.items()):
        files[f"hugetlb.{size}.limit_in_bytes"] = str(value)
        files[f"hugetlb.{size}.rsvd.limit_in_bytes"] = str(value)
    return files


def _usage(read: Reader, suffix: str) -> dict[str, int]:
    out = {}
    for size in SIZES:
        text = (read(f"hugetlb.{size}.{suffix}") or "").strip()
        if text.isdigit():
            out[size] = int(text)
    return out


def stats_v2(read: Reader) -> dict[str, dict[str, int]]:
    return {"hugetlb_usage": _usage(read, "current")}


def stats_v1(read: Reader) -> dict[str, dict[str, int]]:
    return {"hugetlb_usage": _usage(read, "usage_in_bytes")}
