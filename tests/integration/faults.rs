//! Faults between the operator and the apiserver: connections cut (reset,
//! then refused) for seconds to minutes, through a relay the test
//! controls. The operator must say it is blind while it is, catch up
//! within seconds once the apiserver is back, and page once per incident.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use klaxon::api::{Incident, incident::DeliveryState};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::support::{
    self, Cluster,
    fixtures::{apply, secret},
    operator::{self, Operator},
    proxy::{self, Proxy},
    receiver::Receiver,
};

/// Patience for anything that is not the point of the test.
const WAIT: Duration = Duration::from_secs(60);
/// How soon after the apiserver is back an incident declared during the
/// cut must be reconciled and its page delivered.
const CATCH_UP: Duration = Duration::from_secs(10);
/// The operator's `--watch-failure-grace` in this test.
const GRACE: Duration = Duration::from_secs(3);
const CUTS: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(90),
];

fn team_policy(ns: &str) -> String {
    format!(
        r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  team: {{name: payments}}
  receivers:
    - {{name: hook, webhook: {{urlSecretRef: {{name: hooks, key: hook}}}}}}
  routes:
    - {{receivers: [hook], triggers: [Declared]}}
"#
    )
}

/// Declares an incident straight at the apiserver (never through the
/// proxy).
async fn declare(incidents: &Api<Incident>, name: &str) {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "klaxon.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": format!("{name}: checkout returns 5xx"), "severity": "SEV2"}
    }))
    .expect("valid incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("declare incident");
}

/// Reconciled: declared, and its one Declared page delivered.
fn caught_up(incident: &Incident) -> bool {
    incident.status.as_ref().is_some_and(|s| {
        s.declared_at.is_some()
            && s.notifications.len() == 1
            && s.notifications[0].trigger == "Declared"
            && s.notifications[0].state == DeliveryState::Delivered
    })
}

/// Waits until `name` is caught up; how long that took. Fails at once
/// when the operator gave up on the page.
async fn wait_caught_up(incidents: &Api<Incident>, name: &str, since: Instant) -> Duration {
    let done = support::eventually(WAIT, || async {
        let incident = incidents.get(name).await.ok()?;
        let gave_up = incident.status.as_ref().is_some_and(|s| {
            s.notifications
                .iter()
                .any(|n| n.state == DeliveryState::Failed)
        });
        if gave_up {
            return Some(Err(Box::new(incident)));
        }
        caught_up(&incident).then(|| Ok(since.elapsed()))
    })
    .await;
    match done {
        Some(Ok(took)) => took,
        Some(Err(incident)) => panic!(
            "{name}: the operator gave up on its page {:?} after the apiserver came back, though the receiver was up throughout; notifications: {:#?}",
            since.elapsed(),
            incident.status.map(|s| s.notifications)
        ),
        None => panic!(
            "{name} not reconciled within {WAIT:?}; last status: {:#?}",
            incidents.get(name).await.ok().and_then(|i| i.status)
        ),
    }
}

fn readyz(operator: &Operator) -> Option<u16> {
    operator.get("/readyz").map(|r| r.status)
}

/// Waits until `/readyz` answers `ready` (200) or not; when it did.
async fn wait_readyz(operator: &Operator, ready: bool, timeout: Duration) -> Option<Instant> {
    support::eventually(timeout, || async {
        readyz(operator)
            .filter(|status| (*status == 200) == ready)
            .map(|_| Instant::now())
    })
    .await
}

fn metrics(operator: &Operator) -> String {
    operator
        .get("/metrics")
        .filter(|r| r.status == 200)
        .map(|r| r.body)
        .unwrap_or_default()
}

