//! Alerts in: a real Prometheus evaluates alerting rules over a target the
//! test controls and sends to a real Alertmanager, which delivers to
//! Klaxon's webhook with its bearer token. One incident per group, however
//! often Alertmanager repeats itself and however often the operator
//! restarts; a second alert of the group joins it; the alerts' resolution
//! resolves it. A namespace that did not opt in gets nothing, and a request
//! without the token or with a bad body changes nothing. The operator runs
//! as the chart installs it, under exactly its RBAC.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, routing::get};
use futures::StreamExt;
use klaxon::{
    api::{Incident, Phase, incident::AlertStatus},
    domain::alerts::GROUP_LABEL,
};
use kube::{Api, api::ListParams};

use crate::support::{
    self, Cluster,
    alertmanager::Alertmanager,
    chart,
    fixtures::{self, apply, secret},
    operator::{self, Operator},
    prometheus::Prometheus,
};

const WAIT: Duration = Duration::from_secs(90);
pub(crate) const TOKEN: &str = "s3cret-alertmanager-token";

/// What the target serves: `app_errors` per (namespace, pod), and
/// `watchdog_alive` while the Watchdog should fire.
#[derive(Default)]
struct Metrics {
    errors: BTreeMap<(String, String), u32>,
    watchdog: bool,
}

type Errors = Arc<Mutex<Metrics>>;

/// Serves the target on a thread of its own, so that Prometheus can scrape
/// it while the test blocks (restarting the operator, polling metrics).
fn serve_target(errors: Errors) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let target = listener.local_addr().expect("address").to_string();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let errors = errors.clone();
            async move {
                let metrics = errors.lock().expect("errors");
                let mut body = String::from("# TYPE app_errors gauge\n");
                for ((ns, pod), value) in &metrics.errors {
                    body.push_str(&format!(
                        "app_errors{{namespace=\"{ns}\",deployment=\"checkout\",pod=\"{pod}\"}} {value}\n"
                    ));
                }
                body.push_str(&format!("watchdog_alive {}\n", u8::from(metrics.watchdog)));
                body
            }
        }),
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    target
}

const RULES: &str = r#"
groups:
  - name: app
    interval: 1s
    rules:
      - alert: Watchdog
        expr: watchdog_alive == 1
      - alert: HighErrorRate
        expr: app_errors > 0
        labels: {severity: critical}
        annotations: {summary: "errors on {{ $labels.pod }}"}
"#;

/// Installs the chart with its Alertmanager receiver on `alerts_port`
/// (fast clocks through extraEnv), for [`start_operator`].
fn install(cluster: &Cluster, system: &str, alerts_port: u16) {
    install_with(cluster, system, alerts_port, &[]);
}

/// As [`install`], with more `--set` arguments.
fn install_with(cluster: &Cluster, system: &str, alerts_port: u16, more: &[&str]) {
    let extra_env = chart::fast_clocks();
    let port = format!("alerts.port={alerts_port}");
    let mut values = vec![
        "--set",
        "alerts.enabled=true",
        "--set",
        &port,
        "--set",
        "leaderElection.enabled=false",
        "--set-json",
        &extra_env,
    ];
    values.extend_from_slice(more);
    chart::install(cluster, "klaxon", system, &values);
}

/// The operator as the chart runs it: its args, env and RBAC.
async fn start_operator(
    cluster: &Cluster,
    client: &kube::Client,
    system: &str,
    name: &str,
) -> Operator {
    let mut operator = chart::start_operator(cluster, client, "klaxon", system, name).await;
    operator.wait_ready(WAIT);
    operator
}

/// A Watchdog alert firing while [`Watchdog::alive`] says so: a real
/// Prometheus evaluating it, a real Alertmanager sending it to the alerts
/// receiver on `port`.
pub(crate) struct Watchdog {
    metrics: Errors,
    _alertmanager: Alertmanager,
    _prometheus: Prometheus,
}

