#!/usr/bin/env bash
# Builds the local control plane (tests/controlplane) once and caches it
# outside the repository, so only the first build is slow. Prints the path
# of klaxon-controlplane; kwok, metrics-server, helm and alertmanager lie
# beside it.
#
# - klaxon-controlplane (etcd, kube-apiserver, kube-controller-manager and
#   kube-scheduler from k8s.io/kubernetes) is keyed by the Kubernetes version
#   and a hash of the harness source.
# - kwok (sigs.k8s.io/kwok), metrics-server (sigs.k8s.io/metrics-server)
#   helm (helm.sh/helm/v3, for the chart's tests) and alertmanager
#   (github.com/prometheus/alertmanager, for the alerting tests) are keyed by their versions alone, so changing the harness does not
#   rebuild them.
set -euo pipefail
# A failed `go install` inside $(tool ...) must fail the script.
shopt -s inherit_errexit
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kwok_version=v0.7.0
metrics_server_version=v0.8.0
helm_version=v3.19.5
alertmanager_version=v0.28.1
version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$here/go.mod" | head -n1)"
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
go_version="$(go env GOVERSION)"
root="${KLAXON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/klaxon}"
hash="$(cat "$here/go.mod" "$here/go.sum" "$here"/*.go "$here/build.sh" <(echo "$go_version") | sha256sum | cut -c1-12)"
cache="$root/controlplane/$version-$hash"
bin="$cache/klaxon-controlplane"
# tool NAME MODULE VERSION: builds MODULE/cmd/NAME@VERSION into the cache
# once and prints the binary's path.
tool() {
  local name="$1" module="$2" v="$3"
  local dir="$root/$name/$v-$go_version"
  if [ ! -x "$dir/$name" ]; then
    mkdir -p "$dir"
    (
      flock 8
      if [ ! -x "$dir/$name" ]; then
        echo "build.sh: building $name $v into $dir (first time only, a minute or two)" >&2
        GOBIN="$dir/bin.tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" "$module/cmd/$name@$v"
        mv "$dir/bin.tmp/$name" "$dir/$name"
        rmdir "$dir/bin.tmp"
      fi
    ) 8>"$dir/.lock"
  fi
  [ -x "$dir/$name" ] || { echo "build.sh: building $name failed" >&2; return 1; }
  echo "$dir/$name"
}
kwok="$(tool kwok sigs.k8s.io/kwok "$kwok_version")"
metrics_server="$(tool metrics-server sigs.k8s.io/metrics-server "$metrics_server_version")"
helm="$(tool helm helm.sh/helm/v3 "$helm_version")"
alertmanager="$(tool alertmanager github.com/prometheus/alertmanager "$alertmanager_version")"

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
# The tools lie beside the binary; a link is replaced only when it changes,
# so a cluster starting meanwhile never finds it missing.
for link in "kwok:$kwok" "metrics-server:$metrics_server" "helm:$helm" "alertmanager:$alertmanager"; do
  name="${link%%:*}" target="${link#*:}"
  [ "$(readlink "$cache/$name" 2>/dev/null)" = "$target" ] || ln -sfn "$target" "$cache/$name"
done
echo "$bin"
