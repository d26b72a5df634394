"""Pods that look after themselves (issue 17), on the real kernel: restartPolicy with the kubelet's
back-off, liveness/readiness/startup probes, preStop, `logs --previous`. Timings come from the spec
(period x failureThreshold, the back-off) and are checked against the timestamps the monitor recorded,
with generous bounds; every pod is created by a CLI process that has exited long before: the
supervision is the detached monitor's."""
from __future__ import annotations

import json
import time

import pytest

S = 1_000_000_000  # ns


def _container(pyrun, pod: str, name: str = "c") -> dict:
    return next(c for c in pyrun.inspect(pod)["containers"] if c["name"] == name)


def _status(pyrun, pod: str) -> dict:
    return next(p for p in pyrun.pods() if p["name"] == pod)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_always_restarts_a_completed_container_and_keeps_the_previous_log(pyrun, write_pod):
    pyrun("pod", "create", write_pod("always", [{"name": "c", "command": [
        "sh", "-c", "echo instance; date +%s%N >> /tmp/starts; cat /tmp/starts | wc -l; sleep 1"]}],
        restartPolicy="Always"))
    c = _wait(lambda: (c := _container(pyrun, "always")).get("restart_count", 0) >= 1 and c["state"] == "running"
              and c, 30, "a restart")
    assert c["last_state"]["exit_code"] == 0 and c["last_state"]["reason"] == "Completed"
    assert c["last_state"]["finished_at"] - c["last_state"]["started_at"] < 10 * S
    assert c["started_at"] - c["last_state"]["finished_at"] < 5 * S  # the first restart is immediate
    previous = pyrun("logs", "--previous", "always", "c").stdout
    assert previous.split() == ["instance", "1"]  # the writable layer is kept: /tmp/starts grows
    _wait(lambda: "2" in pyrun("logs", "always", "c").stdout.split(), 10, "the second instance's output")
    assert _status(pyrun, "always")["restarts"] >= 1
    pyrun("pod", "rm", "-f", "always")


def test_on_failure_does_not_restart_a_completed_container(pyrun, write_pod):
    pyrun("pod", "create", write_pod("onfail", [{"name": "c", "command": ["true"]}], restartPolicy="OnFailure"))
    c = pyrun.wait_for("onfail", "c", "exited")
    assert (c["state"], c["exit_code"], c["reason"], c.get("restart_count")) == ("exited", 0, "Completed", 0)
    p = pyrun("logs", "--previous", "onfail", "c", check=False)
    assert p.returncode != 0 and "previous terminated container" in p.stderr
    pyrun("pod", "rm", "-f", "onfail")


def test_liveness_exec_failure_restarts_within_period_times_threshold(pyrun, write_pod):
    """The probe reads the container's own file system (it joined its mount namespace)."""
    pyrun("pod", "create", write_pod("live", [{
        "name": "c", "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 1000"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2},
    }], restartPolicy="Always", terminationGracePeriodSeconds=0))
    c = _wait(lambda: (c := _container(pyrun, "live")).get("restart_count", 0) >= 1 and c, 30, "a restart")
    last = c["last_state"]
    assert last["reason"] == "Error" and last["exit_code"] == 137  # SIGKILL with no grace period
    # healthy for 2 s, then period 1 s x failureThreshold 2, + 1 s; +1 s for starting the probes' processes
    assert last["finished_at"] - last["started_at"] <= (2 + 1 * 2 + 1 + 1) * S
    probe = c["probes"]["liveness"]
    assert probe["result"] in ("success", "unknown", "failure") and "at" in probe
    pyrun("pod", "rm", "-f", "live")


def test_http_readiness_against_busybox_httpd_flips_ready_both_ways(pyrun, write_pod):
    pyrun("pod", "create", write_pod("ready", [{
        "name": "web", "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && "
                                               "exec httpd -f -p 8080 -h /www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"port": "http", "path": "/index.html"}, "periodSeconds": 1},
    }]))
    _wait(lambda: _status(pyrun, "ready")["ready"] == "1/1", 20, "READY 1/1")
    assert "succeeded with statuscode: 200" in _container(pyrun, "ready", "web")["probes"]["readiness"]["message"]
    pyrun("exec", "ready", "web", "--", "rm", "/www/index.html")
    _wait(lambda: _status(pyrun, "ready")["ready"] == "0/1", 20, "READY 0/1")
    assert "statuscode: 404" in _container(pyrun, "ready", "web")["probes"]["readiness"]["message"]
    assert _status(pyrun, "ready")["status"] == "Running"
    pyrun("exec", "ready", "web", "--", "sh", "-c", "echo ok > /www/index.html")
    _wait(lambda: _status(pyrun, "ready")["ready"] == "1/1", 20, "READY 1/1 again")
    pyrun("pod", "rm", "-f", "ready")