impl Watchdog {
    pub(crate) fn start(ns: &str, port: u16) -> Watchdog {
        let metrics: Errors = Arc::default();
        metrics.lock().expect("metrics").watchdog = true;
        let target = serve_target(metrics.clone());
        let alertmanager = Alertmanager::start(
            ns,
            &format!("http://127.0.0.1:{port}/alertmanager"),
            TOKEN,
            &["alertname"],
        );
        let prometheus = Prometheus::start_with(ns, &target, Some((RULES, &alertmanager.address)));
        Watchdog {
            metrics,
            _alertmanager: alertmanager,
            _prometheus: prometheus,
        }
    }

    pub(crate) fn alive(&self, alive: bool) {
        self.metrics.lock().expect("metrics").watchdog = alive;
    }
}

/// The heartbeats `operator` received.
pub(crate) fn heartbeats(operator: &Operator) -> f64 {
    operator
        .metric("klaxon_alerts_total{outcome=\"heartbeat\"}")
        .unwrap_or(0.0)
}

/// The incidents declared for the Watchdog's silence.
pub(crate) async fn silences(incidents: &Api<Incident>) -> Vec<Incident> {
    incidents
        .list(&ListParams::default().labels("klaxon.dev/heartbeat=Watchdog"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// How many of `all` are open.
pub(crate) fn open(all: &[Incident]) -> usize {
    all.iter()
        .filter(|i| i.spec.phase != Phase::Resolved)
        .count()
}

/// A bare cluster of its own with the CRDs, the release namespace holding
/// the alerts token Secret, and a team namespace (`prefix`).
async fn alerts_cluster(name: &str, prefix: &str) -> (Cluster, kube::Client, String, String) {
    let cluster = Cluster::start_bare(name);
    cluster.install_crds();
    let client = cluster.client().await;
    let system = support::namespace(&client, "klaxon-system").await;
    let ns = support::namespace(&client, prefix).await;
    secret(&client, &system, "klaxon-alerts", &[("token", TOKEN)]).await;
    (cluster, client, system, ns)
}

async fn grouped(api: &Api<Incident>) -> Vec<Incident> {
    api.list(&ListParams::default().labels(GROUP_LABEL))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn alertmanager_declares_one_incident_per_group_and_its_resolution_resolves_it() {
    let (cluster, client, system, ns) = alerts_cluster("alerts", "alerts").await;
    let decoy = support::namespace(&client, "decoy").await;
    let alerts_port = operator::free_port();
    let alertmanager = Alertmanager::start(
        &ns,
        &format!("http://127.0.0.1:{alerts_port}/alertmanager"),
        TOKEN,
        &["alertname", "namespace"],
    );
    // The team opts in, and pages back through Alertmanager (its routing
    // tree would page); the decoy namespace has no alerts policy.
    secret(
        &client,
        &ns,
        "paging",
        &[("alertmanager", &format!("http://{}/", alertmanager.address))],
    )
    .await;
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  alerts:
    - matchers: ['alertname=~"HighErrorRate|KubePod.*"']
      severityFrom: {{label: severity, map: {{critical: SEV2}}, default: SEV3}}
      resolveWithAlerts: {{healthyFor: 3s}}
  receivers:
    - {{name: am, alertmanager: {{urlSecretRef: {{name: paging, key: alertmanager}}}}}}
  routes:
    - {{receivers: [am]}}
"#
        ),
    );
    install(&cluster, &system, alerts_port);
    let mut klaxon = start_operator(&cluster, &client, &system, "alerts").await;
    let errors: Errors = Arc::default();
    let target = serve_target(errors.clone());
    let _prometheus = Prometheus::start_with(&ns, &target, Some((RULES, &alertmanager.address)));

    // One pod errs: one incident, for the group.
    errors
        .lock()
        .expect("errors")
        .errors
        .insert((ns.clone(), "a".into()), 1);
    errors
        .lock()
        .expect("errors")
        .errors
        .insert((decoy.clone(), "x".into()), 1);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let declared = support::eventually(WAIT, || async {
        grouped(&incidents).await.into_iter().next()
    })
    .await
    .expect("an incident declared from the alert");
    let name = declared.metadata.name.clone().expect("name");
    assert!(name.starts_with("higherrorrate-"), "{name}");
    assert_eq!(
        declared.spec.severity, "SEV2",
        "mapped from severity=critical"
    );
    assert_eq!(declared.spec.title, "HighErrorRate: errors on a");
    assert_eq!(
        declared
            .spec
            .affected
            .as_ref()
            .and_then(|a| a.deployments[0].name.as_deref()),
        Some("checkout")
    );

    // The alertmanager receiver posted the incident back as an alert.
    let am_alerts = || async {
        let url = format!(
            "http://{}/api/v2/alerts?filter=alertname%3D%22KlaxonIncident%22",
            alertmanager.address
        );
        let body: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        body.as_array().cloned()
    };
    let posted = support::eventually(WAIT, || async {
        am_alerts().await.filter(|a| !a.is_empty())
    })
    .await
    .expect("the incident as an alert in Alertmanager");
    assert_eq!(posted[0]["labels"]["incident"], name.as_str());
    assert_eq!(posted[0]["labels"]["namespace"], ns.as_str());
    assert_eq!(posted[0]["labels"]["severity"], "SEV2");

    // Another pod of the same group joins it.
    errors
        .lock()
        .expect("errors")
        .errors
        .insert((ns.clone(), "b".into()), 1);
    let joined = support::eventually(WAIT, || async {
        let incident = incidents.get(&name).await.ok()?;
        let alerts = incident.status.as_ref()?.alerts.clone();
        (alerts.len() == 2 && alerts.iter().all(|a| a.state == AlertStatus::Firing))
            .then_some(incident)
    })
    .await
    .expect("the second alert joined the incident");
    let status = joined.status.as_ref().expect("status");
    assert!(
        status.alerts.iter().all(|a| a
            .link
            .as_deref()
            .is_some_and(|l| l.starts_with("http://127.0.0.1:"))),
        "{:#?}",
        status.alerts
    );
    assert!(
        status
            .timeline
            .iter()
            .filter(|e| e.type_ == "AlertFiring")
            .count()
            == 2,
        "{:#?}",
        status.timeline
    );

    // Impact started when the first alert did, before the declaration.
    let first = status
        .alerts
        .iter()
        .map(|a| a.starts_at.0.as_second())
        .min()
        .expect("alerts");
    let started = status.started_at.as_ref().expect("startedAt").0.as_second();
    assert_eq!(started, first, "startedAt is the first alert's startsAt");
    let declared = status
        .declared_at
        .as_ref()
        .expect("declaredAt")
        .0
        .as_second();
    assert_eq!(
        status.durations.as_ref().and_then(|d| d.to_detect.clone()),
        Some(klaxon::domain::policy::humantime(
            std::time::Duration::from_secs(
                u64::try_from(declared - started).expect("started first")
            )
        ))
    );

    // Alertmanager repeats itself, and the operator restarts: still one.
    let accepted = |operator: &Operator| {
        operator
            .metric("klaxon_alerts_total{outcome=\"accepted\"}")
            .unwrap_or(0.0)
    };
    let before = accepted(&klaxon);
    assert!(
        support::poll_until(WAIT, || (accepted(&klaxon) >= before + 3.0).then_some(())).is_some(),
        "Alertmanager did not repeat the group"
    );
    klaxon.kill();
    let klaxon = start_operator(&cluster, &client, &system, "alerts-restarted").await;
    assert!(
        support::poll_until(WAIT, || (accepted(&klaxon) >= 3.0).then_some(())).is_some(),
        "no batches after the restart"
    );
    assert_eq!(grouped(&incidents).await.len(), 1, "declared twice");
    // The decoy namespace did not opt in: its alert is counted, not declared.
    let decoys: Api<Incident> = Api::namespaced(client.clone(), &decoy);
    assert!(
        decoys
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        klaxon
            .metric("klaxon_alerts_total{outcome=\"unmatched\"}")
            .unwrap_or(0.0)
            >= 1.0
    );

    // Bad requests get a 4xx and change nothing.
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{alerts_port}/alertmanager");
    let valid = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "x", "groupKey": "{}", "externalURL": "http://x",
        "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "namespace": ns, "deployment": "checkout", "pod": "forged"},
                    "annotations": {}, "startsAt": "2026-11-24T14:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://x", "fingerprint": "forged"}]
    });
    for (request, code) in [
        (http.post(&url).json(&valid), 401),
        (http.post(&url).bearer_auth("wrong").json(&valid), 401),
        (http.post(&url).bearer_auth(TOKEN).body("{not json"), 400),
        (
            http.post(&url)
                .bearer_auth(TOKEN)
                .body(r#"{"version":"3","alerts":[]}"#),
            400,
        ),
        (
            http.post(&url)
                .bearer_auth(TOKEN)
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
        ),
    ] {
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), code);
        assert!(
            !response.text().await.unwrap_or_default().is_empty(),
            "a 4xx says why"
        );
    }
    let after = incidents.get(&name).await.expect("incident");
    assert!(
        after
            .status
            .as_ref()
            .is_some_and(|s| s.alerts.iter().all(|a| a.fingerprint != "forged")),
        "a refused request changed the incident"
    );

    // Both recover: the alerts resolve, and after healthyFor the incident.
    errors.lock().expect("errors").errors.clear();
    let resolved = support::eventually(WAIT, || async {
        let incident = incidents.get(&name).await.ok()?;
        (incident.spec.phase == Phase::Resolved).then_some(incident)
    })
    .await
    .expect("resolved with its alerts");
    let status = resolved.status.as_ref().expect("status");
    assert!(
        status
            .alerts
            .iter()
            .all(|a| a.state == AlertStatus::Resolved)
    );
    for kind in ["AlertResolved", "AutoResolved"] {
        assert!(
            status.timeline.iter().any(|e| e.type_ == kind),
            "{kind}: {:#?}",
            status.timeline
        );
    }
    assert_eq!(grouped(&incidents).await.len(), 1);
    assert!(
        !klaxon.log_text().contains(TOKEN),
        "the token reached a log line"
    );
    assert!(
        !klaxon.log_text().contains("forbidden"),
        "the chart's RBAC refused something:\n{}",
        klaxon.log_text()
    );
    // And its alert in Alertmanager ended with it.
    support::eventually(WAIT, || async {
        am_alerts().await.filter(|a| a.is_empty())
    })
    .await
    .expect("the incident's alert resolved in Alertmanager");
}

