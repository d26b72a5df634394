"""The CLI end to end: explain mode, concurrent creates, pod networking through `pod create`."""
from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO, pod_manifest


def test_explain_prints_the_primitives_as_shell_commands(pyrun, write_pod):
    p = pyrun("--explain", "pod", "create", write_pod("explained", [{"name": "c", "command": ["sleep", "1000"]}]))
    lines = [line[2:] for line in p.stderr.splitlines() if line.startswith("$ ")]
    text = "\n".join(lines)
    for expected in ("unshare --ipc --net --uts", "hostname explained", "ip link set lo up",
                     "mount --bind /proc/self/ns/net ", "unshare --pid", "nsenter --net=", "unshare --mount",
                     "mount --make-rprivate /", "mount -t overlay -o lowerdir=", "mount -t proc",
                     "mknod -m 666 ", "pivot_root ", "exec sleep 1000"):
        assert expected in text, f"{expected!r} not in explain output:\n{text}"
    assert any(line.startswith("echo ") and "cgroup.procs" in line for line in lines)
    # the order follows what happens: namespaces before mounts before pivot_root before exec
    order = [text.index(s) for s in ("unshare --ipc", "unshare --mount", "mount -t overlay", "pivot_root", "exec sleep")]
    assert order == sorted(order)


def test_concurrent_creates_of_one_name_make_one_pod(pyrun, write_pod):
    spec = write_pod("race", [{"name": "c", "command": ["sleep", "1000"]}])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: pyrun("pod", "create", spec, check=False), range(4)))
    assert sorted(r.returncode for r in results) == [0, 4, 4, 4]
    assert [p["name"] for p in pyrun.pods()].count("race") == 1


def test_concurrent_creates_of_different_pods(pyrun, write_pod):
    specs = [write_pod(f"many{i}", [{"name": "c", "command": ["sleep", "1000"]}]) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda s: pyrun("pod", "create", s, check=False), specs))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    running = {p["name"] for p in pyrun.pods() if p["state"] == "running"}
    assert {f"many{i}" for i in range(6)} <= running


NODE_SCRIPT = r"""
set -e
ip link set lo up
P="$PYRUN"
$P pod create "$SPEC_A" >/dev/null
$P pod create "$SPEC_B" >/dev/null
A=$($P pod inspect web-a | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["ip"])')
B=$($P pod inspect web-b | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["ip"])')
echo "ips $A $B"
$P exec web-a c -- ip route | grep -q "default via 10.88.0.1"
echo "pod-to-pod $($P exec web-a c -- wget -q -O- http://$B/hostname)"
echo "node-to-pod $(busybox wget -q -O- http://$A/hostname)"
echo "hostport $(busybox wget -q -O- http://127.0.0.1:18080/hostname)"
$P exec web-b c -- ping -c 1 -W 2 10.88.0.1 >/dev/null && echo "pod-to-gateway ok"
$P exec web-a c -- cat /etc/hosts | grep -q "$A	web-a" && echo "hosts ok"
echo "running: rules $(nft list table ip pyrun | grep -c 'dnat to')"
$P pod stop web-a >/dev/null
echo "stopped: veths $(ip -o link show type veth | wc -l) rules $(nft list table ip pyrun 2>/dev/null | grep -c 'dnat to' || true)"
$P pod rm -f web-a web-b >/dev/null
echo "veths $(ip -o link show type veth | wc -l)"
echo "rules $(nft list table ip pyrun 2>/dev/null | grep -c dnat || true)"
"""


