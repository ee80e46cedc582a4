#!/usr/bin/env bash
# `make demo-check` (CI runs it after `make test`): runs `make demo` with no
# terminal, on ports nothing else on the machine uses, and fails on any
# error it shows: the demo's exit status, an error in what it printed or in
# the operator's log, a condition reporting a failure, a delivery that
# failed, and a receiver paged twice for one change. Then it stops the
# cluster, the operator and Prometheus, even when the demo failed.
#
# It owns this checkout's target/cluster and target/demo while it runs, so
# it refuses to start when a cluster or a demo of this checkout is running
# (another checkout's cluster is left alone: it has its own target/, and the
# ports here are chosen where no cluster picks its own).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tests/require.sh curl jq kubectl
demo="$root/target/demo"
cluster="$root/target/cluster"
export KUBECONFIG="$cluster/kubeconfig"

for pidfile in "$cluster/pid" "$demo/operator.pid" "$demo/prometheus.pid" "$demo/exporter.pid"; do
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "demo-check: the local cluster or the demo of this checkout is running ($pidfile);" \
      "this check would take it over and stop it: run make cluster-down first" >&2
    exit 2
  fi
done

ports="$(tests/free-ports.sh 4)"
read -r KLAXON_DEMO_PORT KLAXON_SINK_PORT KLAXON_PROMETHEUS_PORT KLAXON_EXPORTER_PORT <<<"$ports"
export KLAXON_DEMO_PORT KLAXON_SINK_PORT KLAXON_PROMETHEUS_PORT KLAXON_EXPORTER_PORT NO_COLOR=1

# listening PORT: whether a server accepts connections on 127.0.0.1:PORT.
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Stops all the demo started and waits until none of its ports listens.
teardown() {
  local status=$? apiserver="" port
  [ -z "$demo_pid" ] || kill -TERM "$demo_pid" 2>/dev/null || true
  if [ -f "$KUBECONFIG" ]; then
    apiserver="$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || true)"
    apiserver="${apiserver##*:}"
  fi
  echo "demo-check: stopping the cluster, the operator and Prometheus"
  tests/controlplane/cluster.sh down >/dev/null || status=1
  for port in $ports $apiserver; do
    for _ in $(seq 1 60); do listening "$port" || break; sleep 0.5; done
    if listening "$port"; then
      echo "demo-check: 127.0.0.1:$port still listens after make cluster-down" >&2
      status=1
    fi
  done
  exit "$status"
}
demo_pid=""
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failures=0
fail() {
  echo "demo-check: $*" >&2
  failures=$((failures + 1))
}

echo "demo-check: make demo on ports $ports (operator, sink, Prometheus, exporter); output in target/demo/demo.out"
mkdir -p "$demo"
out="$demo/demo.out"
# The sink appends to its log; start it afresh, as the demo would only
# after its first steps.
rm -f "$cluster/notifications.log"
# The demo runs in the background so that a signal stops it and reaches
# the teardown at once; its output is shown as it comes.
: >"$out"
tests/demo.sh </dev/null >"$out" 2>&1 &
demo_pid=$!
tail -n +1 -f --pid="$demo_pid" "$out" &
demo_status=0
wait "$demo_pid" || demo_status=$?
wait
echo
[ "$demo_status" -eq 0 ] || fail "make demo exited with status $demo_status"

