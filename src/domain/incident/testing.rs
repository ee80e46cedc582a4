//! Fixtures for the plan's unit tests.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Backoff, Observation, Plan};
use crate::{
    api::{
        Incident, IncidentSpec, Phase,
        incident::{DeploymentState, PodsSummary, ReasonCount},
        policy::Trigger,
    },
    domain::policy::{self, EffectivePolicy},
};

/// Without any policy: the default ladder, no routes.
pub fn no_policy() -> EffectivePolicy {
    policy::effective("shop", &[], None, None, "klaxon-system")
}

/// Plans with `policy` and the default backoff.
pub fn plan_with(
    incident: &Incident,
    observation: Observation,
    policy: &EffectivePolicy,
    now: Timestamp,
) -> Plan {
    super::plan(incident, policy, observation, now, &Backoff::default())
}

/// Plans without any policy.
pub fn plan(incident: &Incident, observation: Observation, now: Timestamp) -> Plan {
    plan_with(incident, observation, &no_policy(), now)
}

pub fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

pub fn incident(phase: Phase, severity: &str) -> Incident {
    let mut incident = Incident::new(
        "checkout-5xx",
        IncidentSpec {
            title: "Checkout returns 5xx".into(),
            severity: severity.into(),
            phase,
            summary: None,
            commander: None,
            responders: vec![],
            affected: None,
            notes: vec![],
            postmortem: None,
            ..Default::default()
        },
    );
    incident.metadata.namespace = Some("shop".into());
    incident.metadata.generation = Some(1);
    incident.metadata.creation_timestamp = Some(Time(at("2026-11-24T14:10:00Z")));
    incident
}

pub fn checkout(ready: i32, reasons: &[(&str, i32)]) -> DeploymentState {
    DeploymentState {
        name: "checkout".into(),
        found: true,
        replicas: Some(3),
        ready_replicas: Some(ready),
        revision: Some("2".into()),
        rollout_at: Some(Time(at("2026-11-24T14:01:00Z"))),
        images: vec!["shop/checkout:v42".into()],
        previous_images: vec!["shop/checkout:v41".into()],
        pods: Some(PodsSummary {
            reasons: reasons
                .iter()
                .map(|(r, n)| ReasonCount {
                    reason: r.to_string(),
                    count: *n,
                    recovered: None,
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn observation(deployments: Vec<DeploymentState>) -> Observation {
    Observation {
        deployments,
        metrics_available: Some(true),
        ..Default::default()
    }
}

pub fn payments_policy() -> EffectivePolicy {
    use crate::api::policy::{
        ClusterResponsePolicy, ClusterResponsePolicySpec, Escalation, ResponsePolicySpec, Route,
        SeverityLevel,
    };
    let org = ClusterResponsePolicy::new(
        "org",
        ClusterResponsePolicySpec {
            namespace_selector: None,
            policy: ResponsePolicySpec {
                severities: vec![
                    SeverityLevel {
                        name: "SEV1".into(),
                        acknowledge_within: Some("5m".into()),
                        require_commander: Some(true),
                        require_postmortem: Some(true),
                        postmortem_within: Some("48h".into()),
                    },
                    SeverityLevel {
                        name: "SEV2".into(),
                        acknowledge_within: Some("15m".into()),
                        require_commander: None,
                        require_postmortem: None,
                        postmortem_within: None,
                    },
                ],
                receivers: vec![crate::api::policy::Receiver {
                    name: "hook".into(),
                    ..Default::default()
                }],
                routes: vec![Route {
                    receivers: vec!["hook".into()],
                    severities: vec!["SEV1".into()],
                    triggers: vec![Trigger::Declared, Trigger::Resolved],
                }],
                escalation: Some(Escalation {
                    receivers: vec!["hook".into()],
                }),
                ..Default::default()
            },
        },
    );
    policy::effective("shop", &[&org], None, Some("payments"), "klaxon-system")
}

/// Routes every change of every severity to `hook`.
pub fn every_change_policy() -> EffectivePolicy {
    use crate::api::policy::{
        ClusterResponsePolicy, ClusterResponsePolicySpec, ResponsePolicySpec, Route,
    };
    let org = ClusterResponsePolicy::new(
        "org",
        ClusterResponsePolicySpec {
            namespace_selector: None,
            policy: ResponsePolicySpec {
                receivers: vec![crate::api::policy::Receiver {
                    name: "hook".into(),
                    ..Default::default()
                }],
                routes: vec![Route {
                    receivers: vec!["hook".into()],
                    severities: vec![],
                    triggers: vec![],
                }],
                ..Default::default()
            },
        },
    );
    let mut policy = policy::effective("shop", &[&org], None, Some("payments"), "klaxon-system");
    // Plain names make the keys easy to read.
    for route in &mut policy.routes {
        for receiver in &mut route.receivers {
            *receiver = "hook".into();
        }
    }
    policy
}

/// `n` distinct BackOff events with long messages.
pub fn event_storm(n: usize) -> Vec<crate::api::incident::EventSummary> {
    (0..n)
        .map(|i| crate::api::incident::EventSummary {
            type_: "Warning".into(),
            reason: "BackOff".into(),
            object: format!("Pod/checkout-{i}"),
            message: "x".repeat(256),
            count: 1,
            first_seen: None,
            last_seen: None,
        })
        .collect()
}

/// A change of one trigger.
pub fn change(trigger: Trigger, text: &str) -> super::lifecycle::Change {
    super::lifecycle::Change {
        triggers: vec![trigger],
        text: text.into(),
    }
}

/// Routes one change at 14:10, discarding its reports.
pub fn route_one(
    inc: &Incident,
    policy: &EffectivePolicy,
    trigger: Trigger,
    text: &str,
    status: &mut crate::api::IncidentStatus,
) {
    super::routing::route(
        inc,
        policy,
        &[change(trigger, text)],
        status,
        &mut super::timeline::Reports::default(),
        &Time(at("2026-11-24T14:10:00Z")),
    );
}
