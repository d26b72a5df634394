"""A one-node cluster on pyrun: etcd, kube-apiserver, kube-scheduler, kube-controller-manager and a kubelet
on `pyrun cri serve`, all in one throwaway node namespace; kubectl drives it as a user does.

The streaming calls (exec, attach, port-forward, cp, logs -f) go kubectl -> apiserver -> kubelet ->
pyrun's streaming server. A Deployment rolls to a new image tag served by a registry in the node.
"""
from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from _kube_nodes import (
    DEMO_IMAGE, ControlPlane, NodeRegistry, PyrunNode, build_web_layout, give_address, kube_workdir, owned,
    start_node, wait_until,
)

NODE_IP = "10.99.2.1"


@pytest.fixture(scope="module")
def cluster(kube_bin, demo_layout, tmp_path_factory):
    with kube_workdir() as wd, contextlib.ExitStack() as stack:
        node = stack.enter_context(owned(PyrunNode("node1", wd, kube_bin, "10.89.2.0/24", NODE_IP)))
        give_address(node, NODE_IP)
        cp = ControlPlane(node)
        cp.start()
        start_node(node, demo_layout, cp.kubeconfig)
        stack.callback(cp.delete_all)
        cp.wait_nodes_ready(["node1"])
        cp.registry = NodeRegistry(node)
        cp.layouts = tmp_path_factory.mktemp("web")
        yield cp


def pod_doc(name: str, command: list[str], image: str = DEMO_IMAGE, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 2, "restartPolicy": container.pop("restartPolicy", "Always"),
                     "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                                     "command": command, **container}]}}


def running(cluster, name: str, command: list[str], **container) -> dict:
    cluster.apply(pod_doc(name, command, **container))
    return cluster.wait_pod_phase(name)


def test_kubectl_run_interactive(cluster):
    p = cluster.kubectl("run", "run-i", "-i", "--rm", "--restart=Never", f"--image={DEMO_IMAGE}",
                        "--image-pull-policy=IfNotPresent", "--", "sh", "-c", "read line; echo got:$line",
                        input="hello\n", check=False, timeout=180)
    assert "got:hello" in p.stdout, (p.stdout, p.stderr)


def test_logs_follow(cluster):
    cluster.apply(pod_doc("logs", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done"],
                          restartPolicy="Never"))
    cluster.wait_pod_phase("logs", ("Running", "Succeeded"))
    p = cluster.kubectl("logs", "-f", "logs", timeout=120)
    assert p.stdout.split() == ["line1", "line2", "line3"]
    cluster.kubectl("delete", "pod", "logs", "--wait=false")


def test_exec(cluster):
    running(cluster, "sleeper", ["sleep", "100000"])
    assert cluster.kubectl("exec", "sleeper", "--", "cat", "/etc/pyrun-demo").stdout == "layer 2\n"
    p = cluster.kubectl("exec", "sleeper", "--", "sh", "-c", "exit 7", check=False)
    assert p.returncode == 7
    # stdin without a terminal
    p = cluster.kubectl("exec", "-i", "sleeper", "--", "sh", "-c", "tr a-z A-Z", input="quiet\n")
    assert p.stdout == "QUIET\n"


def _drive_tty(argv: list[str], env: dict, script: bytes, until: bytes, timeout: float = 90) -> bytes:
    """Run argv on a new pseudo-terminal, type `script`, read until `until` or the end."""
    pid, fd = pty.fork()
    if pid == 0:  # child: kubectl on the pty
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    sent = False
    start = time.monotonic()
    try:
        while time.monotonic() < start + timeout and until not in out:
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            # type once the shell prompts (or after a while: without a terminal sh prints no prompt)
            if not sent and (b"# " in out or time.monotonic() > start + 20):
                os.write(fd, script)
                sent = True
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    return out


def test_exec_interactive_tty(cluster):
    running(cluster, "tty", ["sleep", "100000"])
    argv = cluster.node.enter(*cluster.kubectl_argv("exec", "-it", "tty", "--", "sh"))
    env = dict(os.environ, **cluster.kubectl_env, TERM="xterm")
    out = _drive_tty(argv, env, b"tty; echo TERM=$TERM; echo done-$((6*7)); exit\n", b"done-42")
    text = out.decode(errors="replace")
    assert "done-42" in text, text
    assert re.search(r"/dev/pts/\d+", text) and "TERM=xterm" in text, text


def test_attach_with_stdin(cluster):
    """kubectl attach -i: its input reaches the workload's stdin. Without stdinOnce the container's
    stdin stays open after kubectl's input ends, so kubectl keeps streaming (as with containerd)
    until it is stopped."""
    cluster.apply(pod_doc("attach", ["sh", "-c", "while read line; do echo echo:$line; done"], stdin=True))
    cluster.wait_pod_phase("attach", timeout=120)
    argv = cluster.node.enter(*cluster.kubectl_argv("attach", "-i", "attach", "-c", "main"))
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **cluster.kubectl_env))
    try:
        proc.stdin.write(b"ping\n")
        proc.stdin.flush()
        wait_until("the attached input echoed in the log", lambda: "echo:ping" in cluster.kubectl(
            "logs", "attach", check=False).stdout, 60, interval=1)
    finally:
        proc.terminate()
        proc.wait(15)


