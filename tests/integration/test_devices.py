"""Device access on the real kernel (v1 devices cgroup here, an eBPF program on pure cgroup v2).

An image can ship a node of any host device (block 7:0 = loop0, c 10:200 = /dev/net/tun,
c 4:1 = tty1, block 253:0); a default container must not open it, nor one it makes with
mknod, while /dev/null, zero, urandom, tty, ptmx and pts keep working. A privileged
container opens everything; a device asked for through the CRI is made and can be opened.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import uuid
from pathlib import Path

import pytest

from _cri_helpers import CriServer, container_config, sandbox_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

REPO = Path(__file__).resolve().parents[2]
IMAGE = "pyrun/devices:test"
# image path -> (block?, major, minor): real host devices, 0666 in the image
SHIPPED = {"devs/loop0": (True, 7, 0), "devs/tun": (False, 10, 200), "devs/tty1": (False, 4, 1),
           "devs/blk253": (True, 253, 0)}
EPERM = "Operation not permitted"


def _demo_builder():
    spec = importlib.util.spec_from_file_location("build_demo_image", REPO / "scripts" / "build-demo-image.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def device_image(state_root, cgroup_parent, tmp_path_factory):
    """The demo image plus a layer with device nodes of real host devices."""
    from conftest import Pyrun
    from pyrun.images.build import LayerBuilder, write_layout
    demo = _demo_builder()
    devs = LayerBuilder().dir("devs")
    for path, (block, major, minor) in SHIPPED.items():
        devs.device(path, not block, major, minor, 0o666)
    out = tmp_path_factory.mktemp("devices-image") / "layout"
    write_layout(out, [demo.base_layer(demo.BUSYBOX), demo.top_layer(), devs.tar_bytes()],
                 {"Cmd": ["sh"], "Env": [demo.PATH_ENV]}, ref_name=IMAGE, architecture=demo.ARCH)
    Pyrun(state_root, cgroup_parent)("image", "import", str(out), IMAGE)
    return IMAGE


def sh(pyrun, pod, script):
    return pyrun("exec", pod, "c", "--", "sh", "-c", script, check=False)


def opens(pyrun, pod, path, mode="<"):
    """Open `path` (read, or read-write with mode "<>") and close it; the shell's error text, or ""."""
    p = sh(pyrun, pod, f": {mode} {shlex.quote(path)}")
    return "" if p.returncode == 0 else (p.stderr + p.stdout).strip()


def make(pyrun, write_pod, name, image, security=None):
    c = {"name": "c", "image": image, "command": ["sleep", "1000"]}
    if security:
        c["securityContext"] = security
    pyrun("pod", "create", write_pod(name, [c]))


def test_default_container_cannot_open_image_shipped_host_devices(pyrun, write_pod, device_image):
    make(pyrun, write_pod, "dev-default", device_image)
    for path in SHIPPED:
        assert EPERM in opens(pyrun, "dev-default", "/" + path), path
        assert EPERM in opens(pyrun, "dev-default", "/" + path, "<>"), path


def test_nobody_without_capabilities_cannot_open_them(pyrun, write_pod, device_image):
    """The issue's reproducer: uid 65534, no capabilities, no_new_privs; the nodes are 0666."""
    make(pyrun, write_pod, "dev-nobody", device_image,
         {"runAsUser": 65534, "runAsGroup": 65534, "capabilities": {"drop": ["ALL"]},
          "allowPrivilegeEscalation": False})
    assert sh(pyrun, "dev-nobody", "id -u").stdout.strip() == "65534"
    for path in SHIPPED:
        assert EPERM in opens(pyrun, "dev-nobody", "/" + path, "<>"), path


def test_mknod_works_but_the_node_cannot_be_opened(pyrun, write_pod, device_image):
    make(pyrun, write_pod, "dev-mknod", device_image)
    p = sh(pyrun, "dev-mknod", "mknod /tmp/tty1 c 4 1 && mknod /tmp/loop0 b 7 0 && mknod /tmp/null c 1 3 && ls -l /tmp")
    assert p.returncode == 0, p.stderr
    assert EPERM in opens(pyrun, "dev-mknod", "/tmp/tty1", "<>")
    assert EPERM in opens(pyrun, "dev-mknod", "/tmp/loop0")
    assert opens(pyrun, "dev-mknod", "/tmp/null", "<>") == ""  # c 1:3 is allowed wherever its node is


