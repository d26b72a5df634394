#!/usr/bin/env bash
# apt-ensure.sh PACKAGE...: install the Debian packages that are missing (quietly), nothing else.
set -euo pipefail
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "==> apt-get install$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
