"""CNI (pyrun.netns.cni) without root: config selection, the protocol, the cache, and the chain
run against fake plugins (small Python scripts that log what they got)."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from pyrun.config import Config
from pyrun.errors import NetworkError
from pyrun.netns.cni import cache, chain, config, protocol
from pyrun.netns.cni.protocol import PodRef

POD = PodRef(container_id="c0ffee", namespace="default", name="web", uid="1234-5678")
BRIDGE = {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}}


def conflist(name="net", version="1.0.0", plugins=(BRIDGE,), **kw) -> str:
    return json.dumps({"cniVersion": version, "name": name, "plugins": list(plugins), **kw})


# --- config selection ---------------------------------------------------------------------------
def test_first_valid_config_in_lexical_order_wins():
    files = [("20-b.conflist", conflist("b")), ("10-a.conflist", conflist("a")), ("05-x.txt", conflist("x"))]
    assert config.select_config(files).name == "a"


def test_invalid_configs_are_skipped_and_reported_when_none_is_left():
    files = [("10-bad.conflist", "{not json"), ("20-ok.conflist", conflist("ok"))]
    assert config.select_config(files, "/d").name == "ok"
    with pytest.raises(NetworkError) as e:
        config.select_config([("10-bad.conflist", "{not json"),
                              ("30-v.conflist", conflist(version="9.9.9")),
                              ("40-t.conflist", conflist(plugins=[{"type": "../evil"}]))], "/d")
    msg = str(e.value)
    assert "no valid CNI network config in /d" in msg
    assert "/d/10-bad.conflist: not valid JSON" in msg and "cniVersion '9.9.9'" in msg
    assert "plugins[0].type '../evil'" in msg


def test_no_config_files_at_all():
    with pytest.raises(NetworkError, match="no CNI network config in /d"):
        config.select_config([("README", "x")], "/d")


def test_a_single_conf_is_a_list_of_one():
    net = config.parse_config("10-one.conf", json.dumps({"cniVersion": "0.4.0", "name": "one", **BRIDGE}))
    assert net.name == "one" and net.cni_version == "0.4.0"
    assert net.plugins == ({"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},)


def test_versions_with_check_and_status():
    assert config.has_check("0.4.0") and config.has_check("1.0.0") and not config.has_check("0.3.1")
    assert config.has_status("1.1.0") and not config.has_status("1.0.0")


def test_read_conf_dir(tmp_path):
    (tmp_path / "10-a.conflist").write_text(conflist("a"))
    (tmp_path / "notes.md").write_text("x")
    assert [n for n, _ in config.read_conf_dir(str(tmp_path))] == ["10-a.conflist"]
    with pytest.raises(NetworkError, match="does not exist"):
        config.read_conf_dir(str(tmp_path / "missing"))


def test_find_plugin_searches_the_dirs_in_order():
    there = {"/b/bridge", "/a/portmap"}
    assert config.find_plugin("bridge", ["/a", "/b"], there.__contains__) == "/b/bridge"
    with pytest.raises(NetworkError, match="CNI plugin 'tuning' not found in /a:/b"):
        config.find_plugin("tuning", ["/a", "/b"], there.__contains__)


# --- protocol -----------------------------------------------------------------------------------
def test_environment_as_the_kubelet_runtimes_set_it():
    env = protocol.environment("ADD", POD, "/run/ns", ["/opt/cni/bin", "/usr/lib/cni"],
                               {"PATH": "/usr/bin", "CNI_COMMAND": "stale"})
    assert env == {"PATH": "/usr/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/run/ns",
                   "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
                   "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                               "K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=1234-5678"}
    status = protocol.environment("STATUS", POD, "/run/ns", ["/x"], {})
    assert set(status) == {"CNI_COMMAND", "CNI_PATH"}


def test_port_mappings_only_for_host_ports():
    ports = [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"},
             {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"}]
    assert protocol.port_mappings(ports) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]


def test_plugin_config_gets_name_version_declared_capabilities_and_prev_result():
    caps = {"portMappings": [{"hostPort": 1}], "bandwidth": {"x": 1}}
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    conf = protocol.plugin_config("net", "1.0.0", portmap, caps, {"ips": []})
    assert conf == {"type": "portmap", "capabilities": {"portMappings": True}, "name": "net", "cniVersion": "1.0.0",
                    "runtimeConfig": {"portMappings": [{"hostPort": 1}]}, "prevResult": {"ips": []}}
    plain = protocol.plugin_config("net", "1.0.0", BRIDGE, caps, None)
    assert "runtimeConfig" not in plain and "prevResult" not in plain
    assert "prevResult" not in BRIDGE  # the list's own plugin dicts are not changed


def test_error_reply_names_the_plugin_and_quotes_msg_and_details():
    reply = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate", "details": "range full"})
    with pytest.raises(NetworkError) as e:
        protocol.parse_reply("host-local", "ADD", 1, reply.encode(), b"")
    assert str(e.value) == "CNI plugin host-local failed on ADD: failed to allocate: range full (code 11)"
    with pytest.raises(NetworkError, match="CNI plugin odd failed on DEL: boom on stderr"):
        protocol.parse_reply("odd", "DEL", 2, b"", b"boom on stderr\n")
    with pytest.raises(NetworkError, match="returned no valid result on ADD"):
        protocol.parse_reply("odd", "ADD", 0, b"", b"")
    assert protocol.parse_reply("bridge", "DEL", 0, b"", b"") is None


RESULT = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                         {"name": "eth0", "mac": "cc", "sandbox": "/run/ns"}],
          "ips": [{"address": "fd00::5/64", "interface": 2}, {"address": "10.22.0.5/16", "gateway": "10.22.0.1",
                                                              "interface": 2}]}


def test_the_pod_ip_is_the_first_ipv4_on_a_sandbox_interface():
    assert protocol.pod_ip(RESULT) == ("10.22.0.5", 16)
    assert protocol.pod_ip({"ips": [{"address": "fd00::5/64"}]}) == ("fd00::5", 64)
    assert protocol.pod_ip({}) is None
    assert protocol.pod_ip({"ips": [{"address": "127.0.0.1/8"}, {"address": "::1/128"}]}) is None
    assert protocol.summary(RESULT) == {"ip": "10.22.0.5", "prefix_len": 16, "gateway": "10.22.0.1", "mac": "cc",
                                        "interfaces": ["cni0", "veth1", "eth0"]}


# --- cache --------------------------------------------------------------------------------------
def test_cache_entry_round_trip_in_libcni_format(tmp_path):
    net = json.loads(conflist("net"))
    entry = cache.CacheEntry(config=net, pod=POD, netns="/run/ns", bin_dirs=["/usr/lib/cni"],
                             capability_args={"portMappings": []}, result=RESULT)
    path = cache.write(tmp_path, entry)
    assert path == tmp_path / "cni" / "results" / "net-c0ffee-eth0"
    doc = json.loads(path.read_text())
    assert doc["kind"] == "cniCacheV1" and doc["containerId"] == "c0ffee" and doc["networkName"] == "net"
    assert ["K8S_POD_NAME", "web"] in doc["cniArgs"]
    assert cache.read(path) == entry
    assert cache.entries_of(tmp_path, "c0ffee") == [path] and cache.entries_of(tmp_path, "other") == []
    assert cache.read(tmp_path / "nope") is None


# --- the chain against fake plugins -------------------------------------------------------------
FAKE = textwrap.dedent("""\
    #!{python}
    import json, os, sys, time
    conf = json.load(sys.stdin)
    cmd = os.environ["CNI_COMMAND"]
    with open(conf["log"], "a") as log:
        log.write(json.dumps({{"type": conf["type"], "cmd": cmd, "args": os.environ.get("CNI_ARGS"),
                              "netns": os.environ.get("CNI_NETNS"), "conf": conf}}) + "\\n")
    fail = conf.get("fail", {{}}).get(cmd)
    if fail:
        print(json.dumps({{"cniVersion": conf["cniVersion"], **fail}}))
        sys.exit(1)
    time.sleep(conf.get("sleep", {{}}).get(cmd, 0))
    if cmd == "ADD":
        prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}}
        prev["interfaces"].append({{"name": conf["type"], "sandbox": os.environ["CNI_NETNS"]}})
        if conf.get("ip"):
            prev["ips"].append({{"address": conf["ip"], "interface": len(prev["interfaces"]) - 1}})
        print(json.dumps(prev))
    """)


@pytest.fixture
def fake(tmp_path):
    """(settings, log path, write(plugins, version)) with fake plugins `one`, `two`, `three` in a bin dir."""
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    for name in ("one", "two", "three"):
        p = bin_dir / name
        p.write_text(FAKE.format(python=sys.executable))
        p.chmod(0o755)
    log = tmp_path / "calls.log"
    settings = chain.CniSettings(conf_dir=str(conf_dir), bin_dirs=(str(tmp_path / "empty"), str(bin_dir)),
                                 timeout=10, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

    def write(plugins, version="1.0.0", name="fakenet"):
        plugins = [{"log": str(log), **p} for p in plugins]
        (conf_dir / "10-fake.conflist").write_text(conflist(name, version, plugins))

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return settings, write, calls


def test_add_chains_prev_results_and_del_runs_in_reverse_from_the_cache(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one", "ip": "10.1.0.2/24"}, {"type": "two", "capabilities": {"portMappings": True}},
           {"type": "three"}])
    result = chain.add(tmp_path / "root", settings, POD, "/run/ns", ports=[{"containerPort": 80, "hostPort": 8080}])
    assert [i["name"] for i in result["interfaces"]] == ["one", "two", "three"]
    assert protocol.pod_ip(result) == ("10.1.0.2", 24)
    adds = calls()
    assert [c["type"] for c in adds] == ["one", "two", "three"]
    assert "prevResult" not in adds[0]["conf"] and adds[1]["conf"]["prevResult"]["interfaces"][0]["name"] == "one"
    assert adds[1]["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 8080, "containerPort": 80,
                                                                  "protocol": "tcp"}]}
    assert "runtimeConfig" not in adds[0]["conf"]
    assert "K8S_POD_UID=1234-5678" in adds[0]["args"]
    write([{"type": "one"}], name="changed")  # DEL uses the cached config, not the conf dir's
    assert chain.delete(tmp_path / "root", settings, POD.container_id) == ["fakenet-c0ffee-eth0"]
    dels = calls()[3:]
    assert [c["type"] for c in dels] == ["three", "two", "one"] and {c["cmd"] for c in dels} == {"DEL"}
    assert all(c["conf"]["prevResult"] == result and c["conf"]["name"] == "fakenet" for c in dels)
    assert dels[0]["netns"] == ""  # /run/ns is no network namespace: plugins only release the outside
    assert chain.delete(tmp_path / "root", settings, POD.container_id) == []  # idempotent
    assert cache.all_entries(tmp_path / "root") == []


def test_a_failing_add_is_rolled_back_and_names_the_plugin(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one"}, {"type": "two", "fail": {"ADD": {"code": 7, "msg": "no luck", "details": "x=1"}}},
           {"type": "three"}])
    with pytest.raises(NetworkError, match=r"CNI plugin two failed on ADD: no luck: x=1 \(code 7\)"):
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    calls_made = calls()
    assert [(c["type"], c["cmd"]) for c in calls_made] == [("one", "ADD"), ("two", "ADD"), ("two", "DEL"),
                                                           ("one", "DEL")]  # three never ran ADD
    assert calls_made[2]["conf"]["prevResult"]["interfaces"] == [{"name": "one", "sandbox": "/run/ns"}]
    assert cache.all_entries(tmp_path / "root") == []


def test_a_plugin_that_cannot_read_its_config_made_nothing_to_delete(tmp_path, fake):
    settings, write, calls = fake
    bad = {"code": 7, "msg": "invalid CIDR"}
    write([{"type": "one"}, {"type": "two", "fail": {"ADD": bad, "DEL": bad}}])
    with pytest.raises(NetworkError) as e:
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert str(e.value) == "CNI plugin two failed on ADD: invalid CIDR (code 7)"
    assert cache.all_entries(tmp_path / "root") == []


def test_a_failed_rollback_keeps_the_entry_and_says_so(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one", "fail": {"DEL": {"code": 999, "msg": "stuck"}}},
           {"type": "two", "fail": {"ADD": {"code": 5, "msg": "nope"}}}])
    with pytest.raises(NetworkError) as e:
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert str(e.value) == ("CNI plugin two failed on ADD: nope (code 5); the rollback failed too (pyrun gc "
                            "retries): CNI plugin one failed on DEL: stuck (code 999)")
    assert len(cache.all_entries(tmp_path / "root")) == 1


def test_a_missing_plugin_fails_before_anything_runs(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one"}, {"type": "nosuch"}])
    with pytest.raises(NetworkError, match="CNI plugin 'nosuch' not found in .*empty:.*bin"):
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert calls() == [] and cache.all_entries(tmp_path / "root") == []


def test_a_failed_del_keeps_the_cache_for_a_retry(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one", "fail": {"DEL": {"code": 999, "msg": "busy"}}}, {"type": "two"}])
    chain.add(tmp_path / "root", settings, POD, "/run/ns")
    with pytest.raises(NetworkError, match="CNI plugin one failed on DEL: busy"):
        chain.delete(tmp_path / "root", settings, POD.container_id)
    assert [(c["type"], c["cmd"]) for c in calls()[2:]] == [("two", "DEL"), ("one", "DEL")]  # both were tried
    assert len(cache.all_entries(tmp_path / "root")) == 1


def test_gc_deletes_entries_of_pods_that_are_gone(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one"}])
    root = tmp_path / "root"
    entry = cache.CacheEntry(config=json.loads((Path(settings.conf_dir) / "10-fake.conflist").read_text()),
                             pod=POD, netns="/gone", bin_dirs=list(settings.bin_dirs), capability_args={})
    cache.write(root, entry)  # what a pyrun killed in the middle of ADD leaves: no result
    other = PodRef("beef", "default", "alive", "u")
    chain.add(root, settings, other, "/run/ns2")
    assert chain.gc(root, settings, {"beef"}) == ["fakenet-c0ffee-eth0"]
    assert [(c["cmd"], c["conf"].get("prevResult")) for c in calls()[1:]] == [("DEL", None)]
    assert [p.name for p in cache.all_entries(root)] == ["fakenet-beef-eth0"]


def test_check_uses_the_cached_result_and_is_skipped_before_0_4_0(tmp_path, fake):
    settings, write, calls = fake
    write([{"type": "one"}, {"type": "two"}])
    result = chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert chain.check(tmp_path / "root", settings, POD.container_id) == ["fakenet"]
    checks = [c for c in calls() if c["cmd"] == "CHECK"]
    assert [c["type"] for c in checks] == ["one", "two"] and checks[0]["conf"]["prevResult"] == result
    chain.delete(tmp_path / "root", settings, POD.container_id)
    write([{"type": "one"}], version="0.3.1")
    chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert chain.check(tmp_path / "root", settings, POD.container_id) == []


def test_status_reads_the_config_and_asks_plugins_from_1_1_0(tmp_path, fake):
    settings, write, calls = fake
    with pytest.raises(NetworkError, match="no CNI network config"):
        chain.status(settings)
    write([{"type": "one"}], version="1.0.0")
    assert chain.status(settings).name == "fakenet" and calls() == []
    write([{"type": "one"}, {"type": "two", "fail": {"STATUS": {"code": 50, "msg": "not ready yet"}}}],
          version="1.1.0")
    with pytest.raises(NetworkError, match="CNI plugin two failed on STATUS: not ready yet"):
        chain.status(settings)
    assert [c["cmd"] for c in calls()] == ["STATUS", "STATUS"]


def test_a_plugin_that_hangs_is_killed_at_the_timeout(tmp_path, fake):
    settings, write, calls = fake
    import dataclasses
    settings = dataclasses.replace(settings, timeout=0.5)
    write([{"type": "one", "sleep": {"ADD": 30}}])
    with pytest.raises(NetworkError, match="CNI plugin one did not finish ADD within 0.5 s"):
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    assert cache.all_entries(tmp_path / "root") == []


def test_settings_from_the_cli_config():
    cfg = Config(cni={"conf_dir": "/c", "bin_dirs": "/a:/b"})
    assert chain.CniSettings.from_config(cfg).bin_dirs == ("/a", "/b")
    assert chain.CniSettings.from_config(Config()).conf_dir == "/etc/cni/net.d"


def test_cri_status_reports_network_not_ready_until_a_valid_config_exists(tmp_path, fake):
    from cri_api.v1 import api_pb2 as pb

    from pyrun.cri.service import RuntimeService
    settings, write, calls = fake
    cfg = Config(root=tmp_path / "root", network_mode="cni", cni={
        "conf_dir": settings.conf_dir, "bin_dirs": list(settings.bin_dirs)})
    runtime = RuntimeService(cfg)

    def network_ready():
        return next(c for c in runtime.Status(pb.StatusRequest()).status.conditions if c.type == "NetworkReady")
    (Path(settings.conf_dir) / "10-broken.conflist").write_text("{")
    cond = network_ready()
    assert not cond.status and cond.reason == "NetworkPluginNotReady"
    assert "10-broken.conflist: not valid JSON" in cond.message
    write([{"type": "one"}])
    assert network_ready().status


def test_explain_shows_each_plugin_call_as_a_shell_command(tmp_path, fake):
    from pyrun import explain
    settings, write, calls = fake
    write([{"type": "one"}])
    lines = explain.record()
    try:
        chain.add(tmp_path / "root", settings, POD, "/run/ns")
    finally:
        explain.stop_recording()
    assert len(lines) == 1 and lines[0].startswith("CNI_COMMAND=ADD CNI_CONTAINERID=c0ffee CNI_NETNS=/run/ns ")
    assert "'CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;" in lines[0]
    assert f"{settings.bin_dirs[1]}/one <<< '" in lines[0] and '"name": "fakenet"' in lines[0]