def test_default_devices_still_work(pyrun, write_pod, device_image):
    make(pyrun, write_pod, "dev-ok", device_image)
    p = sh(pyrun, "dev-ok", "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c"
                            " && head -c 2 /dev/random | wc -c && : <> /dev/full")
    assert (p.returncode, p.stdout.split()) == (0, ["3", "5", "2"]), p.stderr
    # /dev/tty: allowed by the cgroup; without a controlling terminal the kernel says ENXIO, not EPERM
    tty = opens(pyrun, "dev-ok", "/dev/tty", "<>")
    assert EPERM not in tty
    # ptmx hands out a pts; opening the (still locked) pts passes the device check and fails with EIO
    p = sh(pyrun, "dev-ok", "exec 3<>/dev/ptmx && ls /dev/pts && : <> /dev/pts/0")
    assert EPERM not in p.stderr and "0" in p.stdout.split(), (p.stdout, p.stderr)


def test_privileged_container_can_open_them(pyrun, write_pod, device_image):
    make(pyrun, write_pod, "dev-priv", device_image, {"privileged": True})
    for path, mode, host in (("/devs/loop0", "<", "/dev/loop0"), ("/devs/tun", "<>", "/dev/net/tun"),
                             ("/devs/blk253", "<", None)):
        error = opens(pyrun, "dev-priv", path, mode)
        assert EPERM not in error, path  # the device cgroup lets it through; the driver may still refuse
        if host and os.path.exists(host):
            assert error == "", path  # the host has the driver: it really opens
    p = sh(pyrun, "dev-priv", "mknod /tmp/tun c 10 200 && : <> /tmp/tun")
    assert EPERM not in p.stderr


def test_explain_shows_the_device_rules(pyrun, write_pod, device_image, cgroup_parent):
    c = {"name": "c", "image": device_image, "command": ["sleep", "1000"]}
    p = pyrun("--explain", "pod", "create", write_pod("dev-explain", [c]))
    text = p.stderr
    assert "devices.deny" in text or "BPF_CGROUP_DEVICE" in text, text[-3000:]
    assert "c 1:3 rwm" in text


# --- a device asked for through the CRI ------------------------------------------------------------

@pytest.fixture
def cri(state_root, cgroup_parent, tmp_path, device_image):
    server = CriServer(state_root, cgroup_parent, tmp_path / "cri.sock", tmp_path / "cri.log").start()
    runtime, _images, pb, channel = server.stubs()
    try:
        yield runtime, pb
    finally:
        channel.close()
        server.stop()


@pytest.mark.skipif(not (os.path.exists("/dev/net/tun") and os.path.exists("/dev/loop0")),
                    reason="needs /dev/net/tun and /dev/loop0 on the host")
def test_cri_requested_device_is_made_and_allowed(cri, tmp_path):
    runtime, pb = cri
    cfg = sandbox_config(pb, "dev-cri", tmp_path, uid=uuid.uuid4().hex)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    try:
        config = container_config(
            pb, "c", ["sleep", "1000"], image=IMAGE,
            devices=[pb.Device(host_path="/dev/net/tun", container_path="/dev/net/tun", permissions="rw"),
                     pb.Device(host_path="/dev/loop0", container_path="/dev/myloop", permissions="r")])
        cid = runtime.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config,
                                                                sandbox_config=cfg)).container_id
        runtime.StartContainer(pb.StartContainerRequest(container_id=cid))

        def run(script):
            r = runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=30))
            return r.exit_code, (r.stdout + r.stderr).decode()

        code, out = run("ls -ln /dev/net/tun /dev/myloop")
        assert code == 0 and "10, 200" in out and "7,   0" in out.replace("7, 0", "7,   0"), out
        assert run(": <> /dev/net/tun") == (0, "")
        assert run(": < /dev/myloop") == (0, "")
        code, out = run(": <> /dev/myloop")  # asked for read only
        assert code != 0 and EPERM in out
        code, out = run(": < /devs/tty1")  # not asked for
        assert code != 0 and EPERM in out
    finally:
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