# 1. What the demo printed. A line counts as an error when it holds the word
# error, Error, ERROR, panic or panicked (kubectl's "error: ..." and "Error
# from server", a failed query's "error: ...", a Rust panic), or starts with
# kubectl's "Warning:" (an API or admission policy warning). Words that only
# contain them (error_rate) do not count, nor what the story shows on
# purpose about the crash-looping v42:
#   - its termination message, sim.klaxon.dev/message in
#     examples/checkout-deployment.yaml ("panic: card processor: ...");
#   - the pod failure reason Error (the container exited 1, as the kubelet
#     names it): "1 Error" in summaries and reasons, and "Reason: Error"
#     right after "Count: N" in the reasons kubectl describe lists.
# Conditions are checked below, by type and status: "AcknowledgementOverdue
# False" is not an error.
crash_message="$(sed -n 's/^ *sim\.klaxon\.dev\/message: "\(.*\)"$/\1/p' examples/checkout-deployment.yaml)"
[ -n "$crash_message" ] || fail "no sim.klaxon.dev/message in examples/checkout-deployment.yaml"
# - the crash line of the log KWOK serves for the crashed container, which
#   the incident shows as its log evidence (tests/controlplane/components.go).
crash_log="$(sed -n 's/.* stderr F \(panic: simulated crash[^"]*\)",$/\1/p' tests/controlplane/components.go)"
[ -n "$crash_log" ] || fail "no simulated crash line in tests/controlplane/components.go"
errors="$(awk -v crash="$crash_message" -v crashlog="$crash_log" '
  {
    line = $0
    if (crash != "") while ((i = index(line, crash)) > 0) line = substr(line, 1, i - 1) substr(line, i + length(crash))
    if (crashlog != "") while ((i = index(line, crashlog)) > 0) line = substr(line, 1, i - 1) substr(line, i + length(crashlog))
    gsub(/[0-9]+ Error([^A-Za-z0-9_]|$)/, "", line)
    if (previous ~ /^ *Count: +[0-9]+$/ && line ~ /^ *Reason: +Error$/) line = ""
    previous = $0
    if (line ~ /(^|[^A-Za-z0-9_])(error|Error|ERROR|panic|panicked)([^A-Za-z0-9_]|$)/ || line ~ /^ *Warning: /) print FNR ": " $0
  }' "$out")"
[ -z "$errors" ] || fail "errors in the demo's output (target/demo/demo.out):"$'\n'"$errors"

# 2. What `kubectl incident show` printed: a responder's screen with a
# section of things that need attention or of failing deliveries, or a
# query without data, reports a failure; the demo has none.
problems="$(grep -nE '^ *(Needs attention|Delivery problems)$| = no data$' "$out" || true)"
[ -z "$problems" ] || fail "kubectl incident show reports problems (target/demo/demo.out):"$'\n'"$problems"

# 3. The operator's log. Every WARN or ERROR line counts, and a panic: in
# the demo nothing fails (the sink answers every request at once,
# metrics-server and Prometheus are ready before the operator starts, every
# policy is valid), so such a line is a defect of the demo or the operator.
log="$demo/operator.log"
if [ -f "$log" ]; then
  warnings="$(grep -nE '^[^ ]+ +(WARN|ERROR) |panicked' "$log" || true)"
  [ -z "$warnings" ] || fail "warnings or errors in the operator's log (target/demo/operator.log):"$'\n'"$warnings"
else
  fail "no operator log at target/demo/operator.log"
fi

