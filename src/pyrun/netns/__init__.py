"""Pod networking, built the way the Kubernetes books build it by hand.

A node bridge (`pyrun0`, gateway 10.88.0.1/16), one veth pair per pod (host end
`veth<8 hex>` on the bridge, the other end `eth0` in the pod's network namespace),
addresses from a file-backed allocator, a default route via the gateway, and
pyrun's own nftables table for masquerade and hostPorts.

Entry points (import the submodule, not this package: it stays light because
`import pyroute2` costs ~200 ms and only the networking paths need it):

    from pyrun.netns.pod import attach_pod, detach_pod, gc_network
    from pyrun.netns.dns import render_resolv_conf, render_hosts

Pure parts: settings, ipam (decision), dns, rules, owner (which state root owns
a veth, an address, a rule). Thin side-effect layers: nodestate (the node-wide
records directory and its lock), ipam (the locked JSON file), netlink (the only
importer of pyroute2), nat (nft), bridge, pod.

hostNetwork pods: the caller simply does not call attach_pod. The pod then
shares the node's network namespace: no veth, no address, no hostPort rules
(its ports are already the node's ports); /etc/hosts and resolv.conf are still
rendered (dnsPolicy "ClusterFirst" with host_network=True behaves like "Default",
as in the kubelet).
"""
