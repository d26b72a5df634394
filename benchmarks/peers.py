#!/usr/bin/env python3
"""pyrun against its real peers: runc, `ctr run`, containerd 1.6's CRI, GNU tar and umoci, side by side.

Run as root from the repository with the project's venv (needs the Debian packages in PACKAGES):

    .venv/bin/python benchmarks/peers.py [--runs 10] [--pods 50] [--unpack-runs 3] [--out benchmarks/results/peers.md]

The harness re-executes itself under `unshare --net` (a throwaway network namespace, lo up), then
starts its own containerd (Debian's package: config, root, state, socket and runc's state under
/tmp/pyrun-peers-<rand>/containerd, cgroupfs, restrict_oom_score_adj, a CNI network that only
reports 127.0.0.1) and imports pyrun's pause and the demo busybox image into it as OCI archives.
runc runs a bundle from `runc spec` on the same busybox rootfs. Runs alternate between the
runtimes. The unpack phase (benchmarks/_unpack.py) compares `pyrun image import` with `tar -xzf`
and `umoci unpack` on one big layer cached under /var/cache/pyrun-bench.

At the end every pod, container, shim, mount, cgroup and directory of the run is removed, also on
failure or Ctrl-C (containerd 1.6 writes /run/containerd/s and /var/lib/cni whatever the config
says: what appeared there during the run is removed too), and the harness checks that nothing is left.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))
import _peers  # noqa: E402
import _unpack  # noqa: E402
import run as podbench  # noqa: E402  (benchmarks/run.py: Cli, memory and cleanup helpers)

NETNS_ENV = "PYRUN_PEERS_IN_NETNS"
DEMO = "pyrun/demo:latest"
CTD_DEMO = "docker.io/pyrun/demo:latest"
CTD_PAUSE = "docker.io/pyrun/pause:bench"
CTR_NS = "pyrun-bench"
CNI_LOOPBACK = "/usr/lib/cni/loopback"
PACKAGES = ("runc", "containerd", "containernetworking-plugins", "umoci", "time")
TOOLS = ("runc", "containerd", "ctr", "umoci", "/usr/bin/time")
CRI_OPS = _peers.CRI_OPS


BenchError = podbench.BenchError


def sh(argv: list[str], timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr.strip()}")
    return p


timed = podbench.run_timed


# --- the peers --------------------------------------------------------------------------------------

class Runc:
    def __init__(self, work: Path, rootfs: Path, cgroup_parent: str):
        self.state, self.bundle, self.rootfs, self.cgroup_parent = work / "runc-state", work / "runc-bundle", \
            rootfs, cgroup_parent

    def prepare(self) -> None:
        self.bundle.mkdir()
        sh(["runc", "spec"], cwd=self.bundle)
        spec = json.loads((self.bundle / "config.json").read_text())
        self.spec = _peers.runc_bundle_spec(spec, ["sleep", "3600"])
        self.spec["root"]["path"] = str(self.rootfs)

    def argv(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.state), *args]

    def run_d(self, cid: str) -> float:
        spec = _peers.with_cgroups_path(self.spec, f"/{self.cgroup_parent}/{cid}")
        (self.bundle / "config.json").write_text(json.dumps(spec))
        return timed(self.argv("run", "-d", "--bundle", str(self.bundle), cid))

    def remove_all(self) -> list[str]:
        p = sh(self.argv("list", "-q"), check=False)
        problems = []
        for cid in p.stdout.split():
            r = sh(self.argv("delete", "-f", cid), check=False)
            if r.returncode != 0:
                problems.append(f"runc delete -f {cid}: {r.stderr.strip()}")
        return problems


class Containerd:
    """Debian's containerd with everything under `base`, inside this (throwaway) network namespace."""

    def __init__(self, base: Path, cgroup_parent: str):
        self.base, self.cgroup_parent = base, cgroup_parent
        self.sock = base / "containerd.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cni, cni_bin = self.base / "cni", self.base / "cni-bin"
        cni.mkdir(parents=True)
        cni_bin.mkdir()
        (cni / "10-none.conflist").write_text(json.dumps(_peers.cni_conflist()))
        (cni_bin / "loopback").symlink_to(CNI_LOOPBACK)
        (cni_bin / _peers.CNI_NOOP).write_text(_peers.cni_noop_plugin())
        (cni_bin / _peers.CNI_NOOP).chmod(0o755)
        (self.base / "config.toml").write_text(_peers.containerd_config(self.base, CTD_PAUSE, cni, cni_bin))
        self.log = open(self.base / "containerd.log", "ab")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.base / "config.toml")],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"containerd did not start:\n{(self.base / 'containerd.log').read_text()}")
            time.sleep(0.05)

    def cni_env(self) -> dict[str, str]:
        """pyrun's environment for the same CNI network as this containerd's (`--network cni`)."""
        return {"PYRUN_CNI_CONF_DIR": str(self.base / "cni"), "PYRUN_CNI_BIN_DIR": str(self.base / "cni-bin")}

    def ctr(self, *args: str, ns: str = CTR_NS) -> list[str]:
        return ["ctr", "-a", str(self.sock), "-n", ns, *args]

    def import_image(self, archive: Path, ns: str) -> None:
        sh(self.ctr("images", "import", "--all-platforms", str(archive), ns=ns), timeout=300)

    def run_d(self, cid: str) -> float:
        """`ctr run -d`; --runc-root keeps runc's state under `base` (the shim's default is /run/containerd/runc)."""
        return timed(self.ctr("run", "-d", "--null-io", "--runc-root", str(self.base / "runc-ctr"), "--cgroup",
                              f"/{self.cgroup_parent}/{cid}", CTD_DEMO, cid, "sleep", "3600"))

    def remove(self, cid: str) -> None:
        sh(self.ctr("task", "rm", "-f", cid), check=False)
        sh(self.ctr("container", "rm", cid), check=False)

    def remove_all(self) -> list[str]:
        problems = []
        if self.proc is None or self.proc.poll() is not None:
            return problems
        for cid in sh(self.ctr("container", "ls", "-q"), check=False).stdout.split():
            self.remove(cid)
        with contextlib.suppress(Exception):
            rt, pb, channel = cri_stubs(self.sock)
            for s in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
            channel.close()
        return problems

    def shims(self) -> list[int]:
        needle = str(self.sock).encode()
        out = []
        for pid, cmd in proc_cmdlines():
            if b"containerd-shim" in cmd and needle in cmd:
                out.append(pid)
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        while self.shims() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.shims():  # shims this containerd started and that outlived their tasks
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.log.close()


