#!/usr/bin/env bash
# `make demo`: Klaxon on a local cluster, no cluster of your own needed.
#
# The story: checkout v41 runs healthy on three simulated nodes. A rollout
# of v42 crash-loops; the payments team's CrashLooping signal declares an
# incident and Klaxon fills it with what a responder needs. The responder
# runs `kubectl rollout undo`; health returns and the incident resolves
# itself. The notification sink shows every delivery on the way.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export KUBECONFIG="$root/target/cluster/kubeconfig"
demo="$root/target/demo"
port="${KLAXON_DEMO_PORT:-18080}"
sink="http://127.0.0.1:${KLAXON_SINK_PORT:-18081}"
prometheus_port="${KLAXON_PROMETHEUS_PORT:-18082}"
exporter_port="${KLAXON_EXPORTER_PORT:-18083}"
notifications="$root/target/cluster/notifications.log"
mkdir -p "$demo"

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { printf '\n'; bold "==> $*"; }
say() { printf '    %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }
# until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
until_ok() {
  local timeout="$1" what="$2"; shift 2
  for _ in $(seq 1 "$((timeout * 2))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "demo: $what did not happen within ${timeout}s; see $demo/operator.log" >&2
  exit 1
}
# stop PIDFILE: stops what an earlier run left running.
stop() {
  if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
    kill -TERM "$(cat "$1")" || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$1")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$1"
}
deliveries() { # the sink's log, one line per delivery
  jq -r '"    \(.time)  \(.path)  \((.body.text // (.body | tostring))[0:150])"' "$notifications" 2>/dev/null ||
    cut -c1-200 "$notifications"
}

tests/require.sh cargo go flock kubectl curl jq

step "Building Klaxon"
cargo build --quiet --bin klaxon --bin kubectl-incident

if [ "${KLAXON_CONTROLPLANE:-}" = bare ]; then
  echo "demo: the demo needs the whole local cluster; unset KLAXON_CONTROLPLANE=bare" >&2
  exit 2
fi
step "Starting the local cluster: kube-apiserver, etcd, kube-controller-manager, kube-scheduler, three KWOK nodes"
say "(the first run builds them from Go modules: a few minutes)"
tests/controlplane/cluster.sh up | sed 's/^/    /'
if [ -z "$(kubectl get nodes -o name 2>/dev/null)" ]; then
  echo "demo: the running local cluster has no nodes (KLAXON_CONTROLPLANE=bare?); run make cluster-down first" >&2
  exit 2
fi
run kubectl get nodes

step "Installing the CRDs"
kubectl apply --server-side -f crds/ | sed 's/^/    /'
kubectl wait --for=condition=Established --timeout=60s \
  crd/incidents.klaxon.dev crd/responsepolicies.klaxon.dev crd/clusterresponsepolicies.klaxon.dev >/dev/null

step "Starting Prometheus (Debian's package), scraping a small exporter that stands in for checkout's metrics"
stop "$demo/exporter.pid"
stop "$demo/prometheus.pid"
controlplane_bin="$(tests/controlplane/build.sh)"
prometheus_bin="$(tests/prometheus/fetch.sh)"
nohup "$controlplane_bin" demo-exporter "127.0.0.1:$exporter_port" >"$demo/exporter.log" 2>&1 &
echo $! >"$demo/exporter.pid"
cat >"$demo/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: checkout
    static_configs: [{targets: ['127.0.0.1:$exporter_port']}]
YAML
rm -rf "$demo/prometheus-data"
nohup "$prometheus_bin" --config.file="$demo/prometheus.yml" \
  --storage.tsdb.path="$demo/prometheus-data" --web.listen-address="127.0.0.1:$prometheus_port" \
  >"$demo/prometheus.log" 2>&1 &
echo $! >"$demo/prometheus.pid"
until_ok 60 "Prometheus's readiness" curl -fsS "http://127.0.0.1:$prometheus_port/-/ready"
say "ready: http://127.0.0.1:$prometheus_port (log: target/demo/prometheus.log)"

step "Starting the operator (log: target/demo/operator.log)"
stop "$demo/operator.pid"
nohup target/debug/klaxon run --listen-address "127.0.0.1:$port" --metrics-interval 2s >"$demo/operator.log" 2>&1 &
echo $! >"$demo/operator.pid"
until_ok 60 "the operator's readiness" curl -fsS "http://127.0.0.1:$port/readyz"
say "ready: http://127.0.0.1:$port/readyz, metrics on /metrics"

step "Applying examples/: the org baseline, the payments and search teams' policies, checkout v41"
say "The receivers' Secrets point at the local notification sink, which stands in for webhooks and Slack."
for manifest in examples/*.yaml; do
  [ "$manifest" = examples/incident.yaml ] && continue
  # The examples name the sink at its default port. The operator must never
  # read that URL when the sink listens elsewhere: it remembers a Secret for
  # a while, and would page whatever listens there (another checkout's sink).
  sed "s#http://127.0.0.1:18081/#$sink/#g" "$manifest" | kubectl apply -f - | sed 's/^/    /'
done
say "The demo shortens the payments team's timers (5m and 10m in the example) to 20s,"
say "and points its Prometheus queries at the local Prometheus."
run kubectl -n shop patch responsepolicy payments --type=merge -p \
  '{"spec":{"signals":[{"type":"DeploymentUnavailable","for":"2m","severity":"SEV2"},{"type":"CrashLooping","for":"20s","severity":"SEV3"}],"autoResolve":{"healthyFor":"20s"},"enrichment":{"prometheus":{"url":"http://127.0.0.1:'"$prometheus_port"'"}}}}'

: >"$notifications"

# A second run starts the story afresh: no incidents of the last one.
kubectl -n shop delete inc --all --ignore-not-found --wait=true >/dev/null

step "checkout v41 rolls out on the simulated nodes"
run kubectl -n shop rollout status deploy/checkout --timeout=120s
run kubectl -n shop get pods -o wide

step "The team ships v42"
run kubectl -n shop set image deploy/checkout checkout=registry.example/shop/checkout:v42
say "v42 crash-loops. The Deployment controller stops the rollout there; the v41 pods keep serving:"
until_ok 60 "a crash-looping v42 pod" bash -c \
  "kubectl -n shop get pods -o jsonpath='{.items[*].status.containerStatuses[*].restartCount}' | tr ' ' '\n' | grep -qv '^0\$'"
run kubectl -n shop get pods

step "The payments team's CrashLooping signal declares an incident after 20s"
incident() { kubectl -n shop get inc -l klaxon.dev/signal -o jsonpath='{.items[0].metadata.name}' 2>/dev/null; }
declared() { [ -n "$(incident)" ]; }
until_ok 120 "an incident declared by the signal" declared
name="$(incident)"
run kubectl -n shop get inc "$name"

step "Klaxon pulls in what a responder would otherwise dig up by hand"
until_ok 60 "the enrichment" bash -c \
  "kubectl -n shop get inc $name -o jsonpath='{.status.deployments[0].usage.cpu}' | grep -q ."
until_ok 60 "the notifications" bash -c \
  "kubectl -n shop get inc $name -o jsonpath='{.status.conditions[?(@.type==\"NotificationsDelivered\")].status}' | grep -qx True"
until_ok 60 "the Prometheus queries" bash -c \
  "kubectl -n shop get inc $name -o jsonpath='{.status.conditions[?(@.type==\"QueriesSucceeded\")].status}' | grep -qx True"
run kubectl -n shop describe inc "$name"
step "The same, as a responder reads it at 3 a.m.: kubectl incident show"
run target/debug/kubectl-incident show "$name" -n shop

step "The receivers were told (target/cluster/notifications.log)"
deliveries

step "The responder rolls back"
run kubectl -n shop rollout undo deploy/checkout
run kubectl -n shop rollout status deploy/checkout --timeout=120s
say "Healthy again; after 20s of health Klaxon resolves the incident:"
until_ok 120 "auto-resolution" bash -c \
  "kubectl -n shop get inc $name -o jsonpath='{.spec.phase}' | grep -qx Resolved"
run kubectl -n shop get inc "$name"
printf '    Timeline:\n'
kubectl -n shop get inc "$name" -o jsonpath='{range .status.timeline[*]}{.time}  {.type}  {.message}{"\n"}{end}' | sed 's/^/      /'

step "Every delivery, from declaration to resolution"
until_ok 30 "the Resolved notification" grep -q Resolved "$notifications"
deliveries

step "What the team learns from it: the record, and a postmortem drafted from it"
until_ok 30 "the durations" bash -c \
  "kubectl -n shop get inc $name -o jsonpath='{.status.durations.toResolve}' | grep -q ."
run kubectl -n shop get inc "$name" -o jsonpath='{.status.durations}{"\n"}'
say "The first lines of the draft (kubectl incident postmortem prints it all, as Markdown):"
target/debug/kubectl-incident postmortem "$name" -n shop | head -n 40 | sed 's/^/      /'
run target/debug/kubectl-incident report -n shop

cat <<MSG

The cluster, the operator and Prometheus keep running:
  export KUBECONFIG=$KUBECONFIG PATH=$root/target/debug:\$PATH
  kubectl incident list -A
  kubectl incident show $name -n shop
  kubectl incident postmortem $name -n shop   # the whole draft
  kubectl incident report -A                  # per team and severity
  kubectl apply -f examples/incident.yaml     # declare one yourself
Stop both with: make cluster-down
MSG
