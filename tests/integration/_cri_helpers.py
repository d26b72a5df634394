"""A `pyrun cri serve` subprocess on a temp socket, and stubs to drive it."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

DEMO_IMAGE = "pyrun/demo:latest"


def data_root_of(root: Path) -> Path:
    """The data root the tests give a state root: ROOT-data beside it (removed with the test's tmp dir)."""
    return root.with_name(root.name + "-data")


def cli_argv(root: Path, parent: str) -> list[str]:
    return [sys.executable, "-m", "pyrun.cli.main", "--root", str(root), "--data-root", str(data_root_of(root)),
            "--network", "none", "--cgroup-parent", parent]


class CriServer:
    def __init__(self, root: Path, parent: str, sock: Path, log: Path, network: str = "none",
                 wrapper: tuple[str, ...] = (), args: tuple[str, ...] = ()):
        """network: the server's --network; wrapper: a command the server runs under (e.g. `unshare --net`,
        a throwaway node network namespace for --network bridge); args: more `cri serve` options."""
        self.root, self.parent, self.sock, self.log = root, parent, sock, log
        self.network, self.wrapper, self.args = network, wrapper, args
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict | None = None) -> "CriServer":
        argv = [*self.wrapper, sys.executable, "-m", "pyrun.cli.cri", "--root", str(self.root),
                "--network", self.network, "--cgroup-parent", self.parent, "cri", "serve",
                "--listen", f"unix://{self.sock}", "--data-root", str(data_root_of(self.root)), *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 20
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"cri server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stubs(self, api: str = "v1"):
        """(runtime stub, image stub, api_pb2 module, channel) for runtime.<api>."""
        if api == "v1":
            from cri_api.v1 import api_pb2 as pb, api_pb2_grpc as g
        else:
            from cri_api.v1alpha2 import api_pb2 as pb, api_pb2_grpc as g
        channel = grpc.insecure_channel(f"unix://{self.sock}")
        return g.RuntimeServiceStub(channel), g.ImageServiceStub(channel), pb, channel


# --- requests as crictl builds them ---------------------------------------------------------------

def sandbox_config(pb, name: str, tmp: Path, **kw):
    uid = kw.pop("uid", f"uid-{name}")
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="ns", attempt=kw.pop("attempt", 0)),
        hostname=name, log_directory=str(tmp / "logs" / f"ns_{name}_{uid}"),
        labels={"io.kubernetes.pod.uid": uid, "app": name}, annotations={"note": "as sent: ☃"}, **kw)


def container_config(pb, name: str, command: list[str], image: str = DEMO_IMAGE, **kw):
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name, attempt=0), image=pb.ImageSpec(image=image),
                              command=command, log_path=f"{name}/0.log", labels={"c": name},
                              annotations={"io.kubernetes.container.restartCount": "0"}, **kw)


def run_pod(rt, pb, name, tmp, command=("sleep", "1000"), linux=None, container_linux=None):
    """A sandbox with one started container "main"; `linux`/`container_linux`: the security-bearing
    LinuxPodSandboxConfig / LinuxContainerConfig."""
    cfg = sandbox_config(pb, name, tmp, **({"linux": linux} if linux is not None else {}))
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    cc = container_config(pb, "main", list(command), **({"linux": container_linux} if container_linux else {}))
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=cfg, config=cc)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return sid, cid


def remove_pod(rt, pb, sid):
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))



def cleanup_root(root: Path, parent: str) -> list[str]:
    """Force-remove every pod under root (through the CLI), gc; returns mounts left (should be none)."""
    import json
    ls = subprocess.run(cli_argv(root, parent) + ["pod", "ls", "-o", "json"], capture_output=True, text=True)
    if ls.returncode == 0:
        for p in json.loads(ls.stdout or "[]"):
            subprocess.run(cli_argv(root, parent) + ["pod", "rm", "-f", p["id"]], capture_output=True)
    subprocess.run(cli_argv(root, parent) + ["gc"], capture_output=True)
    from pyrun.linux.mounts import mounts_under
    return list(mounts_under(root)) + list(mounts_under(data_root_of(root)))


def cgroup_dirs(parent: str) -> list[str]:
    """Every directory named like the test parent in any cgroup hierarchy (should vanish at the end)."""
    out = []
    for base in Path("/sys/fs/cgroup").iterdir():
        if (base / parent).exists():
            out.append(str(base / parent))
    unified = Path("/sys/fs/cgroup/unified") / parent
    if unified.exists():
        out.append(str(unified))
    return out


@contextlib.contextmanager
def running_server(demo_layout: Path, prefix: str, **server):
    """A CRI server on a fresh state root (demo image imported) under a fresh cgroup parent.

    On exit: the server is stopped, and the test fails if it left mounts or cgroups, or
    if the server logged a traceback.
    """
    import secrets
    import shutil
    tmp = Path(f"/tmp/{prefix}-{secrets.token_hex(3)}")
    tmp.mkdir()
    root, parent = tmp / "root", f"{prefix}-test-{secrets.token_hex(3)}"
    subprocess.run(cli_argv(root, parent) + ["image", "import", str(demo_layout), DEMO_IMAGE], check=True,
                   capture_output=True)
    server = CriServer(root, parent, tmp / "cri.sock", tmp / "server.log", **server).start()
    try:
        yield {"tmp": tmp, "root": root, "parent": parent, "server": server, "layout": demo_layout}
    finally:
        server.stop()
        left = cleanup_root(root, parent)
        cgroups_left = cgroup_dirs(parent)
        log = (tmp / "server.log").read_text(errors="replace")
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"mounts left: {left}"
        assert not cgroups_left, f"cgroups left: {cgroups_left}"
        assert "Traceback" not in log, log
