//! Klaxon on real rollouts: kube-controller-manager rolls Deployments out,
//! kube-scheduler places their pods, and KWOK's simulated nodes run them and
//! fail them as their pod templates ask. What the incident shows here is
//! what real components wrote: revisions, conditions, kubelet-style and
//! scheduler Events with their counts, garbage collection.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use klaxon::api::{Incident, Phase};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};

use crate::support::{
    self, assert_success,
    fixtures::{
        self, CRASH_LOOP, IMAGE_PULL, MESSAGE, NEVER_READY, OOM_KILLED, USAGE_CPU, USAGE_MEMORY,
        apply, condition, reason_count, wait_for,
    },
    operator, stdout,
};

const WAIT: Duration = Duration::from_secs(90);

async fn signalled(client: &Client, ns: &str) -> Vec<Incident> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels("klaxon.dev/signal"))
        .await
        .expect("list incidents")
        .items
}

fn deployment<'a>(
    incident: &'a Incident,
    name: &str,
) -> Option<&'a klaxon::api::incident::DeploymentState> {
    incident
        .status
        .as_ref()?
        .deployments
        .iter()
        .find(|d| d.name == name)
}

/// The whole cluster, the shared operator, a client and a fresh namespace.
async fn on_nodes(prefix: &str) -> (&'static support::Cluster, Client, String) {
    let cluster = support::cluster();
    cluster.require_nodes();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, prefix).await;
    (cluster, client, ns)
}

/// A responder declares an incident naming `deployments`.
fn declare(cluster: &support::Cluster, ns: &str, name: &str, severity: &str, deployments: &[&str]) {
    let affected: Vec<String> = deployments
        .iter()
        .map(|d| format!("{{name: {d}}}"))
        .collect();
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  title: {name} is degraded\n  severity: {severity}\n  affected: {{deployments: [{}]}}\n",
            affected.join(", ")
        ),
    );
}

