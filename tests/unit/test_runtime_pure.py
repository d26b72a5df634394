"""Pure helpers of the runtime: users, mounts, mount rendering, secure joins, messages, faults."""
import os
import socket

import pytest

from pyrun import explain
from pyrun.errors import PyrunError
from pyrun.runtime import faults, sync
from pyrun.linux import syscalls as linux
from pyrun.linux.mounts import mounts_under, unescape
from pyrun.runtime.rootfs import secure_join
from pyrun.runtime.sandbox import namespace_kinds
from pyrun.runtime.users import resolve_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:app,root\n"


@pytest.mark.parametrize("spec,want", [
    ("", (0, 0, (29,), "/root")),
    ("0", (0, 0, (29,), "/root")),
    ("app", (1000, 1000, (10, 29), "/home/app")),
    ("1000:29", (1000, 29, (10,), "/home/app")),
    ("app:wheel", (1000, 10, (29,), "/home/app")),
    ("4242", (4242, 0, (), "/")),
    ("4242:4242", (4242, 4242, (), "/")),
])
def test_resolve_user(spec, want):
    u = resolve_user(spec, PASSWD, GROUP)
    assert (u.uid, u.gid, u.groups, u.home) == want


def test_unknown_user_or_group_names_are_errors():
    with pytest.raises(PyrunError, match="user 'ghost' is not in the container's /etc/passwd"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(PyrunError, match="group 'ghosts'"):
        resolve_user("app:ghosts", PASSWD, GROUP)


def test_mountinfo_unescape_and_mounts_under(tmp_path):
    assert unescape(r"/a\040b\011c\134d") == "/a b\tc\\d"
    info = tmp_path / "mountinfo"
    info.write_text("1 0 8:1 / / rw - ext4 /dev/vda rw\n"
                    "2 1 0:1 / /run/pyrun/pods/x/ns/net rw - nsfs nsfs rw\n"
                    "3 1 0:1 / /run/pyrun/pods/x rw - tmpfs t rw\n"
                    r"4 1 0:1 / /run/pyrun/pods/x/with\040space rw - tmpfs t rw" "\n"
                    "5 1 0:1 / /run/pyrun/podsx rw - tmpfs t rw\n")
    assert mounts_under("/run/pyrun/pods/x", str(info)) == [
        "/run/pyrun/pods/x/ns/net", "/run/pyrun/pods/x/with space", "/run/pyrun/pods/x"]


@pytest.mark.parametrize("args,want", [
    (("overlay", "/r", "overlay", 0, "lowerdir=/a,upperdir=/u,workdir=/w"),
     "mount -t overlay -o lowerdir=/a,upperdir=/u,workdir=/w overlay /r"),
    (("/src", "/dst", None, linux.MS_BIND | linux.MS_REC, None), "mount --rbind /src /dst"),
    ((None, "/dst", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY, None), "mount -o remount,bind,ro /dst"),
    ((None, "/", None, linux.MS_PRIVATE | linux.MS_REC, None), "mount --make-rprivate /"),
    (("proc", "/p", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, None),
     "mount -t proc -o nosuid,nodev,noexec proc /p"),
])
def test_describe_mount(args, want):
    assert linux.describe_mount(*args) == want


def test_secure_join_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../etc", root / "up")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert secure_join(str(root), "/abs/passwd") == str(root / "etc" / "passwd")
    assert secure_join(str(root), "up/passwd") == str(root / "etc" / "passwd")
    assert secure_join(str(root), "../../x") == str(root / "x")
    assert secure_join(str(root), "/new/dir") == str(root / "new" / "dir")
    with pytest.raises(PyrunError, match="too many symlinks"):
        secure_join(str(root), "loop1/x")


def test_namespace_kinds():
    assert namespace_kinds(False, False) == ["ipc", "net", "uts"]
    assert namespace_kinds(True, False) == ["ipc", "net", "uts", "pid"]
    assert namespace_kinds(False, True) == ["ipc"]
    assert namespace_kinds(False, False, host_ipc=True) == ["net", "uts"]
    assert namespace_kinds(False, True, host_ipc=True) == []  # the sandbox launcher then unshares nothing


def test_sync_messages_are_typed():
    a, b = sync.socketpair()
    with a, b:
        sync.send(a, "ready", pid=5)
        msg = sync.recv(b, "ready", timeout=1)
        assert (msg.type, msg["pid"]) == ("ready", 5)
        sync.send_error(a, "pivot_root", "Invalid argument")
        with pytest.raises(sync.StepFailed, match="pivot_root failed: Invalid argument"):
            sync.recv(b, "ready", timeout=1)
        sync.send(a, "surprise")
        with pytest.raises(sync.SyncError, match="expected go from the init, got surprise"):
            sync.recv(b, "go", timeout=1, peer="init")
        with pytest.raises(sync.SyncError, match="timed out"):
            sync.recv(b, "go", timeout=0.01)
    a, b = sync.socketpair()
    a.close()
    with b, pytest.raises(sync.SyncError, match="went away"):
        sync.recv(b, "ready", timeout=1)


def test_faults(monkeypatch):
    faults.check("anything")
    monkeypatch.setenv(faults.ENV, "other:fail,this:fail")
    with pytest.raises(faults.InjectedFault, match="'this'"):
        faults.check("this")
    faults.check("unrelated")


def test_explain_records_lines():
    lines = explain.record()
    try:
        explain.emit(explain.argv("echo", "a b"))
    finally:
        explain.stop_recording()
    assert lines == ["echo 'a b'"]


def test_syscall_errors_keep_errno_and_path():
    from pyrun.errors import SyscallError
    e = SyscallError.from_errno(2, "mount", "/x")
    assert isinstance(e, FileNotFoundError) and isinstance(e, PyrunError)
    assert e.errno == 2 and e.filename == "/x" and str(e) == "mount: No such file or directory: /x"


def test_socketpair_is_seqpacket():
    a, b = sync.socketpair()
    with a, b:
        assert a.type == socket.SOCK_SEQPACKET


def test_monitor_control_socket_works_under_a_long_state_root(tmp_path):
    """sun_path holds 108 bytes; a deep state root is reached through /proc/self/fd."""
    from pyrun.runtime import monitor
    cdir = tmp_path / ("d" * 60) / ("e" * 60)
    cdir.mkdir(parents=True)
    listener = monitor._listen(cdir)
    try:
        client = monitor.connect(cdir, timeout=2)
        conn, _ = listener.accept()
        with client, conn:
            sync.send(client, "status")
            assert sync.recv(conn, "status", timeout=2).type == "status"
        assert oct((cdir / "ctl.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        listener.close()


def test_exec_env_overrides_the_containers_env_by_key():
    from pyrun.runtime.finalize import merge_env
    assert merge_env(["PATH=/bin", "A=1", "HOME=/root"], ["A=2", "B=x=y"]) == ["PATH=/bin", "A=2", "HOME=/root",
                                                                               "B=x=y"]
    assert merge_env(["A=1"], []) == ["A=1"]


# --- mounting on what secure_join resolved (runc's WithProcfd, CVE-2021-30465) -----------------------

def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_opened_in_root_names_the_resolved_path_as_a_descriptor(tmp_path):
    from pyrun.runtime.rootfs import opened_in_root
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "link").symlink_to("/etc")  # absolute: inside the root
    with opened_in_root(str(root), "/link") as target:
        assert target.startswith("/proc/self/fd/") and os.readlink(target) == str(root / "etc")


def test_opened_in_root_refuses_a_path_swapped_for_a_symlink_after_it_was_resolved(tmp_path, monkeypatch):
    """Another container replaces a directory of a shared volume with a symlink to the host between the
    resolution and the mount: the descriptor names the host's directory, and nothing is mounted."""
    from pyrun.runtime import rootfs
    root, outside = tmp_path / "root", tmp_path / "host"
    (root / "vol" / "sub").mkdir(parents=True)
    outside.mkdir()
    real = rootfs.secure_join

    def resolve_then_swap(base, path):
        resolved = real(base, path)
        (root / "vol" / "sub").rmdir()
        (root / "vol" / "sub").symlink_to(outside)
        return resolved
    monkeypatch.setattr(rootfs, "secure_join", resolve_then_swap)
    before = _open_fds()
    with pytest.raises(PyrunError, match="changed while it was being mounted on"):
        with rootfs.opened_in_root(str(root), "/vol/sub"):
            pytest.fail("the body must not run")
    assert _open_fds() == before


def test_opened_in_root_of_a_missing_path_is_a_syscall_error_naming_it(tmp_path):
    from pyrun.errors import SyscallError
    from pyrun.runtime.rootfs import opened_in_root
    with pytest.raises(SyscallError, match="missing"):
        with opened_in_root(str(tmp_path), "/missing"):
            pass
