"""resolve_process: image config + container spec → argv, env, cwd, user (as kubelet + containerd do)."""
from __future__ import annotations

import pytest

from _spec_helpers import container, manifest, ok
from pyrun.errors import SpecError
from pyrun.spec.expand import expand
from pyrun.spec.process import DEFAULT_PATH, resolve_process

IMAGE = {"Entrypoint": ["/ep-1"], "Cmd": ["foo", "bar"]}


def resolve(image_config=None, pod_fields=None, metadata=None, **container_fields):
    pod = ok(manifest(container(**container_fields), metadata=metadata, **(pod_fields or {}))).pod
    return resolve_process(pod.containers[0], image_config if image_config is not None else IMAGE, pod,
                           pod_ip="10.88.0.5", node_name="node-1")


# The table of "Define a Command and Arguments for a Container" (kubernetes.io docs).
@pytest.mark.parametrize("command, args, expected", [
    (None, None, ("/ep-1", "foo", "bar")),
    (["/ep-2"], None, ("/ep-2",)),
    (None, ["zoo", "boo"], ("/ep-1", "zoo", "boo")),
    (["/ep-2"], ["zoo", "boo"], ("/ep-2", "zoo", "boo")),
])
def test_kubernetes_command_args_table(command, args, expected):
    fields = {k: v for k, v in (("command", command), ("args", args)) if v is not None}
    assert resolve(**fields).args == expected


@pytest.mark.parametrize("config, fields, expected", [
    ({"Cmd": ["sh"]}, {}, ("sh",)),
    ({"Entrypoint": ["/bin/ep"]}, {}, ("/bin/ep",)),
    ({"Entrypoint": None, "Cmd": None}, {"command": ["true"]}, ("true",)),
    ({}, {"command": ["true"], "args": ["x"]}, ("true", "x")),
    ({"Cmd": ["sh"]}, {"args": ["-c", "echo"]}, ("-c", "echo")),        # args replace Cmd, no Entrypoint
    ({"Entrypoint": [""], "Cmd": ["sh"]}, {}, ("sh",)),                   # [""] Entrypoint means none
    (IMAGE, {"command": [], "args": []}, ("/ep-1", "foo", "bar")),       # empty lists mean "not set"
])
def test_argv_merge_edge_cases(config, fields, expected):
    assert resolve(config, **fields).args == expected


def test_nothing_to_run_is_a_spec_error_naming_the_container():
    pod = ok(manifest(container("a", command=["true"]), container("b"))).pod
    with pytest.raises(SpecError) as info:
        resolve_process(pod.containers[1], {}, pod)
    assert info.value.problems == [
        ("spec.containers[1]", "no command: the image has no Entrypoint/Cmd and the container sets none")]
    with pytest.raises(SpecError):
        resolve_process(pod.containers[1], {"Entrypoint": None, "Cmd": None}, pod)


# --- $(VAR) expansion ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("$(A)", "a"), ("x$(A)y", "xay"), ("$(A)$(B)", "ab"), ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$$(A)", "$(A)"), ("$$$(A)", "$a"), ("$$", "$"), ("$", "$"), ("a$", "a$"), ("$A", "$A"),
    ("$(A", "$(A"), ("$()", "$()"), ("$(A)$", "a$"), ("$((1 + 2))", "$((1 + 2))"), ("${A}", "${A}"),
    ("$(EMPTY)x", "x"), ("no vars", "no vars"), ("", ""), ("$(A)$(", "a$("),
])
def test_expand(text, expected):
    assert expand(text, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_env_values_reference_earlier_vars_only():
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(C)"}, {"name": "C", "value": "3"},
           {"name": "D", "value": "$$(A)"}, {"name": "A", "value": "$(A)$(A)"}]
    proc = resolve({"Cmd": ["true"]}, env=env)
    assert [e for e in proc.env if e[0] in "ABCD" and e[1] == "="] == ["A=11", "B=1-$(C)", "C=3", "D=$(A)"]


def test_command_and_args_see_the_final_container_env():
    env = [{"name": "GREETING", "value": "hi"}, {"name": "GREETING", "value": "hello"}]
    proc = resolve(command=["echo", "$(GREETING)"], args=["$(PATH)", "$$(GREETING)", "$(NOPE)"], env=env)
    # PATH is not a container env var here: image/default env is not visible to the kubelet's expansion
    assert proc.args == ("echo", "hello", "$(PATH)", "$(GREETING)", "$(NOPE)")


def test_image_entrypoint_is_expanded_too():
    proc = resolve({"Entrypoint": ["echo", "$(X)"]}, env=[{"name": "X", "value": "1"}])
    assert proc.args == ("echo", "1")


# --- env -----------------------------------------------------------------------------------------

