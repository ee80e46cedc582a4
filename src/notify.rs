//! Notification delivery: the payloads receivers get, and one HTTP attempt.
//!
//! Receiver URLs live in Secrets and are read at send time; they never
//! reach a status, an Event or a log line (errors are stripped of them).
//!
//! ## Webhook payload (`Content-Type: application/json`)
//!
//! ```json
//! {
//!   "version": "klaxon.dev/v1alpha1",
//!   "idempotencyKey": "<incident uid>.<trigger>.<receiver>",
//!   "trigger": "Declared",
//!   "incident": {
//!     "namespace": "shop", "name": "checkout-5xx", "uid": "…",
//!     "title": "Checkout returns 5xx", "severity": "SEV2",
//!     "phase": "Triggered", "summary": "checkout 1/3 ready; …",
//!     "team": "payments", "commander": "alice",
//!     "declaredAt": "…", "acknowledgeBy": "…"
//!   },
//!   "text": "[SEV2] shop/checkout-5xx Declared: Checkout returns 5xx. …"
//! }
//! ```
//!
//! Every request carries `Idempotency-Key` (the same value as the field)
//! and `User-Agent: klaxon/<version>`. A delivery counts as confirmed on
//! any 2xx answer. A Slack receiver gets `{"text": …}`, the incoming-webhook
//! format.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use serde::Serialize;

use crate::{
    api::{Incident, policy::Trigger},
    policy::EffectiveReceiver,
};

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retry schedule: `base · 2^(attempt-1)`, capped, with jitter, until
/// `max_attempts` attempts were made.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait after attempt number `attempt` (1-based): between half and
    /// all of the exponential delay, so receivers coming back are not hit
    /// by every operator's retries at once.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let full = exp.min(self.cap);
        let half = full / 2;
        half + full.mul_f64(fastrand::f64() * 0.5)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("receiver {receiver} is not defined in the effective policy")]
    UnknownReceiver { receiver: String },
    #[error("Secret {namespace}/{name} has no key {key}")]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {namespace}/{name}: {reason}")]
    Secret {
        namespace: String,
        name: String,
        reason: String,
    },
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
    incident: IncidentPayload<'a>,
    text: String,
}

/// The idempotency key of one (incident, trigger, receiver) delivery.
pub fn idempotency_key(incident: &Incident, trigger: Trigger, receiver: &str) -> String {
    let uid = incident.metadata.uid.as_deref().unwrap_or_default();
    format!("{uid}.{trigger:?}.{receiver}")
}

/// One line for humans: what happened, how bad, what is known.
pub fn text(incident: &Incident, trigger: Trigger) -> String {
    let status = incident.status.as_ref();
    let what = match trigger {
        Trigger::Declared => "declared".to_string(),
        Trigger::SeverityChanged => format!("severity is now {}", incident.spec.severity),
        Trigger::PhaseChanged => format!("is now {}", incident.spec.phase),
        Trigger::Escalated => "was not acknowledged in time".to_string(),
        Trigger::Resolved => "resolved".to_string(),
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

fn webhook_body(incident: &Incident, trigger: Trigger, key: &str) -> serde_json::Value {
    let status = incident.status.as_ref();
    let payload = WebhookPayload {
        version: crate::api::API_VERSION,
        idempotency_key: key,
        trigger,
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
        text: text(incident, trigger),
    };
    serde_json::to_value(payload).unwrap_or_default()
}

/// Sends notifications; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    kube: kube::Client,
    pub backoff: Backoff,
}

impl Notifier {
    pub fn new(kube: kube::Client, backoff: Backoff) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(crate::operator::USER_AGENT)
            // A receiver URL must not bounce a payload elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            http,
            kube,
            backoff,
        }
    }

    /// One attempt to deliver `trigger` about `incident` to `receiver`.
    pub async fn send(
        &self,
        receiver: &EffectiveReceiver,
        incident: &Incident,
        trigger: Trigger,
        key: &str,
    ) -> Result<(), DeliveryError> {
        let (reference, body) = match (&receiver.receiver.webhook, &receiver.receiver.slack) {
            (Some(webhook), _) => (
                &webhook.url_secret_ref,
                webhook_body(incident, trigger, key),
            ),
            (None, Some(slack)) => (
                &slack.url_secret_ref,
                serde_json::json!({ "text": text(incident, trigger) }),
            ),
            (None, None) => {
                return Err(DeliveryError::UnknownReceiver {
                    receiver: receiver.id.clone(),
                });
            }
        };
        let url = self
            .url(&receiver.secret_namespace, &reference.name, &reference.key)
            .await?;
        let response = self
            .http
            .post(url)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .map_err(|e| DeliveryError::Transport(describe(e, "the receiver")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }

    async fn url(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<reqwest::Url, DeliveryError> {
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let secret = api.get(name).await.map_err(|e| DeliveryError::Secret {
            namespace: namespace.into(),
            name: name.into(),
            reason: match e {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            },
        })?;
        let missing = || DeliveryError::SecretKeyMissing {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(missing)?;
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

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            max_attempts: 5,
        };
        for _ in 0..100 {
            let first = backoff.delay(1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff.delay(3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            assert!(backoff.delay(30) <= Duration::from_secs(10));
        }
    }

    #[test]
    fn the_payload_names_the_incident_and_carries_the_key() {
        let mut incident = Incident::new(
            "checkout-5xx",
            crate::api::IncidentSpec {
                title: "Checkout returns 5xx".into(),
                severity: "SEV2".into(),
                phase: crate::api::Phase::Triggered,
                summary: None,
                commander: Some("alice".into()),
                responders: vec![],
                affected: None,
                notes: vec![],
                postmortem: None,
            },
        );
        incident.metadata.namespace = Some("shop".into());
        incident.metadata.uid = Some("u-1".into());
        let key = idempotency_key(&incident, Trigger::Declared, "team-webhook");
        assert_eq!(key, "u-1.Declared.team-webhook");
        let body = webhook_body(&incident, Trigger::Declared, &key);
        assert_eq!(body["idempotencyKey"], key);
        assert_eq!(body["trigger"], "Declared");
        assert_eq!(body["incident"]["severity"], "SEV2");
        assert_eq!(body["incident"]["phase"], "Triggered");
        assert_eq!(
            body["text"],
            "[SEV2] shop/checkout-5xx declared: Checkout returns 5xx. Commander: alice."
        );
    }
}
