//! Cluster objects for tests.
//!
//! [`rollout`] creates a real Deployment: on [`super::cluster()`] the
//! controllers roll it out, the scheduler places its pods and KWOK's
//! simulated nodes run them, failing as the pod template's `sim.klaxon.dev/*`
//! annotations say (see `tests/controlplane/kwok.yaml`).
//!
//! The rest write by hand what the Deployment controller and a kubelet
//! would, for tests on [`super::bare_cluster()`] that need a state no real
//! component produces (each says which).

use std::time::Duration;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{Event, Pod, Secret},
    },
};
use klaxon::{api::Incident, cluster::podmetrics::PodMetrics};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use super::eventually;

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid fixture")
}

/// The pod-template annotation that makes every container running `IMAGE`
/// (or any image, for `*`) crash-loop with exit code 1 on the simulated
/// nodes; `sim.klaxon.dev/message` sets its termination message.
pub const CRASH_LOOP: &str = "sim.klaxon.dev/crash-loop";
/// ... crash-loop, each exit OOMKilled.
pub const OOM_KILLED: &str = "sim.klaxon.dev/oom-killed";
/// ... fail to pull: ErrImagePull, then ImagePullBackOff.
pub const IMAGE_PULL: &str = "sim.klaxon.dev/image-pull";
/// ... run, but never pass their readiness probe.
pub const NEVER_READY: &str = "sim.klaxon.dev/never-ready";
/// The crash-looping container's termination message.
pub const MESSAGE: &str = "sim.klaxon.dev/message";
/// The CPU and memory each container uses, as KWOK reports them.
pub const USAGE_CPU: &str = "kwok.x-k8s.io/usage-cpu";
pub const USAGE_MEMORY: &str = "kwok.x-k8s.io/usage-memory";

/// A real Deployment of `replicas` pods running `image` (one container,
/// named after the Deployment, requesting 100m CPU and 128Mi), with
/// `labels` on the Deployment and `annotations` on its pod template.
pub async fn rollout(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Deployment {
    let map = |pairs: &[(&str, &str)]| -> serde_json::Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    };
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &from(json!({
            "metadata": {"name": name, "labels": map(labels)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": map(annotations)},
                    "spec": {"containers": [{"name": name, "image": image,
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}}]}
                }
            }
        })),
    )
    .await
    .expect("create deployment")
}

/// Waits until every replica of the Deployment is updated and available,
/// as `kubectl rollout status` would.
pub async fn rolled_out(client: &Client, ns: &str, name: &str, timeout: Duration) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let done = eventually(timeout, || async {
        let d = api.get(name).await.ok()?;
        let wanted = d.spec.as_ref()?.replicas?;
        let s = d.status.as_ref()?;
        (s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(wanted)
            && s.available_replicas == Some(wanted)
            && s.replicas == Some(wanted))
        .then_some(d)
    })
    .await;
    match done {
        Some(d) => d,
        None => {
            let last = api.get(name).await.ok().and_then(|d| d.status);
            panic!("{ns}/{name} not rolled out within {timeout:?}; last status: {last:#?}")
        }
    }
}

/// A Deployment at `revision` with `image`, and its status, written by hand
/// (bare cluster only).
pub async fn deployment(
    client: &Client,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
    (replicas, ready): (i32, i32),
    revision: &str,
    image: &str,
) -> Deployment {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let created = api
        .create(
            &PostParams::default(),
            &from(json!({
                "metadata": {"name": name, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": revision}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": image,
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                          "limits": {"cpu": "500m", "memory": "256Mi"}}}]}
                    }
                }
            })),
        )
        .await
        .expect("create deployment");
    let available = if ready >= replicas { "True" } else { "False" };
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": replicas, "observedGeneration": 1,
            "conditions": [{"type": "Available", "status": available,
                "reason": if ready >= replicas { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                "lastUpdateTime": "2026-11-24T14:00:00Z", "lastTransitionTime": "2026-11-24T14:00:00Z"}]
        }})),
    )
    .await
    .expect("deployment status");
    created
}

