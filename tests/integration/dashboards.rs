//! The chart's Grafana dashboard and PrometheusRule against the real
//! Prometheus scraping the operator's real `/metrics`: every panel's
//! expression and every rule evaluates without error and returns a series.

use std::time::Duration;

use klaxon::api::Incident;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::support::{
    self,
    chart::{find, template},
    fixtures::{self, apply, wait_for},
    operator,
    prometheus::Prometheus,
};

const WAIT: Duration = Duration::from_secs(90);

/// Every PromQL expression of the dashboard's panels (rows included),
/// with the team variable set to all teams, as Grafana sends it.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or_default().to_string();
                out.push((title, expr.replace("$team", ".*")));
            }
        }
    }
    out
}

async fn query(prometheus: &str, expr: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .expect("query Prometheus")
        .json()
        .await
        .expect("Prometheus answers JSON")
}

/// Whether `expr` evaluates without error to at least one series.
async fn has_series(prometheus: &str, expr: &str) -> Result<(), String> {
    let answer = query(prometheus, expr).await;
    if answer["status"] != "success" {
        return Err(format!("error: {answer}"));
    }
    match answer["data"]["result"].as_array() {
        Some(result) if !result.is_empty() => Ok(()),
        _ => Err(format!("no series: {answer}")),
    }
}

#[tokio::test]
async fn every_panel_and_rule_evaluates_to_a_series_over_the_operators_metrics() {
    let cluster = support::cluster();
    cluster.require_nodes();
    let shared = operator::shared();
    let client = cluster.client().await;

    let objects = template(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
    ]);
    let dashboard: Value = serde_json::from_str(
        find(&objects, "ConfigMap", "klaxon-dashboard").expect("the dashboard")["data"]
            ["klaxon-incidents.json"]
            .as_str()
            .expect("the dashboard's JSON"),
    )
    .expect("JSON");
    let rule = find(&objects, "PrometheusRule", "klaxon").expect("the PrometheusRule");
    // A PrometheusRule's spec is a Prometheus rule file.
    let rules = serde_saphyr::to_string(&rule["spec"]).expect("rules as YAML");
    let prometheus =
        Prometheus::start_with_rules("dashboards", &format!("127.0.0.1:{}", shared.port), &rules);

    // A team's record with every series in it, made while Prometheus
    // watches: an incident after a rollout, acknowledged, mitigated and
    // resolved; its postmortem and a follow-up overdue; one still open.
    let ns = support::namespace(&client, "dashboards").await;
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: team, namespace: {ns}}}\nspec:\n  team: {{name: {ns}}}\n  severities:\n    - {{name: SEV1}}\n    - {{name: SEV2, requirePostmortem: true, postmortemWithin: 2s}}\n"
        ),
    );
    fixtures::wait_policy_ready(&client, &ns, "team", WAIT).await;
    fixtures::rollout(&client, &ns, "web", 1, "web:v1", &[("app", "web")], &[]).await;
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: web-5xx, namespace: {ns}}}\nspec:\n  title: Web returns 5xx\n  severity: SEV2\n  affected: {{deployments: [{{name: web}}]}}\n  followUps: [{{title: Canary for web, due: \"2026-01-31\"}}]\n---\napiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: still-open, namespace: {ns}}}\nspec: {{title: Search is slow, severity: SEV1}}\n"
        ),
    );
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    wait_for(&client, &ns, "web-5xx", WAIT, "the rollout recorded", |i| {
        i.status.as_ref().is_some_and(|s| !s.rollouts.is_empty())
    })
    .await;
    for phase in ["Acknowledged", "Mitigated", "Resolved"] {
        incidents
            .patch(
                "web-5xx",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"phase": phase}})),
            )
            .await
            .expect("change the phase");
        wait_for(&client, &ns, "web-5xx", WAIT, phase, |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.observed_phase.map(|p| p.as_str()) == Some(phase))
        })
        .await;
    }
    wait_for(
        &client,
        &ns,
        "web-5xx",
        WAIT,
        "the postmortem overdue",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.postmortem.as_ref())
                .is_some_and(|p| p.state == klaxon::api::incident::PostmortemState::Overdue)
        },
    )
    .await;
    let recovered = format!(r#"klaxon_deployment_recovery_seconds_count{{team="{ns}"}}"#);
    assert_eq!(shared.metric(&recovered), Some(1.0));

    // Prometheus has scraped the record, and evaluated the rules since.
    let scraped = format!(r#"klaxon_deployment_recovery_seconds_count{{team="{ns}"}}"#);
    let seen = support::eventually(WAIT, || async {
        has_series(&prometheus.url, &scraped).await.ok()
    })
    .await;
    assert!(seen.is_some(), "Prometheus never scraped the operator");

    let queries = panel_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    for (title, expr) in &queries {
        let result = support::eventually(WAIT, || async {
            has_series(&prometheus.url, expr).await.ok()
        })
        .await;
        if result.is_none() {
            panic!(
                "panel {title:?}: {expr}: {}",
                has_series(&prometheus.url, expr).await.unwrap_err()
            );
        }
    }
    // The team variable's values.
    let teams: Value = reqwest::get(format!("{}/api/v1/label/team/values", prometheus.url))
        .await
        .expect("label values")
        .json()
        .await
        .expect("JSON");
    assert!(
        teams["data"]
            .as_array()
            .is_some_and(|t| t.iter().any(|v| v == ns.as_str())),
        "{teams}"
    );

    // Every rule is healthy, and its expression returns a series.
    let listed = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .count();
    let healthy = support::eventually(WAIT, || async {
        let answer: Value = reqwest::get(format!("{}/api/v1/rules", prometheus.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let rules: Vec<Value> = answer["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == listed
            && rules.iter().all(|r| {
                r["health"] == "ok"
                    && r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"))
            }))
        .then_some(rules)
    })
    .await
    .expect("every rule evaluated, healthy");
    for rule in &healthy {
        let expr = rule["query"].as_str().expect("query");
        if let Err(why) = has_series(&prometheus.url, expr).await {
            panic!("rule {}: {expr}: {why}", rule["name"]);
        }
    }
    let alert = healthy
        .iter()
        .find(|r| r["name"] == "KlaxonPostmortemOverdue")
        .expect("the overdue postmortem alert");
    assert!(
        alert["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["labels"]["team"] == ns.as_str())),
        "{alert}"
    );
}
