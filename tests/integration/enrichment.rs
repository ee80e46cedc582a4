//! Incident enrichment from exact, hand-written cluster state: a responder
//! applies an Incident and its status shows what they would otherwise
//! collect by hand.
//!
//! These tests run on the bare cluster (no controllers or nodes) because
//! each needs a state no single real rollout produces: one Deployment whose
//! pods crash-loop, are OOM-killed and fail to pull at once, with exact
//! restart counts; two Event objects of one series; a ReplicaSet's
//! FailedCreate; PodMetrics with exact values; pods appearing one at a time.
//! The same enrichment on real rollouts is in `rollouts.rs`.

use std::time::Duration;

use klaxon::api::Incident;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::support::{
    self, Cluster, assert_success,
    fixtures::{self, condition, reason_count, wait_for},
    operator::{self, Operator},
    stdout,
};

const WAIT: Duration = Duration::from_secs(60);

fn pods_total(incident: &Incident, deployment: &str) -> Option<i32> {
    incident
        .status
        .as_ref()?
        .deployments
        .iter()
        .find(|d| d.name == deployment)?
        .pods
        .as_ref()
        .map(|p| p.total)
}

/// The broken checkout service of the issue: an old and a new revision,
/// crash-looping, OOM-killed and image-pull-failing pods, Warning events,
/// PodMetrics. `restarts` lets a decoy differ from the real one.
async fn broken_checkout(
    client: &Client,
    ns: &str,
    image_prefix: &str,
    restarts: i32,
    message: &str,
) {
    let deployment = fixtures::deployment(
        client,
        ns,
        "checkout",
        &[("app", "checkout"), ("tier", "payments")],
        (4, 1),
        "2",
        &format!("{image_prefix}/checkout:v42"),
    )
    .await;
    let old = fixtures::replicaset(
        client,
        &deployment,
        "5d8f7c9b6",
        "1",
        &format!("{image_prefix}/checkout:v41"),
    )
    .await;
    let new = fixtures::replicaset(
        client,
        &deployment,
        "7b9c4d2f1",
        "2",
        &format!("{image_prefix}/checkout:v42"),
    )
    .await;
    let _ = old;
    fixtures::pod(
        client,
        &new,
        "crash1",
        fixtures::crash_loop(restarts, "Error", message),
    )
    .await;
    fixtures::pod(
        client,
        &new,
        "crash2",
        fixtures::crash_loop(restarts + 1, "Error", message),
    )
    .await;
    fixtures::pod(
        client,
        &new,
        "oom01",
        fixtures::crash_loop(2, "OOMKilled", ""),
    )
    .await;
    fixtures::pod(client, &new, "pull1", fixtures::image_pull_backoff()).await;
    fixtures::pod(client, &new, "ok001", fixtures::running()).await;
    let crash1 = "checkout-7b9c4d2f1-crash1";
    // Two Event objects with the same reason and message: one entry.
    fixtures::warning(client, ns, "Pod", crash1, "BackOff", message, 3).await;
    fixtures::warning(client, ns, "Pod", crash1, "BackOff", message, 4).await;
    fixtures::warning(
        client,
        ns,
        "Pod",
        "checkout-7b9c4d2f1-pull1",
        "Failed",
        "Failed to pull image",
        2,
    )
    .await;
    fixtures::warning(
        client,
        ns,
        "ReplicaSet",
        "checkout-7b9c4d2f1",
        "FailedCreate",
        "exceeded quota",
        1,
    )
    .await;
    for (pod, cpu, memory) in [
        ("crash1", "50m", "100Mi"),
        ("crash2", "70m", "120Mi"),
        ("ok001", "80m", "36Mi"),
    ] {
        fixtures::pod_metrics(
            client,
            ns,
            &format!("checkout-7b9c4d2f1-{pod}"),
            cpu,
            memory,
        )
        .await;
    }
}

#[tokio::test]
async fn incident_status_shows_what_responders_would_collect_by_hand() {
    let cluster = support::bare_cluster();
    operator::shared_bare();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "enrich").await;
    let decoy = support::namespace(&client, "decoy").await;
    broken_checkout(&client, &ns, "shop", 5, "panic: nil map").await;
    broken_checkout(&client, &decoy, "decoyregistry", 40, "DECOY message").await;

    fixtures::apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: checkout-5xx, namespace: {ns}}}