def stop_strays(work: Path, grace: float = 10) -> None:
    """End the commands of this run still working in `work` (their command line names it): an
    interrupted `image import` whose parent, GNU time, was killed, say. SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = mentioning(work)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = mentioning(work)
        if not pids:
            return


def mentioning(work: Path) -> list[int]:
    needle = str(work).encode()
    return [pid for pid, cmd in proc_cmdlines() if needle in cmd and pid != os.getpid()]


def paths_under(top: str) -> set[str]:
    """Every path below and including `top` (a small runtime directory; iterative)."""
    out, todo = set(), [top] if os.path.lexists(top) else []
    while todo:
        d = todo.pop()
        out.add(d)
        with contextlib.suppress(OSError):
            for e in os.scandir(d):
                if e.is_dir(follow_symlinks=False):
                    todo.append(e.path)
                else:
                    out.add(e.path)
    return out


def remove_made(before: set[str], top: str) -> list[str]:
    """Remove what appeared under `top` since `before` was taken (deepest first); return what stays."""
    problems = []
    for path in _peers.made_paths(before, paths_under(top)):
        try:
            os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        except OSError as e:
            problems.append(f"left in {top}: {path} ({e.strerror})")
    return problems


def proc_cmdlines() -> list[tuple[int, bytes]]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out.append((int(entry), f.read()))
    return out


def proc_parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    out[int(entry)] = _peers.parse_proc_stat_ppid(f.read())
    return out


def rss_kib(pid: int) -> int:
    return podbench.process_memory(pid)["rss"]


def cri_stubs(sock: Path):
    import grpc
    from cri_api.v1 import api_pb2 as pb, api_pb2_grpc as g
    channel = grpc.insecure_channel(f"unix://{sock}")
    return g.RuntimeServiceStub(channel), pb, channel


# --- images and rootfs ------------------------------------------------------------------------------

def build_images(work: Path) -> None:
    """The demo image (layout for pyrun, archive for containerd), pyrun's pause as an OCI archive, and
    the demo image's layers extracted into a plain rootfs for runc."""
    sys.path.insert(0, str(REPO / "src"))
    from pyrun.images.build import LayerBuilder, write_layout, write_layout_tar
    py = sys.executable
    sh([py, str(REPO / "scripts" / "build-demo-image.py"), str(work / "demo"), "--tag", DEMO])
    sh([py, str(REPO / "scripts" / "build-demo-image.py"), str(work / "demo-ctd"), "--tag", CTD_DEMO,
        "--tar", str(work / "demo.tar")])
    import pyrun
    layer = LayerBuilder().file("pause", (Path(pyrun.__file__).parent / "bin" / "pause").read_bytes(), mode=0o755)
    write_layout(work / "pause", [layer.tar_bytes()], {"Entrypoint": ["/pause"], "User": "65535:65535"},
                 ref_name=CTD_PAUSE, architecture=podbench_arch())
    write_layout_tar(work / "pause", work / "pause.tar")
    extract_rootfs(work / "demo", work / "rootfs")


