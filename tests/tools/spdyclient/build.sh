#!/bin/sh
# Build the spdyclient test tool: a static Go binary (CGO_ENABLED=0), offline, in GOPATH
# mode against Debian's packaged github.com/moby/spdystream.
#
#   tests/tools/spdyclient/build.sh [OUT]      (default OUT=<repo>/.cache/spdyclient, git-ignored)
#
# Rebuilds only when the sources, this script, the Go version or the spdystream sources
# changed: a content hash is kept in OUT.sha256. The build happens in a temporary directory
# that is removed again. The default OUT lies in the checkout, so the cgroup v2 test VM (which
# gets the checkout, but has no Go) runs the binary the host built.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../../.cache/spdyclient}
GOCODE=/usr/share/gocode
SPDYSTREAM=$GOCODE/src/github.com/moby/spdystream

if ! command -v go >/dev/null 2>&1; then
    echo "spdyclient build: 'go' not found; install it with: apt-get install golang-go golang-github-docker-spdystream-dev" >&2
    exit 1
fi
if [ ! -f "$SPDYSTREAM/connection.go" ]; then
    echo "spdyclient build: spdystream sources missing in $SPDYSTREAM; install them with: apt-get install golang-go golang-github-docker-spdystream-dev" >&2
    exit 1
fi

mkdir -p "$(dirname "$OUT")"
# One build at a time per OUT (parallel test sessions).
exec 9>"$OUT.lock"
flock 9

HASH=$( (cat "$HERE"/*.go "$HERE/build.sh"; go version; cat "$SPDYSTREAM"/*.go "$SPDYSTREAM"/spdy/*.go) | sha256sum | cut -d' ' -f1)
if [ -x "$OUT" ] && [ -f "$OUT.sha256" ] && [ "$(cat "$OUT.sha256")" = "$HASH" ]; then
    exit 0
fi

WORK=$(mktemp -d /tmp/spdyclient-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src/spdyclient"
cp "$HERE"/*.go "$WORK/src/spdyclient/"
cd "$WORK/src/spdyclient"
# GOPATH mode: no module downloads, imports come from $WORK (our package) and
# /usr/share/gocode (spdystream). GOFLAGS/GOPROXY are cleared so the environment
# cannot turn network access back on.
env GO111MODULE=off GOPATH="$WORK:$GOCODE" GOCACHE="$WORK/cache" GOFLAGS= GOPROXY=off \
    CGO_ENABLED=0 go build -trimpath -o "$WORK/spdyclient" .
mv -f "$WORK/spdyclient" "$OUT"
echo "$HASH" >"$OUT.sha256"
echo "spdyclient build: built $OUT" >&2
