//! Seeding the large tier: objects shaped as the Deployment controller, a
//! kubelet and metrics-server would leave them (several labels, one or two
//! containers with resources, env vars and probes, full pod status),
//! written directly with raw requests, many in flight at once. The control
//! plane has no controllers or nodes, so nothing else touches them.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use http::Method;
use kube::Client;
use serde_json::{Map, Value, json};

pub const DEPLOYMENTS_PER_NAMESPACE: usize = 10;
pub const REPLICASETS_PER_DEPLOYMENT: usize = 2;
pub const PODS_PER_DEPLOYMENT: usize = 10;
pub const EVENTS_PER_DEPLOYMENT: usize = 25;
/// Failing pods per namespace: 3 of `svc-01`, 2 of `svc-06` (5 of 100).
pub const FAILING_PER_NAMESPACE: usize = 5;
/// Requests the seeding keeps in flight.
pub const PARALLEL: usize = 96;

/// The pod-template-hash of each Deployment's current ReplicaSet.
pub const HASH: &str = "7c8d9e6f4";
const OLD_HASH: &str = "6b9f8d7c5";
const STAMP: &str = "2026-11-24T13:00:00Z";

pub fn deployment_name(index: usize) -> String {
    format!("svc-{index:02}")
}

pub fn pod_name(deployment: &str, pod: usize) -> String {
    pod_name_in(deployment, HASH, pod)
}

/// The name of the `n`-th pod a ReplicaSet of `deployment` with
/// pod-template-hash `hash` created.
pub fn pod_name_in(deployment: &str, hash: &str, n: usize) -> String {
    format!("{deployment}-{hash}-{}", pod_suffix(n))
}