def podbench_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def extract_rootfs(layout: Path, dest: Path) -> None:
    """Apply the image's layers in order (our own image, built just now: trusted input)."""
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / d.replace(":", "/", 1)  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    dest.mkdir()
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"])) as tar:
            members = [m for m in tar.getmembers() if not os.path.basename(m.name).startswith(".wh.")]
            tar.extractall(dest, members=members, numeric_owner=True)


# --- the CLI comparison -----------------------------------------------------------------------------

def cli_phase(args, cli: podbench.Cli, bridge: podbench.Cli, runc: Runc, ctd: Containerd, work: Path,
              res: dict, seen: set[int]) -> None:
    s: dict[str, list[float]] = {k: [] for k in ("pyrun create", "pyrun create bridge", "runc run -d",
                                                 "ctr run -d", "pyrun exec", "runc exec", "pyrun rm -f",
                                                 "runc delete -f")}
    pod_mem: list[dict] = []
    for i in range(args.runs):
        name = f"bench-{i}"
        spec = work / f"{name}.json"
        spec.write_text(json.dumps(podbench.pod_manifest(name)))
        for who in _peers.alternate(i, ["pyrun", "runc", "ctr"]):
            if who == "pyrun":
                dt, p = cli.timed("pod", "create", str(spec))
                s["pyrun create"].append(dt)
                pod_id = p.stdout.strip().splitlines()[-1]
                kept = podbench.kept_processes(cli.root, pod_id)
                seen.update(pid for _, pid in kept)
                pod_mem.append({role: rss_kib(pid) for role, pid in kept})
                s["pyrun exec"].append(timed(cli.argv("exec", name, "c", "--", "true")))
                s["pyrun rm -f"].append(timed(cli.argv("pod", "rm", "-f", name)))
            elif who == "runc":
                cid = f"runc-{i}"
                s["runc run -d"].append(runc.run_d(cid))
                s["runc exec"].append(timed(runc.argv("exec", cid, "true")))
                s["runc delete -f"].append(timed(runc.argv("delete", "-f", cid)))
            else:
                cid = f"ctr-{i}"
                s["ctr run -d"].append(ctd.run_d(cid))
                ctd.remove(cid)
        bspec = work / f"{name}-bridge.json"
        bspec.write_text(json.dumps(podbench.pod_manifest(f"{name}-br")))
        s["pyrun create bridge"].append(timed(bridge.argv("pod", "create", str(bspec))))
        bridge.run("pod", "rm", "-f", f"{name}-br")
        print(f"cli run {i + 1}/{args.runs}: pyrun create {s['pyrun create'][-1] * 1000:.0f} ms, "
              f"ctr run -d {s['ctr run -d'][-1] * 1000:.0f} ms", file=sys.stderr)
    res["cli"] = s
    res["pod_rss_kib"] = pod_mem
    startup_phase(args, cli, work, res)