def test_startup_probe_passing_late_holds_readiness_back(pyrun, write_pod):
    pyrun("pod", "create", write_pod("slow", [{
        "name": "c", "command": ["sh", "-c", "sleep 3; touch /tmp/up; sleep 1000"],
        "startupProbe": {"exec": {"command": ["test", "-f", "/tmp/up"]}, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }], restartPolicy="Always"))
    c = _container(pyrun, "slow")
    assert c["started"] is False and c["ready"] is False
    c = _wait(lambda: (c := _container(pyrun, "slow"))["started"] and c, 20, "the startup probe to pass")
    assert c["probes"]["startup"]["result"] == "success"
    assert c["probes"]["startup"]["at"] - c["started_at"] >= 3 * S
    c = _wait(lambda: (c := _container(pyrun, "slow"))["probes"]["readiness"]["result"] == "failure" and c, 20,
              "the readiness probe to have run (nothing listens on port 9)")
    assert c["probes"]["liveness"]["result"] == "success" and c.get("restart_count") == 0
    assert _status(pyrun, "slow")["ready"] == "0/1"
    pyrun("pod", "rm", "-f", "slow")


def test_crash_backoff_grows_as_the_kubelets(pyrun, write_pod):
    """0 s before the first restart, 10 s before the second, 20 s scheduled for the third: from the
    recorded finish and start times and the schedule the monitor wrote while waiting."""
    pyrun("pod", "create", write_pod("crash", [{"name": "c", "command": ["sh", "-c", "exit 3"]}],
                                     restartPolicy="Always"))
    seen: dict[int, dict] = {}

    def second_wait():
        c = _container(pyrun, "crash")
        seen.setdefault(c.get("restart_count", 0), c)
        if c["state"] == "waiting":
            seen.setdefault(-c["restart_count"], c)
        return c["state"] == "waiting" and c["restart_count"] == 2 and c

    c = _wait(second_wait, 40, "the back-off after the second restart")
    assert _status(pyrun, "crash")["status"] == "CrashLoopBackOff"
    assert c["last_state"]["exit_code"] == 3 and c["reason"] == "CrashLoopBackOff"
    assert c["backoff_seconds"] == 20 and abs(c["next_start_at"] - c["last_state"]["finished_at"] - 20 * S) < 1 * S
    second = seen.get(-1)
    assert second and second["backoff_seconds"] == 10
    assert abs(second["next_start_at"] - second["last_state"]["finished_at"] - 10 * S) < 1 * S
    # what actually happened: restart 2 started 10 s after instance 2 finished (the restart count rose)
    assert c["last_state"]["started_at"] - second["last_state"]["finished_at"] >= 10 * S - S // 10
    monitor = json.loads((pyrun.root / "containers" / c["id"] / "monitor.json").read_text())["pid"]
    pyrun("pod", "rm", "-f", "crash")  # while waiting: the monitor goes, nothing is left (the fixture checks)
    _wait(lambda: _gone(monitor), 10, "the monitor to be gone")


def test_a_restart_that_cannot_start_backs_off_and_tries_again(pyrun, write_pod):
    """The first instance removes the binary it runs from its writable layer: the next ones cannot
    start (exec fails); each failed start counts as an instance that exited, with the back-off."""
    pyrun("pod", "create", write_pod("nostart", [{"name": "c", "command": [
        "/bin/busybox", "sh", "-c", "rm /bin/busybox; exit 1"]}], restartPolicy="OnFailure"))
    c = _wait(lambda: (c := _container(pyrun, "nostart")).get("restart_count", 0) >= 2 and c, 40,
              "a second restart")
    assert c["last_state"]["exit_code"] == 1
    _wait(lambda: _container(pyrun, "nostart")["state"] == "waiting", 30, "the back-off")
    pyrun("pod", "stop", "nostart")  # in the back-off: the monitor records the last exit and goes
    c = _container(pyrun, "nostart")
    assert (c["state"], c["exit_code"]) == ("exited", 1)
    assert _status(pyrun, "nostart")["status"] == "Stopped"
    pyrun("pod", "rm", "nostart")


def test_pre_stop_runs_before_sigterm(pyrun, write_pod):
    pyrun("pod", "create", write_pod("hooks", [{
        "name": "c",
        "command": ["sh", "-c", "trap 'cat /tmp/order; echo TERM; exit 0' TERM; "
                                "echo started; while true; do sleep 0.1; done"],
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo POSTSTART > /tmp/order"]}},
                      "preStop": {"exec": {"command": ["sh", "-c", "echo PRESTOP >> /tmp/order"]}}},
    }], terminationGracePeriodSeconds=10))
    _wait(lambda: _container(pyrun, "hooks").get("probes", {}).get("post_start", {}).get("result") == "success",
          20, "the postStart hook")
    _wait(lambda: "started" in pyrun("logs", "hooks", "c").stdout, 10, "the workload")
    pyrun("pod", "stop", "hooks")
    assert pyrun("logs", "hooks", "c").stdout.split() == ["started", "POSTSTART", "PRESTOP", "TERM"]
    c = _container(pyrun, "hooks")
    assert (c["state"], c["exit_code"], c.get("restart_count")) == ("exited", 0, 0)
    pyrun("pod", "rm", "hooks")


