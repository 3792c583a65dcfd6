#!/usr/bin/env bash
# Build the Kubernetes binaries the tests in tests/integration/kube run: etcd, kube-apiserver,
# kube-controller-manager and kubectl, from the wrapper module in tests/integration/kube/tools.
#
# The binaries go to a cache OUTSIDE the clone, keyed by version, so a fresh clone (CI) reuses
# them:  ${SLUICE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube/<version>}
# The first build takes several minutes on a 2-core machine (Go compiles Kubernetes); later runs
# find the binaries and return at once.
#
#   tests/support/kube/build.sh            build what is missing, print the cache folder
#   tests/support/kube/build.sh --print    print the cache folder only
#   tests/support/kube/build.sh --update-module   regenerate tools/go.mod's replace block for KUBE_VERSION
set -euo pipefail

KUBE_VERSION=v1.37.2        # newest release that builds with the machine's Go (1.26)
ETCD_VERSION=v3.7.0         # the etcd server release k8s.io/kubernetes $KUBE_VERSION requires
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)

here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/tools"
cache="${SLUICE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube/$KUBE_VERSION-etcd$ETCD_VERSION}"

package_of() {
    case "$1" in
        etcd) echo go.etcd.io/etcd/server/v3 ;;
        *) echo "k8s.io/kubernetes/cmd/$1" ;;
    esac
}

if [ "${1:-}" = "--print" ]; then
    echo "$cache"
    exit 0
fi

if [ "${1:-}" = "--update-module" ]; then
    cd "$tools"
    mod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    staging="v0.${KUBE_VERSION#v1.}"
    {
        sed -n '1,/^replace (/p' go.mod
        sed -n '/^replace/,/^)/p' "$mod" | grep '=>' | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
        echo ")"
    } > go.mod.new
    mv go.mod.new go.mod
    go get "k8s.io/kubernetes@$KUBE_VERSION"
    go mod tidy
    echo "tools/go.mod now builds $KUBE_VERSION; check ETCD_VERSION against: $(grep etcd/server go.mod)"
    exit 0
fi

command -v go >/dev/null || { echo "tests/support/kube/build.sh: Go is not installed (needed to build Kubernetes)" >&2; exit 1; }

missing=()
for b in "${BINARIES[@]}"; do
    [ -x "$cache/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "$cache"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
    echo "tests/support/kube/build.sh: another build is running; waiting for it (timeout 60 min)" >&2
    flock -w 3600 9 || { echo "tests/support/kube/build.sh: gave up waiting for the other build" >&2; exit 1; }
fi

echo "Building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION for the cluster tests into $cache" >&2
echo "(the first build takes minutes: 34 measured on a busy 2-core machine, 11 of them CPU time; later runs reuse the cache)" >&2
export GOTOOLCHAIN=local
cd "$tools"
# the release's version, as Kubernetes' own build stamps it (`kubectl version`, /version)
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
start=$(date +%s)
i=0
for b in "${BINARIES[@]}"; do
    i=$((i + 1))
    if [ -x "$cache/$b" ]; then
        continue
    fi
    t0=$(date +%s)
    echo "[$i/${#BINARIES[@]}] go build $b ..." >&2
    # A heartbeat so a long compile does not look hung.
    ( while sleep 30; do echo "    ... still compiling $b ($(( $(date +%s) - t0 ))s)" >&2; done ) &
    beat=$!
    if ! go build -trimpath -ldflags="$ldflags" -o "$cache/.$b.tmp" "$(package_of "$b")"; then
        kill "$beat" 2>/dev/null || true
        echo "tests/support/kube/build.sh: building $b failed" >&2
        exit 1
    fi
    kill "$beat" 2>/dev/null || true
    mv "$cache/.$b.tmp" "$cache/$b"
    echo "[$i/${#BINARIES[@]}] $b built in $(( $(date +%s) - t0 ))s" >&2
done
echo "Kubernetes binaries ready in $(( $(date +%s) - start ))s: $cache" >&2
echo "$cache"