spec:
  title: Checkout returns 5xx
  severity: SEV2
  affected: {{deployments: [{{name: checkout}}]}}
---
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: witness, namespace: {ns}}}
spec:
  title: Same service, still open
  severity: SEV3
  affected: {{deployments: [{{name: checkout}}]}}
"#
        ),
    );
    let incident = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "enriched status with usage and every event",
        |i| {
            let Some(status) = i.status.as_ref() else {
                return false;
            };
            pods_total(i, "checkout") == Some(5)
                && status
                    .deployments
                    .first()
                    .is_some_and(|d| d.usage.is_some())
                && status.events.len() == 3
                && status
                    .events
                    .iter()
                    .any(|e| e.reason == "BackOff" && e.count == 7)
        },
    )
    .await;
    let status = incident.status.clone().expect("status");
    let checkout = &status.deployments[0];
    assert!(checkout.found);
    assert_eq!(
        (
            checkout.replicas,
            checkout.ready_replicas,
            checkout.available_replicas,
            checkout.updated_replicas
        ),
        (Some(4), Some(1), Some(1), Some(4))
    );
    assert_eq!(checkout.images, ["shop/checkout:v42"]);
    assert_eq!(checkout.previous_images, ["shop/checkout:v41"]);
    assert_eq!(checkout.revision.as_deref(), Some("2"));
    let rs_api: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let new_rs = rs_api
        .get("checkout-7b9c4d2f1")
        .await
        .expect("new ReplicaSet");
    assert_eq!(
        checkout.rollout_at, new_rs.metadata.creation_timestamp,
        "rolloutAt is when the new ReplicaSet started"
    );

    let pods = checkout.pods.as_ref().expect("pods");
    assert_eq!((pods.total, pods.ready, pods.restarts), (5, 1, 5 + 6 + 2));
    assert_eq!(reason_count(&incident, "checkout", "CrashLoopBackOff"), 3);
    assert_eq!(reason_count(&incident, "checkout", "OOMKilled"), 1);
    assert_eq!(reason_count(&incident, "checkout", "ImagePullBackOff"), 1);
    assert_eq!(reason_count(&incident, "checkout", "Error"), 2);
    assert_eq!(
        pods.items[0].name, "checkout-7b9c4d2f1-oom01",
        "the OOMKilled pod is worst"
    );
    assert!(
        pods.items
            .iter()
            .any(|p| p.message.as_deref() == Some("panic: nil map"))
    );

    let usage = checkout.usage.as_ref().expect("usage");
    assert_eq!(usage.cpu.as_deref(), Some("200m"));
    assert_eq!(usage.memory.as_deref(), Some("256Mi"));
    assert_eq!(
        usage.cpu_request_ratio.as_deref(),
        Some("0.67"),
        "200m of 3 x 100m requested"
    );

    let backoff = status
        .events
        .iter()
        .find(|e| e.reason == "BackOff")
        .expect("BackOff event");
    assert_eq!(backoff.object, "Pod/checkout-7b9c4d2f1-crash1");
    assert_eq!(backoff.count, 7, "two Event objects deduplicated");
    assert_eq!(
        status
            .events
            .iter()
            .filter(|e| e.reason == "BackOff")
            .count(),
        1
    );
    assert!(
        status
            .events
            .iter()
            .any(|e| e.reason == "FailedCreate" && e.object == "ReplicaSet/checkout-7b9c4d2f1")
    );
    assert!(
        status
            .events
            .iter()
            .any(|e| e.reason == "Failed" && e.object == "Pod/checkout-7b9c4d2f1-pull1")
    );
    assert!(
        status.timeline.iter().any(|e| e.type_ == "Rollout"),
        "{:#?}",
        status.timeline
    );
    let summary = status.summary.clone().unwrap_or_default();
    assert!(
        summary.starts_with("checkout 1/4 ready; 3 CrashLoopBackOff"),
        "{summary}"
    );
    assert_eq!(
        condition(&incident, "Ready").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        condition(&incident, "MetricsAvailable").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(status.observed_generation, incident.metadata.generation);

    // Nothing from the decoy namespace.
    let serialized = serde_json::to_string(&status).expect("json");
    for leak in ["decoyregistry", "DECOY", &decoy] {
        assert!(
            !serialized.contains(leak),
            "{leak} leaked into the status: {serialized}"
        );
    }

    // What a responder sees.
    let out = cluster.kubectl(&["describe", "inc", "checkout-5xx", "-n", &ns]);
    assert_success(&out, "kubectl describe inc");
    let described = stdout(&out);
    for text in [
        "CrashLoopBackOff",
        "OOMKilled",
        "ImagePullBackOff",
        "BackOff",
        "FailedCreate",
        "Declared",
        "Rollout",
    ] {
        assert!(
            described.contains(text),
            "describe lacks {text}:\n{described}"
        );
    }
    let events_section = described.split("\nEvents:").nth(1).unwrap_or_default();
    assert!(
        events_section.contains("Declared"),
        "no transition Event in describe:\n{described}"
    );
    // The brief comes first in the status: each workload's line and the
    // summary (and the deadline, where one applies) before the conditions.
    let status_part = described.split("\nStatus:").nth(1).unwrap_or_default();
    let position = |text: &str| {
        status_part
            .find(text)
            .unwrap_or_else(|| panic!("describe's status lacks {text}:\n{described}"))
    };
    let conditions = position("Conditions:");
    for first in [
        "Brief:",
        "Workloads:",
        "checkout 1/4 ready, 13 restarts",
        "Summary:",
    ] {
        assert!(
            position(first) < conditions,
            "{first} comes after the conditions:\n{described}"
        );
    }

    // A pod that starts crash-looping shows up, with no change to the Incident.
    let new_rs = rs_api.get("checkout-7b9c4d2f1").await.expect("rs");
    fixtures::pod(
        &client,
        &new_rs,
        "crash3",
        fixtures::crash_loop(1, "Error", "panic: nil map"),
    )
    .await;
    let live = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "the new crash-looping pod",
        // Created, then its status written: wait for both.
        |i| {
            pods_total(i, "checkout") == Some(6)
                && reason_count(i, "checkout", "CrashLoopBackOff") == 4
        },
    )
    .await;
    assert_eq!(live.metadata.generation, incident.metadata.generation);

    // Resolution freezes the record.
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "checkout-5xx",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"phase": "Resolved"}})),
    )
    .await
    .expect("resolve");
    let resolved = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "frozen enrichment",
        |i| condition(i, "Enriched").is_some_and(|c| c.reason == "Frozen"),
    )
    .await;
    assert!(
        resolved
            .status
            .as_ref()
            .is_some_and(|s| s.resolved_at.is_some())
    );
    fixtures::pod(
        &client,
        &new_rs,
        "crash4",
        fixtures::crash_loop(1, "OOMKilled", ""),
    )
    .await;
    // The open witness incident proves the operator saw the new pod...
    wait_for(
        &client,
        &ns,
        "witness",
        WAIT,
        "the pod created after resolution",
        |i| pods_total(i, "checkout") == Some(7),
    )
    .await;
    // ...and the resolved one did not change.
    let after = api.get("checkout-5xx").await.expect("get");
    let (before, after) = (
        resolved.status.expect("status"),
        after.status.expect("status"),
    );
    assert_eq!(after.deployments, before.deployments);
    assert_eq!(after.events, before.events);
    assert_eq!(after.summary, before.summary);
}

