#!/usr/bin/env bash
# Builds the local control plane (tests/controlplane) once and caches the
# binary outside the repository, keyed by the Kubernetes version and a hash
# of the harness source, so only the first build is slow. Prints its path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$here/go.mod" | head -n1)"
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
go_version="$(go env GOVERSION)"
hash="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" <(echo "$go_version") | sha256sum | cut -c1-12)"
cache="${KLAXON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/klaxon}/controlplane/$version-$hash"
bin="$cache/klaxon-controlplane"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "build.sh: building kube-apiserver $version and etcd into $cache (first time only, a few minutes)" >&2
    minor="${version#v1.}"; minor="${minor%%.*}"
    pkg=k8s.io/component-base/version
    ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    (cd "$here" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
  fi
fi
echo "$bin"
