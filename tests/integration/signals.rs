//! Signals: Klaxon declares an incident when a Deployment stays
//! unavailable or its pods crash-loop for the policy's `for`, never twice
//! for one outage, and resolves it when the workload stays healthy.

use std::time::Duration;

use klaxon::api::{Incident, Phase};
use kube::{Api, Client, api::ListParams};

use crate::support::{
    self, assert_success,
    fixtures::{self, NEVER_READY, apply},
    operator,
};

const WAIT: Duration = Duration::from_secs(90);

async fn auto_declared(client: &Client, ns: &str) -> Vec<Incident> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels("klaxon.dev/signal"))
        .await
        .expect("list incidents")
        .items
}

#[tokio::test]
async fn signals_declare_once_per_outage_and_health_resolves_it() {
    let cluster = support::cluster();
    cluster.require_nodes();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "signals").await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  signals:
    - {{type: DeploymentUnavailable, for: 5s, severity: SEV2, selector: {{matchLabels: {{tier: web}}}}}}
    - {{type: CrashLooping, for: 1h, severity: SEV3}}
  autoResolve: {{healthyFor: 2s}}
"#
        ),
    );
    // Real rollouts whose web:v1 and batch:v1 pods never become ready:
    // both Deployments stay Available=False from creation. The selector
    // leaves batch out.
    for (name, tier) in [("web", "web"), ("batch", "batch")] {
        let image = format!("{name}:v1");
        fixtures::rollout(
            &client,
            &ns,
            name,
            2,
            &image,
            &[("tier", tier)],
            &[(NEVER_READY, image.as_str())],
        )
        .await;
    }

    let declared = support::eventually(WAIT, || async {
        let found = auto_declared(&client, &ns).await;
        (!found.is_empty()).then_some(found)
    })
    .await
    .expect("an incident declared from the signal");
    let incident = &declared[0];
    let name = incident.metadata.name.clone().expect("name");
    assert!(name.starts_with("web-unavailable-"), "{name}");
    assert_eq!(incident.spec.severity, "SEV2");
    assert_eq!(incident.spec.title, "web is unavailable");
    let affected = &incident
        .spec
        .affected
        .as_ref()
        .expect("affected")
        .deployments;
    assert_eq!(affected[0].name.as_deref(), Some("web"));

    let enriched = fixtures::wait_for(
        &client,
        &ns,
        &name,
        WAIT,
        "the Signal timeline entry",
        |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.timeline.iter().any(|e| e.type_ == "Signal"))
        },
    )
    .await;
    let signal = enriched
        .status
        .as_ref()
        .and_then(|s| s.timeline.iter().find(|e| e.type_ == "Signal"))
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(signal.contains("web Available=False since"), "{signal}");
    // Impact started when the Deployment became unavailable, as the
    // Deployment controller recorded it.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns);
    let web = deployments.get("web").await.expect("web");
    let unavailable = web
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .and_then(|c| c.last_transition_time)
        .expect("Available's lastTransitionTime");
    let status = enriched.status.as_ref().expect("status");
    assert_eq!(
        status.started_at.as_ref().map(|t| t.0.as_second()),
        Some(unavailable.0.as_second()),
        "startedAt is the signal's condition start"
    );
    assert!(status.started_at.as_ref().map(|t| t.0) <= status.declared_at.as_ref().map(|t| t.0));

    // Two more passes over every signal: still exactly one, nothing for
    // the others.
    let passes = || {
        let metrics = operator::shared()
            .get("/metrics")
            .map(|r| r.body)
            .unwrap_or_default();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("klaxon_signal_evaluations_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let seen = passes();
    let later =
        support::eventually(WAIT, || async { (passes() >= seen + 2.0).then_some(()) }).await;
    assert!(later.is_some(), "the signal loop stopped");
    let names: Vec<String> = auto_declared(&client, &ns)
        .await
        .into_iter()
        .filter_map(|i| i.metadata.name)
        .collect();
    assert_eq!(
        names,
        std::slice::from_ref(&name),
        "one incident for one outage, none for batch"
    );

    // A fixed image rolls out and becomes available: resolved after
    // `healthyFor`.
    let out = cluster.kubectl(&["-n", &ns, "set", "image", "deploy/web", "web=web:v2"]);
    assert_success(&out, "kubectl set image");
    let resolved = fixtures::wait_for(&client, &ns, &name, WAIT, "auto-resolution", |i| {
        i.spec.phase == Phase::Resolved
            && i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let timeline = &resolved.status.as_ref().expect("status").timeline;
    assert!(
        timeline.iter().any(|e| e.type_ == "AutoResolved"),
        "{timeline:#?}"
    );
}