def startup_phase(args, cli: podbench.Cli, work: Path, res: dict) -> None:
    """`pyrun --help` and `pod ls` with --ls-pods pods, alternating with `python -c pass`."""
    for i in range(args.ls_pods):
        spec = work / f"ls-{i}.json"
        spec.write_text(json.dumps(podbench.pod_manifest(f"ls-{i}")))
        cli.run("pod", "create", str(spec))
    s: dict[str, list[float]] = {"pyrun --help": [], "pod ls": [], "python -c pass": []}
    cmds = {"pyrun --help": [cli.python, "-m", "pyrun.cli.main", "--help"], "pod ls": cli.argv("pod", "ls"),
            "python -c pass": [cli.python, "-c", "pass"]}
    for i in range(args.runs * 2):
        for what in _peers.alternate(i, list(cmds)):
            s[what].append(timed(cmds[what]))
    listed = cli.run("pod", "ls", "-o", "json").stdout
    if len(json.loads(listed)) != args.ls_pods:
        raise BenchError(f"pod ls lists {len(json.loads(listed))} pods, expected {args.ls_pods}")
    for i in range(args.ls_pods):
        cli.run("pod", "rm", "-f", f"ls-{i}")
    res["startup"] = s


# --- the CRI comparison -----------------------------------------------------------------------------

class CriPeer:
    def __init__(self, name: str, sock: Path, image: str, cgroup_parent: str, logs: Path):
        self.name, self.image, self.cgroup_parent, self.logs = name, image, cgroup_parent, logs
        self.rt, self.pb, self.channel = cri_stubs(sock)
        self.samples: dict[str, list[float]] = {op: [] for op in CRI_OPS}

    def configs(self, i: int):
        pb = self.pb
        uid = f"{self.name}-uid-{i}"
        ns = pb.NamespaceOption(pid=pb.POD)  # pause is PID 1: `sleep` ends on SIGTERM, no grace period wait
        cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=f"bench-{i}", uid=uid, namespace="bench"),
                                  hostname=f"bench-{i}", log_directory=str(self.logs / uid),
                                  labels={"io.kubernetes.pod.uid": uid},
                                  linux=pb.LinuxPodSandboxConfig(
                                      cgroup_parent=self.cgroup_parent,
                                      security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))
        cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="main"), image=pb.ImageSpec(image=self.image),
                                command=["sleep", "3600"], log_path="main/0.log",
                                linux=pb.LinuxContainerConfig(
                                    security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)))
        return cfg, cc

    def call(self, op: str, method, request):
        t0 = time.perf_counter()
        reply = method(request, timeout=60)
        self.samples[op].append(time.perf_counter() - t0)
        return reply

    def start_pod(self, i: int, timed_: bool = True) -> tuple[str, str]:
        rt, pb = self.rt, self.pb
        call = self.call if timed_ else (lambda op, m, r: m(r, timeout=60))
        cfg, cc = self.configs(i)
        sid = call("RunPodSandbox", rt.RunPodSandbox, pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
        cid = call("CreateContainer", rt.CreateContainer,
                   pb.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=cfg)).container_id
        call("StartContainer", rt.StartContainer, pb.StartContainerRequest(container_id=cid))
        return sid, cid

    def stop_pod(self, sid: str, cid: str, timed_: bool = True) -> None:
        rt, pb = self.rt, self.pb
        call = self.call if timed_ else (lambda op, m, r: m(r, timeout=60))
        call("StopContainer", rt.StopContainer, pb.StopContainerRequest(container_id=cid, timeout=2))
        call("RemoveContainer", rt.RemoveContainer, pb.RemoveContainerRequest(container_id=cid))
        call("StopPodSandbox", rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        call("RemovePodSandbox", rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=sid))

    def lifecycle(self, i: int) -> None:
        sid, cid = self.start_pod(i)
        reply = self.call("ExecSync", self.rt.ExecSync,
                          self.pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10))
        if reply.exit_code != 0:
            raise BenchError(f"{self.name}: ExecSync true exited {reply.exit_code}: {reply.stderr!r}")
        self.stop_pod(sid, cid)


