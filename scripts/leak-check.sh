#!/usr/bin/env bash
# After the tests: fail if anything a pyrun command or test makes is still on this machine.
# Checks the host mount table, network namespace, cgroup trees, huge pages, nftables and processes.
set -uo pipefail
leaks=()
m=$(grep -E 'pyrun|overlay' /proc/self/mountinfo)
[ -n "$m" ] && leaks+=("mounts mentioning pyrun/overlay:"$'\n'"$m")
v=$(ip -o link show type veth 2>/dev/null)
[ -n "$v" ] && leaks+=("veth devices in the host network namespace:"$'\n'"$v")
b=$(ip -o link show type bridge 2>/dev/null | grep pyrun)
[ -n "$b" ] && leaks+=("a pyrun bridge in the host network namespace: $b")
n=$(ls /run/netns 2>/dev/null)
[ -n "$n" ] && leaks+=("named network namespaces in /run/netns: $n")
c=$(find /sys/fs/cgroup -maxdepth 3 -type d \( -name 'pyrun*' -o -name 'kubepods*' \) 2>/dev/null)
[ -n "$c" ] && leaks+=("cgroups named pyrun*/kubepods*:"$'\n'"$c")
h=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
[ "$h" != 0 ] && leaks+=("vm.nr_hugepages is $h")
t=$(nft list tables 2>/dev/null | grep pyrun)
[ -n "$t" ] && leaks+=("nftables tables: $t")
p=$(ps -eo pid,stat,args | awk '$2 !~ /Z/ && ($3 == "pause" || $0 ~ /pyrun\.runtime\.(monitor|sandbox|nsexec|probehelper)|pyrun\/bin\/monitor /)')
[ -n "$p" ] && leaks+=("processes left by pyrun:"$'\n'"$p")
k=$(ps -eo pid,stat,args | awk '$2 !~ /Z/ && $3 ~ /^\/var\/cache\/pyrun-tests\/kube-[^\/]+\/bin\//')
[ -n "$k" ] && leaks+=("Kubernetes processes left by the kube stage:"$'\n'"$k")
if [ ${#leaks[@]} -gt 0 ]; then
    echo "leak check: FAILED" >&2
    printf -- '- %s\n' "${leaks[@]}" >&2
    exit 1
fi
echo "leak check: nothing left behind"
