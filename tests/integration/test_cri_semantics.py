"""CRI semantics as containerd 1.6 (with runc) has them, through `pyrun cri serve` on the real kernel:
masked/read-only paths as sent, mount propagation, run_as_group/run_as_username, the seccomp default,
host PID/IPC namespaces and capabilities pyrun itself lacks (issue 16, items 1-6 and 8)."""
from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from pathlib import Path

import grpc
import pytest

from _cri_helpers import container_config, remove_pod, run_pod, running_server, sandbox_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.fixture(scope="module")
def env(demo_layout):
    with running_server(demo_layout, "pyrun-crisem") as e:
        rt, _, pb, ch = e["server"].stubs("v1")
        try:
            yield {"tmp": e["tmp"], "rt": rt, "pb": pb}
        finally:
            ch.close()


def _exec(rt, pb, cid, *cmd):
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


def _linux(pb, **sc):
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**sc))


def _status_field(rt, pb, cid, field: str) -> str:
    out = _exec(rt, pb, cid, "grep", f"^{field}:", "/proc/self/status")[1]
    return out.split(":", 1)[1].strip()


# --- 1. masked_paths / readonly_paths -------------------------------------------------------------

def test_masked_and_readonly_paths_are_the_requests(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "paths", env["tmp"],
                       container_linux=_linux(pb, masked_paths=["/proc/keys"], readonly_paths=["/tmp"]))
    bare_sid, bare_cid = run_pod(rt, pb, "nopaths", env["tmp"])
    try:
        assert _exec(rt, pb, cid, "touch", "/tmp/x")[0] != 0  # /tmp read-only, as asked
        mounts = _exec(rt, pb, cid, "cat", "/proc/mounts")[1]
        assert " /proc/keys " in mounts and " /proc/sys " not in mounts, mounts  # only what was sent
        assert _exec(rt, pb, cid, "sh", "-c", "wc -c < /proc/keys")[1].strip() == "0"
        # no lists in the request: nothing masked (containerd 1.6: the kubelet always sends its lists)
        bare = _exec(rt, pb, bare_cid, "cat", "/proc/mounts")[1]
        assert " /proc/keys " not in bare and " /proc/sys " not in bare
        assert _exec(rt, pb, bare_cid, "touch", "/tmp/x")[0] == 0
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, bare_sid)


# --- 2. mount propagation -------------------------------------------------------------------------

def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def shared_source():
    """A tmpfs made a shared mount (as containerd requires of a propagating volume's source); every
    mount at or under it is removed on the way out."""
    from pyrun.linux.mounts import mounts_under
    base = Path(f"/tmp/pyrun-crisem-prop-{secrets.token_hex(3)}")
    src = base / "src"
    src.mkdir(parents=True)
    try:
        _mount("-t", "tmpfs", "crisem-src", str(src))
        _mount("--make-shared", str(src))
        yield src
    finally:
        for _ in range(4):
            for point in mounts_under(src):
                subprocess.run(["umount", "-l", point], capture_output=True)
        left = mounts_under(base)
        subprocess.run(["rm", "-rf", str(base)], capture_output=True)
        assert not left, left


def _with_mount(pb, name, tmp, host_path, propagation, privileged=False):
    """(sandbox config, container config) for a container `main` with host_path at /vol."""
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(privileged=privileged))
    cfg = sandbox_config(pb, name, tmp, linux=linux)
    cc = container_config(pb, "main", ["sleep", "1000"], linux=_linux(pb, privileged=privileged),
                          mounts=[pb.Mount(container_path="/vol", host_path=str(host_path), propagation=propagation)])
    return cfg, cc


def _run(rt, pb, cfg, cc) -> tuple[str, str]:
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    try:
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=cfg,
                                                           config=cc)).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    except BaseException:
        remove_pod(rt, pb, sid)
        raise
    return sid, cid


def test_host_to_container_shows_host_mounts_inside(env):
    rt, pb = env["rt"], env["pb"]
    with shared_source() as src:
        sid, cid = _run(rt, pb, *_with_mount(pb, "rslave", env["tmp"], src, pb.PROPAGATION_HOST_TO_CONTAINER))
        try:
            (src / "later").mkdir()
            _mount("-t", "tmpfs", "crisem-later", str(src / "later"))
            (src / "later" / "hello").write_text("from the host\n")
            assert _exec(rt, pb, cid, "cat", "/vol/later/hello") == (0, "from the host\n", "")
            # nothing of the container's reaches the host (rslave), and its other mounts stay private
            assert _exec(rt, pb, cid, "grep", "-c", "crisem-later", "/proc/mounts")[1].strip() == "1"
        finally:
            remove_pod(rt, pb, sid)


def test_bidirectional_shows_container_mounts_on_the_host(env):
    rt, pb = env["rt"], env["pb"]
    with shared_source() as src:
        sid, cid = _run(rt, pb, *_with_mount(pb, "rshared", env["tmp"], src, pb.PROPAGATION_BIDIRECTIONAL,
                                             privileged=True))
        try:
            code, _, err = _exec(rt, pb, cid, "sh", "-c",
                                 "mkdir /vol/inner && mount -t tmpfs crisem-inner /vol/inner && echo hi > /vol/inner/f")
            assert code == 0, err
            assert (src / "inner" / "f").read_text() == "hi\n"  # the container's mount, on the host
            (src / "back").mkdir()
            _mount("-t", "tmpfs", "crisem-back", str(src / "back"))
            assert _exec(rt, pb, cid, "grep", "-c", "crisem-back", "/proc/mounts")[1].strip() == "1"
            # the container's own rootfs mounts never reach the host
            with open("/proc/self/mountinfo") as f:
                host = f.read()
            assert "crisem-inner" in host and f"/containers/{cid}" not in host
        finally:
            remove_pod(rt, pb, sid)