def cri_phase(args, server, ctd: Containerd, work: Path, cgroup_parent: str, res: dict, seen: set[int]) -> None:
    peers = {"pyrun": CriPeer("pyrun", server.sock, DEMO, "", work / "cri-logs"),
             "containerd": CriPeer("containerd", ctd.sock, CTD_DEMO, f"/{cgroup_parent}", work / "cri-logs")}
    for i in range(args.pods):
        for who in _peers.alternate(i, list(peers)):
            peers[who].lifecycle(i)
        if (i + 1) % 10 == 0:
            print(f"cri pod {i + 1}/{args.pods}", file=sys.stderr)
    res["cri"] = {who: p.samples for who, p in peers.items()}
    res["memory"] = cri_memory(args, peers, server, ctd, seen)
    for p in peers.values():
        p.channel.close()


def cri_memory(args, peers: dict, server, ctd: Containerd, seen: set[int]) -> dict:
    """RSS with --mem-pods pods running in each runtime: pyrun's server and every helper it keeps
    (its descendants other than the pods' processes); containerd, its shims and the pause processes."""
    made = {who: [p.start_pod(1000 + i, timed_=False) for i in range(args.mem_pods)] for who, p in peers.items()}
    time.sleep(1)
    out: dict = {}
    pod_pids: set[int] = set()
    per_pod = []
    for sid, _ in made["pyrun"]:
        kept = podbench.kept_processes(server.root, sid)
        pod_pids.update(pid for _, pid in kept)
        seen.update(pid for _, pid in kept)
        per_pod.append(sum(rss_kib(pid) for _, pid in kept))
    parents = proc_parents()
    helpers = [p for p in _peers.descendants(parents, server.proc.pid) if p not in pod_pids]
    helpers = [p for p in helpers if not any(a in pod_pids for a in ancestors(parents, p))]
    seen.update(helpers + [server.proc.pid])
    out["pyrun"] = {"server_kib": rss_kib(server.proc.pid),
                    "helpers": {f"{p} {podbench.process_name(p)[:60]}": rss_kib(p) for p in helpers},
                    "pod_kib": per_pod}
    shims = ctd.shims()
    pauses = [pid for pid, cmd in proc_cmdlines() if cmd.startswith(b"/pause") and parents.get(pid) in shims]
    out["containerd"] = {"containerd_kib": rss_kib(ctd.proc.pid), "shims_kib": [rss_kib(p) for p in shims],
                         "pause_kib": [rss_kib(p) for p in pauses]}
    for who, pods in made.items():
        for sid, cid in pods:
            peers[who].stop_pod(sid, cid, timed_=False)
    return out


def ancestors(parents: dict[int, int], pid: int) -> list[int]:
    out = []
    while pid in parents and parents[pid] > 1 and len(out) < 64:
        pid = parents[pid]
        out.append(pid)
    return out


# --- the run ----------------------------------------------------------------------------------------

