//! Notification delivery: the payloads receivers get, and one HTTP attempt.
//!
//! Receiver URLs live in Secrets, read through [`Secrets`] (a short-lived
//! cache); they never reach a status, an Event or a log line (errors are
//! stripped of them). At most [`MAX_CONCURRENT_DELIVERIES`] requests are
//! in flight at once, each bounded by a timeout, never redirected.
//!
//! ## Webhook payload (`Content-Type: application/json`)
//!
//! ```json
//! {
//!   "version": "klaxon.dev/v1alpha1",
//!   "idempotencyKey": "<incident uid>.<transition number>.<trigger>.<receiver>",
//!   "trigger": "SeverityChanged",
//!   "transition": "SEV2 → SEV1",
//!   "incident": {
//!     "namespace": "shop", "name": "checkout-5xx", "uid": "…",
//!     "title": "Checkout returns 5xx", "severity": "SEV2",
//!     "phase": "Triggered", "summary": "checkout 1/3 ready; …",
//!     "team": "payments", "commander": "alice",
//!     "declaredAt": "…", "acknowledgeBy": "…"
//!   },
//!   "text": "[SEV1] shop/checkout-5xx severity SEV2 → SEV1: Checkout returns 5xx. …"
//! }
//! ```
//!
//! Every request carries `Idempotency-Key` (the same value as the field)
//! and `User-Agent: klaxon/<version>`. A delivery counts as confirmed on
//! any 2xx answer. A Slack receiver gets `{"text": …}`, the incoming-webhook
//! format.

use std::{sync::Arc, time::Duration};

use kube::ResourceExt;
use serde::Serialize;

use super::secrets::{SecretError, Secrets};
use crate::{
    api::{Incident, incident::WorkloadKind, policy::Trigger},
    domain::{incident::Delivery, policy::EffectiveReceiver},
};

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("receiver {receiver} is not defined in the effective policy")]
    UnknownReceiver { receiver: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the URL in Secret {namespace}/{name} (key {key}) is not an http(s) URL")]
    InvalidUrl {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
    /// Refused before any connection: the namespace's egress does not
    /// allow where the URL leads.
    #[error("egress denied: {0}")]
    EgressDenied(crate::integrations::egress::Denied),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IncidentPayload<'a> {
    namespace: String,
    name: String,
    uid: String,
    title: &'a str,
    severity: &'a str,
    phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commander: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    declared_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledge_by: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookPayload<'a> {
    version: &'static str,
    idempotency_key: &'a str,
    trigger: Trigger,
    #[serde(skip_serializing_if = "Option::is_none")]
    transition: Option<&'a str>,
    incident: IncidentPayload<'a>,
    text: String,
}

/// One line for humans: what happened, how bad, what is known.
pub fn text(incident: &Incident, delivery: &Delivery) -> String {
    let status = incident.status.as_ref();
    let what = what(incident, delivery);
    let mut line = format!(
        "[{}] {}/{} {what}: {}.",
        incident.spec.severity,
        incident.namespace().unwrap_or_default(),
        incident.name_any(),
        incident.spec.title
    );
    if let Some(team) = status.and_then(|s| s.team.as_deref()) {
        line.push_str(&format!(" Team: {team}."));
    }
    if let Some(commander) = incident.spec.commander.as_deref() {
        line.push_str(&format!(" Commander: {commander}."));
    }
    if let Some(summary) = status.and_then(|s| s.summary.as_deref()) {
        line.push_str(&format!(" {summary}"));
    }
    line
}

fn webhook_body(incident: &Incident, delivery: &Delivery) -> serde_json::Value {
    let status = incident.status.as_ref();
    let payload = WebhookPayload {
        version: crate::api::API_VERSION,
        idempotency_key: &delivery.key,
        trigger: delivery.trigger,
        transition: delivery.transition.as_deref(),
        incident: IncidentPayload {
            namespace: incident.namespace().unwrap_or_default(),
            name: incident.name_any(),
            uid: incident.metadata.uid.clone().unwrap_or_default(),
            title: &incident.spec.title,
            severity: &incident.spec.severity,
            phase: incident.spec.phase.to_string(),
            summary: status.and_then(|s| s.summary.as_deref()),
            team: status.and_then(|s| s.team.as_deref()),
            commander: incident.spec.commander.as_deref(),
            declared_at: status
                .and_then(|s| s.declared_at.as_ref())
                .map(|t| t.0.to_string()),
            acknowledge_by: status
                .and_then(|s| s.acknowledge_by.as_ref())
                .map(|t| t.0.to_string()),
        },
        text: text(incident, delivery),
    };
    serde_json::to_value(payload).unwrap_or_default()
}

/// Slack's Block Kit: the severity and title as a header, who and what as
/// fields, the summary, and the command that acknowledges it; `text` stays
/// as the fallback notifications and old clients show.
fn slack_body(incident: &Incident, delivery: &Delivery) -> serde_json::Value {
    let status = incident.status.as_ref();
    let ns = incident.namespace().unwrap_or_default();
    let name = incident.name_any();
    let cut = |t: &str, n: usize| crate::domain::enrich::truncate(t, n);
    let header = cut(
        &format!("[{}] {}", incident.spec.severity, incident.spec.title),
        150,
    );
    let field = |label: &str, value: &str| serde_json::json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{value}"), 2000)});
    let mut fields = vec![
        field("Severity", &incident.spec.severity),
        field("Phase", &incident.spec.phase.to_string()),
        field(
            "Team",
            status.and_then(|s| s.team.as_deref()).unwrap_or("-"),
        ),
        field(
            "Commander",
            incident.spec.commander.as_deref().unwrap_or("none yet"),
        ),
    ];
    if let Some(by) = status.and_then(|s| s.acknowledge_by.as_ref())
        && status.and_then(|s| s.acknowledged_at.as_ref()).is_none()
    {
        fields.push(field("Acknowledge by", &by.0.to_string()));
    }
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": header}}),
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&format!("*{ns}/{name}* {}", what(incident, delivery)), 3000)}, "fields": fields}),
    ];
    if let Some(summary) = status.and_then(|s| s.summary.as_deref()) {
        blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(summary, 3000)}}));
    }
    if incident.spec.phase == crate::api::Phase::Triggered {
        blocks.push(serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&format!("Acknowledge: `kubectl incident ack {name} -n {ns}`"), 3000)}]}));
    }
    serde_json::json!({"text": text(incident, delivery), "blocks": blocks})
}

