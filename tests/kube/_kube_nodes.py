"""Throwaway Kubernetes nodes running pyrun, for the kube stage (tests/kube).

A `Node` is a network + mount namespace held by a `sleep` we started (mounts private, so
nothing a node mounts reaches the host; /var/log is a tmpfs in it, so the kubelet's
/var/log/pods and /var/log/containers die with the node). Every daemon of the node (etcd,
the control plane, `pyrun cri serve`, the kubelet) runs in it through `nsenter`, is started
by us and stopped by its PID. The node's files live in one work directory; its cgroups under
one test parent (`pyrun-kube-<hex>`) in every hierarchy, which the kubelet gets as
--cgroup-root and pyrun as --cgroup-parent.

`PyrunNode` adds pyrun (own state root, data root, pod CIDR, node network records) and a
kubelet (own root dir, manifests dir, ports in the node's namespace); `ControlPlane` adds
etcd, kube-apiserver (one static admin token, unverified TLS: test-only), kube-scheduler and
kube-controller-manager. The binaries come from tests/kube/build.sh.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from _procs import processes_mentioning

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED = CGROUP_ROOT / "unified"  # the v2 hierarchy of a hybrid host
DEMO_IMAGE = "docker.io/pyrun/demo:v1"  # a tag other than latest: the kubelet does not pull it (IfNotPresent)
APISERVER_PORT = 6443


def find_kube_bin() -> Path | None:
    """The built binaries: $PYRUN_KUBE_BIN (./test.sh sets it to what tests/kube/build.sh printed), so a
    plain `pytest` never starts clusters."""
    env = os.environ.get("PYRUN_KUBE_BIN")
    return Path(env) if env else None


def wait_until(what: str, predicate: Callable[[], object], timeout: float, interval: float = 0.5,
               detail: Callable[[], str] | None = None, alive: list["Daemon"] | None = None) -> object:
    """predicate()'s first truthy value; AssertionError naming `what` after timeout seconds, or at once
    when one of the `alive` daemons has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        dead = [d for d in alive or () if d.proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{dead[0].name} exited ({dead[0].proc.returncode})" if dead else f"timed out after {timeout:.0f}s"
            raise AssertionError(f"{why} waiting for {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd, the v2 unified tree)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith(str(CGROUP_ROOT)):
                out.append(Path(fields[4]))
    return sorted(set(out))


def make_cgroup_parent(name: str) -> None:
    """The test parent in every hierarchy (the kubelet refuses a --cgroup-root that does not exist)."""
    for h in cgroup_hierarchies():
        d = h / name
        d.mkdir(exist_ok=True)
        if (h / "cpuset.cpus").exists():  # v1 cpuset: a new cgroup starts empty
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((h / f).read_text())


def remove_cgroup_parent(name: str, timeout: float = 20) -> list[str]:
    """rmdir the parent's tree, deepest first, in every hierarchy; returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for h in cgroup_hierarchies():
            top = h / name
            if not top.exists():
                continue
            for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    left.append(dirpath)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def cgroup_dirs_under(name: str, pattern: str) -> list[str]:
    return sorted({str(p) for h in cgroup_hierarchies() for p in (h / name).glob(pattern)})


class Daemon:
    def __init__(self, name: str, proc: subprocess.Popen, log: Path):
        self.name, self.proc, self.log = name, proc, log

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) last {n} lines:\n" + "\n".join(lines[-n:])


class Node:
    """A network + mount namespace with lo up and a private tmpfs /var/log, held by a sleep we started."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.daemons: list[Daemon] = []
        script = ("ip link set lo up && mount -t tmpfs -o mode=0755 pyrun-kube-varlog /var/log "
                  "&& echo ready && exec sleep 1000000")
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                        "sh", "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                       text=True)
        if self.holder.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"could not create node namespace {name}")

    @property
    def pid(self) -> int:
        return self.holder.pid

    @property
    def netns(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def host_path(self, path: str) -> Path:
        """A path as the node sees it (through its mount namespace), e.g. /var/log/pods."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def enter(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "--net", "--mount", "--", *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 120, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(self.enter(*argv), capture_output=True, text=True, timeout=timeout, input=input,
                           env=dict(os.environ, **(env or {})), cwd=self.dir)
        if check and p.returncode != 0:
            raise AssertionError(f"[{self.name}] {' '.join(argv)} exited {p.returncode}\n"
                                 f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def start(self, name: str, argv: list[str], env: dict | None = None) -> Daemon:
        log = self.dir / f"{name}.log"
        with open(log, "ab") as f:
            proc = subprocess.Popen(self.enter(*argv), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ, **(env or {})), cwd=self.dir, start_new_session=True)
        d = Daemon(name, proc, log)
        self.daemons.append(d)
        return d

    def stop(self, daemon: Daemon, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after timeout (nsenter execs the daemon: the PID is the daemon's)."""
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                daemon.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait()
        if daemon in self.daemons:
            self.daemons.remove(daemon)

    def http_get(self, url: str, timeout: float = 10, token: str = "") -> str | None:
        """GET from inside the node's network namespace (https: unverified; token: a bearer token);
        None when it fails."""
        code = ("import os, ssl, sys, urllib.request\n"
                "req = urllib.request.Request(sys.argv[1])\n"
                "if os.environ.get('TOKEN'): req.add_header('Authorization', 'Bearer ' + os.environ['TOKEN'])\n"
                "ctx = ssl._create_unverified_context()\n"
                "sys.stdout.write(urllib.request.urlopen(req, timeout=float(sys.argv[2]), context=ctx).read().decode())")
        p = subprocess.run(["nsenter", "-t", str(self.pid), "--net", "--", sys.executable, "-c", code, url,
                            str(timeout)], capture_output=True, text=True, timeout=timeout + 30,
                           env=dict(os.environ, TOKEN=token))
        return p.stdout if p.returncode == 0 else None

    def tcp_read(self, host: str, port: int, timeout: int = 5) -> str:
        """What a TCP server at host:port sends (busybox nc, in the node's network namespace)."""
        p = subprocess.run(["nsenter", "-t", str(self.pid), "--net", "--", "/bin/busybox", "nc", "-w", str(timeout),
                            host, str(port)], capture_output=True, text=True, timeout=timeout + 30,
                           stdin=subprocess.DEVNULL)
        return p.stdout

    def logs(self) -> str:
        return "\n".join(d.tail() for d in self.daemons)

    def close(self) -> None:
        for d in reversed(list(self.daemons)):
            self.stop(d)
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        if self.holder.stdout:
            self.holder.stdout.close()


def connect(a: Node, b: Node, a_ip: str, b_ip: str, prefix: int = 24) -> None:
    """A veth pair between two nodes: a_ip on a's end, b_ip on b's."""
    a.run("ip", "link", "add", "kube0", "type", "veth", "peer", "name", "kube0", "netns", b.netns)
    a.run("ip", "addr", "add", f"{a_ip}/{prefix}", "dev", "kube0")
    b.run("ip", "addr", "add", f"{b_ip}/{prefix}", "dev", "kube0")
    a.run("ip", "link", "set", "kube0", "up")
    b.run("ip", "link", "set", "kube0", "up")


def give_address(node: Node, ip: str, prefix: int = 24) -> None:
    """A lone node's address (the apiserver and the kubelet need one that is not loopback): a veth pair
    inside the node (no dummy module needed), the address on one end."""
    node.run("ip", "link", "add", "kube0", "type", "veth", "peer", "name", "kube0-peer")
    node.run("ip", "addr", "add", f"{ip}/{prefix}", "dev", "kube0")
    node.run("ip", "link", "set", "kube0-peer", "up")
    node.run("ip", "link", "set", "kube0", "up")


class PyrunNode(Node):
    """A node with `pyrun cri serve` and a kubelet on it."""

    def __init__(self, name: str, workdir: Path, kube_bin: Path, pod_cidr: str, node_ip: str | None = None,
                 cgroup_parent: str | None = None):
        super().__init__(name, workdir)
        self.bin = kube_bin
        self.pod_cidr = pod_cidr
        self.node_ip = node_ip
        self.cgroup_parent = cgroup_parent or f"pyrun-kube-{secrets.token_hex(3)}"
        self.root = self.dir / "pyrun"
        self.data_root = self.dir / "pyrun-data"
        self.sock = self.dir / "cri.sock"
        self.kubelet_dir = self.dir / "kubelet"
        self.manifests = self.dir / "manifests"
        self.manifests.mkdir()
        self.cri: Daemon | None = None
        self.kubelet: Daemon | None = None
        make_cgroup_parent(self.cgroup_parent)

    # --- pyrun -----------------------------------------------------------------------------------
    def pyrun_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pyrun.cli.main", "--root", str(self.root), "--data-root", str(self.data_root),
                "--network", "bridge", "--pod-cidr", self.pod_cidr, "--cgroup-parent", self.cgroup_parent, *args]

    @property
    def pyrun_env(self) -> dict:
        return {"PYRUN_NET_STATE_DIR": str(self.dir / "net-state")}

    def pyrun(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(*self.pyrun_argv(*args), check=check, timeout=timeout, env=self.pyrun_env)

    def import_image(self, layout: Path, ref: str) -> None:
        self.pyrun("image", "import", str(layout), ref)

    def pyrun_pods(self) -> list[dict]:
        return json.loads(self.pyrun("pod", "ls", "-o", "json").stdout or "[]")

    def start_cri(self) -> None:
        self.cri = self.start("cri", self.pyrun_argv("cri", "serve", "--listen", f"unix://{self.sock}",
                                                     "--stream-address", "127.0.0.1:0"), env=self.pyrun_env)
        wait_until("pyrun cri serve's socket", lambda: self.sock.exists() or self.cri.proc.poll() is not None, 60)
        if self.cri.proc.poll() is not None:
            raise AssertionError(f"pyrun cri serve exited\n{self.cri.tail()}")

    # --- the kubelet -----------------------------------------------------------------------------
    def kubelet_argv(self, kubeconfig: Path | None) -> list[str]:
        k = self.kubelet_dir
        argv = [str(self.bin / "kubelet"),
                "--container-runtime=remote", f"--container-runtime-endpoint=unix://{self.sock}",
                f"--image-service-endpoint=unix://{self.sock}", "--runtime-request-timeout=5m",
                f"--root-dir={k}", f"--cert-dir={k}/pki", f"--volume-plugin-dir={k}/volume-plugins",
                f"--seccomp-profile-root={k}/seccomp",
                f"--pod-manifest-path={self.manifests}", "--file-check-frequency=2s",
                f"--hostname-override={self.name}",
                # cgroups: kubepods/{burstable,besteffort}/pod<uid> under the test parent (cgroupfs driver)
                f"--cgroup-root=/{self.cgroup_parent}", "--cgroup-driver=cgroupfs", "--cgroups-per-qos=true",
                "--enforce-node-allocatable=pods",
                # host safety: never touch host-wide settings (the build also patches the sysctl tunables out)
                "--oom-score-adj=0", "--fail-swap-on=false", "--make-iptables-util-chains=false",
                "--protect-kernel-defaults=false",
                # the node's own ports (its own network namespace)
                "--address=0.0.0.0", "--port=10250", "--read-only-port=10255", "--healthz-port=10248",
                "--anonymous-auth=true", "--authorization-mode=AlwaysAllow",
                # no evictions or image GC on a shared test machine
                "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
                "--image-gc-high-threshold=100", "--image-gc-low-threshold=99",
                "--node-status-update-frequency=4s", "--sync-frequency=5s",
                "--serialize-image-pulls=false", "--v=2"]
        if self.node_ip:
            argv.append(f"--node-ip={self.node_ip}")
        if kubeconfig:
            argv.append(f"--kubeconfig={kubeconfig}")
        return argv

    def start_kubelet(self, kubeconfig: Path | None = None) -> None:
        self.kubelet = self.start("kubelet", self.kubelet_argv(kubeconfig))
        wait_until("the kubelet's healthz", lambda: self.http_get("http://127.0.0.1:10248/healthz", 3) == "ok"
                   or self.kubelet.proc.poll() is not None, 120, detail=self.logs)
        if self.kubelet.proc.poll() is not None:
            raise AssertionError(f"the kubelet exited\n{self.kubelet.tail(80)}")

    def kubelet_pods(self) -> list[dict]:
        """The pods the kubelet knows, with status (its read-only port's /pods)."""
        body = self.http_get("http://127.0.0.1:10255/pods")
        return (json.loads(body).get("items") or []) if body else []  # "items": null before the first pod

    def kubelet_pod(self, name: str) -> dict | None:
        """A static pod by manifest name (the kubelet names it <name>-<node>)."""
        for p in self.kubelet_pods():
            if p["metadata"]["name"] in (name, f"{name}-{self.name}"):
                return p
        return None

    def add_static_pod(self, manifest: dict) -> None:
        name = manifest["metadata"]["name"]
        tmp = self.manifests / f".{name}.json.tmp"
        tmp.write_text(json.dumps(manifest))
        tmp.rename(self.manifests / f"{name}.json")  # the kubelet never reads half a file

    def remove_static_pod(self, name: str) -> None:
        (self.manifests / f"{name}.json").unlink(missing_ok=True)

    # --- what must be gone -----------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """pyrun pods, mounts under the node's roots (in its mount namespace), processes of the roots,
        and pod cgroups under kubepods."""
        out = []
        pods = self.pyrun_pods()
        if pods:
            out.append(f"pyrun pods: {[p.get('name') for p in pods]}")
        # the kubelet's own: its root dir bind-mounted on itself (shared), gone with the node
        mounts = [line for line in Path(f"/proc/{self.pid}/mountinfo").read_text().splitlines()
                  if str(self.dir) in line and line.split()[4] != str(self.kubelet_dir)]
        if mounts:
            out.append("mounts: " + "\n".join(mounts))
        cgroups = [d for d in self.pod_cgroups() if not d.startswith(str(UNIFIED))]
        if cgroups:
            out.append(f"pod cgroups: {cgroups}")
        return out

    def pod_cgroups(self) -> list[str]:
        """kubepods/<qos>/pod<uid> directories in every hierarchy."""
        return cgroup_dirs_under(self.cgroup_parent, "kubepods/**/pod*")

    def unified_pod_cgroups(self) -> list[str]:
        """Pod cgroups in the v2 hierarchy of a hybrid host (/sys/fs/cgroup/unified), which the kubelet
        (cgroup v1 mode there) neither creates nor removes."""
        return [d for d in self.pod_cgroups() if d.startswith(str(UNIFIED))]

    def close(self) -> None:
        super().close()
        left = remove_cgroup_parent(self.cgroup_parent)
        if left:
            raise AssertionError(f"[{self.name}] cgroups left under {self.cgroup_parent}: {left}")


# --- the control plane ------------------------------------------------------------------------------

class ControlPlane:
    """etcd, kube-apiserver, kube-scheduler and kube-controller-manager on a node (its address: node.node_ip).

    Test-only shortcuts: one static bearer token (--token-auth-file) in system:masters for everybody
    (kubelets, controllers, kubectl), AlwaysAllow authorization, and clients that do not verify the
    apiserver's self-signed serving certificate; service accounts are not mounted into pods (the
    ServiceAccount admission plugin is off)."""

    def __init__(self, node: PyrunNode):
        self.node = node
        self.ip = node.node_ip
        self.url = f"https://{self.ip}:{APISERVER_PORT}"
        self.dir = node.dir / "control-plane"
        self.dir.mkdir()
        self.token = secrets.token_hex(16)
        (self.dir / "tokens.csv").write_text(f'{self.token},pyrun-test,pyrun-test,"system:masters"\n')
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(kubeconfig_for(self.url, self.token))

    def start(self) -> None:
        n, b, d = self.node, self.node.bin, self.dir
        n.run("openssl", "genrsa", "-out", str(d / "sa.key"), "2048")
        etcd = n.start("etcd", [
            str(b / "etcd"), "--name=default", f"--data-dir={d / 'etcd'}",
            "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=default=http://127.0.0.1:2380", "--log-level=warn"])
        wait_until("etcd", lambda: n.http_get("http://127.0.0.1:2379/health", 3), 60, detail=n.logs, alive=[etcd])
        api = n.start("kube-apiserver", [
            str(b / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
            f"--advertise-address={self.ip}", "--bind-address=0.0.0.0", f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={d / 'apiserver-certs'}", f"--token-auth-file={d / 'tokens.csv'}",
            "--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=AlwaysAllow",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-key-file={d / 'sa.key'}", f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true", "--v=1"])
        wait_until("kube-apiserver", lambda: n.http_get(f"{self.url}/readyz", 3, self.token) == "ok", 240, interval=1,
                   detail=n.logs, alive=[etcd, api])
        kc = f"--kubeconfig={self.kubeconfig}"
        n.start("kube-scheduler", [str(b / "kube-scheduler"), kc, "--leader-elect=false", "--port=0",
                                   "--secure-port=0", "--v=1"])
        n.start("kube-controller-manager", [
            str(b / "kube-controller-manager"), kc, "--leader-elect=false", "--port=0", "--secure-port=0",
            "--controllers=*,-serviceaccount-token", "--v=1"])

    def kubectl_argv(self, *args: str) -> list[str]:
        return [str(self.node.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]

    @property
    def kubectl_env(self) -> dict:
        return {"HOME": str(self.dir)}  # kubectl's ~/.kube/cache stays in the node's directory

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess:
        return self.node.run(*self.kubectl_argv(*args), check=check, timeout=timeout, input=input,
                             env=self.kubectl_env)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def wait_nodes_ready(self, names: list[str], timeout: float = 240) -> None:
        def ready():
            nodes = self.get("nodes")["items"]
            up = {n["metadata"]["name"] for n in nodes
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
            return set(names) <= up
        wait_until(f"nodes {names} Ready", ready, timeout, interval=2, detail=self.node.logs,
                   alive=list(self.node.daemons))

    def apply(self, doc: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(doc))

    def pod(self, name: str) -> dict:
        return self.get("pod", name)

    def wait_pod_phase(self, name: str, phases: tuple[str, ...] = ("Running",), timeout: float = 180) -> dict:
        def phase():
            p = self.kubectl("get", "pod", name, "-o", "json", check=False)
            if p.returncode != 0:
                return None
            doc = json.loads(p.stdout)
            ok = doc["status"].get("phase") in phases
            if ok and "Running" in phases and doc["status"].get("phase") == "Running":
                ok = all(c.get("state", {}).get("running") for c in doc["status"].get("containerStatuses", []))
            return doc if ok else None
        return wait_until(f"pod {name} in {phases}", phase, timeout, interval=1,
                          detail=lambda: self.kubectl("describe", "pod", name, check=False).stdout)

    def delete_all(self, timeout: float = 240) -> None:
        self.kubectl("delete", "deployments,replicasets,pods", "--all", "--wait=false", check=False)
        wait_until("every pod deleted", lambda: not self.get("pods")["items"], timeout, interval=1,
                   detail=lambda: self.kubectl("get", "pods", "-o", "wide", check=False).stdout)


def kubeconfig_for(url: str, token: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pyrun",
        "clusters": [{"name": "pyrun", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "pyrun", "user": {"token": token}}],
        "contexts": [{"name": "pyrun", "context": {"cluster": "pyrun", "user": "pyrun", "namespace": "default"}}],
    })


# --- images ---------------------------------------------------------------------------------------

def _demo_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("build_demo_image", REPO / "scripts" / "build-demo-image.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_web_layout(out: Path, version: str) -> Path:
    """The demo image plus a layer with /etc/web-version (two versions for a rolling update)."""
    from pyrun.images.build import LayerBuilder, write_layout
    demo = _demo_module()
    top = LayerBuilder()
    top.dir("etc")
    top.file("etc/web-version", f"{version}\n".encode())
    config = {"Cmd": ["sh"], "Env": [demo.PATH_ENV], "WorkingDir": "/"}
    write_layout(out, [demo.base_layer(demo.BUSYBOX), demo.top_layer(), top.tar_bytes()], config,
                 ref_name=version, architecture=demo.ARCH)
    return out


class NodeRegistry:
    """Debian's docker-registry on 127.0.0.1:5000 inside a node, storage in the node's directory."""

    BINARY = "/usr/bin/docker-registry"
    PORT = 5000

    def __init__(self, node: Node):
        self.node = node
        self.host = f"127.0.0.1:{self.PORT}"
        d = node.dir / "registry"
        (d / "storage").mkdir(parents=True)
        (d / "config.yml").write_text("\n".join([
            "version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
            "storage:", "  filesystem:", f"    rootdirectory: {d / 'storage'}",
            "http:", f"  addr: {self.host}", f"  secret: {secrets.token_hex(8)}", ""]))
        self.daemon = node.start("registry", [self.BINARY, "serve", str(d / "config.yml")])
        wait_until("the registry", lambda: node.http_get(f"http://{self.host}/v2/", 3) is not None, 60,
                   detail=node.logs)

    def push(self, layout: Path, ref: str, repo: str) -> str:
        """skopeo copy oci:LAYOUT:REF to REPO:REF in this registry (from inside the node); the repository name."""
        name = f"{self.host}/{repo}"
        self.node.run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy",
                      f"oci:{layout}:{ref}", f"docker://{name}:{ref}", env={"HOME": str(self.node.dir)})
        return name


@contextlib.contextmanager
def kube_workdir(prefix: str = "pyrun-kube") -> Iterator[Path]:
    """A fresh /tmp work directory; fails the test if a process still mentions it, then removes it."""
    d = Path(f"/tmp/{prefix}-{secrets.token_hex(3)}")
    d.mkdir()
    try:
        yield d
    finally:
        procs = processes_mentioning(str(d))
        for line in procs:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)
        assert not procs, "processes left: " + "; ".join(procs)


@contextlib.contextmanager
def owned(node: PyrunNode) -> Iterator[PyrunNode]:
    """Yields node; on exit it is shut down and removed (see shutdown)."""
    try:
        yield node
    finally:
        shutdown(node)


def start_node(node: PyrunNode, demo_layout: Path, kubeconfig: Path | None = None) -> None:
    """The demo image imported, `pyrun cri serve` and the kubelet running (with kubeconfig: in a cluster)."""
    node.import_image(demo_layout, DEMO_IMAGE)
    node.start_cri()
    node.start_kubelet(kubeconfig)


def shutdown(node: PyrunNode) -> None:
    """Static pods removed, kubelet and cri serve stopped, pods pyrun still has force-removed, node closed."""
    for f in node.manifests.glob("*.json"):
        f.unlink()
    if node.kubelet and node.kubelet.proc.poll() is None and node.cri and node.cri.proc.poll() is None:
        with contextlib.suppress(AssertionError):
            wait_until("the kubelet to stop every pod", lambda: not node.pyrun_pods(), 120, interval=1)
    for d in (node.kubelet, node.cri):
        if d:
            node.stop(d)
    with contextlib.suppress(Exception):
        for p in node.pyrun_pods():
            node.pyrun("pod", "rm", "-f", p["id"], check=False)
        node.pyrun("gc", check=False)
    node.close()