def bench(args) -> dict:
    tag = secrets.token_hex(3)
    work = Path(f"/tmp/pyrun-peers-{tag}")
    work.mkdir()
    parent, peer_parent = f"pyrun-peers-{tag}", f"pyrun-peers-{tag}-peers"
    from _cri_helpers import CriServer, data_root_of
    server = CriServer(work / "pyrun", parent, work / "cri.sock", work / "cri-server.log")
    cli = podbench.Cli(sys.executable, work / "pyrun", parent, "none", data_root_of(work / "pyrun"))
    bridge = podbench.Cli(sys.executable, work / "pyrun", parent, "bridge", data_root_of(work / "pyrun"))
    runc = Runc(work, work / "rootfs", peer_parent)
    ctd = Containerd(work / "containerd", peer_parent)
    hard_wired_before = {top: paths_under(top) for top in _peers.HARD_WIRED_DIRS}
    seen: set[int] = set()  # pids of the pods' processes: none may outlive the run
    res: dict = {"runs": args.runs, "pods": args.pods, "ls_pods": args.ls_pods,
                 "mem_pods": args.mem_pods, "unpack_runs": args.unpack_runs, "cri_network": args.cri_network,
                 "targets": _peers.TARGETS,
                 "loadavg": {"start": os.getloadavg()}}
    failure = None
    try:
        if args.bytecode != "asis":
            podbench.use_package_copy(work, args.bytecode == "precompiled", sys.executable)
        res["machine"] = podbench.machine(podbench.bytecode_state(podbench.pyrun_package(sys.executable),
                                                                  args.bytecode))
        res["pyrun_commit"] = pyrun_commit()
        t0 = time.monotonic()
        if not (args.skip_cli and args.skip_cri):
            start_peers(work, cli, runc, ctd, res)
        if not args.skip_cli:
            cli_phase(args, cli, bridge, runc, ctd, work, res, seen)
            res["loadavg"]["after_cli"] = os.getloadavg()
        if not args.skip_cri:
            server.network = args.cri_network
            server.start(env=ctd.cni_env() if args.cri_network == "cni" else None)
            cri_phase(args, server, ctd, work, peer_parent, res, seen)
            res["loadavg"]["after_cri"] = os.getloadavg()
        if not args.skip_unpack:
            layer = _unpack.cached_layer(_unpack.CACHE, args.unpack_dirs)
            res["unpack"] = _unpack.unpack_phase(args.unpack_runs, layer, work, sys.executable, parent)
            res["loadavg"]["after_unpack"] = os.getloadavg()
        res["seconds"] = time.monotonic() - t0
    except BaseException as e:  # KeyboardInterrupt too: clean up, then report
        failure = e
    finally:
        problems = cleanup(work, cli, server, runc, ctd, (parent, peer_parent), hard_wired_before, seen)
    if problems:
        raise BenchError("left behind after the benchmark:\n  " + "\n  ".join(problems))
    if failure is not None:
        raise failure
    return res


def start_peers(work: Path, cli: podbench.Cli, runc: Runc, ctd: Containerd, res: dict) -> None:
    """Build the images, import the demo image into pyrun, prepare runc's bundle, start containerd and
    import pause and the demo image into it (both namespaces: k8s.io for CRI, CTR_NS for `ctr run`)."""
    build_images(work)
    cli.run("image", "import", str(work / "demo"), DEMO)
    runc.prepare()
    ctd.start()
    res["versions"] = versions(ctd)
    for ns in ("k8s.io", CTR_NS):
        ctd.import_image(work / "pause.tar", ns)
        ctd.import_image(work / "demo.tar", ns)