/// A dead man's switch: while the Watchdog fires, nothing happens; when it
/// stops, Klaxon declares that monitoring is silent, within `missingFor`
/// and a check of the last heartbeat; when it is back, the incident
/// resolves.
#[tokio::test]
async fn a_silent_watchdog_is_an_incident_until_it_returns() {
    let (cluster, client, system, ns) = alerts_cluster("heartbeat", "monitoring").await;
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  heartbeat: {{alertname: Watchdog, missingFor: 6s, severity: SEV2}}
"#
        ),
    );
    let alerts_port = operator::free_port();
    install(&cluster, &system, alerts_port);
    let klaxon = start_operator(&cluster, &client, &system, "heartbeat").await;
    let watchdog = Watchdog::start(&ns, alerts_port);

    // Heartbeats arrive. (Prometheus and Alertmanager take longer than
    // missingFor to send the first: that silence since the operator's
    // start may be declared, and resolves with the first heartbeat.)

    assert!(
        support::poll_until(WAIT, || (heartbeats(&klaxon) >= 2.0).then_some(())).is_some(),
        "the Watchdog never arrived"
    );
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let silences = || silences(&incidents);
    let before = support::eventually(WAIT, || async {
        let all = silences().await;
        (open(&all) == 0).then_some(all.len())
    })
    .await
    .expect("no silence open while the heartbeat arrives");
    // Past missingFor more than once, heartbeats keep arriving: nothing new.
    let seen = heartbeats(&klaxon);
    assert!(
        support::poll_until(WAIT, || (heartbeats(&klaxon) >= seen + 5.0).then_some(())).is_some(),
        "the Watchdog stopped arriving"
    );
    let all = silences().await;
    assert_eq!(
        (all.len(), open(&all)),
        (before, 0),
        "declared while the heartbeat arrived"
    );

    // The Watchdog stops: the silence is an incident.
    watchdog.alive(false);
    let silence = support::eventually(WAIT, || async {
        silences()
            .await
            .into_iter()
            .find(|i| i.spec.phase != Phase::Resolved)
    })
    .await
    .expect("an incident for the silent heartbeat");
    assert_eq!(silence.spec.severity, "SEV2");
    assert!(
        silence.spec.title.contains("Watchdog"),
        "{}",
        silence.spec.title
    );
    // Declared within missingFor of the last heartbeat, plus a check.
    let name = silence.metadata.name.clone().expect("name");
    let since = name.rsplit("-missing-").next().expect("a time in the name");
    let since = jiff::civil::DateTime::strptime("%Y%m%d-%H%M%S", since)
        .expect("the name's time")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("UTC")
        .timestamp();
    let declared = silence
        .metadata
        .creation_timestamp
        .clone()
        .expect("created")
        .0;
    let waited = declared.duration_since(since).as_secs_f64();
    assert!(
        (6.0..=6.0 + 3.0).contains(&waited),
        "declared {waited}s after the last heartbeat; missingFor is 6s"
    );

    // It comes back: resolved.
    watchdog.alive(true);
    support::eventually(WAIT, || async {
        let incident = incidents.get(&name).await.ok()?;
        (incident.spec.phase == Phase::Resolved).then_some(())
    })
    .await
    .expect("resolved once the heartbeat returned");

    // A severity the ladder lacks would be refused at every declaration:
    // the policy says so instead.
    let out = cluster.kubectl(&[
        "patch",
        "rp",
        "team",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"heartbeat":{"severity":"P9"}}}"#,
    ]);
    support::assert_success(&out, "patch the heartbeat's severity");
    let message = support::eventually(WAIT, || async {
        fixtures::policy_ready(&client, &ns, "team")
            .await
            .filter(|c| c.reason == "InvalidAlertRule")
            .map(|c| c.message)
    })
    .await
    .expect("the policy names the severity off the ladder");
    assert!(
        message.starts_with(
            "spec.heartbeat.severity: P9 is not on the ladder (SEV1, SEV2, SEV3, SEV4)"
        ),
        "{message}"
    );
    assert!(
        !klaxon.log_text().contains("forbidden"),
        "the chart's RBAC refused something:\n{}",
        klaxon.log_text()
    );
}