#[tokio::test]
async fn selectors_link_matching_deployments_and_missing_ones_are_picked_up_later() {
    let cluster = support::bare_cluster();
    operator::shared_bare();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "select").await;
    for (name, tier) in [
        ("api", "payments"),
        ("fraud", "payments"),
        ("batch", "batch"),
    ] {
        let image = format!("{name}:v1");
        fixtures::deployment(&client, &ns, name, &[("tier", tier)], (1, 1), "1", &image).await;
    }
    fixtures::apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: payments-down, namespace: {ns}}}
spec:
  title: Payments down
  severity: SEV1
  affected:
    deployments:
      - name: ledger
      - selector: {{matchLabels: {{tier: payments}}}}
"#
        ),
    );
    let incident = wait_for(
        &client,
        &ns,
        "payments-down",
        WAIT,
        "linked deployments",
        |i| i.status.as_ref().is_some_and(|s| s.deployments.len() == 3),
    )
    .await;
    let status = incident.status.as_ref().expect("status");
    let linked: Vec<(&str, bool)> = status
        .deployments
        .iter()
        .map(|d| (d.name.as_str(), d.found))
        .collect();
    assert_eq!(linked, [("ledger", false), ("api", true), ("fraud", true)]);
    let found = condition(&incident, "DeploymentsFound").expect("DeploymentsFound");
    assert_eq!(
        (found.status.as_str(), found.reason.as_str()),
        ("False", "DeploymentNotFound")
    );
    assert!(found.message.contains("ledger"), "{}", found.message);

    fixtures::deployment(
        &client,
        &ns,
        "ledger",
        &[("tier", "core")],
        (1, 0),
        "1",
        "ledger:v7",
    )
    .await;
    let linked = wait_for(
        &client,
        &ns,
        "payments-down",
        WAIT,
        "ledger linked once created",
        |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.deployments.iter().any(|d| d.name == "ledger" && d.found))
        },
    )
    .await;
    assert_eq!(
        condition(&linked, "DeploymentsFound").map(|c| c.status.as_str()),
        Some("True")
    );
    let ledger = linked
        .status
        .as_ref()
        .and_then(|s| s.deployments.iter().find(|d| d.name == "ledger"))
        .expect("ledger");
    assert_eq!(ledger.images, ["ledger:v7"]);
}