/// checkout v41 runs healthy; `kubectl set image` rolls out v42, whose
/// containers crash-loop. The team's CrashLooping signal declares an
/// incident that shows the rollout, the failing pods, the kubelet's BackOff
/// events and usage; `kubectl rollout undo` brings health back and the
/// incident resolves itself.
#[tokio::test]
async fn a_bad_rollout_declares_an_incident_and_rollout_undo_resolves_it() {
    let (cluster, client, ns) = on_nodes("rollout").await;
    let shared = operator::shared();
    // The same service in a namespace with no policy: nothing of it may
    // reach the incident, and no incident is declared there.
    let decoy = support::namespace(&client, "rollout-decoy").await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  signals:
    - {{type: CrashLooping, for: 5s, severity: SEV2}}
  autoResolve: {{healthyFor: 3s}}
"#
        ),
    );
    for (namespace, registry, message) in [
        (&ns, "shop", "panic: card processor: nil map"),
        (&decoy, "decoyregistry", "DECOY message"),
    ] {
        let bad = format!("{registry}/checkout:v42");
        fixtures::rollout(
            &client,
            namespace,
            "checkout",
            4,
            &format!("{registry}/checkout:v41"),
            &[("tier", "payments")],
            &[
                (CRASH_LOOP, bad.as_str()),
                (MESSAGE, message),
                (USAGE_CPU, "150m"),
                (USAGE_MEMORY, "200Mi"),
            ],
        )
        .await;
        fixtures::rolled_out(&client, namespace, "checkout", WAIT).await;
        let out = cluster.kubectl(&[
            "-n",
            namespace,
            "set",
            "image",
            "deploy/checkout",
            &format!("checkout={bad}"),
        ]);
        assert_success(&out, "kubectl set image");
    }

    let declared = support::eventually(WAIT, || async {
        signalled(&client, &ns).await.into_iter().next()
    })
    .await
    .expect("the CrashLooping signal declares an incident");
    let name = declared.metadata.name.clone().expect("name");
    assert!(name.starts_with("checkout-crashlooping-"), "{name}");
    assert_eq!(declared.spec.severity, "SEV2");

    let incident = wait_for(
        &client,
        &ns,
        &name,
        WAIT,
        "the rollout, restarting pods, BackOff events and usage",
        |i| {
            let Some(d) = deployment(i, "checkout") else {
                return false;
            };
            let status = i.status.as_ref().expect("status");
            d.revision.as_deref() == Some("2")
                && d.pods.as_ref().is_some_and(|p| p.restarts >= 2)
                && d.usage.as_ref().is_some_and(|u| u.cpu.is_some())
                && status
                    .events
                    .iter()
                    .any(|e| e.reason == "BackOff" && e.count >= 2)
        },
    )
    .await;
    let status = incident.status.as_ref().expect("status");
    let checkout = deployment(&incident, "checkout").expect("checkout");
    assert!(checkout.found);
    assert_eq!(checkout.images, ["shop/checkout:v42"]);
    assert_eq!(checkout.previous_images, ["shop/checkout:v41"]);
    assert_eq!(checkout.replicas, Some(4));
    // The deployment controller surged one v42 pod and took one v41 pod
    // down (25% of 4 each way); the v42 pods never become ready, so the
    // rollout stops there.
    let pods = checkout.pods.as_ref().expect("pods");
    assert_eq!((pods.total, pods.ready), (5, 3), "{pods:#?}");
    assert_eq!(reason_count(&incident, "checkout", "CrashLoopBackOff"), 2);
    assert!(
        pods.items
            .iter()
            .any(|p| p.message.as_deref() == Some("panic: card processor: nil map")),
        "{pods:#?}"
    );
    let crashing = &pods.items[0];
    assert!(
        crashing.name.starts_with("checkout-") && !crashing.ready && crashing.restarts >= 1,
        "the crash-looping pods come first: {pods:#?}"
    );
    let backoff = status
        .events
        .iter()
        .find(|e| e.reason == "BackOff")
        .expect("BackOff event");
    assert!(backoff.object.starts_with("Pod/checkout-"), "{backoff:#?}");
    assert_eq!(backoff.message, "Back-off restarting failed container");
    assert!(
        status.timeline.iter().any(|e| e.type_ == "Rollout"),
        "{:#?}",
        status.timeline
    );
    assert_eq!(
        condition(&incident, "MetricsAvailable").map(|c| c.status.as_str()),
        Some("True")
    );
    let serialized = serde_json::to_string(status).expect("json");
    for leak in ["decoyregistry", "DECOY", decoy.as_str()] {
        assert!(!serialized.contains(leak), "{leak} leaked: {serialized}");
    }
    let out = cluster.kubectl(&["describe", "inc", &name, "-n", &ns]);
    assert_success(&out, "kubectl describe inc");
    let described = stdout(&out);
    for text in [
        "CrashLoopBackOff",
        "BackOff",
        "shop/checkout:v41",
        "Rollout",
    ] {
        assert!(
            described.contains(text),
            "describe lacks {text}:\n{described}"
        );
    }

    // Several more signal passes: still one incident here, none in the
    // decoy namespace.
    let passes = || {
        shared
            .metric("klaxon_signal_evaluations_total ")
            .unwrap_or(0.0)
    };
    let seen = passes();
    support::eventually(WAIT, || async { (passes() >= seen + 2.0).then_some(()) })
        .await
        .expect("the signal loop keeps running");
    assert_eq!(
        signalled(&client, &ns).await.len(),
        1,
        "one incident per outage"
    );
    assert!(signalled(&client, &decoy).await.is_empty());

    // The responder rolls back: v41 again, healthy, and Klaxon resolves.
    let out = cluster.kubectl(&["-n", &ns, "rollout", "undo", "deploy/checkout"]);
    assert_success(&out, "kubectl rollout undo");
    let resolved = wait_for(&client, &ns, &name, WAIT, "auto-resolution", |i| {
        i.spec.phase == Phase::Resolved
            && i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let status = resolved.status.as_ref().expect("status");
    assert!(
        status.timeline.iter().any(|e| e.type_ == "AutoResolved"),
        "{:#?}",
        status.timeline
    );
    let checkout = deployment(&resolved, "checkout").expect("checkout");
    assert_eq!(
        checkout.revision.as_deref(),
        Some("3"),
        "rollout undo is a new revision"
    );
    // The controller reused v41's ReplicaSet, created before the incident;
    // the rollback itself came after.
    let rollback = status
        .timeline
        .iter()
        .find(|e| e.type_ == "Rollout" && e.message.contains("revision 3"))
        .expect("the rollback in the timeline");
    assert!(
        rollback.message.contains("after the incident was declared"),
        "{}",
        rollback.message
    );
}

/// Pods that are OOM-killed, cannot pull their image, or never pass their
/// readiness probe, each as its simulated kubelet reports it.
#[tokio::test]
async fn failing_pods_show_the_reasons_their_kubelet_reports() {
    let (cluster, client, ns) = on_nodes("failing").await;
    for (name, failure) in [
        ("ledger", OOM_KILLED),
        ("search", IMAGE_PULL),
        ("fraud", NEVER_READY),
    ] {
        fixtures::rollout(
            &client,
            &ns,
            name,
            2,
            &format!("{name}:v1"),
            &[],
            &[(failure, "*")],
        )
        .await;
    }
    declare(
        cluster,
        &ns,
        "payments-degraded",
        "SEV2",
        &["ledger", "search", "fraud"],
    );
    let pulling = |i: &Incident| {
        reason_count(i, "search", "ErrImagePull") + reason_count(i, "search", "ImagePullBackOff")
    };
    let incident = wait_for(
        &client,
        &ns,
        "payments-degraded",
        WAIT,
        "every failure",
        |i| {
            let events = |reason: &str| {
                i.status
                    .as_ref()
                    .is_some_and(|s| s.events.iter().any(|e| e.reason == reason))
            };
            reason_count(i, "ledger", "OOMKilled") == 2
                && pulling(i) == 2
                && deployment(i, "fraud")
                    .and_then(|d| d.pods.as_ref())
                    .is_some_and(|p| p.total == 2 && p.ready == 0)
                && events("BackOff")
                && events("Failed")
                && events("Unhealthy")
        },
    )
    .await;
    for name in ["ledger", "search", "fraud"] {
        let d = deployment(&incident, name).expect(name);
        assert_eq!(d.ready_replicas.unwrap_or(0), 0, "{name}: {d:#?}");
    }
    let status = incident.status.as_ref().expect("status");
    let unhealthy = status
        .events
        .iter()
        .find(|e| e.reason == "Unhealthy")
        .expect("Unhealthy");
    assert!(unhealthy.object.starts_with("Pod/fraud-"), "{unhealthy:#?}");
    assert!(unhealthy.message.starts_with("Readiness probe failed"));
}

/// A Deployment whose pods fit no node: the real scheduler leaves them
/// Pending and says why, again and again, in one FailedScheduling series.
#[tokio::test]
async fn unschedulable_pods_show_the_schedulers_failed_scheduling_events() {
    let (cluster, client, ns) = on_nodes("unschedulable").await;
    fixtures::rollout(&client, &ns, "reports", 1, "reports:v1", &[], &[]).await;
    // 64 CPUs: more than any simulated node has (4).
    let out = cluster.kubectl(&[
        "-n",
        &ns,
        "set",
        "resources",
        "deploy/reports",
        "--requests=cpu=64",
        "--limits=cpu=64",
    ]);
    assert_success(&out, "kubectl set resources");
    declare(cluster, &ns, "reports-stuck", "SEV3", &["reports"]);
    // The scheduler retries an unschedulable pod every 20s here (the
    // harness's setting), so the series reaches 2 within a minute.
    let incident = wait_for(
        &client,
        &ns,
        "reports-stuck",
        Duration::from_secs(120),
        "Unschedulable pods and a FailedScheduling series",
        |i| {
            reason_count(i, "reports", "Unschedulable") == 1
                && i.status.as_ref().is_some_and(|s| {
                    s.events
                        .iter()
                        .any(|e| e.reason == "FailedScheduling" && e.count >= 2)
                })
        },
    )
    .await;
    let status = incident.status.as_ref().expect("status");
    let failed = status
        .events
        .iter()
        .find(|e| e.reason == "FailedScheduling")
        .expect("FailedScheduling");
    assert!(failed.object.starts_with("Pod/reports-"), "{failed:#?}");
    assert!(
        failed.message.contains("Insufficient cpu"),
        "{}",
        failed.message
    );
    let reports = deployment(&incident, "reports").expect("reports");
    let pods = reports.pods.as_ref().expect("pods");
    let pending = pods
        .items
        .iter()
        .find(|p| p.reason.as_deref() == Some("Unschedulable"))
        .expect("the Pending pod");
    assert_eq!(pending.phase.as_deref(), Some("Pending"));
    assert_eq!(
        (pods.total, pods.ready),
        (2, 1),
        "the old pod serves on: {pods:#?}"
    );
}

/// Deleting a namespace with a rolled-out Deployment, a policy and an open
/// incident completes: the namespace controller empties it, the garbage
/// collector removes the ReplicaSets and pods, KWOK lets the pods go.
#[tokio::test]
async fn deleting_a_namespace_completes() {
    let (cluster, client, ns) = on_nodes("deleted").await;
    fixtures::rollout(&client, &ns, "api", 2, "api:v1", &[], &[]).await;
    fixtures::rolled_out(&client, &ns, "api", WAIT).await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec: {{}}
"#
        ),
    );
    declare(cluster, &ns, "api-slow", "SEV3", &["api"]);
    wait_for(&client, &ns, "api-slow", WAIT, "enrichment", |i| {
        deployment(i, "api").is_some_and(|d| d.found)
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let gone = support::eventually(WAIT, || async {
        match namespaces.get(&ns).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
            _ => None,
        }
    })
    .await;
    if gone.is_none() {
        let last = namespaces.get(&ns).await.ok().and_then(|n| n.status);
        panic!("namespace {ns} still there after {WAIT:?}: {last:#?}");
    }
}

