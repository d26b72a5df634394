"""The pod status function (pyrun.runtime.status) on typed records: kubectl's STATUS rules."""
import pytest

from pyrun.runtime.records import ContainerRecord, ContainerStatus as S, PodNetwork, PodRecord
from pyrun.runtime.status import container_reason, container_status, pod_status


def pod(state="running", ip="10.88.0.5"):
    return PodRecord(id="p" * 64, name="p", state=state, network=PodNetwork(ip=ip) if ip else None)


def ctr(state, reason=None, exit_code=None, **extra):
    return ContainerRecord(id="c" * 64, pod_id="p" * 64, name="c",
                           status=S(state=state, reason=reason, exit_code=exit_code, **extra))


RUNNING = ctr("running")
COMPLETED = ctr("exited", "Completed", 0)
ERROR = ctr("exited", "Error", 2)
OOM = ctr("exited", "OOMKilled", 137)


@pytest.mark.parametrize("containers,want,ready", [
    ([RUNNING], "Running", "1/1"),
    ([RUNNING, RUNNING], "Running", "2/2"),
    ([], "Running", "0/0"),                         # a CRI sandbox before its containers
    ([COMPLETED], "Completed", "0/1"),
    ([ERROR], "Error", "0/1"),
    ([OOM], "OOMKilled", "0/1"),
    ([COMPLETED, COMPLETED], "Completed", "0/2"),
    ([ERROR, OOM], "Error", "0/2"),                 # the first container that is not running wins
    ([OOM, ERROR], "OOMKilled", "0/2"),
    ([COMPLETED, ERROR], "Completed", "0/2"),
    ([RUNNING, ERROR], "Error", "1/2"),             # kubectl: Error even while another runs
    ([COMPLETED, RUNNING], "NotReady", "1/2"),      # kubectl: Completed while one runs reads NotReady
    ([RUNNING, ctr("created")], "Pending", "1/2"),
    ([ctr("unknown", "MonitorGone")], "MonitorGone", "0/1"),
    ([ctr("exited", None, 3)], "ExitCode:3", "0/1"),
])
def test_status_follows_kubectl(containers, want, ready):
    s = pod_status(pod(), containers, pause_alive=True)
    assert (s.status, f"{s.ready}/{s.total}", s.sandbox_ready) == (want, ready, True)


def test_pause_gone_is_not_ready_whatever_the_containers_say():
    for containers in ([RUNNING], [COMPLETED], []):
        s = pod_status(pod(), containers, pause_alive=False)
        assert s.status == "NotReady" and not s.sandbox_ready


@pytest.mark.parametrize("state,want", [("creating", "Creating"), ("stopped", "Stopped"), ("removing", "Removing")])
def test_pyruns_own_states_come_first(state, want):
    s = pod_status(pod(state), [ERROR], pause_alive=False)
    assert s.status == want and not s.sandbox_ready


def test_ip_only_while_the_pod_holds_it():
    assert pod_status(pod("running"), [], True).ip == "10.88.0.5"
    assert pod_status(pod("running"), [], False).ip == "10.88.0.5"  # pause gone: still allocated until stop
    assert pod_status(pod("stopped"), [], False).ip is None        # StopPodSandbox gave it back
    assert pod_status(pod("removing"), [], False).ip is None
    assert pod_status(pod("running", ip=None), [], True).ip is None
    pending = PodRecord(id="p" * 64, name="p", state="running", network=PodNetwork(pending=True))
    assert pod_status(pending, [], True).ip is None


def test_a_container_whose_monitor_died_is_unknown():
    assert container_status(S(state="running", pid=7), monitor_alive=False) == \
        S(state="unknown", reason="MonitorGone", pid=7)
    assert container_status(S(state="created"), monitor_alive=False).state == "unknown"
    assert container_status(S(state="running"), monitor_alive=True) == S(state="running")
    exited = S(state="exited", exit_code=0, reason="Completed")
    assert container_status(exited, monitor_alive=False) == exited  # the exit was recorded: nothing unknown


def test_container_reason():
    assert container_reason(S(state="running")) is None
    assert container_reason(S(state="exited", exit_code=137, signal="SIGKILL")) == "Signal:9"
    assert container_reason(S(state="exited")) == "ExitCode:0"
    assert container_reason(S(state="unknown")) == "Unknown"


def test_to_dict():
    assert pod_status(pod(), [RUNNING, ERROR], True).to_dict() == \
        {"status": "Error", "sandbox_ready": True, "ready": "1/2", "ip": "10.88.0.5"}


def test_the_one_running_check():
    from pyrun.errors import InvalidState
    from pyrun.runtime.status import may_still_write, require_running
    require_running("web", S(state="running"))
    for state in ("exited", "created", "unknown"):
        with pytest.raises(InvalidState, match=f"container web is {state}, not running"):
            require_running("web", S(state=state))
    assert may_still_write(S(state="created")) and may_still_write(S(state="running"))
    assert not may_still_write(S(state="exited")) and not may_still_write(S(state="unknown"))
