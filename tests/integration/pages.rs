//! Pages out: PagerDuty's Events API v2, played by a local server that
//! checks each event as PagerDuty does (and rate-limits the first), and
//! Slack's Block Kit.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use klaxon::api::Incident;
use kube::Api;
use serde_json::{Value, json};

use crate::support::{
    self,
    fixtures::{self, apply, secret, wait_for},
    operator,
    receiver::Receiver,
};

const WAIT: Duration = Duration::from_secs(60);
const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

#[derive(Default)]
struct PagerDuty {
    /// Accepted events.
    events: Mutex<Vec<Value>>,
    /// Refused events, with why.
    refused: Mutex<Vec<String>>,
    /// Requests answered 429 so far.
    limited: Mutex<u32>,
}

/// What PagerDuty's Events API v2 requires of an event.
fn check(event: &Value) -> Result<(), String> {
    let text = |key: &str| event[key].as_str().unwrap_or_default();
    if text("routing_key") != ROUTING_KEY {
        return Err("routing_key: not the integration's key".into());
    }
    let action = text("event_action");
    let dedup = text("dedup_key");
    if dedup.is_empty() || dedup.len() > 255 {
        return Err("dedup_key: required, at most 255 characters".into());
    }
    match action {
        "trigger" => {
            let payload = &event["payload"];
            let summary = payload["summary"].as_str().unwrap_or_default();
            if summary.is_empty() || summary.len() > 1024 {
                return Err("payload.summary: required, at most 1024 characters".into());
            }
            if payload["source"].as_str().unwrap_or_default().is_empty() {
                return Err("payload.source: required".into());
            }
            let severity = payload["severity"].as_str().unwrap_or_default();
            if !["critical", "error", "warning", "info"].contains(&severity) {
                return Err(format!(
                    "payload.severity: {severity:?} is not one of critical, error, warning, info"
                ));
            }
            if !payload["custom_details"].is_object() {
                return Err("payload.custom_details: expected an object".into());
            }
            for link in event["links"].as_array().into_iter().flatten() {
                if link["href"].as_str().is_none() {
                    return Err("links[].href: required".into());
                }
            }
            Ok(())
        }
        "acknowledge" | "resolve" => Ok(()),
        other => Err(format!(
            "event_action: {other:?} is not trigger, acknowledge or resolve"
        )),
    }
}

async fn enqueue(State(pd): State<Arc<PagerDuty>>, body: Bytes) -> (StatusCode, String) {
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"status": "invalid event"}).to_string(),
        );
    };
    {
        let mut limited = pd.limited.lock().expect("lock");
        if *limited == 0 {
            *limited += 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly."}).to_string(),
            );
        }
    }
    match check(&event) {
        Ok(()) => {
            let dedup = event["dedup_key"].clone();
            pd.events.lock().expect("lock").push(event);
            (
                StatusCode::ACCEPTED,
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup})
                    .to_string(),
            )
        }
        Err(why) => {
            pd.refused.lock().expect("lock").push(why.clone());
            (
                StatusCode::BAD_REQUEST,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": [why]}).to_string(),
            )
        }
    }
}

#[tokio::test]
async fn pagerduty_is_triggered_acknowledged_and_resolved_under_one_dedup_key() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "pages").await;

    let pd = Arc::new(PagerDuty::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = Router::new()
        .route("/v2/enqueue", post(enqueue))
        .with_state(pd.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let slack = Receiver::start().await;
    let slack_token = format!("slack-{ns}");
    secret(
        &client,
        &ns,
        "paging",
        &[
            ("routing-key", ROUTING_KEY),
            ("slack", &slack.url(&slack_token)),
        ],
    )
    .await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  team: {{name: payments}}
  severities:
    - {{name: SEV1, acknowledgeWithin: 10m}}
    - {{name: SEV2}}
  receivers:
    - name: pager
      pagerduty: {{routingKeySecretRef: {{name: paging, key: routing-key}}, url: "http://127.0.0.1:{port}/v2/enqueue"}}
    - {{name: chat, slack: {{urlSecretRef: {{name: paging, key: slack}}}}}}
  routes:
    - {{receivers: [pager, chat]}}
"#
        ),
    );
    fixtures::wait_policy_ready(&client, &ns, "team", WAIT).await;

    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: checkout-down, namespace: {ns}}}\nspec: {{title: Checkout is down, severity: SEV1, commander: alice, affected: {{deployments: [{{name: checkout}}]}}}}\n"
        ),
    );
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let events = |n: usize| {
        let pd = pd.clone();
        async move {
            support::eventually(WAIT, || async {
                let events = pd.events.lock().expect("lock").clone();
                (events.len() >= n).then_some(events)
            })
            .await
        }
    };
    let triggered = events(1)
        .await
        .expect("a trigger, after the 429 was retried");
    assert_eq!(
        *pd.limited.lock().expect("lock"),
        1,
        "the first answer was 429"
    );
    let incident = incidents.get("checkout-down").await.expect("incident");
    let uid = incident.metadata.uid.clone().expect("uid");
    let trigger = &triggered[0];
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], uid.as_str());
    assert_eq!(
        trigger["payload"]["severity"], "critical",
        "SEV1 tops the ladder"
    );
    assert_eq!(trigger["payload"]["source"], format!("{ns}/checkout-down"));
    assert_eq!(trigger["payload"]["custom_details"]["team"], "payments");
    assert_eq!(trigger["payload"]["custom_details"]["commander"], "alice");
    assert_eq!(trigger["payload"]["component"], "checkout");

    let patch = |phase: &str| {
        cluster.kubectl(&[
            "patch",
            "inc",
            "checkout-down",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"phase":"{phase}","postmortem":{{"url":"https://wiki.example/pm/1"}}}}}}"#),
        ])
    };
    support::assert_success(&patch("Acknowledged"), "acknowledge");
    let acked = events(2).await.expect("an acknowledge");
    assert_eq!(acked[1]["event_action"], "acknowledge");
    support::assert_success(&patch("Resolved"), "resolve");
    wait_for(&client, &ns, "checkout-down", WAIT, "the resolution", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let all = events(3).await.expect("a resolve");
    assert!(
        all.iter().skip(2).all(|e| e["event_action"] == "resolve"),
        "after the acknowledgement only resolves: {all:#?}"
    );
    assert!(
        all.iter().all(|e| e["dedup_key"] == uid.as_str()),
        "one dedup_key"
    );
    assert!(
        pd.refused.lock().expect("lock").is_empty(),
        "{:?}",
        pd.refused.lock()
    );

    // Slack got Block Kit with the plain-text fallback.
    let slack_requests = slack.requests_to(&slack_token);
    let declared = slack_requests
        .iter()
        .find(|r| {
            r.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("declared"))
        })
        .expect("a Slack message for the declaration");
    let blocks = declared.body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "[SEV1] Checkout is down");
    let fields = blocks[1]["fields"].to_string();
    for text in [
        "Severity",
        "Team",
        "payments",
        "Commander",
        "alice",
        "Acknowledge by",
    ] {
        assert!(fields.contains(text), "{text}: {fields}");
    }
    assert!(
        declared
            .body
            .to_string()
            .contains(&format!("kubectl incident ack checkout-down -n {ns}")),
        "{}",
        declared.body
    );
    // No secret in the status.
    let status = serde_json::to_string(
        &incidents
            .get("checkout-down")
            .await
            .expect("incident")
            .status,
    )
    .expect("json");
    assert!(!status.contains(ROUTING_KEY));
}
