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
    api::{
        Incident,
        policy::{SecretKeyRef, Trigger},
    },
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
    let transition = delivery.transition.as_deref();
    let what = match (delivery.trigger, transition) {
        (Trigger::Declared, _) => "declared".to_string(),
        (Trigger::SeverityChanged, Some(t)) => format!("severity {t}"),
        (Trigger::SeverityChanged, None) => {
            format!("severity is now {}", incident.spec.severity)
        }
        (Trigger::PhaseChanged, Some(t)) => format!("phase {t}"),
        (Trigger::PhaseChanged, None) => format!("is now {}", incident.spec.phase),
        (Trigger::Escalated, _) => "was not acknowledged in time".to_string(),
        (Trigger::Resolved, _) => "resolved".to_string(),
    };
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

/// Requests to receivers in flight at once, across every incident.
pub const MAX_CONCURRENT_DELIVERIES: usize = 32;

/// Sends notifications; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    secrets: Secrets,
    limit: Arc<tokio::sync::Semaphore>,
}

impl Notifier {
    pub fn new(secrets: Secrets) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(crate::USER_AGENT)
            // A receiver URL must not bounce a payload elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            secrets,
            limit: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_DELIVERIES)),
        }
    }

    /// The receiver's kind, for metrics.
    pub fn kind(receiver: &EffectiveReceiver) -> &'static str {
        match (&receiver.receiver.webhook, &receiver.receiver.slack) {
            (Some(_), _) => "webhook",
            (None, Some(_)) => "slack",
            (None, None) => "unknown",
        }
    }

    /// The Secret key holding the receiver's URL.
    pub fn url_ref(receiver: &EffectiveReceiver) -> Option<&SecretKeyRef> {
        match (&receiver.receiver.webhook, &receiver.receiver.slack) {
            (Some(webhook), _) => Some(&webhook.url_secret_ref),
            (None, Some(slack)) => Some(&slack.url_secret_ref),
            (None, None) => None,
        }
    }

    /// One attempt to deliver `delivery` about `incident` to `receiver`.
    pub async fn send(
        &self,
        receiver: &EffectiveReceiver,
        incident: &Incident,
        delivery: &Delivery,
    ) -> Result<(), DeliveryError> {
        let unknown = || DeliveryError::UnknownReceiver {
            receiver: receiver.id.clone(),
        };
        let reference = Self::url_ref(receiver).ok_or_else(unknown)?;
        let body = match &receiver.receiver.webhook {
            Some(_) => webhook_body(incident, delivery),
            None => serde_json::json!({ "text": text(incident, delivery) }),
        };
        let url = self
            .url(&receiver.secret_namespace, &reference.name, &reference.key)
            .await?;
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| DeliveryError::Transport("the delivery limiter is closed".into()))?;
        let result = match self
            .http
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
