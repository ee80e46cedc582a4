//! Signals: conditions under which Klaxon declares an incident itself, and
//! when an incident it declared may resolve itself. Pure functions over
//! cached objects; every "since when" comes from the cluster (condition
//! transition times), so nothing depends on the operator's memory.
//!
//! - `DeploymentUnavailable`: the Deployment's `Available` condition is
//!   `False`, since its `lastTransitionTime`.
//! - `CrashLooping`: a pod of the Deployment waits in `CrashLoopBackOff`,
//!   since the earliest `Ready=False` transition among such pods.

use std::collections::BTreeMap;

use crate::domain::enrich::pods::PodView;
use crate::kinds::Deployment;
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::{
    api::{
        incident::DeploymentState,
        policy::{Signal, SignalType},
    },
    domain::policy::selects,
};

/// Labels on an incident Klaxon declared from a signal.
pub const SIGNAL_LABEL: &str = "klaxon.dev/signal";
pub const DEPLOYMENT_LABEL: &str = "klaxon.dev/deployment";
/// Why it was declared, for the timeline.
pub const MESSAGE_ANNOTATION: &str = "klaxon.dev/signal-message";

/// A signal whose condition held long enough.
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    pub deployment: String,
    pub signal: SignalType,
    pub severity: String,
    pub since: Timestamp,
    pub message: String,
}

impl Firing {
    /// A name that is the same for one outage on every evaluation, so
    /// declaring twice (or from two replicas) creates one incident, and that
    /// a person reads at a glance: the outage's start in UTC, to the second
    /// (`web-unavailable-20261125-061402`). Seconds, not minutes: an outage
    /// that starts in the minute an earlier one of the same Deployment
    /// started must not find its name taken.
    pub fn incident_name(&self) -> String {
        let start = self.since.strftime("%Y%m%d-%H%M%S");
        let suffix = format!("-{}-{start}", slug(self.signal));
        let room = 253usize.saturating_sub(suffix.len());
        let mut base: String = self.deployment.chars().take(room).collect();
        while base.ends_with(['-', '.']) {
            base.pop();
        }
        format!("{base}{suffix}")
    }

    pub fn title(&self) -> String {
        match self.signal {
            SignalType::DeploymentUnavailable => format!("{} is unavailable", self.deployment),
            SignalType::CrashLooping => format!("{} pods are crash-looping", self.deployment),
        }
    }
}

fn slug(signal: SignalType) -> &'static str {
    match signal {
        SignalType::DeploymentUnavailable => "unavailable",
        SignalType::CrashLooping => "crashlooping",
    }
}

pub fn signal_type(name: &str) -> Option<SignalType> {
    match name {
        "DeploymentUnavailable" => Some(SignalType::DeploymentUnavailable),
        "CrashLooping" => Some(SignalType::CrashLooping),
        _ => None,
    }
}

fn unavailable_since(deployment: &Deployment) -> Option<Timestamp> {
    let condition = deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Available")?;
    (condition.status == "False")
        .then(|| condition.last_transition_time.as_ref().map(|t| t.0))
        .flatten()
}

fn crash_looping_since(pods: &[&PodView]) -> Option<(Timestamp, usize)> {
    let looping: Vec<&&PodView> = pods.iter().filter(|p| p.crash_looping).collect();
    let since = looping.iter().filter_map(|p| p.not_ready_since).min()?;
    Some((since, looping.len()))
}

/// Whether `signal` fires for `deployment` (with its `pods`) at `now`.
pub fn evaluate(
    signal: &Signal,
    deployment: &Deployment,
    pods: &[&PodView],
    now: Timestamp,
) -> Option<Firing> {
    let labels: BTreeMap<String, String> = deployment.labels().clone();
    if !selects(signal.selector.as_ref(), &labels) {
        return None;
    }
    let hold = SignedDuration::try_from(signal.for_.parse().ok()?).ok()?;
    let name = deployment.name_any();
    let (since, message) = match signal.type_ {
        SignalType::DeploymentUnavailable => {
            let since = unavailable_since(deployment)?;
            let status = deployment.status.as_ref();
            let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
            let wanted = deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1);
            (
                since,
                format!("{name} Available=False since {since} ({ready}/{wanted} ready)"),
            )
        }
        SignalType::CrashLooping => {
            let (since, count) = crash_looping_since(pods)?;
            (
                since,
                format!("{name}: {count} pod(s) in CrashLoopBackOff since {since}"),
            )
        }
    };
    let held = now.duration_since(since);
    (held >= hold).then(|| Firing {
        deployment: name,
        signal: signal.type_,
        severity: signal.severity.clone(),
        since,
        message: format!("{message}, longer than {}", signal.for_),
    })
}

