#!/usr/bin/env bash
# require.sh TOOL...: succeeds when every TOOL is on PATH; otherwise names
# each missing one and what needs it, and fails. `make test`, `make demo`
# and the scripts under them call it first, so a missing tool is one clear
# line rather than a puzzling failure minutes later.
set -euo pipefail
missing=0
for tool in "$@"; do
  command -v "$tool" >/dev/null 2>&1 && continue
  case "$tool" in
    cargo) why="Rust, to build and test Klaxon" ;;
    go) why="Go 1.24.4 or newer, to build the local cluster" ;;
    flock) why="util-linux, to build the local cluster's binaries once when several builds run" ;;
    kubectl) why="to talk to the local cluster" ;;
    curl) why="the demo polls the operator and Prometheus with it" ;;
    jq) why="the demo reads the notification sink's log with it" ;;
    apt-get | apt-cache | dpkg-deb) why="Debian's apt tools fetch and unpack the prometheus package" ;;
    *) why="" ;;
  esac
  echo "missing prerequisite: $tool${why:+ ($why)}; see Prerequisites in README.md" >&2
  missing=1
done
exit "$missing"