/// What happened, for people: `declared`, `severity SEV2 → SEV1`, ...
fn what(incident: &Incident, delivery: &Delivery) -> String {
    let transition = delivery.transition.as_deref();
    match (delivery.trigger, transition) {
        (Trigger::Declared, _) => "declared".to_string(),
        (Trigger::SeverityChanged, Some(t)) => format!("severity {t}"),
        (Trigger::SeverityChanged, None) => {
            format!("severity is now {}", incident.spec.severity)
        }
        (Trigger::PhaseChanged, Some(t)) => format!("phase {t}"),
        (Trigger::PhaseChanged, None) => format!("is now {}", incident.spec.phase),
        (Trigger::Escalated, _) => "was not acknowledged in time".to_string(),
        (Trigger::Resolved, _) => "resolved".to_string(),
        (Trigger::PostmortemOverdue, Some(t)) | (Trigger::FollowUpOverdue, Some(t)) => {
            t.to_string()
        }
        (Trigger::PostmortemOverdue, None) => "postmortem overdue".to_string(),
        (Trigger::FollowUpOverdue, None) => "a follow-up is overdue".to_string(),
    }
}

/// The phase a delivery's transition ends in (`Triggered → Acknowledged by
/// alice` ends in Acknowledged).
fn target_phase(delivery: &Delivery) -> Option<crate::api::Phase> {
    let to = delivery.transition.as_deref()?.split('→').nth(1)?;
    let word = to.split_whitespace().next()?;
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

/// PagerDuty's Events API v2 action for a delivery: a declaration (and
/// any other change) triggers or updates, an acknowledgement or mitigation
/// acknowledges, a resolution resolves.
///
/// A delivery retried after the incident resolved (a trigger that failed
/// first, say) resolves: it must never reopen what is over.
pub fn pagerduty_action(incident: &Incident, delivery: &Delivery) -> &'static str {
    use crate::api::Phase;
    if incident.spec.phase == Phase::Resolved {
        return "resolve";
    }
    match (delivery.trigger, target_phase(delivery)) {
        (Trigger::Resolved, _) | (Trigger::PhaseChanged, Some(Phase::Resolved)) => "resolve",
        (Trigger::PhaseChanged, Some(Phase::Acknowledged | Phase::Mitigated)) => "acknowledge",
        _ => "trigger",
    }
}

