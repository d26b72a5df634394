#!/usr/bin/env python3
"""Time the CRI server's pod lifecycle RPCs over N pods; write benchmarks/results/cri.md.

    sudo .venv/bin/python benchmarks/cri_bench.py [--pods 50] [--out benchmarks/results/cri.md]

Starts `pyrun cri serve` (--network none) on a throwaway state root and cgroup
parent with the demo image, then, like a kubelet starting N pods: RunPodSandbox,
CreateContainer (`sleep 3600`), StartContainer for each pod; ListPodSandbox and
ListContainers with all N pods running; `true` run in the first pod by ExecSync and through
the streaming server (Exec: the RPC, the upgrade, the command, the status), over SPDY with the Go
peer tests/tools/spdyclient (as kubectl through a kubelet) and over WebSocket (as crictl >= 1.30)
with pyrun's own client; then StopContainer (grace 2 s),
StopPodSandbox, RemovePodSandbox for each. Times are client-side wall times of
each RPC over the unix socket. Everything is removed at the end, also on failure.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from _cri_helpers import DEMO_IMAGE, CriServer, cgroup_dirs, cleanup_root, cli_argv  # noqa: E402

OPERATIONS = ("RunPodSandbox", "CreateContainer", "StartContainer", "ListPodSandbox", "ListContainers",
              "ExecSync", "Exec (SPDY)", "Exec (WebSocket)", "StopContainer", "StopPodSandbox", "RemovePodSandbox")
EXECS = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def timed(samples: dict[str, list[float]], name: str, call):
    start = time.perf_counter()
    result = call()
    samples[name].append((time.perf_counter() - start) * 1000)
    return result


def run(server: CriServer, pods: int, tmp: Path) -> dict[str, list[float]]:
    rt, _, pb, channel = server.stubs("v1")
    samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    made = []
    for i in range(pods):
        uid = f"bench-{i}"
        cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=f"bench-{i}", uid=uid, namespace="bench"),
                                  hostname=f"bench-{i}", log_directory=str(tmp / "logs" / uid),
                                  labels={"io.kubernetes.pod.uid": uid})
        sid = timed(samples, "RunPodSandbox", lambda: rt.RunPodSandbox(
            pb.RunPodSandboxRequest(config=cfg), timeout=30).pod_sandbox_id)
        cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="main"), image=pb.ImageSpec(image=DEMO_IMAGE),
                                command=["sleep", "3600"], log_path="main/0.log")
        cid = timed(samples, "CreateContainer", lambda: rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=cc, sandbox_config=cfg), timeout=30).container_id)
        timed(samples, "StartContainer", lambda: rt.StartContainer(pb.StartContainerRequest(container_id=cid),
                                                                   timeout=30))
        made.append((sid, cid))
    for _ in range(20):
        listed = timed(samples, "ListPodSandbox", lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest()).items)
        assert len(listed) >= pods
        timed(samples, "ListContainers", lambda: rt.ListContainers(pb.ListContainersRequest()))
    cid0 = made[0][1]
    for _ in range(EXECS):
        timed(samples, "ExecSync", lambda: rt.ExecSync(pb.ExecSyncRequest(container_id=cid0, cmd=["true"],
                                                                           timeout=10), timeout=30))
        timed(samples, "Exec (SPDY)", lambda: exec_spdy(rt, pb, cid0))
        timed(samples, "Exec (WebSocket)", lambda: exec_websocket(rt, pb, cid0))
    for sid, cid in made:
        timed(samples, "StopContainer", lambda: rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2),
                                                                 timeout=30))
        timed(samples, "StopPodSandbox", lambda: rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid),
                                                                   timeout=30))
        timed(samples, "RemovePodSandbox", lambda: rt.RemovePodSandbox(
            pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=30))
    channel.close()
    return samples


def exec_url(rt, pb, cid: str) -> str:
    return rt.Exec(pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True, stderr=True), timeout=30).url


def exec_spdy(rt, pb, cid: str) -> None:
    from _spdy_helpers import run_spdyclient
    p = run_spdyclient(["exec", "-stdout", "-stderr", exec_url(rt, pb, cid)])
    assert p.returncode == 0, p.stderr


def exec_websocket(rt, pb, cid: str) -> None:
    from urllib.parse import urlsplit

    from pyrun.cri import websocket
    parts = urlsplit(exec_url(rt, pb, cid))
    ws, _ = websocket.connect(parts.hostname, parts.port, parts.path, ("v5.channel.k8s.io",))
    status = b"".join(msg[1:] for _, msg in ws.messages() if msg[:1] == b"\x03")
    assert b"Success" in status, status


def render(samples: dict[str, list[float]], pods: int) -> str:
    lines = [
        "# pyrun CRI benchmark (network: none)", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- kernel: {platform.release()}, python {platform.python_version()}, {os.cpu_count()} cpus",
        f"- pods: {pods} (pause + 1 container `sleep 3600` each), created one after another, all running "
        "while the List calls are timed (20 times each), then stopped and removed",
        "- client-side wall time of each RPC over the unix socket (grpc, runtime.v1)", "",
        "| RPC | n | median (ms) | p90 (ms) | max (ms) |", "|---|---:|---:|---:|---:|",
    ]
    for op in OPERATIONS:
        v = samples[op]
        lines.append(f"| {op} | {len(v)} | {percentile(v, 50):.1f} | {percentile(v, 90):.1f} | {max(v):.1f} |")
    lines += ["", "StopContainer includes the wait until the monitor has recorded the exit; StartContainer is the "
              "monitor releasing an already set-up init. ListPodSandbox/ListContainers read only the JSON records. "
              "Exec (SPDY) includes starting the Go client process (a few ms); both Exec rows start "
              "`python -m pyrun.runtime.nsexec` for the command, as ExecSync does.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=50)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cri.md")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("cri_bench.py needs root")
    tmp = Path(f"/tmp/pyrun-cri-bench-{secrets.token_hex(3)}")
    tmp.mkdir()
    root, parent = tmp / "root", f"pyrun-cri-bench-{secrets.token_hex(3)}"
    server = CriServer(root, parent, tmp / "cri.sock", tmp / "server.log")
    try:
        subprocess.run([sys.executable, str(REPO / "scripts" / "build-demo-image.py"), str(tmp / "layout")],
                       check=True, capture_output=True)
        subprocess.run(cli_argv(root, parent) + ["image", "import", str(tmp / "layout"), DEMO_IMAGE], check=True,
                       capture_output=True)
        server.start()
        samples = run(server, args.pods, tmp)
    finally:
        server.stop()
        left = cleanup_root(root, parent)
        cgroups_left = cgroup_dirs(parent)
        shutil.rmtree(tmp, ignore_errors=True)
    if left or cgroups_left:
        sys.exit(f"left behind: mounts {left}, cgroups {cgroups_left}")
    text = render(samples, args.pods)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