def test_port_forward(cluster):
    running(cluster, "pf", ["sh", "-c", "while true; do echo pf-ok | nc -l -p 8080; done"])
    node = cluster.node
    argv = node.enter(*cluster.kubectl_argv("port-forward", "pod/pf", "18081:8080"))
    with open(node.dir / "port-forward.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **cluster.kubectl_env))
    try:
        wait_until("kubectl port-forward to listen", lambda: b"Forwarding from"
                   in (node.dir / "port-forward.log").read_bytes(), 60)
        reply = wait_until("an answer through port-forward", lambda: node.tcp_read("127.0.0.1", 18081, 5).strip(),
                           60, interval=1)
        assert reply == "pf-ok"
    finally:
        proc.terminate()
        proc.wait(15)


def test_cp_both_ways(cluster):
    running(cluster, "cp", ["sleep", "100000"])
    node = cluster.node
    (node.dir / "to-pod.txt").write_text("from the host\n")
    cluster.kubectl("cp", str(node.dir / "to-pod.txt"), "cp:/tmp/in.txt")
    assert cluster.kubectl("exec", "cp", "--", "cat", "/tmp/in.txt").stdout == "from the host\n"
    cluster.kubectl("exec", "cp", "--", "sh", "-c", "echo from the pod > /tmp/out.txt")
    cluster.kubectl("cp", "cp:/tmp/out.txt", str(node.dir / "from-pod.txt"))
    assert (node.dir / "from-pod.txt").read_text() == "from the pod\n"


def test_deployment_rolling_update_from_a_local_registry(cluster):
    reg = cluster.registry
    images = {v: reg.push(build_web_layout(cluster.layouts / v, v), v, "pyrun/web") for v in ("v1", "v2")}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                  "name": "web", "image": f"{images['v1']}:v1", "imagePullPolicy": "IfNotPresent",
                                  "command": ["sleep", "100000"]}]}}}}
    cluster.apply(deployment)
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=300s", timeout=330)
    assert _versions(cluster) == ["v1", "v1", "v1"]
    cluster.kubectl("set", "image", "deployment/web", f"web={images['v2']}:v2")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=300s", timeout=330)
    wait_until("only v2 pods", lambda: _versions(cluster) == ["v2", "v2", "v2"], 120, interval=2,
               detail=lambda: cluster.kubectl("get", "pods", "-o", "wide", check=False).stdout)
    cluster.kubectl("delete", "deployment", "web")


def _versions(cluster) -> list[str]:
    pods = [p for p in cluster.get("pods", "-l", "app=web")["items"] if not p["metadata"].get("deletionTimestamp")]
    out = []
    for p in pods:
        e = cluster.kubectl("exec", p["metadata"]["name"], "--", "cat", "/etc/web-version", check=False)
        out.append(e.stdout.strip() if e.returncode == 0 else f"? {e.stderr.strip()}")
    return sorted(out)


def test_deleting_everything_leaves_nothing_on_the_node(cluster):
    cluster.delete_all()
    wait_until("nothing left of the pods", lambda: not cluster.node.leftovers(), 150, interval=1,
               detail=lambda: "\n".join(cluster.node.leftovers()))
