#!/usr/bin/env bash
# `make cluster` / `make cluster-down`: the local cluster in the background:
# kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK's
# simulated nodes; with KLAXON_CONTROLPLANE=bare, kube-apiserver and etcd
# only. The kubeconfig is written to target/cluster/kubeconfig.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/target/cluster"
pidfile="$dir/pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# start BIN: starts the control plane in the background and waits for its
# kubeconfig. Fails with 75 when it lost a race for a port: the harness
# picks free ports, but another process may bind one before a component
# does (as the test support, it is then started again).
start() {
  local sink_port="${KLAXON_SINK_PORT:-18081}"
  rm -f "$dir/kubeconfig"
  # The sink stands in for receivers: see target/cluster/notifications.log.
  nohup "$1" --dir "$dir" --audit --kwok-config "$root/tests/controlplane/kwok.yaml" --sink "127.0.0.1:$sink_port" >"$dir/controlplane.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 1800); do
    [ -f "$dir/kubeconfig" ] && return 0
    if ! running; then
      if grep -q "notification sink:.*address already in use" "$dir/controlplane.log"; then
        echo "the notification sink's port $sink_port is taken (another local cluster?); set KLAXON_SINK_PORT to a free one" >&2
        return 1
      fi
      # The logs this start wrote (the components' own, beside its own).
      if find "$dir" -maxdepth 1 -name '*.log' ! -name notifications.log ! -name audit.log -newer "$pidfile" \
        -exec grep -q "address already in use" {} \; -print | grep -q .; then
        echo "the control plane lost a race for a port (another process bound it first)" >&2
        return 75
      fi
      echo "the control plane failed to start; see $dir/controlplane.log" >&2
      tail -n 20 "$dir/controlplane.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the control plane was not ready within 180s; see $dir/controlplane.log" >&2
  kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
  return 1
}

case "${1:-}" in
  up)
    if running && [ -f "$dir/kubeconfig" ]; then
      echo "control plane already running; KUBECONFIG=$dir/kubeconfig"
      exit 0
    fi
    "$root/tests/require.sh" go flock
    bin="$("$root/tests/controlplane/build.sh")"
    mkdir -p "$dir"
    for attempt in 1 2 3; do
      status=0
      start "$bin" || status=$?
      if [ "$status" -eq 75 ] && [ "$attempt" -lt 3 ]; then echo "starting it again" >&2; continue; fi
      [ "$status" -eq 0 ] || exit 1
      break
    done
    echo "control plane ready; KUBECONFIG=$dir/kubeconfig"
    echo "notification sink: http://127.0.0.1:${KLAXON_SINK_PORT:-18081}/<anything> (requests in $dir/notifications.log)"
    ;;
  down)
    for pf in "$root"/target/demo/{operator,prometheus,exporter}.pid "$pidfile"; do
      if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
        pid="$(cat "$pf")"
        kill -TERM "$pid"
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$pf"
    done
    rm -f "$dir/kubeconfig"
    echo "control plane stopped"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