/// The ladder's place as PagerDuty's severity: the most severe level is
/// critical, the next error, then warning, the rest info.
pub fn pagerduty_severity(rank: Option<usize>) -> &'static str {
    match rank {
        Some(0) => "critical",
        Some(1) => "error",
        Some(2) => "warning",
        _ => "info",
    }
}

fn pagerduty_body(
    incident: &Incident,
    delivery: &Delivery,
    routing_key: &str,
    rank: Option<usize>,
) -> serde_json::Value {
    let status = incident.status.as_ref();
    let action = pagerduty_action(incident, delivery);
    let dedup_key = incident
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| incident.name_any());
    let mut body = serde_json::json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    });
    if action == "trigger" {
        let ns = incident.namespace().unwrap_or_default();
        let mut details = serde_json::json!({
            "namespace": ns,
            "incident": incident.name_any(),
            "severity": incident.spec.severity,
            "phase": incident.spec.phase.to_string(),
            "trigger": delivery.trigger.as_str(),
        });
        for (key, value) in [
            ("team", status.and_then(|s| s.team.clone())),
            ("commander", incident.spec.commander.clone()),
            ("summary", status.and_then(|s| s.summary.clone())),
            ("transition", delivery.transition.clone()),
            (
                "acknowledge_by",
                status
                    .and_then(|s| s.acknowledge_by.as_ref())
                    .map(|t| t.0.to_string()),
            ),
            (
                "acknowledge_with",
                Some(format!(
                    "kubectl incident ack {} -n {ns}",
                    incident.name_any()
                )),
            ),
        ] {
            if let Some(value) = value {
                details[key] = serde_json::Value::String(value);
            }
        }
        body["payload"] = serde_json::json!({
            "summary": crate::domain::enrich::truncate(&text(incident, delivery), 1024),
            "source": format!("{ns}/{}", incident.name_any()),
            "severity": pagerduty_severity(rank),
            "group": ns,
            "class": incident.spec.severity,
            "custom_details": details,
        });
        // Optional fields are left out rather than sent as null.
        if let Some(at) = status.and_then(|s| s.declared_at.as_ref()) {
            body["payload"]["timestamp"] = serde_json::Value::String(at.0.to_string());
        }
        if let Some(component) = incident.spec.affected.as_ref().and_then(|a| {
            WorkloadKind::ALL
                .into_iter()
                .find_map(|k| a.of(k).iter().find_map(|d| Some(k.key(d.name.as_deref()?))))
        }) {
            body["payload"]["component"] = serde_json::Value::String(component);
        }
        let mut links: Vec<serde_json::Value> = status
            .map(|s| {
                s.alerts
                    .iter()
                    .filter_map(|a| a.link.clone())
                    .take(5)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|href| serde_json::json!({"href": href, "text": "Alert source"}))
            .collect();
        if let Some(pm) = &incident.spec.postmortem {
            links.push(serde_json::json!({"href": pm.url, "text": "Postmortem"}));
        }
        if !links.is_empty() {
            body["links"] = serde_json::Value::Array(links);
        }
        body["client"] = serde_json::Value::String("Klaxon".into());
    }
    body
}

/// The alertname of the incidents an alertmanager receiver posts; alerts
/// of that name coming back to Klaxon are its own and ignored.
pub const OWN_ALERTNAME: &str = "KlaxonIncident";