def test_env_merge_order_and_override():
    config = {"Cmd": ["true"], "Env": ["PATH=/image/bin", "LANG=C", "A=image"]}
    proc = resolve(config, env=[{"name": "A", "value": "container"}, {"name": "Z", "value": "z"}])
    assert proc.env == ("PATH=/image/bin", "HOSTNAME=demo", "LANG=C", "A=container", "Z=z")


def test_default_path_and_hostname():
    proc = resolve({"Cmd": ["true"]}, pod_fields={"hostname": "box"})
    assert proc.env == (f"PATH={DEFAULT_PATH}", "HOSTNAME=box")
    assert DEFAULT_PATH == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_container_can_override_path_and_hostname():
    proc = resolve({"Cmd": ["true"]}, env=[{"name": "PATH", "value": "/x"}, {"name": "HOSTNAME", "value": "h"}])
    assert proc.env == ("PATH=/x", "HOSTNAME=h")


def test_image_env_values_with_equals_signs():
    proc = resolve({"Cmd": ["true"], "Env": ["OPTS=a=b=c", "EMPTY="]})
    assert "OPTS=a=b=c" in proc.env and "EMPTY=" in proc.env


def test_field_refs_resolved():
    def ref(path):
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [{"name": "NAME", **ref("metadata.name")}, {"name": "NS", **ref("metadata.namespace")},
           {"name": "UID", **ref("metadata.uid")}, {"name": "APP", **ref("metadata.labels['app']")},
           {"name": "MISSING", **ref("metadata.labels['nope']")},
           {"name": "NOTE", **ref("metadata.annotations['example.com/note']")},
           {"name": "NODE", **ref("spec.nodeName")}, {"name": "SA", **ref("spec.serviceAccountName")},
           {"name": "IP", **ref("status.podIP")}, {"name": "HOSTIP", **ref("status.hostIP")},
           {"name": "ECHO", "value": "$(NAME)@$(IP)"}]
    metadata = {"namespace": "team", "uid": "u-1", "labels": {"app": "web"},
                "annotations": {"example.com/note": "n"}}
    proc = resolve({"Cmd": ["true"]}, metadata=metadata, env=env)
    values = dict(e.split("=", 1) for e in proc.env)
    assert values["NAME"] == "demo" and values["NS"] == "team" and values["UID"] == "u-1"
    assert values["APP"] == "web" and values["MISSING"] == "" and values["NOTE"] == "n"
    assert values["NODE"] == "node-1" and values["SA"] == "default" and values["IP"] == "10.88.0.5"
    assert values["HOSTIP"] == "" and values["ECHO"] == "demo@10.88.0.5"


def test_field_ref_values_are_not_expanded():
    proc = resolve({"Cmd": ["true"]}, metadata={"labels": {"app": "x"}},
                   env=[{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}])
    assert "B=demo" in proc.env


# --- cwd and user --------------------------------------------------------------------------------

@pytest.mark.parametrize("config, working_dir, expected", [
    ({"Cmd": ["true"]}, None, "/"),
    ({"Cmd": ["true"], "WorkingDir": "/app"}, None, "/app"),
    ({"Cmd": ["true"], "WorkingDir": "/app"}, "/srv", "/srv"),
    ({"Cmd": ["true"], "WorkingDir": ""}, None, "/"),
    ({"Cmd": ["true"], "WorkingDir": None}, None, "/"),
])
def test_cwd(config, working_dir, expected):
    fields = {"workingDir": working_dir} if working_dir else {}
    assert resolve(config, **fields).cwd == expected


@pytest.mark.parametrize("image_user, pod_ctx, ctr_ctx, expected", [
    (None, None, None, ""),
    ("nobody", None, None, "nobody"),
    ("1000:1000", None, None, "1000:1000"),
    ("nobody", {"runAsUser": 1000}, None, "1000"),
    ("nobody", {"runAsUser": 1000}, {"runAsUser": 2000}, "2000"),
    (None, {"runAsUser": 1000, "runAsGroup": 3000}, None, "1000:3000"),
    (None, {"runAsGroup": 3000}, {"runAsUser": 5}, "5:3000"),
    (None, None, {"runAsUser": 0}, "0"),
    ("app:app", None, {"runAsGroup": 7}, "app:7"),
    (None, None, {"runAsGroup": 7}, "0:7"),
])
def test_user(image_user, pod_ctx, ctr_ctx, expected):
    config = {"Cmd": ["true"], "User": image_user}
    pod_fields = {"securityContext": pod_ctx} if pod_ctx else {}
    fields = {"securityContext": ctr_ctx} if ctr_ctx else {}
    assert resolve(config, pod_fields=pod_fields, **fields).user == expected