/// web rolls out three times by hand: `kubectl set image`, `set env`, `set
/// resources`. The incident declared after lists each rollout with what
/// its pod template changed (variables by name, never their values), the
/// latest before the declaration as the suspect, and a rollout while the
/// incident is open on top, not suspected.
#[tokio::test]
async fn each_rollout_is_a_change_with_what_its_template_changed() {
    let (cluster, client, ns) = on_nodes("changes").await;
    fixtures::rollout(&client, &ns, "web", 1, "shop/web:v1", &[], &[]).await;
    fixtures::rolled_out(&client, &ns, "web", WAIT).await;
    let secret_value = "s3cr3t-flag-value";
    for args in [
        vec!["set", "image", "deploy/web", "web=shop/web:v2"],
        vec![
            "set",
            "env",
            "deploy/web",
            &format!("FEATURE_CARDS={secret_value}"),
        ],
        vec!["set", "resources", "deploy/web", "--limits=memory=128Mi"],
    ] {
        let mut full = vec!["-n", ns.as_str()];
        full.extend(args.iter().copied());
        assert_success(&cluster.kubectl(&full), &full.join(" "));
        fixtures::rolled_out(&client, &ns, "web", WAIT).await;
    }
    declare(cluster, &ns, "web-degraded", "SEV2", &["web"]);
    let texts = |incident: &Incident| -> Vec<(String, bool)> {
        incident
            .status
            .iter()
            .flat_map(|s| &s.changes)
            .map(|c| (c.change.clone(), c.suspect == Some(true)))
            .collect()
    };
    let incident = wait_for(&client, &ns, "web-degraded", WAIT, "four changes", |i| {
        texts(i).len() == 4
    })
    .await;
    assert_eq!(
        texts(&incident),
        [
            (
                "revision 4: web memory limit 256Mi → 128Mi".to_string(),
                true
            ),
            ("revision 3: web env FEATURE_CARDS added".to_string(), false),
            (
                "revision 2: web image shop/web:v1 → shop/web:v2".to_string(),
                false
            ),
            ("revision 1: created".to_string(), false),
        ]
    );
    let status = incident.status.as_ref().expect("status");
    assert!(
        status
            .changes
            .iter()
            .all(|c| c.kind == "Deployment" && c.name == "web")
    );
    let suspect = status
        .brief
        .as_ref()
        .and_then(|b| b.suspect.as_deref())
        .expect("the brief names the suspect");
    assert!(
        suspect.starts_with("web: revision 4: web memory limit"),
        "{suspect}"
    );
    let json = serde_json::to_string(&incident).expect("json");
    assert!(
        !json.contains(secret_value),
        "a variable's value in the status"
    );
    // Each rollout before the declaration is in the timeline at its own time.
    for change in status
        .changes
        .iter()
        .filter(|c| c.revision.as_deref() != Some("1"))
    {
        let revision = change.revision.as_deref().unwrap_or_default();
        let entry = status
            .timeline
            .iter()
            .find(|e| {
                e.message
                    .starts_with(&format!("web rolled out revision {revision} "))
            })
            .unwrap_or_else(|| {
                panic!(
                    "revision {revision} in the timeline: {:#?}",
                    status.timeline
                )
            });
        assert_eq!(entry.time, change.time);
    }

    // A rollout while the incident is open joins on top; the suspect stays
    // the one before the declaration. Times have second precision: the
    // rollout starts in a later second than the declaration.
    let declared = status.declared_at.as_ref().expect("declaredAt").0;
    support::eventually(WAIT, || async {
        (jiff::Timestamp::now().as_second() > declared.as_second()).then_some(())
    })
    .await
    .expect("the clock moves on");
    let out = cluster.kubectl(&["-n", &ns, "set", "image", "deploy/web", "web=shop/web:v3"]);
    assert_success(&out, "kubectl set image v3");
    let incident = wait_for(
        &client,
        &ns,
        "web-degraded",
        WAIT,
        "the rollout while open",
        |i| texts(i).len() == 5,
    )
    .await;
    let now = texts(&incident);
    assert_eq!(
        now[0],
        (
            "revision 5: web image shop/web:v2 → shop/web:v3".to_string(),
            false
        )
    );
    assert!(
        now[1].1,
        "the suspect stays the last change before: {now:?}"
    );

    let shown = klaxon::cli::view::show(
        &incident,
        jiff::Timestamp::now(),
        klaxon::cli::view::Style { colour: false },
    );
    assert!(shown.contains("What changed"), "{shown}");
    assert!(shown.contains("← suspect"), "{shown}");
    let events = cluster.kubectl(&["-n", &ns, "get", "events", "-o", "json"]);
    assert!(
        !stdout(&events).contains(secret_value),
        "a variable's value in an Event"
    );
}