/// A ReplicaSet of `deployment` at `revision`, owned by it.
pub async fn replicaset(
    client: &Client,
    deployment: &Deployment,
    hash: &str,
    revision: &str,
    image: &str,
) -> ReplicaSet {
    let ns = deployment.metadata.namespace.as_deref().expect("namespace");
    let name = deployment.metadata.name.as_deref().expect("name");
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &from(json!({
            "metadata": {
                "name": format!("{name}-{hash}"),
                "labels": {"app": name, "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": deployment.metadata.uid, "controller": true}]
            },
            "spec": {
                "selector": {"matchLabels": {"app": name, "pod-template-hash": hash}},
                "template": {
                    "metadata": {"labels": {"app": name, "pod-template-hash": hash}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        })),
    )
    .await
    .expect("create replicaset")
}

/// A Pod of `rs` named `<rs>-<suffix>` with `status` written as a kubelet
/// would.
pub async fn pod(client: &Client, rs: &ReplicaSet, suffix: &str, status: Value) -> Pod {
    let ns = rs.metadata.namespace.as_deref().expect("namespace");
    let rs_name = rs.metadata.name.as_deref().expect("name");
    let labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let image = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let name = format!("{rs_name}-{suffix}");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &from(json!({
            "metadata": {"name": name, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": rs.metadata.uid, "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": image,
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}}}]}
        })),
    )
    .await
    .expect("create pod");
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .expect("pod status")
}

fn container(ready: bool, restarts: i32, state: Value, last: Value) -> Value {
    json!({"name": "app", "image": "app", "imageID": "", "ready": ready,
        "restartCount": restarts, "state": state, "lastState": last})
}

pub fn running() -> Value {
    json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [container(true, 0, json!({"running": {"startedAt": "2026-11-24T13:00:00Z"}}), json!({}))]})
}

/// CrashLoopBackOff after `restarts` restarts, last terminated with
/// `last_reason` and `message`.
pub fn crash_loop(restarts: i32, last_reason: &str, message: &str) -> Value {
    json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [container(false, restarts,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
            json!({"terminated": {"exitCode": 137, "reason": last_reason, "message": message}}))]})
}

pub fn image_pull_backoff() -> Value {
    json!({"phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [container(false, 0,
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}), json!({}))]})
}

/// A Warning event about `kind/name`, seen `count` times.
pub async fn warning(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
    count: i32,
) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let now = jiff::Timestamp::now();
    let stamp = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    api.create(
        &PostParams::default(),
        &from(json!({
            "metadata": {"generateName": format!("{}.", name.to_lowercase())},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
            "type": "Warning", "reason": reason, "message": message, "count": count,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet"}
        })),
    )
    .await
    .expect("create event");
}

/// PodMetrics for `pod`'s one container.
pub async fn pod_metrics(client: &Client, ns: &str, pod: &str, cpu: &str, memory: &str) {
    let resource = kube::discovery::ApiResource::erase::<PodMetrics>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    api.create(
        &PostParams::default(),
        &from(json!({
            "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": pod, "namespace": ns},
            "timestamp": "2026-11-24T14:10:00Z", "window": "30s",
            "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}]
        })),
    )
    .await
    .expect("create PodMetrics");
}

/// Applies an Incident from YAML with the real kubectl.
pub fn apply(cluster: &super::Cluster, manifest: &str) {
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest));
    super::assert_success(&out, "kubectl apply");
}

/// Polls the Incident until `ready` holds, or panics after `timeout` with
/// the last status seen.
pub async fn wait_for(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    ready: impl Fn(&Incident) -> bool,
) -> Incident {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let found = eventually(timeout, || async {
        api.get(name).await.ok().filter(|incident| ready(incident))
    })
    .await;
    match found {
        Some(incident) => incident,
        None => {
            let last = api.get(name).await.ok().and_then(|i| i.status);
            panic!("{ns}/{name}: {what} not seen within {timeout:?}; last status: {last:#?}")
        }
    }
}

/// The Incident's condition of `type_`, if present.
pub fn condition<'a>(
    incident: &'a Incident,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    incident
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// How many pods of `deployment` show `reason` in the incident.
pub fn reason_count(incident: &Incident, deployment: &str, reason: &str) -> i32 {
    incident
        .status
        .as_ref()
        .and_then(|s| s.deployments.iter().find(|d| d.name == deployment))
        .and_then(|d| d.pods.as_ref())
        .and_then(|p| p.reasons.iter().find(|r| r.reason == reason))
        .map(|r| r.count)
        .unwrap_or(0)
}

/// A Secret `name` in `ns` holding `data` (key, text value).
pub async fn secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        },
    )
    .await
    .expect("create secret");
}

/// The Ready condition of ResponsePolicy `ns/name` as it is now, if the
/// operator wrote one.
pub async fn policy_ready(
    client: &Client,
    ns: &str,
    name: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let api: Api<klaxon::api::ResponsePolicy> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .ok()?
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
}

