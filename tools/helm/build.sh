#!/usr/bin/env bash
# Build helm (the `helm template` renderer that `sluice onboard --chart` runs) from its Go module
# into a cache OUTSIDE the clone, keyed by version, so a fresh clone (CI) reuses it:
#   ${SLUICE_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/helm/<version>}/helm
# The first build takes minutes on a 2-core machine (Go compiles helm and client-go); later runs
# find the binary and return at once.
#
#   tools/helm/build.sh           build it when missing, print the binary's path
#   tools/helm/build.sh --print   print the binary's path only
set -euo pipefail

HELM_VERSION=v3.22.0    # served by the Go module proxy; builds with the machine's Go (1.26)

cache="${SLUICE_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/helm/$HELM_VERSION}"
binary="$cache/helm"

if [ "${1:-}" = "--print" ]; then
    echo "$binary"
    exit 0
fi
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi
command -v go >/dev/null || { echo "tools/helm/build.sh: Go is not installed (needed to build helm)" >&2; exit 1; }

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
    echo "tools/helm/build.sh: another build is running; waiting for it (timeout 30 min)" >&2
    flock -w 1800 9 || { echo "tools/helm/build.sh: gave up waiting for the other build" >&2; exit 1; }
    if [ -x "$binary" ]; then echo "$binary"; exit 0; fi
fi

echo "Building helm $HELM_VERSION into $cache (the first build takes minutes; later runs reuse it)" >&2
t0=$(date +%s)
( while sleep 30; do echo "    ... still compiling helm ($(( $(date +%s) - t0 ))s)" >&2; done ) &
beat=$!
trap 'kill "$beat" 2>/dev/null || true' EXIT
tmp="$cache/.gobin"
rm -rf "$tmp"
# `go install module@version` builds the released module as published (its own go.mod and sums,
# checked against the checksum database); the version is stamped the way helm's Makefile does.
GOTOOLCHAIN=local GOBIN="$tmp" go install -trimpath \
    -ldflags="-s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$tmp/helm" "$binary"
rm -rf "$tmp"
echo "helm $HELM_VERSION built in $(( $(date +%s) - t0 ))s: $binary" >&2
echo "$binary"