def cleanup(work: Path, cli, server, runc: Runc, ctd: Containerd, parents: tuple[str, str],
            hard_wired_before: dict[str, set[str]], seen: set[int]) -> list[str]:
    """Remove everything the run made, then list what is still there (empty: nothing left).
    Ctrl-C and SIGTERM are ignored meanwhile: a second Ctrl-C must not leave a half-clean machine."""
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _cleanup(work, cli, server, runc, ctd, parents, hard_wired_before, seen)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _cleanup(work: Path, cli, server, runc: Runc, ctd: Containerd, parents: tuple[str, str],
             hard_wired_before: dict[str, set[str]], seen: set[int]) -> list[str]:
    from pyrun.linux.mounts import unmount_under
    from pyrun.linux.tree import remove_tree
    problems: list[str] = []
    steps = [server.stop, lambda: problems.extend(podbench.remove_everything(cli)),
             lambda: problems.extend(runc.remove_all()), lambda: problems.extend(ctd.remove_all()), ctd.stop,
             lambda: stop_strays(work), lambda: unmount_under(work)]
    for step in steps:
        try:
            step()
        except Exception as e:  # keep cleaning
            problems.append(f"cleanup step failed: {e!r}")
    for p in parents:
        podbench.remove_empty_cgroups(p)
    for top, before in hard_wired_before.items():
        problems += remove_made(before, top)
    problems += podbench.leftovers(work, parents[0], seen)
    problems += [f"cgroup left: {d}" for d in podbench.cgroup_dirs(parents[1])]
    problems += [f"containerd shim left: {pid}" for pid in ctd.shims()]
    if not any(p.startswith("mount left") for p in problems):  # never delete below a live mount
        try:
            remove_tree(work)
        except Exception as e:
            problems.append(f"work directory {work} not removed: {e}")
    return problems


def versions(ctd: Containerd) -> dict:
    first = lambda argv: sh(argv, check=False).stdout.strip().splitlines()[:1]  # noqa: E731
    return {"runc": first(["runc", "--version"]), "containerd": first(["containerd", "--version"]),
            "ctr": first(["ctr", "--version"])}


def pyrun_commit() -> str:
    """The commit measured (`+ changes` when the work tree differs from it)."""
    head = sh(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], check=False).stdout.strip()
    dirty = sh(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip()
    return head[:90] + (" + changes" if dirty else "")


# --- entry point ------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="CLI runs per operation (default 10)")
    ap.add_argument("--pods", type=int, default=50, help="CRI pods per runtime (default 50)")
    ap.add_argument("--ls-pods", type=int, default=50, help="pods listed by `pod ls` (default 50)")
    ap.add_argument("--mem-pods", type=int, default=10, help="pods running while memory is read (default 10)")
    ap.add_argument("--unpack-runs", type=int, default=3, help="rounds of the unpack comparison (default 3)")
    ap.add_argument("--unpack-dirs", nargs="+", default=_unpack.default_dirs(), metavar="DIR",
                    help="directories (relative to /) in the unpack layer, cached under "
                         f"{_unpack.CACHE} (default: %(default)s)")
    ap.add_argument("--bytecode", choices=["asis", "none", "precompiled"], default="precompiled",
                    help="precompiled (default): pyrun from a temporary copy of src/pyrun with .pyc files, as "
                         "pip installs it; asis: from src/ as it is; none: a copy without .pyc files")
    ap.add_argument("--cri-network", choices=["cni", "none"], default="cni",
                    help="cni (default): `cri serve --network cni` runs the same CNI network as containerd (the "
                         "loopback plugin and one that reports eth0 = 127.0.0.1); none: loopback only")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-cri", action="store_true")
    ap.add_argument("--skip-unpack", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "peers.md"),
                    help="markdown report; the samples go to the same name with .json")
    args = ap.parse_args(argv)
    for opt in ("runs", "pods", "mem_pods", "unpack_runs"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be at least 1")
    if args.ls_pods < 0:
        ap.error("--ls-pods must be at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/peers.py: needs root", file=sys.stderr)
        return 2
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing or not Path(CNI_LOOPBACK).exists():
        print(f"benchmarks/peers.py: install the peers first: scripts/apt-ensure.sh {' '.join(PACKAGES)}",
              file=sys.stderr)
        return 2
    if os.environ.get(NETNS_ENV) != "1":
        return podbench.reexec_in_netns(__file__, argv, NETNS_ENV)
    return podbench.run_and_report("benchmarks/peers.py", bench, _peers.render, args)


if __name__ == "__main__":
    sys.exit(main())
