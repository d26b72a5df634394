"""The pod sandbox: a pause process that holds the pod's namespaces.

`launch()` runs in the CLI (or CRI server) and forks the launcher (pyrun.runtime.spawn:
from the CLI itself, or from the CRI server's zygote, because unshare(2) and fork(2) must
not run in a multi-threaded caller). The launcher, titled `pyrun-sandbox <pod dir>`:

  1. unshare [--ipc] [--net --uts] [--pid]  (new namespaces for the pod; none of hostIPC/hostNetwork)
  2. hostname <pod hostname>; ip link set lo up
  3. pins each namespace: mount --bind /proc/self/ns/<kind> <pod>/ns/<kind>
     (for pid: /proc/self/ns/pid_for_children), so they outlive every process
  4. forks; the child execs `pause` (PID 1 of the pod's PID namespace when shared)
  5. records the pause process in sandbox.json, reports `ready`, and exits.

The pause process is then re-parented to init: nothing of pyrun stays alive per pod
but pause itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from pyrun import explain
from pyrun.runtime import faults, spawn, sync
from pyrun.linux.procs import ProcessRef

PIN_KINDS_ORDER = ("net", "ipc", "uts", "pid")


def pause_binary() -> str:
    path = Path(__file__).resolve().parent.parent / "bin" / "pause"
    if not path.exists():
        from pyrun.errors import PyrunError
        raise PyrunError(f"the pause binary is missing at {path}: reinstall pyrun (pip install builds it)")
    return str(path)


def namespace_kinds(share_pid: bool, host_network: bool, host_ipc: bool = False) -> list[str]:
    """Which namespaces a pod gets of its own (pure). hostNetwork pods keep the node's net and uts,
    hostIPC pods the node's ipc. A hostPID pod never shares a PID namespace of its own (the spec
    layers refuse both at once), so pause then runs in the node's, as an ordinary process."""
    kinds = [] if host_ipc else ["ipc"]
    if not host_network:
        kinds += ["net", "uts"]
    if share_pid:
        kinds.append("pid")
    return kinds


# --- caller side (CLI / CRI) ---------------------------------------------------------------------

def launch(pod_dir: Path, hostname: str, share_pid: bool, host_network: bool, host_ipc: bool = False,
           cgroup_procs: list[str] = (), timeout: float = 60.0, meanwhile=None) -> ProcessRef:
    """Start the pod's pause process in new namespaces (and in the pod's cgroups); return it once it runs.

    meanwhile: called while the launcher works, which is mostly waiting in the kernel (joining the
    cgroups waits for an RCU grace period, a new network namespace for its setup)."""
    job = spawn.Job("sandbox", {"pod_dir": str(pod_dir), "hostname": hostname, "share_pid": share_pid,
                                "host_network": host_network, "host_ipc": host_ipc,
                                "cgroup_procs": list(cgroup_procs)},
                    title=f"pyrun-sandbox {pod_dir}", log=str(pod_dir / "sandbox.log"))
    proc, parent = spawn.spawn_synced(job)
    try:
        if meanwhile is not None:
            meanwhile()
        msg = sync.recv(parent, "ready", timeout=timeout, peer="sandbox launcher")
    except sync.StepFailed as e:
        from pyrun.errors import PyrunError
        raise PyrunError(f"pod sandbox: {e.step} failed: {e.message}") from None
    finally:
        parent.close()
        proc.wait()
    return ProcessRef(msg["pid"], msg["start_time"])


# --- launcher side (forked child) ---------------------------------------------------------------

def child_main(args: dict, sock) -> int:
    """The launcher's entry (pyrun.runtime.spawn.ENTRIES["sandbox"])."""
    _run(SimpleNamespace(**args), sock)
    return 0


def _run(args: SimpleNamespace, sock) -> None:
    from pyrun.linux import syscalls as linux
    from pyrun.runtime.records import SandboxInfo
    from pyrun.runtime.state import write_sandbox
    pod_dir = Path(args.pod_dir)
    kinds = namespace_kinds(args.share_pid, args.host_network, args.host_ipc)
    step = "join cgroup"
    try:
        for procs in args.cgroup_procs:  # pause is forked from here, so it is born in the pod cgroup
            linux.write_file(procs, str(os.getpid()))
        step = "unshare"
        if kinds:
            linux.unshare(kinds)
        faults.check("sandbox-unshare")
        if "uts" in kinds:
            step = "sethostname"
            linux.sethostname(args.hostname)
        if "net" in kinds:
            step = "loopback"
            from pyrun.netns.loopback import loopback_up
            loopback_up()
        step = "pin namespaces"
        ns_dir = pod_dir / "ns"
        ns_dir.mkdir(exist_ok=True)
        for kind in PIN_KINDS_ORDER:
            if kind in kinds and kind != "pid":
                _pin(f"/proc/self/ns/{kind}", ns_dir / kind)
        faults.check("sandbox-pin")
        step = "start pause"
        pause = pause_binary()
        explain.emit(explain.argv(pause) + " &")
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                fd = os.open(pod_dir / "pause.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                null = os.open("/dev/null", os.O_RDONLY)
                os.dup2(null, 0)
                os.closerange(3, 1 << 16)
                os.execv(pause, ["pause"])
            finally:
                os._exit(127)
        if "pid" in kinds:  # a new PID namespace can only be pinned once its first process exists
            step = "pin namespaces"
            _pin(f"/proc/{pid}/ns/pid", ns_dir / "pid")
        ref = ProcessRef.of(pid)
        write_sandbox(pod_dir, SandboxInfo(pause=ref, namespaces=tuple(kinds)))
        sync.send(sock, "ready", pid=ref.pid, start_time=ref.start_time)
    except Exception as e:  # report the step; the caller rolls back
        sync.send_error(sock, step, str(e))
        raise SystemExit(1)


def _pin(source: str, target: Path) -> None:
    """Keep a namespace alive without a process: bind-mount its nsfs file (namespaces(7))."""
    from pyrun.linux import syscalls as linux
    target.touch()
    linux.bind_mount(source, str(target), recursive=False)