/// A kubelet-looking five-character suffix, distinct per index (below
/// about 1,800).
fn pod_suffix(pod: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = pod * 7919 + 104_729;
    (0..5)
        .map(|_| {
            let c = ALPHABET[n % ALPHABET.len()] as char;
            n /= ALPHABET.len();
            c
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Health {
    Running,
    CrashLoop,
    OomLoop,
    ImagePull,
}

/// How pod `pod` of Deployment `index` is doing when seeded.
pub fn health(index: usize, pod: usize) -> Health {
    match (index, pod) {
        (1, 0..=2) => Health::CrashLoop,
        (6, 0) => Health::OomLoop,
        (6, 1) => Health::ImagePull,
        _ => Health::Running,
    }
}

/// Every third Deployment runs a proxy sidecar.
pub fn has_sidecar(index: usize) -> bool {
    index % 3 == 2
}

/// What seeding wrote, and how fast.
#[derive(Default)]
pub struct Seeded {
    pub requests: usize,
    pub elapsed: Duration,
}

impl Seeded {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Seeds every namespace in `namespaces` (which must exist).
pub async fn seed(client: &Client, namespaces: &[String]) -> Seeded {
    let started = Instant::now();
    let requests = AtomicUsize::new(0);
    let requests = &requests;

    // Deployments and their ReplicaSets (the pods need the new one's uid).
    let phase = Instant::now();
    let units: Vec<(String, usize)> = namespaces
        .iter()
        .flat_map(|ns| (0..DEPLOYMENTS_PER_NAMESPACE).map(move |i| (ns.clone(), i)))
        .collect();
    let replicasets: Vec<(String, usize, String)> = stream::iter(units)
        .map(|(ns, i)| async move {
            let uid = seed_deployment(client, &ns, i, requests).await;
            (ns, i, uid)
        })
        .buffer_unordered(PARALLEL / REPLICASETS_PER_DEPLOYMENT)
        .collect()
        .await;
    eprintln!(
        "  {} deployments with their replicasets in {:.1?}",
        replicasets.len(),
        phase.elapsed()
    );

    // Pods: create, status as a kubelet writes it, PodMetrics.
    let phase = Instant::now();
    let pods: Vec<(&str, usize, &str, usize)> = replicasets
        .iter()
        .flat_map(|(ns, i, uid)| {
            (0..PODS_PER_DEPLOYMENT).map(move |p| (ns.as_str(), *i, uid.as_str(), p))
        })
        .collect();
    let count = pods.len();
    stream::iter(pods)
        .for_each_concurrent(PARALLEL, |(ns, i, uid, p)| async move {
            let owner = Owner {
                index: i,
                hash: HASH,
                rs_uid: uid,
                version: "v2",
            };
            seed_pod(client, ns, &owner, p, requests).await;
        })
        .await;
    eprintln!(
        "  {count} pods (with status and PodMetrics) in {:.1?}",
        phase.elapsed()
    );

    // Warning events: two per pod, the rest about the ReplicaSet and the
    // Deployment.
    let phase = Instant::now();
    let events: Vec<(&str, usize, usize)> = namespaces
        .iter()
        .flat_map(|ns| {
            (0..DEPLOYMENTS_PER_NAMESPACE)
                .flat_map(move |i| (0..EVENTS_PER_DEPLOYMENT).map(move |e| (ns.as_str(), i, e)))
        })
        .collect();
    let count = events.len();
    stream::iter(events)
        .for_each_concurrent(PARALLEL, |(ns, i, e)| async move {
            let event = warning(ns, i, e);
            post(
                client,
                &format!("/api/v1/namespaces/{ns}/events"),
                &event,
                requests,
            )
            .await;
        })
        .await;
    eprintln!("  {count} warning events in {:.1?}", phase.elapsed());

    Seeded {
        requests: requests.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// The Deployment (and its status) and two ReplicaSets; returns the uid of
/// the current ReplicaSet.
async fn seed_deployment(
    client: &Client,
    ns: &str,
    index: usize,
    requests: &AtomicUsize,
) -> String {
    let name = deployment_name(index);
    let labels = labels(&name, index);
    let created = post(
        client,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": "2",
                    "meta.helm.sh/release-name": format!("{name}-prod"),
                    "meta.helm.sh/release-namespace": ns}},
            "spec": {
                "replicas": PODS_PER_DEPLOYMENT,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": name}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec(&name, index, "v2", None)
                }
            }
        }),
        requests,
    )
    .await;
    let deployment_uid = uid(client, created, ns, "apps/v1", "deployments", &name).await;
    let failing = (0..PODS_PER_DEPLOYMENT)
        .filter(|p| health(index, *p) != Health::Running)
        .count();
    patch_status(
        client,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/status"),
        &json!({ "status": deployment_status(&name, failing, HASH, 1) }),
        requests,
    )
    .await;

    let mut current = String::new();
    for (hash, revision, version, replicas) in
        [(OLD_HASH, 1, "v1", 0), (HASH, 2, "v2", PODS_PER_DEPLOYMENT)]
    {
        let rs_name = format!("{name}-{hash}");
        let created = post(
            client,
            &format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
            &replicaset(
                ns,
                index,
                &deployment_uid,
                &Revision {
                    hash,
                    number: revision,
                    version,
                },
                replicas,
            ),
            requests,
        )
        .await;
        let rs_uid = uid(client, created, ns, "apps/v1", "replicasets", &rs_name).await;
        if hash == HASH {
            current = rs_uid;
        }
    }
    current
}

/// A Deployment's status after its rollout to the ReplicaSet `hash`
/// completed, `failing` of its pods unready.
pub fn deployment_status(name: &str, failing: usize, hash: &str, generation: i64) -> Value {
    let ready = PODS_PER_DEPLOYMENT - failing;
    let available = if failing == 0 { "True" } else { "False" };
    let now = jiff::Timestamp::now();
    let stamp = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let updated = if hash == HASH {
        STAMP.to_string()
    } else {
        stamp
    };
    json!({
        "observedGeneration": generation, "replicas": PODS_PER_DEPLOYMENT,
        "updatedReplicas": PODS_PER_DEPLOYMENT, "readyReplicas": ready,
        "availableReplicas": ready, "unavailableReplicas": failing,
        "conditions": [
            {"type": "Available", "status": available,
                "reason": if failing == 0 { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "message": if failing == 0 { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                "lastUpdateTime": STAMP, "lastTransitionTime": STAMP},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                "message": format!("ReplicaSet \"{name}-{hash}\" has successfully progressed."),
                "lastUpdateTime": updated, "lastTransitionTime": STAMP}
        ]
    })
}

/// One revision of a Deployment's pod template.
pub struct Revision<'a> {
    /// Its pod-template-hash.
    pub hash: &'a str,
    pub number: u32,
    /// The app image's tag.
    pub version: &'a str,
}

/// The ReplicaSet of Deployment `index` for `revision`, with `replicas`.
pub fn replicaset(
    ns: &str,
    index: usize,
    deployment_uid: &str,
    revision: &Revision,
    replicas: usize,
) -> Value {
    let name = deployment_name(index);
    let hash = revision.hash;
    let mut rs_labels = labels(&name, index);
    rs_labels.insert("pod-template-hash".into(), json!(hash));
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": rs_labels,
            "annotations": {"deployment.kubernetes.io/revision": revision.number.to_string(),
                "deployment.kubernetes.io/desired-replicas": PODS_PER_DEPLOYMENT.to_string(),
                "deployment.kubernetes.io/max-replicas": (PODS_PER_DEPLOYMENT + 3).to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": deployment_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name, "pod-template-hash": hash}},
            "template": {
                "metadata": {"labels": rs_labels},
                "spec": pod_spec(&name, index, revision.version, None)
            }
        }
    })
}