if [ -f "$KUBECONFIG" ]; then
  # Wait for the deliveries still pending (a late second page would
  # otherwise go unseen).
  pending() { kubectl get inc -A -o json | jq '[.items[].status.notifications[]? | select(.state == "Pending")] | length'; }
  if [ "$demo_status" -eq 0 ]; then
    for _ in $(seq 1 60); do [ "$(pending)" = 0 ] && break; sleep 0.5; done
    [ "$(pending)" = 0 ] || fail "deliveries still pending 30s after the demo"
  fi

  # 4. Conditions, as kubectl describe showed them mid-incident and as the
  # incidents and policies hold them now. These three report a problem when
  # True; every other condition must be True. The demo expects no problem:
  # its SEV3 incident must be acknowledged within an hour and needs neither
  # a commander nor a postmortem.
  problem_when_true='^(AcknowledgementOverdue|CommanderMissing|PostmortemRequired)$'
  described="$(awk '
    /^ *Status: +(True|False|Unknown)$/ { status = $2; next }
    status != "" && /^ *Type: +[A-Za-z]+$/ { print $2, status }
    { status = "" }' "$out")"
  [ -n "$described" ] || [ "$demo_status" -ne 0 ] || fail "no conditions in the demo's kubectl describe output"
  held="$(kubectl get inc,rp,crp -A -o json |
    jq -r '.items[] | "\(.kind)/\(.metadata.namespace // "-")/\(.metadata.name)" as $what | .status.conditions[]? | "\(.type) \(.status) \($what): \(.reason): \(.message)"')" ||
    { fail "cannot read the conditions of the incidents and policies"; held=""; }
  while read -r type value what; do
    [ -n "$type" ] || continue
    if [[ "$type" =~ $problem_when_true ]]; then [ "$value" = False ] && continue; else [ "$value" = True ] && continue; fi
    [ -n "$what" ] || what="in what the demo's kubectl describe printed"
    fail "condition $type is $value $what"
  done <<<"$described"$'\n'"$held"

  # 5. Every delivery the incidents recorded went out once, at the first
  # attempt (the sink answers every request at once, so a retry means an
  # attempt failed).
  recorded="$(kubectl get inc -A -o json | jq -c '[.items[].status.notifications[]?]')" ||
    { fail "cannot read the incidents' deliveries"; recorded='[]'; }
  bad="$(jq -r '.[] | select(.state != "Delivered" or .attempts != 1) | "\(.idempotencyKey): \(.state) after \(.attempts) attempt(s) \(.message // "")"' <<<"$recorded")"
  [ -z "$bad" ] || fail "deliveries that did not go out at the first attempt:"$'\n'"$bad"
else
  [ "$demo_status" -ne 0 ] || fail "no kubeconfig at $KUBECONFIG: the cluster is gone"
  recorded='[]'
fi

# 6. What the sink received (target/cluster/notifications.log, one JSON line
# per request: time, path, idempotencyKey, body). The key is "<incident
# uid>.<transition number>.<trigger>.<receiver>": a transition that pages a
# receiver under two triggers (a resolution is also a phase change) has two
# keys, so two requests to one path whose keys share uid and number are one
# change paged twice. Each recorded key must arrive exactly once.
sink_log="$cluster/notifications.log"
if [ -s "$sink_log" ]; then
  unkeyed="$(jq -r 'select((.idempotencyKey // "") == "") | "\(.time) \(.path)"' "$sink_log")"
  [ -z "$unkeyed" ] || fail "deliveries without an Idempotency-Key:"$'\n'"$unkeyed"
  twice="$(jq -rs 'map(select((.idempotencyKey // "") != ""))
    | group_by([.path, (.idempotencyKey | split(".")[0:2])])[] | select(length > 1)
    | "\(.[0].path) got \(length) deliveries for one change: \(map("\(.time) \(.idempotencyKey)") | join(", "))"' "$sink_log")"
  [ -z "$twice" ] || fail "a receiver was paged twice for one change (target/cluster/notifications.log):"$'\n'"$twice"
  counts="$(jq -rs --argjson recorded "$recorded" '
    (map(.idempotencyKey) | group_by(.) | map({key: .[0], value: length}) | from_entries) as $got
    | $recorded[] | .idempotencyKey | select(($got[.] // 0) != 1) | "\(.) arrived \($got[.] // 0) time(s)"' "$sink_log")"
  [ -z "$counts" ] || fail "recorded deliveries the sink did not get exactly once:"$'\n'"$counts"
  deliveries="$(wc -l <"$sink_log")"
else
  [ "$demo_status" -ne 0 ] || fail "the notification sink got nothing (target/cluster/notifications.log)"
  deliveries=0
fi

if [ "$failures" -gt 0 ]; then
  echo "demo-check: $failures check(s) failed; logs in target/demo and target/cluster" >&2
  exit 1
fi
echo "demo-check: ok: the demo ran clean; $deliveries deliveries, none twice for one change"