def test_pod_network_through_the_cli_in_a_node_namespace(pyrun, tmp_path):
    """Two pods on the bridge, inside a throwaway node network namespace (the host's is never touched)."""
    specs = {}
    for name, port in (("web-a", 18080), ("web-b", None)):
        c = {"name": "c", "image": "pyrun/demo:latest", "command": ["httpd", "-f", "-p", "80", "-h", "/etc"]}
        if port:
            c["ports"] = [{"containerPort": 80, "hostPort": port}]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                    "spec": {"containers": [c], "terminationGracePeriodSeconds": 1}}))
        specs[name] = str(path)
    argv = pyrun.argv()
    argv[argv.index("--network") + 1] = "bridge"
    env = {"PYRUN": " ".join(argv), "SPEC_A": specs["web-a"], "SPEC_B": specs["web-b"], "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    p = subprocess.run(["unshare", "--net", "bash", "-c", NODE_SCRIPT], capture_output=True, text=True,
                       env=env, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "ips 10.88.0." in out
    assert "pod-to-pod web-b" in out and "node-to-pod web-a" in out and "hostport web-a" in out
    assert "pod-to-gateway ok" in out and "hosts ok" in out
    assert "running: rules 0" not in out and "stopped: veths 1 rules 0" in out  # a stopped pod gives back its veth, address and hostPort
    assert "veths 0" in out and "rules 0" in out


PARALLEL_SCRIPT = r"""
set -e
ip link set lo up
for i in $(seq 1 20); do $PYRUN pod create "$DIR/p$i.json" > "$DIR/p$i.out" 2>&1 & done
wait
for i in $(seq 1 20); do
    $PYRUN pod inspect "par$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["ip"])'
done > "$DIR/ips"
for i in $(seq 1 20); do $PYRUN pod rm -f "par$i" >/dev/null; done
echo "veths $(ip -o link show type veth | wc -l)"
"""


def test_twenty_parallel_creates_get_distinct_ips(pyrun, tmp_path):
    """20 separate CLI processes create pods at once on the bridge (in a throwaway node namespace)."""
    for i in range(1, 21):
        (tmp_path / f"p{i}.json").write_text(json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"par{i}"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "pyrun/demo:latest", "command": ["sleep", "1000"]}]}}))
    argv = pyrun.argv()
    argv[argv.index("--network") + 1] = "bridge"
    env = {"PYRUN": " ".join(argv), "DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    p = subprocess.run(["unshare", "--net", "bash", "-c", PARALLEL_SCRIPT], capture_output=True, text=True,
                       env=env, timeout=600, cwd=REPO)
    outs = "".join((tmp_path / f"p{i}.out").read_text() for i in range(1, 21))
    assert p.returncode == 0, p.stdout + p.stderr + outs
    ips = (tmp_path / "ips").read_text().split()
    assert len(ips) == 20 and len(set(ips)) == 20 and all(ip.startswith("10.88.") for ip in ips), ips
    assert "veths 0" in p.stdout


def _state_entries(root) -> dict[str, list[str]]:
    return {sub: sorted(os.listdir(root / sub)) if (root / sub).is_dir() else [] for sub in ("pods", "containers", "names")}


@pytest.mark.parametrize("kind", ["alias-bomb", "deep-json", "huge"])
def test_hostile_manifest_exits_2_and_makes_nothing(pyrun, tmp_path, kind):
    """Issue 15 item 4: an alias bomb hung `pod create` at 256 MB RSS; now it is refused at once, naming the file."""
    from pyrun.spec.load import MAX_MANIFEST_BYTES
    path = tmp_path / ("bomb.yaml" if kind == "alias-bomb" else "pod.json")
    if kind == "alias-bomb":
        lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: bomb}", "x:", '  l0: &l0 ["lol"' + ', "lol"' * 8 + "]"]
        lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
        lines += ["spec: {containers: [{name: c, image: pyrun/demo:latest, args: *l8}]}"]
        path.write_text("\n".join(lines) + "\n")
    elif kind == "deep-json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        path.write_text(json.dumps(pod_manifest("huge", [{"name": "c", "command": ["sleep", "1"]}]))
                        + " " * MAX_MANIFEST_BYTES)
    before = _state_entries(pyrun.root)
    p = pyrun("pod", "create", str(path), check=False, timeout=30)  # the timeout only stops a hang
    assert p.returncode == 2, p.stderr
    assert str(path) in p.stderr and "Traceback" not in p.stderr
    assert _state_entries(pyrun.root) == before


def test_manifest_tty_and_stdin(pyrun, write_pod):
    """tty: the workload runs on a terminal of the container's devpts with TERM=xterm (logged as stdout);
    stdin: its stdin is a pipe the monitor keeps open (no EOF), unlike the default /dev/null."""
    spec = write_pod("terminal", [
        {"name": "t", "tty": True, "command": ["sh", "-c", "tty; echo TERM=$TERM; sleep 1000"]},
        {"name": "held", "stdin": True, "stdinOnce": True, "command": ["sh", "-c", "cat; echo eof; sleep 1000"]},
        {"name": "null", "command": ["sh", "-c", "cat; echo eof; sleep 1000"]}])
    pyrun("pod", "create", spec)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            t, null = pyrun("logs", "terminal", "t").stdout, pyrun("logs", "terminal", "null").stdout
            if "TERM=" in t and "eof" in null:
                break
            time.sleep(0.2)
        assert t.replace("\r", "") == "/dev/pts/0\nTERM=xterm\n", t
        assert null == "eof\n"
        assert pyrun("logs", "terminal", "held").stdout == ""  # still reading its stdin
    finally:
        pyrun("pod", "rm", "-f", "terminal")
