#!/usr/bin/env bash
# `make demo`: Klaxon on a local control plane, no cluster of your own.
# Starts the control plane, installs the CRDs and examples/, runs the
# operator, and shows what a responder sees.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export KUBECONFIG="$root/target/cluster/kubeconfig"
demo="$root/target/demo"
port="${KLAXON_DEMO_PORT:-18080}"
mkdir -p "$demo"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Building Klaxon"
cargo build --quiet --bin klaxon

step "Starting the local control plane (the first run builds kube-apiserver and etcd: a few minutes)"
tests/controlplane/cluster.sh up

step "Installing the CRDs (and a stand-in for metrics-server's PodMetrics API)"
kubectl apply -f tests/fixtures/podmetrics-crd.yaml
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s \
  crd/incidents.klaxon.dev crd/responsepolicies.klaxon.dev crd/clusterresponsepolicies.klaxon.dev \
  crd/pods.metrics.k8s.io >/dev/null

step "Starting the operator (log: target/demo/operator.log)"
if [ -f "$demo/operator.pid" ] && kill -0 "$(cat "$demo/operator.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$demo/operator.pid")" || true
  for _ in $(seq 1 100); do kill -0 "$(cat "$demo/operator.pid")" 2>/dev/null || break; sleep 0.1; done
fi
nohup target/debug/klaxon run --listen-address "127.0.0.1:$port" --metrics-interval 2s >"$demo/operator.log" 2>&1 &
echo $! >"$demo/operator.pid"
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$demo/operator.pid")" 2>/dev/null || { cat "$demo/operator.log"; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "operator not ready; see $demo/operator.log" >&2; exit 1; }

step "Applying the examples: an org baseline, the payments team's policy and the checkout Deployment"
for manifest in examples/*.yaml; do
  [ "$manifest" = examples/incident.yaml ] || kubectl apply -f "$manifest"
done

step "Pointing the example receivers at the local notification sink (stands in for webhooks and Slack)"
sink="http://127.0.0.1:${KLAXON_SINK_PORT:-18081}"
secret() { # namespace name key=path...
  local ns="$1" name="$2"; shift 2
  local args=()
  for pair in "$@"; do args+=("--from-literal=${pair%%=*}=$sink${pair#*=}"); done
  kubectl -n "$ns" create secret generic "$name" "${args[@]}" --dry-run=client -o yaml | kubectl apply -f -
}
secret shop klaxon-hooks team=/hooks/payments slack=/slack/payments
secret catalog search-pager url=/pager/search
secret klaxon-system klaxon-org-hooks commanders=/slack/commanders
: >"$root/target/cluster/notifications.log"

step "Breaking checkout: this control plane has no kubelet, so the demo plays one"
tests/demo/break-checkout.sh

step "A responder declares the incident: kubectl apply -f examples/incident.yaml"
kubectl apply -f examples/incident.yaml

step "Waiting for Klaxon to enrich the incident"
kubectl wait inc/checkout-5xx -n shop --timeout=60s \
  --for=jsonpath='{.status.deployments[0].pods.total}'=4 >/dev/null

kubectl wait inc/checkout-5xx -n shop --timeout=60s \
  --for=jsonpath='{.status.conditions[?(@.type=="NotificationsDelivered")].status}'=True >/dev/null

step "What the receivers got (target/cluster/notifications.log)"
cut -c1-400 "$root/target/cluster/notifications.log"

step "kubectl get klaxon -A"
kubectl get klaxon -A

step "kubectl describe inc checkout-5xx -n shop"
kubectl describe inc checkout-5xx -n shop

cat <<MSG

The control plane and the operator keep running:
  export KUBECONFIG=$KUBECONFIG
  kubectl get inc -A
Stop both with: make cluster-down
MSG
