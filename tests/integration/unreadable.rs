//! Objects the operator's types cannot read (a time beyond what they hold,
//! written where the schema does not bound it) never stop it: they are
//! skipped and reported on themselves, every other object is reconciled,
//! a restart becomes ready, and SIGTERM stops it at any time.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use klaxon::api::Incident;
use kube::{
    Api,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    discovery::ApiResource,
};
use serde_json::json;

use crate::support::{
    self, Cluster, assert_success,
    fixtures::{apply, wait_for},
    operator::{self, Operator},
    stdout,
};

const WAIT: Duration = Duration::from_secs(60);
/// The operator's shutdown grace (10 s) and some room.
const STOP: Duration = Duration::from_secs(20);

fn incident(ns: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  title: Checkout returns 5xx\n  severity: SEV2\n{extra}"
    )
}

fn declared(incident: &Incident) -> bool {
    incident
        .status
        .as_ref()
        .is_some_and(|s| s.declared_at.is_some())
}

#[tokio::test]
async fn unreadable_objects_neither_stop_reconciliation_nor_block_a_restart() {
    // Its own control plane: the objects here would be skipped by the
    // shared operator too, but this test restarts its operator.
    let cluster = Cluster::start_bare("unreadable");
    cluster.install_crds();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "unreadable").await;

    // At the schema's bound: readable, reconciled like any other.
    apply(
        &cluster,
        &incident(
            &ns,
            "at-the-bound",
            "  notes:\n    - {author: alice, text: far ahead, time: \"8999-12-31T23:59:59Z\"}\n",
        ),
    );
    // Beyond what the types read, in the status, which the schema cannot
    // bound for every time field: the whole Incident LIST used to fail.
    apply(&cluster, &incident(&ns, "broken", ""));
    let resource = ApiResource::erase::<Incident>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    raw.patch_status(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"timeline": [
            {"time": "9999-12-31T23:59:59Z", "type": "Note", "message": "from the far future"}
        ]}})),
    )
    .await
    .expect("write an unreadable status");
    // And a core object: a Warning Event with such a time.
    let events: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<Event>(&()));
    events
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "from-the-future"},
                "involvedObject": {"kind": "Pod", "name": "checkout-1", "namespace": ns},
                "type": "Warning", "reason": "BackOff", "message": "late", "count": 1,
                "firstTimestamp": "9999-12-31T23:59:59Z", "lastTimestamp": "9999-12-31T23:59:59Z"
            }))
            .expect("event"),
        )
        .await
        .expect("create an unreadable event");

    let mut first = Operator::start(&cluster.kubeconfig, "unreadable-1", operator::SHARED_ENV);
    first.wait_ready(WAIT);
    apply(&cluster, &incident(&ns, "healthy", ""));
    wait_for(&client, &ns, "healthy", WAIT, "reconciled", declared).await;
    wait_for(&client, &ns, "at-the-bound", WAIT, "reconciled", |i| {
        declared(i) && i.status.as_ref().and_then(|s| s.observed_notes) == Some(1)
    })
    .await;

    // The unreadable incident says so on itself.
    let reported = support::eventually(WAIT, || async {
        let object = raw.get("broken").await.ok()?;
        let conditions = object.data["status"]["conditions"].as_array()?.clone();
        conditions
            .into_iter()
            .find(|c| c["type"] == "Ready" && c["reason"] == "Unreadable")
    })
    .await
    .expect("Ready=False, reason Unreadable, on the broken incident");
    assert_eq!(reported["status"], "False");
    let message = reported["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot read"), "{message}");
    let described = stdout(&cluster.kubectl(&["describe", "inc", "broken", "-n", &ns]));
    assert!(described.contains("Unreadable"), "{described}");

    // Logged once per object, not on every pass.
    let log = first.log_text();
    let mentions = log
        .lines()
        .filter(|l| l.contains("cannot be read") && l.contains("broken"))
        .count();
    assert_eq!(mentions, 1, "{log}");
    assert!(
        log.lines().all(|l| l.len() < 4096),
        "no huge log lines:\n{log}"
    );

    // A restart with the unreadable objects still there becomes ready and
    // reconciles.
    let started = Instant::now();
    assert!(first.terminate(STOP).is_some(), "SIGTERM stops it");
    assert!(started.elapsed() < STOP);
    let mut second = Operator::start(&cluster.kubeconfig, "unreadable-2", operator::SHARED_ENV);
    second.wait_ready(WAIT);
    apply(&cluster, &incident(&ns, "after-restart", ""));
    wait_for(&client, &ns, "after-restart", WAIT, "reconciled", declared).await;
    assert!(second.terminate(STOP).is_some(), "SIGTERM stops it");
}

#[tokio::test]
async fn sigterm_stops_an_operator_whose_caches_never_sync() {
    let cluster = Cluster::start_bare("unsynced");
    cluster.install_crds();
    let client = cluster.client().await;
    let system = support::namespace(&client, "unsynced").await;
    // Everything but the right to list Events: the Event cache never
    // syncs, so the operator never becomes ready.
    let rbac = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: klaxon-no-events}}
rules:
  - apiGroups: ["", apps, klaxon.dev, metrics.k8s.io, events.k8s.io, coordination.k8s.io]
    resources: [pods, namespaces, deployments, replicasets, incidents, incidents/status,
                responsepolicies, responsepolicies/status, clusterresponsepolicies,
                clusterresponsepolicies/status, secrets, leases]
    verbs: [get, list, watch, create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: klaxon-no-events}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: klaxon-no-events}}
subjects: [{{kind: ServiceAccount, name: klaxon, namespace: {system}}}]
"#
    );
    let out = cluster.kubectl(&["create", "serviceaccount", "klaxon", "-n", &system]);
    assert_success(&out, "create serviceaccount");
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], Some(&rbac));
    assert_success(&out, "apply RBAC");
    let out = cluster.kubectl(&["create", "token", "klaxon", "-n", &system, "--duration=1h"]);
    assert_success(&out, "token");
    let kubeconfig = cluster.kubeconfig_with_token("no-events", stdout(&out).trim());

    let mut operator = Operator::start(&kubeconfig, "unsynced", operator::SHARED_ENV);
    // Up (it serves /readyz) but never ready.
    let serving =
        support::eventually(WAIT, || async { operator.get("/readyz").map(|r| r.status) }).await;
    assert_eq!(serving, Some(503));
    let failing = support::eventually(WAIT, || async {
        operator
            .metric(r#"klaxon_watch_errors_total{watch="Event"}"#)
            .filter(|n| *n >= 2.0)
    })
    .await;
    assert!(failing.is_some(), "the Event watch fails and is counted");
    assert_eq!(operator.get("/readyz").map(|r| r.status), Some(503));

    let started = Instant::now();
    let status = operator.terminate(STOP);
    assert!(
        status.is_some(),
        "SIGTERM did not stop an unsynced operator within {STOP:?}:\n{}",
        operator.log_text()
    );
    assert!(started.elapsed() < STOP);
}