/// One Alertmanager webhook batch (version 4, as Alertmanager documents
/// it): one alert per `pod`, each its own group under `groupBy: [pod]`.
fn batch(ns: &str, pods: impl Iterator<Item = String>, firing: bool) -> serde_json::Value {
    let status = if firing { "firing" } else { "resolved" };
    let ends = if firing {
        "0001-01-01T00:00:00Z"
    } else {
        "2026-12-04T10:05:00Z"
    };
    let alerts: Vec<serde_json::Value> = pods
        .map(|pod| {
            serde_json::json!({"status": status,
                "labels": {"alertname": "PodErrors", "namespace": ns, "pod": pod, "severity": "warning"},
                "annotations": {}, "startsAt": "2026-12-04T10:00:00Z", "endsAt": ends,
                "generatorURL": "http://prometheus.example/graph", "fingerprint": format!("fp-{pod}")})
        })
        .collect();
    serde_json::json!({"version": "4", "status": status, "receiver": "klaxon", "groupKey": "{}:{}",
        "externalURL": "http://alertmanager.example", "alerts": alerts})
}

/// Posts `body` as Alertmanager would: within its 10 s timeout, and again
/// after `Retry-After` when told 429. Returns the 429s it was told.
async fn post_as_alertmanager(url: &str, body: &serde_json::Value) -> usize {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut throttled = 0;
    let mut failures = 0;
    loop {
        let response = http
            .post(url)
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("answered within Alertmanager's 10 s");
        match response.status().as_u16() {
            200 => return throttled,
            429 => {
                throttled += 1;
                let retry_after: u64 = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("a 429 says when to retry");
                assert!(retry_after >= 1, "Retry-After {retry_after}");
                tokio::time::sleep(Duration::from_secs(retry_after)).await;
            }
            // Alertmanager retries a server error too; a few are a race
            // that the retry settles, more are a bug.
            500 | 503 if failures < 5 => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            code => panic!("HTTP {code}: {}", response.text().await.unwrap_or_default()),
        }
    }
}

