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

case "${1:-}" in
  up)
    if running && [ -f "$dir/kubeconfig" ]; then
      echo "control plane already running; KUBECONFIG=$dir/kubeconfig"
      exit 0
    fi
    "$root/tests/require.sh" go flock
    bin="$("$root/tests/controlplane/build.sh")"
    mkdir -p "$dir"
    rm -f "$dir/kubeconfig"
    # The sink stands in for receivers: see target/cluster/notifications.log.
    nohup "$bin" --dir "$dir" --audit --kwok-config "$root/tests/controlplane/kwok.yaml" --sink "127.0.0.1:${KLAXON_SINK_PORT:-18081}" >"$dir/controlplane.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 1800); do
      [ -f "$dir/kubeconfig" ] && break
      if ! running; then
        echo "the control plane failed to start; see $dir/controlplane.log" >&2
        tail -n 20 "$dir/controlplane.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    if [ ! -f "$dir/kubeconfig" ]; then
      echo "the control plane was not ready within 180s; see $dir/controlplane.log" >&2
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
      exit 1
    fi
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