/// Where a pod belongs: Deployment `index`'s ReplicaSet with
/// pod-template-hash `hash` (and uid `rs_uid`), running image `version`.
pub struct Owner<'a> {
    pub index: usize,
    pub hash: &'a str,
    pub rs_uid: &'a str,
    pub version: &'a str,
}

/// Pod `name`, the `pod`-th of `owner`, as its ReplicaSet creates it (with
/// a node, as the scheduler leaves it).
pub fn pod(ns: &str, owner: &Owner, name: &str, pod: usize) -> Value {
    let index = owner.index;
    let deployment = deployment_name(index);
    let mut labels = labels(&deployment, index);
    labels.insert("pod-template-hash".into(), json!(owner.hash));
    let node = format!("node-{:03}", (index * 31 + pod * 7) % 120);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
            "annotations": {"kubectl.kubernetes.io/restartedAt": STAMP},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{deployment}-{}", owner.hash), "uid": owner.rs_uid,
                "controller": true, "blockOwnerDeletion": true}]},
        "spec": pod_spec(&deployment, index, owner.version, Some(&node))
    })
}

/// PodMetrics for pod `name`, the `pod`-th of `owner`, as metrics-server
/// serves them.
pub fn pod_metrics(ns: &str, owner: &Owner, name: &str, pod: usize) -> Value {
    let index = owner.index;
    let deployment = deployment_name(index);
    let mut labels = labels(&deployment, index);
    labels.insert("pod-template-hash".into(), json!(owner.hash));
    let mut containers = vec![json!({"name": "app", "usage": {
        "cpu": format!("{}m", 40 + (index * 13 + pod * 29) % 300),
        "memory": format!("{}Ki", 90_000 + (index * 7 + pod * 11) % 60_000)}})];
    if has_sidecar(index) {
        containers.push(json!({"name": "proxy", "usage": {
            "cpu": format!("{}m", 5 + pod % 20), "memory": format!("{}Ki", 30_000 + pod * 100)}}));
    }
    json!({
        "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "timestamp": "2026-11-24T14:10:00Z", "window": "30s",
        "containers": containers
    })
}