/// Whether the workload of an incident declared for `signal` is healthy
/// again: every linked Deployment found, available, and (for crash loops)
/// without crash-looping pods.
pub fn healthy(signal: SignalType, deployments: &[DeploymentState]) -> bool {
    !deployments.is_empty()
        && deployments.iter().all(|d| {
            // "True (MinimumReplicasAvailable)": the status and its reason.
            let available = d.found
                && d.available
                    .as_deref()
                    .is_some_and(|a| a.split(' ').next() == Some("True"));
            let looping = d
                .pods
                .as_ref()
                .is_some_and(|p| p.reasons.iter().any(|r| r.reason == "CrashLoopBackOff"));
            match signal {
                SignalType::DeploymentUnavailable => available,
                SignalType::CrashLooping => available && !looping,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Pod;
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn signal(type_: SignalType, for_: &str) -> Signal {
        Signal {
            type_,
            for_: for_.into(),
            severity: "SEV2".into(),
            selector: None,
        }
    }

    fn deployment(available: &str, since: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "checkout", "labels": {"tier": "payments"}},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 1, "conditions": [
                {"type": "Available", "status": available, "lastTransitionTime": since}]}
        }))
        .expect("deployment")
    }

    fn pod(waiting: &str, ready_false_since: &str) -> PodView {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "checkout-1"},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ready_false_since}],
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 4, "state": {"waiting": {"reason": waiting}}}]
            }
        }))
        .expect("pod");
        PodView::of(&pod)
    }

    #[test]
    fn unavailable_fires_once_it_held_long_enough() {
        let d = deployment("False", "2026-11-24T14:00:00Z");
        let s = signal(SignalType::DeploymentUnavailable, "2m");
        assert_eq!(evaluate(&s, &d, &[], at("2026-11-24T14:01:59Z")), None);
        let firing = evaluate(&s, &d, &[], at("2026-11-24T14:02:00Z")).expect("fires");
        assert_eq!(
            firing.incident_name(),
            "checkout-unavailable-20261124-140000"
        );
        assert_eq!(firing.title(), "checkout is unavailable");
        assert!(firing.message.contains("1/3 ready"), "{}", firing.message);
        let fine = deployment("True", "2026-11-24T14:00:00Z");
        assert_eq!(evaluate(&s, &fine, &[], at("2026-11-24T15:00:00Z")), None);
    }

    #[test]
    fn crash_loops_count_from_the_pods_readiness_loss_and_selectors_apply() {
        let d = deployment("True", "2026-11-24T13:00:00Z");
        let looping = pod("CrashLoopBackOff", "2026-11-24T14:00:00Z");
        let pulling = pod("ImagePullBackOff", "2026-11-24T13:00:00Z");
        let mut s = signal(SignalType::CrashLooping, "5m");
        let firing = evaluate(&s, &d, &[&looping, &pulling], at("2026-11-24T14:05:00Z"));
        assert_eq!(firing.map(|f| f.since), Some(at("2026-11-24T14:00:00Z")));
        assert_eq!(
            evaluate(&s, &d, &[&pulling], at("2026-11-24T15:00:00Z")),
            None
        );
        s.selector =
            Some(serde_json::from_value(json!({"matchLabels": {"tier": "search"}})).unwrap());
        assert_eq!(
            evaluate(&s, &d, &[&looping], at("2026-11-24T15:00:00Z")),
            None
        );
    }

    #[test]
    fn health_returns_when_available_and_not_crash_looping() {
        let mut d = DeploymentState {
            name: "checkout".into(),
            found: true,
            available: Some("True (MinimumReplicasAvailable)".into()),
            ..Default::default()
        };
        assert!(healthy(
            SignalType::DeploymentUnavailable,
            std::slice::from_ref(&d)
        ));
        d.pods = Some(crate::api::incident::PodsSummary {
            reasons: vec![crate::api::incident::ReasonCount {
                reason: "CrashLoopBackOff".into(),
                count: 1,
                recovered: None,
            }],
            ..Default::default()
        });
        assert!(!healthy(SignalType::CrashLooping, std::slice::from_ref(&d)));
        assert!(!healthy(SignalType::DeploymentUnavailable, &[]));
    }
}
