"""The CNI protocol (pure): what a plugin gets on stdin and in its environment, and what its
reply means.

Each plugin of a list is called with the list's `name` and `cniVersion` merged into its
own config, `runtimeConfig` holding only the capabilities it declares (`capabilities:
{"portMappings": true}`), and `prevResult`: the previous plugin's result on ADD, the
cached result of the whole ADD on DEL and CHECK.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from pyrun.errors import NetworkError

IFNAME = "eth0"


@dataclass(frozen=True)
class PodRef:
    """What CNI_ARGS carry about the pod (as the kubelet's runtimes set them)."""

    container_id: str
    namespace: str
    name: str
    uid: str

    def cni_args(self) -> str:
        return ";".join(["IgnoreUnknown=1", f"K8S_POD_NAMESPACE={self.namespace}", f"K8S_POD_NAME={self.name}",
                         f"K8S_POD_INFRA_CONTAINER_ID={self.container_id}", f"K8S_POD_UID={self.uid}"])


def environment(command: str, pod: PodRef, netns: str, bin_dirs: Iterable[str], base: Mapping[str, str],
                ifname: str = IFNAME) -> dict[str, str]:
    """The plugin's environment: the caller's (plugins run iptables, ip, ... from PATH) plus CNI_*."""
    env = {k: v for k, v in base.items() if not k.startswith("CNI_")}
    env.update(CNI_COMMAND=command, CNI_CONTAINERID=pod.container_id, CNI_NETNS=netns, CNI_IFNAME=ifname,
               CNI_ARGS=pod.cni_args(), CNI_PATH=":".join(bin_dirs))
    if command in ("STATUS", "VERSION"):
        for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"):
            env.pop(k)
    return env


def port_mappings(ports: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """runtimeConfig.portMappings from the pod's container ports (those with a hostPort), as the
    kubelet's runtimes send them."""
    out = []
    for p in ports:
        host_port = int(p.get("hostPort") or 0)
        if host_port <= 0:
            continue
        m = {"hostPort": host_port, "containerPort": int(p["containerPort"]),
             "protocol": str(p.get("protocol") or "TCP").lower()}
        if p.get("hostIP"):
            m["hostIP"] = p["hostIP"]
        out.append(m)
    return out


def plugin_config(net_name: str, cni_version: str, plugin: Mapping[str, Any], capability_args: Mapping[str, Any],
                  prev_result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON one plugin of the list reads on stdin."""
    conf = dict(plugin)
    conf["name"] = net_name
    conf["cniVersion"] = cni_version
    declared = plugin.get("capabilities") or {}
    runtime = {k: v for k, v in capability_args.items() if declared.get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    else:
        conf.pop("runtimeConfig", None)
    if prev_result is not None:
        conf["prevResult"] = dict(prev_result)
    else:
        conf.pop("prevResult", None)
    return conf


def parse_reply(plugin_type: str, command: str, returncode: int, stdout: bytes, stderr: bytes) -> dict[str, Any] | None:
    """A plugin's reply: its result (ADD), None (DEL/CHECK/STATUS with empty output), or a
    NetworkError naming the plugin and quoting its error `msg` and `details`."""
    text = stdout.decode(errors="replace").strip()
    doc = None
    if text:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
    if returncode != 0:
        raise NetworkError(f"CNI plugin {plugin_type} failed on {command}: {error_message(doc, text, stderr)}")
    if isinstance(doc, dict) and doc.get("code") and doc.get("msg") is not None:  # an error reply with exit 0
        raise NetworkError(f"CNI plugin {plugin_type} failed on {command}: {error_message(doc, text, stderr)}")
    if command == "ADD":
        if not isinstance(doc, dict):
            raise NetworkError(f"CNI plugin {plugin_type} returned no valid result on ADD: {text[:200]!r}")
        return doc
    return doc if isinstance(doc, dict) else None


def error_message(doc: Any, stdout_text: str, stderr: bytes) -> str:
    """The CNI error reply as a sentence: "msg: details (code N)"; else whatever the plugin printed."""
    if isinstance(doc, dict) and ("msg" in doc or "code" in doc):
        msg = str(doc.get("msg") or "")
        if doc.get("details"):
            msg = f"{msg}: {doc['details']}" if msg else str(doc["details"])
        return f"{msg} (code {doc.get('code')})"
    text = stdout_text or stderr.decode(errors="replace").strip()
    return text[-500:] or "no output"


def pod_ip(result: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """(address, prefix length) of the pod from a result: the first IPv4 address on an interface
    inside the sandbox (else the first IPv4, else the first address); never a loopback address
    (the loopback plugin's 127.0.0.1 when it comes last in a list)."""
    if not result:
        return None
    interfaces = result.get("interfaces") or []
    ips = [ip for ip in (result.get("ips") or []) if isinstance(ip, dict) and ip.get("address")
           and not ipaddress.ip_interface(ip["address"]).is_loopback]

    def in_sandbox(ip: dict[str, Any]) -> bool:
        idx = ip.get("interface")
        return isinstance(idx, int) and 0 <= idx < len(interfaces) and bool(interfaces[idx].get("sandbox"))

    def v4(ip: dict[str, Any]) -> bool:
        return ipaddress.ip_interface(ip["address"]).version == 4

    for candidates in ([i for i in ips if in_sandbox(i) and v4(i)], [i for i in ips if v4(i)], ips):
        if candidates:
            iface = ipaddress.ip_interface(candidates[0]["address"])
            return str(iface.ip), iface.network.prefixlen
    return None


def summary(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """What pyrun records of a result in the pod: ip, prefix_len, gateway, mac, interfaces."""
    found = pod_ip(result)
    out: dict[str, Any] = {}
    if found:
        out["ip"], out["prefix_len"] = found
    for ip in (result or {}).get("ips") or []:
        if ip.get("gateway") and ipaddress.ip_interface(ip["address"]).ip == ipaddress.ip_address(out.get("ip", "::")):
            out["gateway"] = ip["gateway"]
    for iface in (result or {}).get("interfaces") or []:
        if iface.get("sandbox") and iface.get("name") == IFNAME and iface.get("mac"):
            out["mac"] = iface["mac"]
    out["interfaces"] = [i.get("name") for i in (result or {}).get("interfaces") or []]
    return out