/// The incident as one Alertmanager alert (`/api/v2/alerts`): firing until
/// it resolves, then ended; re-posted with every change, and its labels
/// name it so Alertmanager's routing tree can match them.
fn alertmanager_body(incident: &Incident, delivery: &Delivery) -> serde_json::Value {
    let status = incident.status.as_ref();
    let ns = incident.namespace().unwrap_or_default();
    let resolved = pagerduty_action(incident, delivery) == "resolve";
    let starts = status
        .and_then(|s| s.declared_at.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(jiff::Timestamp::now);
    let mut labels = serde_json::json!({
        "alertname": OWN_ALERTNAME,
        "namespace": ns,
        "incident": incident.name_any(),
        "severity": incident.spec.severity,
    });
    if let Some(team) = status.and_then(|s| s.team.as_deref()) {
        labels["team"] = serde_json::Value::String(team.to_string());
    }
    let mut alert = serde_json::json!({
        "labels": labels,
        "annotations": {
            "summary": crate::domain::enrich::truncate(&text(incident, delivery), 1024),
            "phase": incident.spec.phase.to_string(),
            "acknowledge": format!("kubectl incident ack {} -n {ns}", incident.name_any()),
        },
        "startsAt": starts.to_string(),
    });
    let now = jiff::Timestamp::now();
    // Firing until Klaxon says otherwise: without an end Alertmanager would
    // resolve it after its resolve_timeout (5m), and page "resolved" for
    // an incident still open. A day bounds what a Klaxon that vanished
    // leaves behind.
    let ends = if resolved {
        now
    } else {
        now.checked_add(jiff::SignedDuration::from_hours(24))
            .unwrap_or(now)
    };
    alert["endsAt"] = serde_json::Value::String(ends.to_string());
    let mut alerts = vec![alert.clone()];
    // The severity is part of the alert's identity: a change ends the
    // alert of the old one.
    if delivery.trigger == Trigger::SeverityChanged
        && let Some(old) = delivery
            .transition
            .as_deref()
            .and_then(|t| t.split('→').next())
            .map(str::trim)
            .filter(|old| !old.is_empty() && *old != incident.spec.severity)
    {
        let mut ended = alert;
        ended["labels"]["severity"] = serde_json::Value::String(old.to_string());
        ended["endsAt"] = serde_json::Value::String(now.to_string());
        alerts.push(ended);
    }
    serde_json::Value::Array(alerts)
}

/// Requests to receivers in flight at once, across every incident.
pub const MAX_CONCURRENT_DELIVERIES: usize = 32;

/// Sends notifications; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    http: Arc<crate::integrations::egress::Clients>,
    secrets: Secrets,
    limit: Arc<tokio::sync::Semaphore>,
}

impl Notifier {
    pub fn new(secrets: Secrets) -> Self {
        // A receiver URL must not bounce a payload elsewhere (no
        // redirects), nor lead where the namespace's egress forbids.
        let http = Arc::new(crate::integrations::egress::Clients::new(|builder| {
            builder
                .timeout(ATTEMPT_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(crate::USER_AGENT)
        }));
        Self {
            http,
            secrets,
            limit: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELIVERIES)),
        }
    }

    /// The receiver's kind, for metrics.
    pub fn kind(receiver: &EffectiveReceiver) -> &'static str {
        receiver.receiver.kind()
    }

    /// One attempt to deliver `delivery` about `incident` to `receiver`.
    /// `rank`: the severity's place on the ladder (0 the most severe).
    pub async fn send(
        &self,
        receiver: &EffectiveReceiver,
        incident: &Incident,
        delivery: &Delivery,
        rank: Option<usize>,
    ) -> Result<(), DeliveryError> {
        let unknown = || DeliveryError::UnknownReceiver {
            receiver: receiver.id.clone(),
        };
        let reference = receiver.receiver.secret_ref().ok_or_else(unknown)?;
        let r = &receiver.receiver;
        let (url, body) = if let Some(pagerduty) = &r.pagerduty {
            let key = self
                .secrets
                .value(&receiver.secret_namespace, &reference.name, &reference.key)
                .await?;
            let key = String::from_utf8_lossy(&key).trim().to_string();
            let endpoint = pagerduty
                .url
                .as_deref()
                .unwrap_or(crate::api::policy::PAGERDUTY_EVENTS_URL);
            let url = reqwest::Url::parse(endpoint).map_err(|_| {
                DeliveryError::Transport("the PagerDuty endpoint is not a URL".into())
            })?;
            (url, pagerduty_body(incident, delivery, &key, rank))
        } else {
            let url = self
                .url(&receiver.secret_namespace, &reference.name, &reference.key)
                .await?;
            if r.alertmanager.is_some() {
                // A base URL with a path prefix keeps it (`.../am` and
                // `.../am/` both post to `.../am/api/v2/alerts`).
                let mut url = url;
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                let url = url
                    .join("api/v2/alerts")
                    .map_err(|_| DeliveryError::InvalidUrl {
                        namespace: receiver.secret_namespace.clone(),
                        name: reference.name.clone(),
                        key: reference.key.clone(),
                    })?;
                (url, alertmanager_body(incident, delivery))
            } else if r.slack.is_some() {
                (url, slack_body(incident, delivery))
            } else {
                (url, webhook_body(incident, delivery))
            }
        };
        let http = self
            .http
            .for_url(&receiver.egress, &url)
            .map_err(DeliveryError::EgressDenied)?;
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| DeliveryError::Transport("the delivery limiter is closed".into()))?;
        let result = match http
            .post(url)
            .header("Idempotency-Key", &delivery.key)
            .json(&body)
            .send()
            .await
        {
            Err(error) => Err(DeliveryError::Transport(describe(error, "the receiver"))),
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(DeliveryError::Status(response.status().as_u16())),
        };
        if result.is_err() {
            // The URL may have changed since it was read.
            self.secrets
                .suspect(&receiver.secret_namespace, &reference.name);
        }
        result
    }

    async fn url(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<reqwest::Url, DeliveryError> {
        let bytes = self.secrets.value(namespace, name, key).await?;
        let invalid = || DeliveryError::InvalidUrl {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        };
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let url = reqwest::Url::parse(text.trim()).map_err(|_| invalid())?;
        if matches!(url.scheme(), "http" | "https") {
            Ok(url)
        } else {
            Err(invalid())
        }
    }
}