/// An alert storm: 200 groups at once make 20 incidents and one flood
/// incident that records the other 180; the receiver throttles with 429
/// and Retry-After past `--alerts-rate`; the groups' resolution resolves
/// them all; a batch of 1,000 alerts is answered within Alertmanager's
/// timeout; and random bad input is a 4xx that declares nothing.
#[tokio::test]
async fn an_alert_storm_floods_one_incident_and_the_receiver_throttles() {
    let (cluster, client, system, ns) = alerts_cluster("alert-flood", "storm").await;
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  alerts:
    - matchers: ['alertname="PodErrors"']
      severity: SEV3
      groupBy: [alertname, pod]
      resolveWithAlerts: {{healthyFor: 2s}}
"#
        ),
    );
    let alerts_port = operator::free_port();
    install_with(&cluster, &system, alerts_port, &["--set", "alerts.rate=20"]);
    let klaxon = start_operator(&cluster, &client, &system, "alert-flood").await;
    let url = format!("http://127.0.0.1:{alerts_port}/alertmanager");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);

    // 200 groups, one notification each, as fast as they can be sent.
    let posts = (0..200).map(|i| {
        let body = batch(&ns, std::iter::once(format!("pod-{i:03}")), true);
        let url = url.clone();
        async move { post_as_alertmanager(&url, &body).await }
    });
    let throttled: usize = futures::stream::iter(posts)
        .buffer_unordered(16)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum();
    assert!(
        throttled > 0,
        "200 requests at once were never throttled at 20/s"
    );
    let all = grouped(&incidents).await;
    let (flood, own): (Vec<&Incident>, Vec<&Incident>) = all.iter().partition(|i| {
        i.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("klaxon.dev/alert-flood"))
    });
    assert_eq!(own.len(), 20, "incidents of their own: {}", own.len());
    assert_eq!(flood.len(), 1, "one flood incident");
    let recorded = flood[0]
        .status
        .as_ref()
        .and_then(|s| s.flood.clone())
        .expect("status.flood");
    assert_eq!(recorded.groups, 180);
    assert_eq!(recorded.items.len(), 180);
    assert!(
        recorded
            .items
            .iter()
            .all(|g| g.firing == 1 && g.alertname == "PodErrors")
    );
    assert!(
        flood[0].spec.title.contains("Alert flood"),
        "{}",
        flood[0].spec.title
    );
    assert_eq!(
        klaxon.metric("klaxon_alerts_total{outcome=\"flooded\"}"),
        Some(180.0)
    );
    assert!(
        klaxon
            .metric("klaxon_alerts_total{outcome=\"throttled\"}")
            .unwrap_or(0.0)
            >= 1.0
    );

    // The groups resolve: every incident resolves with its alerts, the
    // flood incident too.
    for chunk in (0..200).collect::<Vec<_>>().chunks(50) {
        for i in chunk {
            let body = batch(&ns, std::iter::once(format!("pod-{i:03}")), false);
            post_as_alertmanager(&url, &body).await;
        }
    }
    let resolved = support::eventually(WAIT, || async {
        let all = grouped(&incidents).await;
        all.iter()
            .all(|i| i.spec.phase == Phase::Resolved)
            .then_some(all)
    })
    .await
    .expect("every incident resolved with its alerts");
    assert_eq!(resolved.len(), 21);

    // One batch of 1,000 alerts, answered within Alertmanager's 10 s:
    // 20 incidents again, and 980 groups in a new flood incident.
    let big = batch(&ns, (0..1000).map(|i| format!("big-{i:04}")), true);
    post_as_alertmanager(&url, &big).await;
    let open: Vec<Incident> = grouped(&incidents)
        .await
        .into_iter()
        .filter(|i| i.spec.phase != Phase::Resolved)
        .collect();
    assert_eq!(open.len(), 21);
    let flood = open
        .iter()
        .find_map(|i| i.status.as_ref()?.flood.clone())
        .expect("a new flood incident");
    assert_eq!(flood.groups, 980);
    assert_eq!(flood.items.len(), 200, "listed up to the bound");

    // Random bad input: a 4xx each time, nothing declared.
    let before = grouped(&incidents).await.len();
    let http = reqwest::Client::new();
    for (i, (body, content_type)) in fuzz::bodies(&ns).into_iter().enumerate() {
        let response = loop {
            let mut request = http.post(&url).bearer_auth(TOKEN).body(body.clone());
            if let Some(kind) = content_type {
                request = request.header("content-type", kind);
            }
            let response = request.send().await.expect("answered");
            if response.status().as_u16() != 429 {
                break response;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let code = response.status().as_u16();
        assert!((400..500).contains(&code), "bad input {i} got HTTP {code}");
    }
    assert_eq!(
        grouped(&incidents).await.len(),
        before,
        "bad input declared something"
    );
    assert!(klaxon.log_text().contains("alert flood"));
    assert!(
        !klaxon.log_text().contains("panicked"),
        "the operator panicked:\n{}",
        klaxon.log_text()
    );
}

/// Bad request bodies for the alert receiver, from a property test's
/// strategies with a fixed seed: random JSON, huge label sets, deep
/// nesting, invalid UTF-8 and wrong content types.
mod fuzz {
    use proptest::{
        prelude::*,
        strategy::ValueTree,
        test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
    };

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{1,8}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    pub fn bodies(ns: &str) -> Vec<(Vec<u8>, Option<&'static str>)> {
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let mut sample = |strategy: BoxedStrategy<Vec<u8>>| {
            strategy.new_tree(&mut runner).expect("a value").current()
        };
        let mut bodies = Vec::new();
        for _ in 0..20 {
            // Random JSON: never a version-4 batch.
            let body = sample(json().prop_map(|v| v.to_string().into_bytes()).boxed());
            bodies.push((body, Some("application/json")));
            // Random bytes, invalid UTF-8 among them.
            let body = sample(prop::collection::vec(any::<u8>(), 0..512).boxed());
            bodies.push((body, None));
        }
        // A label set far beyond any alert's.
        let labels: serde_json::Map<String, serde_json::Value> = (0..5000)
            .map(|i| (format!("l{i}"), serde_json::Value::from("v")))
            .chain([("namespace".to_string(), serde_json::Value::from(ns))])
            .collect();
        let huge = serde_json::json!({"version": "4", "alerts": [{"status": "firing", "labels": labels,
            "startsAt": "2026-12-04T10:00:00Z"}]});
        bodies.push((huge.to_string().into_bytes(), Some("application/json")));
        // Nesting deeper than any parser should follow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        bodies.push((deep.into_bytes(), Some("application/json")));
        // A valid batch, sent as something else.
        let valid = super::batch(ns, std::iter::once("sneaky".to_string()), true).to_string();
        for kind in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            bodies.push((valid.clone().into_bytes(), Some(kind)));
        }
        // Invalid UTF-8 inside an otherwise valid batch.
        let mut broken = valid.into_bytes();
        if let Some(at) = broken.windows(6).position(|w| w == b"sneaky") {
            broken[at] = 0xff;
        }
        bodies.push((broken, Some("application/json")));
        bodies
    }
}