_TLS_SERVER = """
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ok" else 503); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("up", flush=True); s.serve_forever()
"""

_GRPC_SERVER = """
import sys
from concurrent import futures
import grpc
status = [1]
def check(request, context):
    return b"\\x08" + bytes([status[0]])
handler = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("127.0.0.1:9090")
server.start()
print("up", flush=True)
for line in sys.stdin:
    status[0] = int(line)
"""


def _server_in_pod(pyrun, pod: str, script: str, *args: str):
    """A test server inside the pod's network namespace (nsenter), as a workload would listen."""
    import subprocess
    import sys
    netns = pyrun.inspect(pod)["namespaces"]["net"]["path"]
    proc = subprocess.Popen(["nsenter", f"--net={netns}", sys.executable, "-c", script, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    return proc


def _stop(proc) -> None:
    proc.kill()
    proc.wait()


def test_https_readiness_without_verification(pyrun, write_pod, tmp_path):
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-out", str(tmp_path / "c"), "-days", "1", "-subj", "/CN=self-signed"], check=True,
                   capture_output=True)
    pyrun("pod", "create", write_pod("tls", [{
        "name": "c", "command": ["sleep", "1000"],
        "readinessProbe": {"httpGet": {"port": 8443, "path": "/ok", "scheme": "HTTPS"}, "periodSeconds": 1,
                           "timeoutSeconds": 3},
    }]))
    server = _server_in_pod(pyrun, "tls", _TLS_SERVER, str(tmp_path / "c"), str(tmp_path / "k"))
    try:
        _wait(lambda: _status(pyrun, "tls")["ready"] == "1/1", 30, "READY 1/1 over HTTPS")
        assert "statuscode: 200" in _container(pyrun, "tls")["probes"]["readiness"]["message"]
    finally:
        _stop(server)
    _wait(lambda: _status(pyrun, "tls")["ready"] == "0/1", 30, "READY 0/1 with the server gone")
    pyrun("pod", "rm", "-f", "tls")


def test_grpc_health_probe(pyrun, write_pod):
    pytest.importorskip("grpc")
    pyrun("pod", "create", write_pod("grpc", [{
        "name": "c", "command": ["sleep", "1000"],
        "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 1, "timeoutSeconds": 3},
    }]))
    server = _server_in_pod(pyrun, "grpc", _GRPC_SERVER)
    try:
        _wait(lambda: _status(pyrun, "grpc")["ready"] == "1/1", 30, "READY 1/1 over gRPC health")
        server.stdin.write("2\n")
        server.stdin.flush()
        _wait(lambda: _status(pyrun, "grpc")["ready"] == "0/1", 30, "READY 0/1: NOT_SERVING")
        assert "NOT_SERVING" in _container(pyrun, "grpc")["probes"]["readiness"]["message"]
    finally:
        _stop(server)
    pyrun("pod", "rm", "-f", "grpc")


def test_exec_probe_runs_as_the_container_with_its_limits_and_any_output(pyrun, write_pod):
    """The probe gets the workload's uid and resource limits (here lowered by the workload itself), and
    an output far larger than a pipe holds does not hang it until its timeout."""
    pyrun("pod", "create", write_pod("asctr", [{
        "name": "c", "command": ["sh", "-c", "ulimit -n 123; exec sleep 1000"],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        "readinessProbe": {"exec": {"command": [
            "sh", "-c", 'head -c 200000 /dev/zero; [ "$(ulimit -n)" = 123 ] && [ "$(id -u)" = 1000 ]']},
            "periodSeconds": 1, "timeoutSeconds": 5},
    }], terminationGracePeriodSeconds=0))
    _wait(lambda: _status(pyrun, "asctr")["ready"] == "1/1", 30, "READY 1/1")
    assert "exit code 0" in _container(pyrun, "asctr")["probes"]["readiness"]["message"]
    pyrun("pod", "rm", "-f", "asctr")



def test_a_restart_whose_set_up_fails_records_it_and_backs_off(pyrun, write_pod):
    """The monitor itself cannot set the next instance up (its log path is a directory now): the error
    is recorded and the C monitor gets an instance that exited 1, so it backs off and tries again."""
    import os
    pyrun("pod", "create", write_pod("nosetup", [{"name": "c", "command": ["sh", "-c", "sleep 2; exit 0"]}],
                                     restartPolicy="Always"))
    c = pyrun.wait_for("nosetup", "c", "running")
    log = c["log_path"]
    os.rename(log, log + ".saved")
    os.mkdir(log)
    try:
        c = _wait(lambda: (c := _container(pyrun, "nosetup")).get("restart_count", 0) >= 1
                  and c.get("last_state", {}).get("exit_code") == 1 and c["state"] == "waiting" and c, 30,
                  "a failed set-up, then the back-off")
        assert c["error"]["step"] == "restart" and "directory" in c["error"]["message"]
    finally:
        os.rmdir(log)
        os.rename(log + ".saved", log)
    pyrun("pod", "stop", "nosetup")
    assert _container(pyrun, "nosetup")["state"] == "exited"
    pyrun("pod", "rm", "nosetup")