async fn seed_pod(client: &Client, ns: &str, owner: &Owner<'_>, p: usize, requests: &AtomicUsize) {
    let deployment = deployment_name(owner.index);
    let name = pod_name(&deployment, p);
    post(
        client,
        &format!("/api/v1/namespaces/{ns}/pods"),
        &pod(ns, owner, &name, p),
        requests,
    )
    .await;
    let status = pod_status(&deployment, owner.index, p, health(owner.index, p));
    patch_status(
        client,
        &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        &json!({ "status": status }),
        requests,
    )
    .await;
    post(
        client,
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"),
        &pod_metrics(ns, owner, &name, p),
        requests,
    )
    .await;
}

/// About ten labels, as Helm charts and teams put on workloads.
fn labels(name: &str, index: usize) -> Map<String, Value> {
    let mut labels = Map::new();
    for (key, value) in [
        ("app", name.to_string()),
        ("app.kubernetes.io/name", name.to_string()),
        ("app.kubernetes.io/instance", format!("{name}-prod")),
        ("app.kubernetes.io/version", "2.4.1".to_string()),
        (
            "app.kubernetes.io/component",
            if index.is_multiple_of(2) {
                "api"
            } else {
                "worker"
            }
            .to_string(),
        ),
        ("app.kubernetes.io/part-of", "shop".to_string()),
        ("app.kubernetes.io/managed-by", "Helm".to_string()),
        ("helm.sh/chart", "service-1.8.0".to_string()),
        ("team", format!("team-{}", index % 4)),
        ("environment", "production".to_string()),
    ] {
        labels.insert(key.to_string(), json!(value));
    }
    labels
}

