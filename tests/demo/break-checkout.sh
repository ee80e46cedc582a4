#!/usr/bin/env bash
# Plays the Deployment controller and the kubelet for examples/checkout:
# rolls it from v41 to v42, whose pods crash-loop, get OOM-killed or fail
# to pull, with the Warning events and PodMetrics a real cluster would show.
set -euo pipefail
ns=shop
k() { kubectl -n "$ns" "$@"; }

uid="$(k get deploy checkout -o jsonpath='{.metadata.uid}')"
# Checkout breaks now: the policy's DeploymentUnavailable signal (for: 2m)
# would declare an incident of its own two minutes later, unless the
# responder's incident already names checkout (it will).
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k annotate deploy checkout deployment.kubernetes.io/revision=2 --overwrite >/dev/null
k patch deploy checkout --subresource=status --type=merge -p '{"status":{"replicas":3,"readyReplicas":1,"availableReplicas":1,"updatedReplicas":3,
  "conditions":[{"type":"Available","status":"False","reason":"MinimumReplicasUnavailable","message":"Deployment does not have minimum availability.","lastUpdateTime":"'"$now"'","lastTransitionTime":"'"$now"'"}]}}' >/dev/null

replicaset() { # hash revision image
  cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: checkout-$1
  labels: {app: checkout, pod-template-hash: "$1"}
  annotations: {deployment.kubernetes.io/revision: "$2"}
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: checkout, uid: $uid, controller: true}]
spec:
  selector: {matchLabels: {app: checkout, pod-template-hash: "$1"}}
  template:
    metadata: {labels: {app: checkout, pod-template-hash: "$1"}}
    spec: {containers: [{name: checkout, image: "$3"}]}
YAML
}
replicaset 5d8f7c9b6 1 registry.example/shop/checkout:v41
replicaset 7b9c4d2f1 2 registry.example/shop/checkout:v42
rs_uid="$(k get rs checkout-7b9c4d2f1 -o jsonpath='{.metadata.uid}')"

pod() { # suffix status-json
  cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata:
  name: checkout-7b9c4d2f1-$1
  labels: {app: checkout, tier: payments, pod-template-hash: 7b9c4d2f1}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: checkout-7b9c4d2f1, uid: $rs_uid, controller: true}]
spec:
  containers:
    - name: checkout
      image: registry.example/shop/checkout:v42
      resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 500m, memory: 256Mi}}
YAML
  k patch pod "checkout-7b9c4d2f1-$1" --subresource=status --type=merge -p "{\"status\":$2}" >/dev/null
}
crashing() { # restarts reason message
  echo "{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}],\"containerStatuses\":[{\"name\":\"checkout\",\"image\":\"registry.example/shop/checkout:v42\",\"imageID\":\"\",\"ready\":false,\"restartCount\":$1,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\",\"message\":\"back-off 5m0s restarting failed container\"}},\"lastState\":{\"terminated\":{\"exitCode\":2,\"reason\":\"$2\",\"message\":\"$3\"}}}]}"
}
pod x7k2p "$(crashing 6 Error 'panic: card processor: nil map')"
pod q9m4t "$(crashing 4 OOMKilled '')"
pod w3n8d '{"phase":"Pending","conditions":[{"type":"Ready","status":"False"}],"containerStatuses":[{"name":"checkout","image":"registry.example/shop/checkout:v42","imageID":"","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image"}}}]}'
pod r5v1c '{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"checkout","image":"registry.example/shop/checkout:v42","imageID":"","ready":true,"restartCount":0,"state":{"running":{"startedAt":"2026-11-24T14:02:00Z"}}}]}'

now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
event() { # kind name reason message count
  cat <<YAML | k create -f - >/dev/null
apiVersion: v1
kind: Event
metadata: {generateName: demo.}
involvedObject: {kind: $1, name: $2, namespace: $ns}
type: Warning
reason: $3
message: "$4"
count: $5
firstTimestamp: "$now"
lastTimestamp: "$now"
source: {component: kubelet}
YAML
}
event Pod checkout-7b9c4d2f1-x7k2p BackOff "Back-off restarting failed container checkout" 14
event Pod checkout-7b9c4d2f1-q9m4t BackOff "Back-off restarting failed container checkout" 9
event Pod checkout-7b9c4d2f1-w3n8d Failed "Failed to pull image registry.example/shop/checkout:v42: not found" 3
event Deployment checkout ProgressDeadlineExceeded "ReplicaSet checkout-7b9c4d2f1 has timed out progressing" 1

metrics() { # suffix cpu memory
  cat <<YAML | k apply -f - >/dev/null
apiVersion: metrics.k8s.io/v1beta1
kind: PodMetrics
metadata: {name: checkout-7b9c4d2f1-$1}
timestamp: "$now"
window: 30s
containers: [{name: checkout, usage: {cpu: $2, memory: $3}}]
YAML
}
metrics x7k2p 180m 120Mi
metrics q9m4t 240m 250Mi
metrics r5v1c 60m 90Mi
echo "checkout v42: 1/3 ready, crash-looping, OOM-killed and failing to pull"