/// Waits until ResponsePolicy `ns/name` is Ready.
pub async fn wait_policy_ready(client: &Client, ns: &str, name: &str, timeout: Duration) {
    eventually(timeout, || async {
        policy_ready(client, ns, name)
            .await
            .filter(|c| c.status == "True")
    })
    .await
    .unwrap_or_else(|| panic!("ResponsePolicy {ns}/{name} did not become Ready"));
}

/// The operator's count of incident reconciles.
pub const RECONCILIATIONS: &str = r#"klaxon_reconciliations_total{controller="incident"}"#;

/// Waits until the operator serving `/metrics` on `port` has run at least
/// `passes` more reconciles, while a label change keeps giving it reasons
/// to look at the incident, so a "nothing more happens" assertion holds
/// after several passes rather than at first sight.
pub async fn more_passes(port: u16, incidents: &Api<Incident>, name: &str, passes: f64) {
    let start = super::operator::metric(port, RECONCILIATIONS).unwrap_or(0.0);
    let mut poke = 0;
    let done = super::eventually(Duration::from_secs(60), || {
        poke += 1;
        let label =
            serde_json::json!({"metadata": {"labels": {"example.com/poke": poke.to_string()}}});
        async move {
            incidents
                .patch(
                    name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(label),
                )
                .await
                .expect("poke");
            let now = super::operator::metric(port, RECONCILIATIONS).unwrap_or(0.0);
            (now - start >= passes).then_some(())
        }
    })
    .await;
    assert!(
        done.is_some(),
        "the operator ran fewer than {passes} passes"
    );
}

/// As [`more_passes`], poking the incident's spec (its summary) instead of
/// a label: each poke is a new generation, so every pass plans and writes
/// the incident's status, resolved or not. For assertions that a write
/// records nothing twice.
pub async fn more_plans(port: u16, incidents: &Api<Incident>, name: &str, plans: u32) {
    let start = super::operator::metric(port, RECONCILIATIONS).unwrap_or(0.0);
    for poke in 0..plans {
        let summary = serde_json::json!({"spec": {"summary": format!("poke {poke}")}});
        let changed = incidents
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(summary),
            )
            .await
            .expect("poke the spec");
        let generation = changed.metadata.generation;
        let seen = super::eventually(Duration::from_secs(60), || async {
            let incident = incidents.get(name).await.ok()?;
            (incident.status.as_ref()?.observed_generation == generation).then_some(())
        })
        .await;
        assert!(seen.is_some(), "the operator did not plan poke {poke}");
    }
    let now = super::operator::metric(port, RECONCILIATIONS).unwrap_or(0.0);
    assert!(
        now - start >= f64::from(plans),
        "fewer reconciles than pokes"
    );
}

/// A namespace whose team policy has a webhook receiver `hook` on
/// `receiver` and one route to it; `route` is the route's other fields
/// (e.g. `triggers: [Resolved]`, or empty for every trigger) and `spec`
/// makes more lines of the policy's spec from the namespace's name, each
/// indented two spaces. Returns the namespace and the URL's token.
pub async fn routed_team(
    cluster: &super::Cluster,
    client: &Client,
    receiver: &super::receiver::Receiver,
    prefix: &str,
    route: &str,
    spec: impl Fn(&str) -> String,
) -> (String, String) {
    let ns = super::namespace(client, prefix).await;
    let spec = spec(&ns);
    let token = format!("hook-{ns}");
    secret(client, &ns, "hooks", &[("hook", &receiver.url(&token))]).await;
    let route = if route.is_empty() {
        String::new()
    } else {
        format!(", {route}")
    };
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: team, namespace: {ns}}}\nspec:\n  receivers:\n    - {{name: hook, webhook: {{urlSecretRef: {{name: hooks, key: hook}}}}}}\n  routes:\n    - {{receivers: [hook]{route}}}\n{spec}"
        ),
    );
    (ns, token)
}

/// A test namespace that a ClusterResponsePolicy can select alone, through
/// the label `klaxon.dev/policy-test=<namespace>`.
pub async fn selectable_namespace(client: &Client, prefix: &str) -> String {
    let ns = super::namespace(client, prefix).await;
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.patch(
        &ns,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"labels": {"klaxon.dev/policy-test": ns}}}),
        ),
    )
    .await
    .expect("label namespace");
    ns
}