def test_propagation_from_a_private_mount_is_refused_clearly(env):
    rt, pb = env["rt"], env["pb"]
    plain = env["tmp"] / "plain-dir"
    plain.mkdir(exist_ok=True)
    cfg, cc = _with_mount(pb, "refused", env["tmp"], plain, pb.PROPAGATION_HOST_TO_CONTAINER)
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    try:
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=cfg, config=cc))
        assert "not a shared or slave mount" in e.value.details() and "mount --make-shared" in e.value.details()
        assert not rt.ListContainers(pb.ListContainersRequest()).containers or all(
            c.pod_sandbox_id != sid for c in rt.ListContainers(pb.ListContainersRequest()).containers)
    finally:
        remove_pod(rt, pb, sid)


# --- 3, 4. run_as_group without a user; run_as_username -------------------------------------------

def test_run_as_group_without_a_user_is_invalid_argument(env):
    rt, pb = env["rt"], env["pb"]
    cfg = sandbox_config(pb, "grouponly", env["tmp"])
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    try:
        cc = container_config(pb, "main", ["true"], linux=_linux(pb, run_as_group=pb.Int64Value(value=5)))
        with pytest.raises(grpc.RpcError) as e:
            rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, sandbox_config=cfg, config=cc))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "user group \"5\" is specified without user" in e.value.details()
    finally:
        remove_pod(rt, pb, sid)


def test_run_as_username_is_looked_up_in_the_images_passwd(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "byname", env["tmp"], container_linux=_linux(pb, run_as_username="nobody"))
    grp_sid, grp_cid = run_pod(rt, pb, "bynamegroup", env["tmp"], container_linux=_linux(
        pb, run_as_username="nobody", run_as_group=pb.Int64Value(value=7)))
    try:
        assert _exec(rt, pb, cid, "id", "-u")[1] == "65534\n" and _exec(rt, pb, cid, "id", "-g")[1] == "65534\n"
        assert _exec(rt, pb, grp_cid, "id", "-u")[1] == "65534\n" and _exec(rt, pb, grp_cid, "id", "-g")[1] == "7\n"
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, grp_sid)


# --- 5. seccomp: Unconfined unless asked --------------------------------------------------------

def test_no_seccomp_profile_is_unconfined_and_runtime_default_filters(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "noseccomp", env["tmp"])
    default = _linux(pb, seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    rd_sid, rd_cid = run_pod(rt, pb, "rdseccomp", env["tmp"], container_linux=default)
    try:
        assert _status_field(rt, pb, cid, "Seccomp") == "0"
        assert _status_field(rt, pb, rd_cid, "Seccomp") == "2"
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, rd_sid)


# --- 6. host PID and host IPC ---------------------------------------------------------------------

def test_host_pid_and_ipc_namespaces(env):
    rt, pb = env["rt"], env["pb"]
    ns = pb.NamespaceOption(pid=pb.NODE, ipc=pb.NODE)
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns))
    naptime = str(100000 + secrets.randbelow(800000))  # tells our workload from the node's other sleeps
    sid, cid = run_pod(rt, pb, "hostns", env["tmp"], command=("sleep", naptime), linux=linux)
    plain_sid, plain_cid = run_pod(rt, pb, "podns", env["tmp"])
    try:
        for kind in ("pid", "ipc"):
            mine = os.readlink(f"/proc/self/ns/{kind}")
            assert _exec(rt, pb, cid, "readlink", f"/proc/self/ns/{kind}")[1].strip() == mine
            assert _exec(rt, pb, plain_cid, "readlink", f"/proc/self/ns/{kind}")[1].strip() != mine
        assert _exec(rt, pb, cid, "test", "-d", f"/proc/{os.getpid()}")[0] == 0  # sees the node's processes
        # the node's /dev/shm, as containerd mounts it
        marker = Path("/dev/shm") / f"pyrun-crisem-{secrets.token_hex(3)}"
        marker.write_text("shm")
        try:
            assert _exec(rt, pb, cid, "cat", f"/dev/shm/{marker.name}") == (0, "shm", "")
        finally:
            marker.unlink()
        status = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        assert status.linux.namespaces.options.pid == pb.NODE and status.linux.namespaces.options.ipc == pb.NODE
        cmdline = f"sleep\0{naptime}\0".encode()
        workload = next(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == cmdline)
        assert _exec(rt, pb, cid, "cat", f"/proc/{workload}/cmdline")[1].encode() == cmdline  # the same pid inside
    finally:
        remove_pod(rt, pb, sid)
        remove_pod(rt, pb, plain_sid)
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        assert Path(f"/proc/{workload}/cmdline").read_bytes() != cmdline  # stopped with its pod


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


# --- 8. capabilities pyrun itself lacks ---------------------------------------------------------

def test_adding_all_capabilities_leaves_out_what_pyrun_lacks(env):
    rt, pb = env["rt"], env["pb"]
    sid, cid = run_pod(rt, pb, "allcaps", env["tmp"],
                       container_linux=_linux(pb, capabilities=pb.Capability(add_capabilities=["ALL"])))
    try:
        with open("/proc/self/status") as f:
            held = next(line.split()[1] for line in f if line.startswith("CapEff:"))
        assert int(_status_field(rt, pb, cid, "CapEff"), 16) == int(held, 16)  # everything pyrun holds
    finally:
        remove_pod(rt, pb, sid)
