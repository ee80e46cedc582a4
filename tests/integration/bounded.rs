//! What the operator costs the apiserver stays bounded, counted from the
//! apiserver's audit log rather than taken on the operator's word: a
//! deleted incident stops its namespace's PodMetrics sampling, and a
//! receiver that keeps failing costs a bounded number of Secret reads and
//! status writes however many incidents retry against it.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use klaxon::api::{Incident, ResponsePolicy, incident::DeliveryState};
use kube::{Api, api::DeleteParams};

use crate::support::{
    self, Cluster,
    audit::{self, Request},
    fixtures::{self, apply, condition, secret},
    operator::{self, Operator},
};

const WAIT: Duration = Duration::from_secs(60);

fn incident(ns: &str, name: &str, deployment: Option<&str>) -> String {
    let affected = deployment
        .map(|d| format!(", affected: {{deployments: [{{name: {d}}}]}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{title: Checkout down, severity: SEV2{affected}}}\n"
    )
}

/// The operator's PodMetrics LISTs in `ns`, by the time the apiserver
/// received them.
fn podmetrics_lists(requests: &[Request], ns: &str) -> Vec<jiff::Timestamp> {
    requests
        .iter()
        .filter(|r| r.is("list", Some("metrics.k8s.io"), "pods") && r.in_namespace(ns))
        .map(|r| r.time)
        .collect()
}

#[tokio::test]
async fn a_deleted_open_incident_is_unlinked_and_its_namespace_no_longer_sampled() {
    let cluster = Cluster::start_bare("bounded-unlink");
    cluster.install_crds();
    cluster.install_metrics_api();
    let client = cluster.client().await;
    let audit_log = cluster.dir().join("audit.log");
    let mut operator = Operator::start(
        &cluster.kubeconfig,
        "bounded-unlink",
        &[("KLAXON_METRICS_INTERVAL", "1s")],
    );
    operator.wait_ready(WAIT);

    // Two namespaces, each with a Deployment and an open incident naming it.
    let witness = support::namespace(&client, "witness").await;
    let victim = support::namespace(&client, "victim").await;
    for ns in [&witness, &victim] {
        fixtures::deployment(&client, ns, "api", &[], (1, 1), "1", "api:v1").await;
        apply(&cluster, &incident(ns, "open", Some("api")));
    }
    // Both sampled, the victim on at least two ticks (not only the quick
    // LIST a newly linked namespace gets), so its silence later means
    // something.
    let spans_a_tick = |lists: &[jiff::Timestamp]| match (lists.first(), lists.last()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_millis() >= 900,
        _ => false,
    };
    let sampled = support::eventually(WAIT, || async {
        let requests = audit::operator_requests(&audit_log);
        (!podmetrics_lists(&requests, &witness).is_empty()
            && spans_a_tick(&podmetrics_lists(&requests, &victim)))
        .then_some(())
    })
    .await;
    assert!(
        sampled.is_some(),
        "the operator never listed PodMetrics in both namespaces on its interval"
    );

    let incidents: Api<Incident> = Api::namespaced(client.clone(), &victim);
    incidents
        .delete("open", &DeleteParams::default())
        .await
        .expect("delete the victim incident");
    let deleted_at = jiff::Timestamp::now();

    // A counter, not a sleep: the witness namespace keeps being sampled
    // every second; wait for enough of its LISTs after the deletion. Five
    // (at least the four asked for) so that the last three intervals start
    // a full tick after the first post-deletion tick, which may still carry
    // a LIST of the victim that was in flight when the deletion landed.
    const WITNESS_LISTS: usize = 5;
    let witnessed = support::eventually(WAIT, || async {
        let requests = audit::operator_requests(&audit_log);
        let after: Vec<jiff::Timestamp> = podmetrics_lists(&requests, &witness)
            .into_iter()
            .filter(|t| *t > deleted_at)
            .collect();
        (after.len() >= WITNESS_LISTS).then_some(after)
    })
    .await;
    let requests = audit::operator_requests(&audit_log);
    let witness_after = witnessed.unwrap_or_else(|| {
        panic!(
            "the witness namespace stopped being sampled after the deletion: {:?}",
            podmetrics_lists(&requests, &witness)
        )
    });
    let victim_after: Vec<jiff::Timestamp> = podmetrics_lists(&requests, &victim)
        .into_iter()
        .filter(|t| *t > deleted_at)
        .collect();
    assert!(
        victim_after.len() <= 1,
        "the victim namespace was sampled {} times after its only incident was deleted at {deleted_at}: {victim_after:?}",
        victim_after.len()
    );
    let last_three_from = witness_after[witness_after.len() - 4];
    assert!(
        victim_after.iter().all(|t| *t <= last_three_from),
        "the victim namespace was sampled in the last three witness intervals (since {last_three_from}): {victim_after:?}"
    );
    eprintln!(
        "after the deletion at {deleted_at}: witness listed {} times, victim {} times",
        witness_after.len(),
        victim_after.len()
    );
    let log = operator.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

fn ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test]
async fn failing_receivers_cost_bounded_secret_reads_and_status_writes() {
    const INCIDENTS: usize = 20;
    /// The operator's delivery clocks.
    const BACKOFF: Duration = Duration::from_secs(1);
    const BACKOFF_MAX: Duration = Duration::from_secs(2);
    /// `integrations::secrets::FAILED_TTL`: a Secret whose receiver fails
    /// (so its URL may have changed) is read at most once per this.
    const SECRET_TTL: Duration = Duration::from_secs(5);
    /// The observation window: the point of this test is what a fixed
    /// stretch of time with failing receivers costs.
    const OBSERVE: Duration = Duration::from_secs(20);

    let cluster = Cluster::start_bare("bounded-delivery");
    cluster.install_crds();
    let client = cluster.client().await;
    let audit_log = cluster.dir().join("audit.log");
    let ns = support::namespace(&client, "refused").await;
    // Nothing listens there: every attempt is refused at once.
    let closed = format!("http://127.0.0.1:{}/hooks/down", operator::free_port());
    secret(&client, &ns, "hooks", &[("down", &closed)]).await;
    let (backoff, backoff_max) = (
        format!("{}s", BACKOFF.as_secs()),
        format!("{}s", BACKOFF_MAX.as_secs()),
    );
    let operator_start = jiff::Timestamp::now();
    let run_started = Instant::now();
    let mut operator = Operator::start(
        &cluster.kubeconfig,
        "bounded-delivery",
        &[
            ("KLAXON_DELIVERY_BACKOFF", backoff.as_str()),
            ("KLAXON_DELIVERY_BACKOFF_MAX", backoff_max.as_str()),
            ("KLAXON_DELIVERY_ATTEMPTS", "100"),
        ],
    );
    operator.wait_ready(WAIT);
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  receivers:
    - {{name: down, webhook: {{urlSecretRef: {{name: hooks, key: down}}}}}}
  routes:
    - {{receivers: [down], triggers: [Declared]}}
"#
        ),
    );
    let policies: Api<ResponsePolicy> = Api::namespaced(client.clone(), &ns);
    let policy_ready = support::eventually(WAIT, || async {
        let policy = policies.get("team").await.ok()?;
        ready(&policy.status?.conditions).then_some(())
    })
    .await;
    assert!(policy_ready.is_some(), "the policy never became Ready");

    let window_start = jiff::Timestamp::now();
    let started = Instant::now();
    let names: Vec<String> = (0..INCIDENTS).map(|i| format!("down-{i:02}")).collect();
    let manifest: Vec<String> = names.iter().map(|n| incident(&ns, n, None)).collect();
    apply(&cluster, &manifest.join("---\n"));
    tokio::time::sleep(OBSERVE.saturating_sub(started.elapsed())).await;
    let window_end = jiff::Timestamp::now();
    let window = started.elapsed();

    // Every incident still retrying, and saying why.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let mut attempts = BTreeMap::new();
    for name in &names {
        let incident = incidents.get(name).await.expect("incident");
        let status = incident.status.as_ref().expect("status");
        let [notification] = status.notifications.as_slice() else {
            panic!("{name}: one notification expected: {status:#?}");
        };
        assert_eq!(notification.state, DeliveryState::Pending, "{name}");
        attempts.insert(name.clone(), notification.attempts);
        let delivered = condition(&incident, "NotificationsDelivered")
            .unwrap_or_else(|| panic!("{name}: no NotificationsDelivered: {status:#?}"));
        assert_eq!(
            (delivered.status.as_str(), delivered.reason.as_str()),
            ("False", "Pending"),
            "{name}"
        );
        assert!(
            delivered
                .message
                .contains("Last error (down): cannot connect to"),
            "{name}: the message does not name the last error: {}",
            delivered.message
        );
        assert!(
            !delivered.message.contains("127.0.0.1"),
            "{name}: the URL leaked: {}",
            delivered.message
        );
    }
    assert!(
        attempts.values().all(|a| *a >= 3),
        "the failing receiver was not retried within {window:?}: {attempts:?}"
    );

    assert!(
        audit::wait_until_covers(&audit_log, window_end, Some(&client), WAIT).await,
        "the audit log never reached the end of the window"
    );
    let all = audit::operator_requests(&audit_log);
    let requests: Vec<Request> = all
        .iter()
        .filter(|r| r.time >= window_start && r.time <= window_end)
        .cloned()
        .collect();
    let seconds = window.as_secs_f64();

    // Secret reads: one per Secret per TTL of the operator's cache, plus
    // two for the reads at either end. Counted over the operator's whole
    // run (from its start to the window's end, `run`), since the policy's
    // own check may have read the Secret just before the window.
    let run = run_started.elapsed();
    let secret_gets = all
        .iter()
        .filter(|r| r.time >= operator_start && r.time <= window_end)
        .filter(|r| r.is("get", None, "secrets") && r.in_namespace(&ns))
        .count();
    let secret_bound = run.as_secs_f64() / SECRET_TTL.as_secs_f64() + 2.0;
    assert!(
        secret_gets as f64 <= secret_bound,
        "{secret_gets} GETs of Secret hooks in {run:?} for {INCIDENTS} incidents; at most {secret_bound:.1} expected"
    );

    // Status writes: one per delivery attempt (the attempt is recorded
    // before it is made; a failure short of the last attempt is written
    // with the next one). Attempt n waits base·2^(n-1), capped at
    // BACKOFF_MAX, times a jitter in [1/2, 1): never less than BACKOFF/2 =
    // 0.5 s. So per incident at most window / 0.5 s attempts, plus 3 for
    // the writes that are not attempts (the first status, the first
    // attempt's record, one write in flight at the window's end).
    let min_wait = BACKOFF.as_secs_f64() / 2.0;
    let patch_bound = seconds / min_wait + 3.0;
    let mut patches: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    for r in requests
        .iter()
        .filter(|r| r.is("patch", Some("klaxon.dev"), "incidents/status") && r.in_namespace(&ns))
    {
        if let Some(n) = r.name.as_ref().and_then(|n| patches.get_mut(n)) {
            *n += 1;
        }
    }
    let over: Vec<(&String, &usize)> = patches
        .iter()
        .filter(|(_, n)| **n as f64 > patch_bound)
        .collect();
    assert!(
        over.is_empty(),
        "status patches above {patch_bound:.0} per incident in {window:?}: {over:?} (attempts: {attempts:?})"
    );
    let total: usize = patches.values().sum();
    eprintln!(
        "in {window:.1?} with {INCIDENTS} incidents failing: {secret_gets} Secret GETs in the operator's {run:.1?} (bound {secret_bound:.1}), \
         {total} status patches, per incident {:?}..={:?} (bound {patch_bound:.0}); attempts {:?}..={:?}",
        patches.values().min(),
        patches.values().max(),
        attempts.values().min(),
        attempts.values().max()
    );
    let _ = operator.terminate(WAIT);
}