#[tokio::test]
async fn an_event_storm_keeps_the_status_small() {
    let cluster = support::bare_cluster();
    operator::shared_bare();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "storm").await;
    let deployment = fixtures::deployment(&client, &ns, "web", &[], (1, 0), "1", "web:v1").await;
    let rs = fixtures::replicaset(&client, &deployment, "6c5d4b3a2", "1", "web:v1").await;
    fixtures::pod(
        &client,
        &rs,
        "storm",
        fixtures::crash_loop(99, "Error", &"x".repeat(4000)),
    )
    .await;
    let pod = "web-6c5d4b3a2-storm";
    for i in 0..300 {
        let message = format!("{i}: {}", "disk pressure ".repeat(70));
        fixtures::warning(&client, &ns, "Pod", pod, "Evicted", &message, i + 1).await;
    }
    fixtures::apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: storm, namespace: {ns}}}\nspec: {{title: Storm, severity: SEV3, affected: {{deployments: [{{name: web}}]}}}}\n"
        ),
    );
    let incident = wait_for(&client, &ns, "storm", WAIT, "events in the status", |i| {
        i.status.as_ref().is_some_and(|s| !s.events.is_empty())
    })
    .await;
    let out = cluster.kubectl(&["get", "inc", "storm", "-n", &ns, "-o", "jsonpath={.status}"]);
    assert_success(&out, "get status");
    let bytes = stdout(&out).len();
    assert!(bytes < 64 * 1024, "status is {bytes} bytes");
    let status = incident.status.expect("status");
    assert!(
        status.events.len() <= 30,
        "{} events kept",
        status.events.len()
    );
    assert!(status.summary.unwrap_or_default().contains("warnings"));
}

#[tokio::test]
async fn without_a_metrics_api_a_condition_says_so() {
    let bare = Cluster::start_bare("no-metrics");
    bare.install_crds();
    let client = bare.client().await;
    let ns = support::namespace(&client, "nometrics").await;
    fixtures::deployment(&client, &ns, "api", &[], (1, 1), "1", "api:v1").await;
    let mut operator = Operator::start(
        &bare.kubeconfig,
        "no-metrics",
        &[("KLAXON_METRICS_INTERVAL", "1s")],
    );
    operator.wait_ready(WAIT);
    fixtures::apply(
        &bare,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: slow, namespace: {ns}}}\nspec: {{title: Slow, severity: SEV3, affected: {{deployments: [{{name: api}}]}}}}\n"
        ),
    );
    let incident = wait_for(&client, &ns, "slow", WAIT, "MetricsAvailable=False", |i| {
        condition(i, "MetricsAvailable").is_some_and(|c| c.status == "False")
    })
    .await;
    let metrics = condition(&incident, "MetricsAvailable").expect("condition");
    assert_eq!(metrics.reason, "MetricsAPIUnavailable");
    assert_eq!(
        condition(&incident, "Ready").map(|c| c.status.as_str()),
        Some("True")
    );
    let served = operator.get("/metrics").expect("/metrics");
    assert!(
        !served.body.contains("klaxon_reconcile_failures_total{"),
        "{}",
        served.body
    );
}
