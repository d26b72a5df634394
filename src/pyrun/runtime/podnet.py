"""The runtime's seam to pod networking (placeholder until pyrun.netns lands)."""
from __future__ import annotations

from pathlib import Path

from pyrun.runtime import linux


def attach(cfg, pod, spec):
    return None


def detach(cfg, pod) -> None:
    return None


def write_etc_files(etc_dir: Path, pod: dict, spec) -> None:
    etc_dir.mkdir(exist_ok=True)
    ip = (pod.get("network") or {}).get("ip")
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if ip:
        hosts += f"{ip}\t{spec.hostname}\n"
    else:
        hosts += f"127.0.1.1\t{spec.hostname}\n"
    linux.write_file(str(etc_dir / "hostname"), spec.hostname + "\n", quiet=True)
    linux.write_file(str(etc_dir / "hosts"), hosts, quiet=True)
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    linux.write_file(str(etc_dir / "resolv.conf"), resolv, quiet=True)


def gc(cfg, live_pod_ids: set[str]):
    return []