/// The pod template of Deployment `name` (the `index`-th), image tag
/// `version`.
pub fn pod_spec(name: &str, index: usize, version: &str, node: Option<&str>) -> Value {
    let mut containers = vec![json!({
        "name": "app",
        "image": format!("registry.example/shop/{name}:{version}"),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "PORT", "value": "8080"},
            {"name": "DATABASE_HOST", "value": "postgres.shop.svc.cluster.local"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4317"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
            "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError"
    })];
    if has_sidecar(index) {
        containers.push(json!({
            "name": "proxy",
            "image": "registry.example/mesh/proxy:1.31.2",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}],
            "env": [{"name": "PROXY_LOG_LEVEL", "value": "warn"},
                    {"name": "PROXY_ADMIN_PORT", "value": "15000"}],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                          "limits": {"cpu": "200m", "memory": "128Mi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        }));
    }
    let mut spec = json!({
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001},
        "schedulerName": "default-scheduler"
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    spec
}

/// The status a kubelet would write for seeded pod `pod` in `health`.
pub fn pod_status(deployment: &str, index: usize, pod: usize, health: Health) -> Value {
    pod_status_of(&pod_name(deployment, pod), index, pod, health, "v2")
}

/// The status a kubelet would write for pod `name` (the `pod`-th of
/// Deployment `index`, running image tag `version`) in `health`.
pub fn pod_status_of(name: &str, index: usize, pod: usize, health: Health, version: &str) -> Value {
    let deployment = deployment_name(index);
    let deployment = deployment.as_str();
    let ip = format!("10.{}.{}.{}", 64 + index, pod / 250, 2 + pod % 250);
    let host = format!("10.0.{}.{}", index % 8, 10 + pod % 200);
    let started = "2026-11-24T13:01:00Z";
    let id = |name: &str| {
        format!(
            "containerd://{:016x}{:016x}{:016x}{:016x}",
            index * 1_000_003 + pod,
            name.len() * 7_777_777,
            pod * 31 + 17,
            index + 99
        )
    };
    let image_id = |image: &str| {
        format!(
            "{image}@sha256:{:016x}{:016x}{:016x}{:016x}",
            index + 1,
            index * 31 + 7,
            index * 131 + 11,
            index * 1031 + 13
        )
    };
    let app_image = format!("registry.example/shop/{deployment}:{version}");
    let healthy = |name: &str, image: &str| {
        json!({"name": name, "image": image, "imageID": image_id(image), "containerID": id(name),
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": started}}, "lastState": {}})
    };
    let app = match health {
        Health::Running => healthy("app", &app_image),
        Health::CrashLoop | Health::OomLoop => {
            let (reason, code, message) = if health == Health::OomLoop {
                ("OOMKilled", 137, "")
            } else {
                (
                    "Error",
                    2,
                    "panic: dial tcp 10.96.14.3:5432: connect: connection refused\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/cmd/server/main.go:57 +0x1c5",
                )
            };
            json!({"name": "app", "image": app_image, "imageID": image_id(&app_image),
                "containerID": id("app"), "ready": false, "started": false,
                "restartCount": 5 + pod,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 5m0s restarting failed container=app pod={name}_default")}},
                "lastState": {"terminated": {"exitCode": code, "reason": reason, "message": message,
                    "startedAt": "2026-11-24T14:02:00Z", "finishedAt": "2026-11-24T14:02:03Z",
                    "containerID": id("app")}}})
        }
        Health::ImagePull => json!({"name": "app", "image": app_image, "imageID": "",
            "ready": false, "started": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": format!("Back-off pulling image \"{app_image}\"")}},
            "lastState": {}}),
    };
    let mut statuses = vec![app];
    if has_sidecar(index) {
        statuses.push(healthy("proxy", "registry.example/mesh/proxy:1.31.2"));
    }
    let ok = health == Health::Running;
    let condition = |type_: &str, status: bool| {
        let mut c = json!({"type": type_, "status": if status { "True" } else { "False" },
            "lastProbeTime": null, "lastTransitionTime": started});
        if !status {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!("containers with unready status: [app]");
        }
        c
    };
    json!({
        "phase": if health == Health::ImagePull { "Pending" } else { "Running" },
        "conditions": [
            condition("PodReadyToStartContainers", true),
            condition("Initialized", true),
            condition("Ready", ok),
            condition("ContainersReady", ok),
            condition("PodScheduled", true)
        ],
        "hostIP": host, "hostIPs": [{"ip": host}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": started,
        "qosClass": "Burstable",
        "containerStatuses": statuses
    })
}

/// Warning event `e` (of [`EVENTS_PER_DEPLOYMENT`]) of Deployment `index`.
fn warning(ns: &str, index: usize, e: usize) -> Value {
    let deployment = deployment_name(index);
    let pods = 2 * PODS_PER_DEPLOYMENT;
    let (kind, object, reason, message, path) = if e < pods {
        let pod = e / 2;
        let name = pod_name(&deployment, pod);
        match health(index, pod) {
            Health::Running => (
                "Pod",
                name,
                "Unhealthy",
                "Readiness probe failed: Get \"http://10.64.0.12:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_string(),
                Some("spec.containers{app}"),
            ),
            Health::ImagePull => (
                "Pod",
                name,
                "Failed",
                format!("Failed to pull image \"registry.example/shop/{deployment}:v2\": not found"),
                Some("spec.containers{app}"),
            ),
            _ => (
                "Pod",
                name.clone(),
                "BackOff",
                format!("Back-off restarting failed container app in pod {name}_{ns}"),
                Some("spec.containers{app}"),
            ),
        }
    } else if e < pods + 3 {
        (
            "ReplicaSet",
            format!("{deployment}-{HASH}"),
            "FailedCreate",
            "Error creating: pods is forbidden: exceeded quota: compute, requested: limits.memory=256Mi, used: limits.memory=4Gi, limited: limits.memory=4Gi".to_string(),
            None,
        )
    } else {
        (
            "Deployment",
            deployment.clone(),
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{deployment}-{HASH}\" has timed out progressing."),
            None,
        )
    };
    let now = jiff::Timestamp::now();
    let stamp = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let mut involved = json!({"kind": kind, "name": object, "namespace": ns,
        "apiVersion": if kind == "Pod" { "v1" } else { "apps/v1" }});
    if let Some(path) = path {
        involved["fieldPath"] = json!(path);
    }
    let (component, host) = if kind == "Pod" {
        ("kubelet", format!("node-{:03}", (index * 31 + e) % 120))
    } else {
        ("deployment-controller", String::new())
    };
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{:016x}", object, 0x1880_0000_0000_0000u64 + e as u64),
            "namespace": ns},
        "involvedObject": involved,
        "type": "Warning", "reason": reason, "message": message,
        "count": 1 + (e % 7) as i32,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": component, "host": host},
        "reportingComponent": component, "reportingInstance": host
    })
}