/// The values of the series whose line starts with `prefix`.
fn series(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn incident_reconciliations(operator: &Operator) -> f64 {
    series(
        &metrics(operator),
        r#"klaxon_reconciliations_total{controller="incident"}"#,
    )
    .first()
    .map_or(0.0, |(_, value)| *value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_catches_up_within_seconds_after_the_apiserver_is_cut() {
    // Its own control plane and operator: the cuts must not reach others.
    let cluster = Cluster::start_bare("faults");
    cluster.install_crds();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "faults").await;
    let receiver = Receiver::start().await;
    let token = format!("hook-{ns}");
    secret(&client, &ns, "hooks", &[("hook", &receiver.url(&token))]).await;
    apply(&cluster, &team_policy(&ns));
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);

    let proxy = Proxy::start(&cluster);
    let grace = format!("{}s", GRACE.as_secs());
    let env: Vec<(&str, &str)> = operator::SHARED_ENV
        .iter()
        .copied()
        .chain([("KLAXON_WATCH_FAILURE_GRACE", grace.as_str())])
        .collect();
    let mut operator = Operator::start(&proxy.kubeconfig, "faults", &env);
    operator.wait_ready(WAIT);
    assert!(proxy.accepted() > 0, "the operator goes through the proxy");

    // The path works before any fault.
    declare(&incidents, "before").await;
    wait_caught_up(&incidents, "before", Instant::now()).await;
    let mut names = vec!["before".to_string()];

    for cut in CUTS {
        let n = cut.as_secs();
        let name = format!("during-{n}");
        let cut_at = Instant::now();
        let cut_ends = cut_at + cut;
        proxy.cut();
        declare(&incidents, &name).await;
        names.push(name.clone());

        let blind = if cut > GRACE {
            let left = cut_ends.saturating_duration_since(Instant::now());
            let unready = wait_readyz(&operator, false, left).await;
            let unready = unready.unwrap_or_else(|| {
                panic!(
                    "/readyz still answered {:?} {:?} into a {n}s cut (grace {GRACE:?}):\n{}",
                    readyz(&operator),
                    cut_at.elapsed(),
                    operator.log_text()
                )
            });
            Some(unready.duration_since(cut_at))
        } else {
            None
        };
        // The fault lasts its length, whatever the operator does.
        tokio::time::sleep_until(cut_ends.into()).await;

        proxy.restore();
        let restored = Instant::now();
        let took = wait_caught_up(&incidents, &name, restored).await;
        let ready = wait_readyz(&operator, true, WAIT)
            .await
            .map(|at| at.duration_since(restored));
        eprintln!(
            "faults: {n}s cut: /readyz false {blind:?} after the cut; {name} reconciled {took:?} and /readyz 200 {ready:?} after the restore"
        );
        assert!(
            took <= CATCH_UP,
            "{name} was reconciled {took:?} after a {n}s cut ended (want <= {CATCH_UP:?}); see {}",
            operator.log.display()
        );
        assert!(
            ready.is_some(),
            "/readyz not 200 within {WAIT:?} after a {n}s cut ended:\n{}",
            operator.log_text()
        );
        // The receiver was up throughout: the cut must not cost the page
        // an attempt (nor, with few attempts left, the page itself).
        let delivered = incidents.get(&name).await.expect("incident");
        let attempts = delivered
            .status
            .as_ref()
            .map(|s| s.notifications[0].attempts);
        assert_eq!(
            attempts,
            Some(1),
            "{name}: the Declared page took more than one attempt after a {n}s cut (see {}): {:#?}",
            operator.log.display(),
            delivered.status.map(|s| (s.notifications, s.timeline))
        );
    }

    // Pages once: many more passes over every incident send nothing again.
    let baseline = incident_reconciliations(&operator);
    let deadline = Instant::now() + WAIT;
    let mut round = 0;
    while incident_reconciliations(&operator) < baseline + 5.0 {
        assert!(
            Instant::now() < deadline,
            "the incident controller did not reconcile 5 more times within {WAIT:?} (from {baseline})"
        );
        round += 1;
        for name in &names {
            incidents
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"metadata": {"labels": {"klaxon.dev/touched": round.to_string()}}}),
                    ),
                )
                .await
                .expect("touch incident");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let requests = receiver.requests_to(&token);
    let paged: Vec<String> = requests
        .iter()
        .map(|r| {
            r.body["incident"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut expected = names.clone();
    expected.sort();
    let mut sorted = paged.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "exactly one page per incident; pages in order: {paged:?}"
    );
    let keys: HashSet<&str> = requests.iter().filter_map(|r| r.key.as_deref()).collect();
    assert_eq!(
        keys.len(),
        names.len(),
        "a distinct Idempotency-Key per page: {requests:#?}"
    );
    for name in &names {
        let incident = incidents.get(name).await.expect("incident");
        assert!(caught_up(&incident), "{name}: {:#?}", incident.status);
    }

    let text = metrics(&operator);
    let errors = series(&text, "klaxon_watch_errors_total{");
    assert!(
        errors.iter().any(|(_, value)| *value > 0.0),
        "no watch errors counted:\n{text}"
    );
    assert!(proxy.reset() > 0, "the cuts reset open connections");
    eprintln!(
        "faults: {} connections through the proxy, {} reset; {}",
        proxy.accepted(),
        proxy.reset(),
        errors
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn the_proxy_kubeconfig_changes_the_server_port_and_nothing_else() {
    let text = "clusters:\n  - cluster:\n      server: https://127.0.0.1:26149\n      certificate-authority: /x/ca.crt\n";
    assert_eq!(
        proxy::server_address(text),
        "127.0.0.1:26149".parse().expect("address")
    );
    assert_eq!(
        proxy::with_server_port(text, 12345),
        "clusters:\n  - cluster:\n      server: https://127.0.0.1:12345\n      certificate-authority: /x/ca.crt\n"
    );
}
