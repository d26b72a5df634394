#!/usr/bin/env bash
# apt-ensure.sh [--no-services] PACKAGE...: install the Debian packages that are missing (quietly), nothing else.
#   --no-services  for servers the tests start themselves (prometheus): no recommended packages, and
#                  the packaged services are neither started (a policy-rc.d that says no, for the
#                  install only, unless one exists) nor enabled at boot. Only for packages this run installs.
set -euo pipefail
no_services=0
if [ "${1:-}" = "--no-services" ]; then
    no_services=1
    shift
fi
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "==> apt-get install$missing"
apt-get update -qq
if [ "$no_services" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    exit 0
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# apt-ensure.sh --no-services: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
for p in $missing; do
    for unit in $(dpkg -L "$p" | grep -E '/lib/systemd/system/[^/]+\.service$' | xargs -r -n1 basename); do
        if [ -d /run/systemd/system ]; then
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        else  # no systemd running: remove the enablement links the postinst made
            DPKG_MAINTSCRIPT_PACKAGE="$p" deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true
        fi
    done
done
