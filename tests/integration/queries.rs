//! Policy-defined Prometheus queries against a real Prometheus server that
//! scrapes a target this test serves.

use std::time::Duration;

use axum::{Router, routing::get};

use crate::support::{
    self,
    fixtures::{apply, wait_for},
    operator,
    prometheus::Prometheus,
};

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn policy_queries_land_in_the_status_and_a_broken_one_is_a_condition() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "queries").await;

    // The service's own metrics, as Prometheus would scrape them from it.
    let exposition = format!(
        "# TYPE http_requests_total counter\n\
         http_requests_total{{namespace=\"{ns}\",code=\"500\"}} 42\n\
         http_requests_total{{namespace=\"{ns}\",code=\"200\"}} 958\n\
         http_requests_total{{namespace=\"elsewhere\",code=\"500\"}} 7\n"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("address").to_string();
    let app = Router::new().route("/metrics", get(move || async move { exposition.clone() }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let prometheus = Prometheus::start(&ns, &target);

    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  enrichment:
    prometheus:
      url: {url}
      queries:
        - {{name: errors, query: 'sum(http_requests_total{{namespace="$namespace",code=~"5.."}})'}}
        - {{name: broken, query: 'sum(http_requests_total{{namespace="$namespace"}}'}}
        - {{name: elsewhere, query: 'sum(http_requests_total{{namespace="elsewhere",code=~"5.."}})'}}
---
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: checkout-5xx, namespace: {ns}}}
spec: {{title: Checkout returns 5xx, severity: SEV2}}
"#,
            url = prometheus.url
        ),
    );
    let incident = wait_for(&client, &ns, "checkout-5xx", WAIT, "the query value", |i| {
        i.status.as_ref().is_some_and(|s| {
            ["errors", "elsewhere"].iter().all(|name| {
                s.metrics
                    .iter()
                    .any(|m| m.name == *name && m.value.as_deref() == Some("42"))
            })
        })
    })
    .await;
    let status = incident.status.as_ref().expect("status");
    let errors = status
        .metrics
        .iter()
        .find(|m| m.name == "errors")
        .expect("errors");
    // The query as sent: substituted and confined, its matchers in
    // Prometheus's order.
    assert_eq!(
        errors.query,
        format!(r#"sum(http_requests_total{{code=~"5..",namespace="{ns}"}})"#),
        "$namespace substituted"
    );
    // A query naming another namespace reads this one's series.
    let elsewhere = status
        .metrics
        .iter()
        .find(|m| m.name == "elsewhere")
        .expect("elsewhere");
    assert_eq!(elsewhere.value.as_deref(), Some("42"), "{elsewhere:?}");
    assert!(!elsewhere.query.contains("elsewhere"), "{elsewhere:?}");
    let broken = status
        .metrics
        .iter()
        .find(|m| m.name == "broken")
        .expect("broken");
    assert_eq!(broken.value, None);
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("the query does not parse")),
        "{broken:?}"
    );
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "QueriesSucceeded")
        .expect("QueriesSucceeded");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "QueryFailed")
    );
    assert!(
        condition.message.starts_with("broken: "),
        "{}",
        condition.message
    );
    // A failing query is not a failing incident.
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
}
