#!/usr/bin/env bash
# Prints the path of a Prometheus server binary for the integration tests:
# Debian's `prometheus` package, unpacked (not installed) into a cache
# outside the repository keyed by its version, so only the first run
# downloads it. Set KLAXON_PROMETHEUS_BIN to use another binary.
set -euo pipefail

if [[ -n "${KLAXON_PROMETHEUS_BIN:-}" ]]; then
  echo "$KLAXON_PROMETHEUS_BIN"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../require.sh" apt-cache
cache="${KLAXON_CACHE_DIR:-$HOME/.cache/klaxon}/prometheus"
version="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "$version" || "$version" == "(none)" ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq >&2
    version="$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')"
  fi
fi
if [[ -z "$version" || "$version" == "(none)" ]]; then
  echo "fetch.sh: Debian's prometheus package is not available (apt-get update?)" >&2
  exit 1
fi

dir="$cache/${version//[:\/]/_}"
bin="$dir/usr/bin/prometheus"
if [[ ! -x "$bin" ]]; then
  "$here/../require.sh" apt-get dpkg-deb
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download "prometheus=$version" >&2)
  mkdir -p "$dir.partial"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$dir.partial"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
fi
echo "$bin"
