#!/usr/bin/env bash
# Build (once per machine) the Kubernetes binaries the kube stage runs against pyrun:
# kubelet, kube-apiserver, kube-scheduler and kube-controller-manager 1.20.2 from Debian 12's
# `kubernetes` source package, plus kubectl (kubernetes-client) and etcd (etcd-server).
#
# Everything lands in $PYRUN_KUBE_CACHE (default /var/cache/pyrun-tests/kube-<source version>/):
#   bin/     the seven binaries the tests use (kubectl and etcd are unpacked from their .debs,
#            so a host kubectl from another package is never touched)
#   gopath/  GOPATH with the unpacked source at src/k8s.io/kubernetes
#   gocache/ the Go build cache (a rebuild after an interrupted run is incremental)
# A finished build leaves bin/.complete; later runs print the bin dir and exit.
# Prints the bin directory as its last line of stdout.
set -euo pipefail

SRC_VERSION=${PYRUN_KUBE_SRC_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
K8S_VERSION=v1.20.2
CACHE=${PYRUN_KUBE_CACHE:-/var/cache/pyrun-tests/kube-$SRC_VERSION}
BIN=$CACHE/bin
GOPATH_DIR=$CACHE/gopath
K8S=$GOPATH_DIR/src/k8s.io/kubernetes
SOURCES_FILE=/etc/apt/sources.list.d/pyrun-tests-src.sources
NICE=(nice -n 10)
APT=(apt-get -q -o DPkg::Lock::Timeout=1800)

log() { echo "kube-build: $*" >&2; }

if [[ -e $BIN/.complete ]]; then
    echo "$BIN"
    exit 0
fi
[[ $(id -u) == 0 ]] || { log "must run as root (apt-get, /var/cache)"; exit 1; }
mkdir -p "$CACHE" "$BIN"
exec 9>"$CACHE/.lock"
flock 9   # two test runs never build at once
if [[ -e $BIN/.complete ]]; then echo "$BIN"; exit 0; fi

add_deb_src() {
    # deb-src for the mirror the host already uses (debian.sources: deb.debian.org bookworm main).
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && [[ ! -e $SOURCES_FILE ]]; then
        log "adding $SOURCES_FILE"
        cat > "$SOURCES_FILE" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $SRC_VERSION\$"; then
        "${APT[@]}" update >&2
    fi
}

install_build_deps() {
    local want=(golang-go golang-github-modern-go-reflect2-dev dpkg-dev jq rsync)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >&2
    fi
}

unpack_debs() {
    # kubectl and etcd: unpacked from Debian's .debs into the cache (no dpkg install: another
    # package may already own /usr/bin/kubectl).
    local tmp
    [[ -x $BIN/kubectl && -x $BIN/etcd ]] && return
    tmp=$(mktemp -d "$CACHE/debs.XXXXXX")
    (cd "$tmp" && "${APT[@]}" download kubernetes-client etcd-server >&2)
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
    install -m 0755 "$tmp/root/usr/bin/kubectl" "$BIN/kubectl"
    install -m 0755 "$tmp/root/usr/bin/etcd" "$BIN/etcd"
    rm -rf "$tmp"
}

fetch_source() {
    [[ -e $K8S/.pyrun-unpacked ]] && return
    local tmp
    rm -rf "$K8S"
    tmp=$(mktemp -d "$CACHE/src.XXXXXX")
    log "apt-get source kubernetes=$SRC_VERSION"
    (cd "$tmp" && "${APT[@]}" source "kubernetes=$SRC_VERSION" >&2)
    mkdir -p "$(dirname "$K8S")"
    mv "$tmp"/kubernetes-*/ "$K8S"
    rm -rf "$tmp"
    touch "$K8S/.pyrun-unpacked"
}

patch_source() {
    [[ -e $K8S/.pyrun-patched ]] && return
    log "vendoring reflect2 1.0.2 from golang-github-modern-go-reflect2-dev"
    rm -rf "$K8S/vendor/github.com/modern-go/reflect2"
    cp -a /usr/share/gocode/src/github.com/modern-go/reflect2 "$K8S/vendor/github.com/modern-go/reflect2"
    rm -f "$K8S/vendor/github.com/modern-go/reflect2/go.mod"
    log "patching the kubelet: warn about kernel tunables instead of setting them"
    local cm=$K8S/pkg/kubelet/cm/container_manager_linux.go
    grep -q '^	b := KernelTunableModify$' "$cm" || { log "kernel tunables code not found in $cm"; exit 1; }
    sed -i 's/^	b := KernelTunableModify$/	b := KernelTunableWarn \/\/ pyrun tests: never change host-wide sysctls/' "$cm"
    touch "$K8S/.pyrun-patched"
}

go_env() {
    export GOPATH=$GOPATH_DIR GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE=$CACHE/gocache
    export GOTOOLCHAIN=local HOME=${HOME:-/root}
}

generate_openapi() {
    local out=$K8S/pkg/generated/openapi/zz_generated.openapi.go
    [[ -s $out ]] && return
    log "building openapi-gen from the vendor tree"
    (cd "$K8S" && "${NICE[@]}" go build -o "$CACHE/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
    # The same input set as Makefile.generated_files' KUBE target: every package (staging as
    # vendor/) with a +k8s:openapi-gen tag, except code-generator and sample-apiserver.
    local dirs
    dirs=$(cd "$K8S" && find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
        | sed 's|^./staging/src|vendor|; s|^\./||' \
        | xargs grep --color=never -l '^// *+k8s:' | xargs grep --color=never -l '+k8s:openapi-gen=' \
        | xargs -n1 dirname | LC_ALL=C sort -u \
        | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
        | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    log "generating pkg/generated/openapi"
    (cd "$K8S" && "${NICE[@]}" "$CACHE/openapi-gen" --logtostderr \
        -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
        -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "$CACHE/openapi-violations.report" >&2)
    [[ -s $out ]] || { log "openapi-gen wrote no $out"; exit 1; }
}

build_binaries() {
    local ldflags="-s -w" key
    for key in gitVersion=$K8S_VERSION gitMajor=1 gitMinor=20 gitTreeState=clean buildDate=1970-01-01T00:00:00Z; do
        ldflags+=" -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.$key"
        ldflags+=" -X k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version.$key"
    done
    for cmd in kubelet kube-scheduler kube-controller-manager kube-apiserver; do
        [[ -x $BIN/$cmd ]] && continue
        log "building $cmd"
        # providerless, dockerless: no in-tree cloud providers and no dockershim (a third of the code)
        (cd "$K8S" && "${NICE[@]}" go build -tags providerless,dockerless -o "$BIN/$cmd.tmp" -ldflags "$ldflags" \
            "./cmd/$cmd")
        mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    done
}

start=$SECONDS
add_deb_src
install_build_deps
unpack_debs
fetch_source
patch_source
go_env
generate_openapi
build_binaries
"$BIN/kubelet" --version >&2
touch "$BIN/.complete"
log "done in $((SECONDS - start)) s"
echo "$BIN"