/// A transport error without the URL (which may carry a token): what
/// failed and its innermost cause, e.g. `cannot connect to the receiver:
/// Connection refused (os error 111)`.
pub fn describe(error: reqwest::Error, peer: &str) -> String {
    let kind = if error.is_timeout() {
        format!("{peer} did not answer in time")
    } else if error.is_connect() {
        format!("cannot connect to {peer}")
    } else {
        format!("the request to {peer} failed")
    };
    let error = error.without_url();
    let mut detail = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        // Refused at resolution: nothing was contacted.
        if let Some(denied) = inner.downcast_ref::<crate::integrations::egress::Denied>() {
            return format!("{}{denied}", crate::domain::egress::DENIED_PREFIX);
        }
        detail = inner.to_string();
        source = inner.source();
    }
    if detail.is_empty() || detail.contains("://") {
        kind
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing;

    fn delivery(trigger: Trigger, transition: Option<&str>) -> Delivery {
        Delivery {
            key: "k".into(),
            receiver: "pager".into(),
            trigger,
            transition: transition.map(String::from),
        }
    }

    #[test]
    fn pagerduty_follows_the_phase_and_the_ladder() {
        let cases = [
            (Trigger::Declared, None, "trigger"),
            (Trigger::SeverityChanged, Some("SEV3 → SEV1"), "trigger"),
            (Trigger::Escalated, None, "trigger"),
            (
                Trigger::PhaseChanged,
                Some("Triggered → Acknowledged by alice"),
                "acknowledge",
            ),
            (
                Trigger::PhaseChanged,
                Some("Acknowledged → Mitigated"),
                "acknowledge",
            ),
            (
                Trigger::PhaseChanged,
                Some("Mitigated → Resolved"),
                "resolve",
            ),
            (Trigger::Resolved, Some("Mitigated → Resolved"), "resolve"),
        ];
        let open = testing::incident(crate::api::Phase::Acknowledged, "SEV2");
        for (trigger, transition, action) in cases {
            assert_eq!(
                pagerduty_action(&open, &delivery(trigger, transition)),
                action,
                "{trigger:?} {transition:?}"
            );
        }
        // A trigger retried after the resolution never reopens it.
        let over = testing::incident(crate::api::Phase::Resolved, "SEV2");
        assert_eq!(
            pagerduty_action(&over, &delivery(Trigger::Declared, None)),
            "resolve"
        );
        let severities: Vec<&str> = [Some(0), Some(1), Some(2), Some(3), None]
            .into_iter()
            .map(pagerduty_severity)
            .collect();
        assert_eq!(severities, ["critical", "error", "warning", "info", "info"]);

        let mut incident = testing::incident(crate::api::Phase::Triggered, "SEV2");
        incident.metadata.uid = Some("u-1".into());
        let trigger = pagerduty_body(
            &incident,
            &delivery(Trigger::Declared, None),
            "key",
            Some(1),
        );
        assert_eq!(trigger["dedup_key"], "u-1");
        assert_eq!(trigger["payload"]["severity"], "error");
        let ack = pagerduty_body(
            &incident,
            &delivery(Trigger::PhaseChanged, Some("Triggered → Acknowledged")),
            "key",
            Some(1),
        );
        assert_eq!(ack["dedup_key"], "u-1");
        assert!(
            ack.get("payload").is_none(),
            "acknowledge carries no payload"
        );
    }

    #[test]
    fn the_alertmanager_alert_fires_until_the_incident_resolves() {
        let incident = testing::incident(crate::api::Phase::Triggered, "SEV1");
        let raised = alertmanager_body(
            &incident,
            &delivery(Trigger::SeverityChanged, Some("SEV2 → SEV1 by alice")),
        );
        let alerts = raised.as_array().expect("alerts");
        assert_eq!(
            alerts.len(),
            2,
            "the new severity's, and the old one's ended"
        );
        assert_eq!(alerts[0]["labels"]["severity"], "SEV1");
        let ends = |a: &serde_json::Value| -> jiff::Timestamp {
            a["endsAt"].as_str().expect("endsAt").parse().expect("time")
        };
        assert!(ends(&alerts[0]) > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(23));
        assert_eq!(alerts[1]["labels"]["severity"], "SEV2");
        assert!(ends(&alerts[1]) <= jiff::Timestamp::now());
        let over = testing::incident(crate::api::Phase::Resolved, "SEV1");
        let resolved = alertmanager_body(&over, &delivery(Trigger::Resolved, None));
        assert!(ends(&resolved[0]) <= jiff::Timestamp::now());
    }

    #[test]
    fn slack_gets_block_kit_and_keeps_the_text() {
        let mut incident = testing::incident(crate::api::Phase::Triggered, "SEV1");
        incident.metadata.namespace = Some("shop".into());
        let body = slack_body(&incident, &delivery(Trigger::Declared, None));
        assert!(
            body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[SEV1]"))
        );
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert!(body.to_string().contains("kubectl incident ack"));
        let long = "x".repeat(500);
        incident.spec.title = long;
        let body = slack_body(&incident, &delivery(Trigger::Declared, None));
        assert!(
            body["blocks"][0]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.len() <= 150)
        );
    }

    #[test]
    fn the_payload_names_the_incident_and_carries_the_key() {
        let mut incident = testing::incident(crate::api::Phase::Triggered, "SEV2");
        incident.spec.commander = Some("alice".into());
        incident.metadata.namespace = Some("shop".into());
        incident.metadata.uid = Some("u-1".into());
        let declared = Delivery {
            key: "u-1.1.Declared.team-webhook".into(),
            receiver: "team-webhook".into(),
            trigger: Trigger::Declared,
            transition: Some("Declared SEV2".into()),
        };
        let body = webhook_body(&incident, &declared);
        assert_eq!(body["idempotencyKey"], "u-1.1.Declared.team-webhook");
        assert_eq!(body["trigger"], "Declared");
        assert_eq!(body["transition"], "Declared SEV2");
        assert_eq!(body["incident"]["severity"], "SEV2");
        assert_eq!(body["incident"]["phase"], "Triggered");
        assert_eq!(
            body["text"],
            "[SEV2] shop/checkout-5xx declared: Checkout returns 5xx. Commander: alice."
        );
    }

    #[test]
    fn a_severity_raise_says_from_what_to_what() {
        let mut incident = testing::incident(crate::api::Phase::Triggered, "SEV1");
        incident.metadata.namespace = Some("shop".into());
        let raise = Delivery {
            key: "u-1.3.SeverityChanged.hook".into(),
            receiver: "hook".into(),
            trigger: Trigger::SeverityChanged,
            transition: Some("SEV2 → SEV1".into()),
        };
        assert_eq!(
            text(&incident, &raise),
            "[SEV1] shop/checkout-5xx severity SEV2 → SEV1: Checkout returns 5xx."
        );
        assert_eq!(webhook_body(&incident, &raise)["transition"], "SEV2 → SEV1");
    }
}
