#!/usr/bin/env bash
# Builds the local control plane (tests/controlplane) once and caches it
# outside the repository, so only the first build is slow. Prints the path
# of klaxon-controlplane; kwok lies beside it.
#
# - klaxon-controlplane (etcd, kube-apiserver, kube-controller-manager and
#   kube-scheduler from k8s.io/kubernetes) is keyed by the Kubernetes version
#   and a hash of the harness source.
# - kwok (sigs.k8s.io/kwok) is keyed by its version alone, so changing the
#   harness does not rebuild it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kwok_version=v0.7.0
version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$here/go.mod" | head -n1)"
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
go_version="$(go env GOVERSION)"
root="${KLAXON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/klaxon}"
hash="$(cat "$here/go.mod" "$here/go.sum" "$here"/*.go "$here/podmetrics-crd.yaml" "$here/build.sh" <(echo "$go_version") | sha256sum | cut -c1-12)"
cache="$root/controlplane/$version-$hash"
bin="$cache/klaxon-controlplane"
kwok_dir="$root/kwok/$kwok_version-$go_version"
kwok="$kwok_dir/kwok"

if [ ! -x "$kwok" ]; then
  mkdir -p "$kwok_dir"
  exec 8>"$kwok_dir/.lock"
  flock 8
  if [ ! -x "$kwok" ]; then
    echo "build.sh: building kwok $kwok_version into $kwok_dir (first time only, a minute or two)" >&2
    GOBIN="$kwok_dir/bin.tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
    mv "$kwok_dir/bin.tmp/kwok" "$kwok"
    rmdir "$kwok_dir/bin.tmp"
  fi
fi

if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "build.sh: building kube-apiserver, kube-controller-manager, kube-scheduler $version and etcd into $cache (first time only, a few minutes)" >&2
    minor="${version#v1.}"; minor="${minor%%.*}"
    pkg=k8s.io/component-base/version
    ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    (cd "$here" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
  fi
fi
ln -sfn "$kwok" "$cache/kwok"
echo "$bin"