/// A POST that is retried when the apiserver is busy; an object already
/// created by an earlier attempt counts as created. Returns the response
/// body (empty for such an object).
async fn post(client: &Client, path: &str, body: &Value, requests: &AtomicUsize) -> String {
    send(
        client,
        Method::POST,
        path,
        "application/json",
        body,
        requests,
    )
    .await
}

async fn patch_status(client: &Client, path: &str, body: &Value, requests: &AtomicUsize) {
    send(
        client,
        Method::PATCH,
        path,
        "application/merge-patch+json",
        body,
        requests,
    )
    .await;
}

async fn send(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: &Value,
    requests: &AtomicUsize,
) -> String {
    let mut attempt = 0u32;
    loop {
        requests.fetch_add(1, Ordering::Relaxed);
        match request(client, method.clone(), path, content_type, Some(body)).await {
            Ok(text) => return text,
            Err(kube::Error::Api(status)) if status.code == 409 && method == Method::POST => {
                return String::new();
            }
            Err(error) if attempt < 8 => {
                attempt += 1;
                if attempt == 1 {
                    eprintln!("  retrying {method} {path}: {error}");
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            }
            Err(error) => panic!("seeding: {method} {path} failed: {error}"),
        }
    }
}

/// One raw request, not retried: the response body, or the error.
pub async fn request(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Result<String, kube::Error> {
    let bytes = match body {
        Some(body) => serde_json::to_vec(body).map_err(kube::Error::SerdeError)?,
        None => Vec::new(),
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request_text(request).await
}

/// The uid in a create's response, or of the object as it is (when an
/// earlier attempt had created it).
async fn uid(
    client: &Client,
    created: String,
    ns: &str,
    group_version: &str,
    plural: &str,
    name: &str,
) -> String {
    let text = if created.is_empty() {
        let request = http::Request::get(format!(
            "/apis/{group_version}/namespaces/{ns}/{plural}/{name}"
        ))
        .body(Vec::new())
        .expect("request");
        client
            .request_text(request)
            .await
            .expect("read back a created object")
    } else {
        created
    };
    let object: Value = serde_json::from_str(&text).expect("object json");
    object["metadata"]["uid"]
        .as_str()
        .expect("created object has a uid")
        .to_string()
}

/// The number of objects each kind the operator caches will hold for
/// `namespaces` seeded namespaces (and any others that exist).
pub struct Objects {
    pub namespaces: usize,
    pub deployments: usize,
    pub replicasets: usize,
    pub pods: usize,
    pub events: usize,
}

impl Objects {
    pub fn of(seeded_namespaces: usize, other_namespaces: usize) -> Objects {
        let deployments = seeded_namespaces * DEPLOYMENTS_PER_NAMESPACE;
        Objects {
            namespaces: seeded_namespaces + other_namespaces,
            deployments,
            replicasets: deployments * REPLICASETS_PER_DEPLOYMENT,
            pods: deployments * PODS_PER_DEPLOYMENT,
            events: deployments * EVENTS_PER_DEPLOYMENT,
        }
    }

    /// Every object the operator's watch caches hold.
    pub fn total(&self) -> usize {
        self.namespaces + self.deployments + self.replicasets + self.pods + self.events
    }
}
