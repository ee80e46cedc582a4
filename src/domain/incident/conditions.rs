//! The incident's conditions, `Ready` first, and the problems that lead
//! its summary line.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::Observation;
use crate::{
    api::{
        Incident, IncidentStatus, Phase,
        incident::{DeliveryState, NotificationState, PostmortemState, WorkloadKind},
    },
    domain::{
        conditions::{READY, condition},
        enrich,
        policy::EffectivePolicy,
    },
};

pub const ENRICHED: &str = "Enriched";
use crate::domain::egress::DENIED_PREFIX as EGRESS_DENIED;
pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
pub const DEPLOYMENTS_FOUND: &str = "DeploymentsFound";
pub const COMMANDER_MISSING: &str = "CommanderMissing";
pub const POSTMORTEM_REQUIRED: &str = "PostmortemRequired";
pub const ACKNOWLEDGEMENT_OVERDUE: &str = "AcknowledgementOverdue";
pub const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
pub const QUERIES_SUCCEEDED: &str = "QueriesSucceeded";

/// What the ladder asks of this incident, and what is missing.
struct Requirements {
    unknown_severity: bool,
    commander_required: bool,
    commander_missing: bool,
    postmortem_required: bool,
    postmortem_missing: bool,
}

fn requirements(incident: &Incident, policy: &EffectivePolicy) -> Requirements {
    let spec = &incident.spec;
    let level = policy.level(&spec.severity);
    let commander_required = level.is_some_and(|l| l.require_commander);
    let postmortem_required =
        level.is_some_and(|l| l.require_postmortem) && spec.phase == Phase::Resolved;
    Requirements {
        unknown_severity: level.is_none(),
        commander_required,
        commander_missing: commander_required
            && spec
                .commander
                .as_deref()
                .is_none_or(|c| c.trim().is_empty()),
        postmortem_required,
        postmortem_missing: postmortem_required && spec.postmortem.is_none(),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    incident: &Incident,
    policy: &EffectivePolicy,
    observation: &Observation,
    previous: &IncidentStatus,
    status: &IncidentStatus,
    frozen: bool,
    overdue: bool,
    now: &Time,
) -> Vec<Condition> {
    // The resolving pass records the final enrichment and already reads
    // as resolved, so the next pass has nothing to change.
    let resolved = frozen || incident.spec.phase == Phase::Resolved;
    let spec = &incident.spec;
    let generation = incident.metadata.generation;
    let prev = previous.conditions.as_slice();
    let set = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(prev, type_, ok, reason, message, generation, now)
    };
    let namespace = incident.metadata.namespace.as_deref().unwrap_or_default();
    let needs = requirements(incident, policy);
    let mut conditions = Vec::new();

    let mut problems: Vec<(&str, String)> = Vec::new();
    if needs.unknown_severity {
        problems.push((
            "UnknownSeverity",
            format!(
                "Severity {} is not on the ladder for namespace {namespace}; valid levels: {}.",
                spec.severity,
                policy.ladder_names().join(", ")
            ),
        ));
    }
    if needs.commander_missing {
        problems.push((
            COMMANDER_MISSING,
            format!(
                "{} incidents must name a commander: set spec.commander.",
                spec.severity
            ),
        ));
    }
    if needs.postmortem_missing {
        let due = match status.postmortem.as_ref() {
            Some(pm) if pm.state == PostmortemState::Overdue => pm
                .due
                .as_ref()
                .map(|d| format!(" It was due by {}.", d.0))
                .unwrap_or_default(),
            Some(pm) => pm
                .due
                .as_ref()
                .map(|d| format!(" It is due by {}.", d.0))
                .unwrap_or_default(),
            None => String::new(),
        };
        problems.push((
            POSTMORTEM_REQUIRED,
            format!(
                "Resolved {} incidents must link a postmortem: set spec.postmortem.url (kubectl incident postmortem {} -n {namespace} drafts it).{due}",
                spec.severity,
                incident.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    if overdue && let Some(by) = &status.acknowledge_by {
        problems.push((
            ACKNOWLEDGEMENT_OVERDUE,
            format!(
                "Not acknowledged by {}: run kubectl incident ack {} -n {namespace}.",
                by.0,
                incident.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    conditions.push(match problems.first() {
        Some((reason, _)) => set(
            READY,
            false,
            reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        None if resolved => set(
            READY,
            true,
            "Resolved",
            "The incident is resolved; its record is complete.".into(),
        ),
        None => set(
            READY,
            true,
            "Enriched",
            "The incident is valid and its enrichment is current.".into(),
        ),
    });
    if needs.commander_required {
        conditions.push(if needs.commander_missing {
            set(
                COMMANDER_MISSING,
                true,
                "NoCommander",
                format!(
                    "The ladder requires a commander for {}; set spec.commander.",
                    spec.severity
                ),
            )
        } else {
            set(
                COMMANDER_MISSING,
                false,
                "CommanderNamed",
                "A commander is named.".into(),
            )
        });
    }
    if needs.postmortem_required {
        conditions.push(if needs.postmortem_missing {
            set(
                POSTMORTEM_REQUIRED,
                true,
                "NoPostmortem",
                format!(
                    "The ladder requires a postmortem for resolved {} incidents; set spec.postmortem.url.",
                    spec.severity
                ),
            )
        } else {
            set(
                POSTMORTEM_REQUIRED,
                false,
                "PostmortemLinked",
                "The postmortem is linked.".into(),
            )
        });
    }
    if let Some(by) = &status.acknowledge_by {
        let by = by.0.to_string();
        conditions.push(match (&status.escalated_at, &status.acknowledged_at) {
            (Some(_), None) if overdue => set(
                ACKNOWLEDGEMENT_OVERDUE,
                true,
                "Overdue",
                format!("Not acknowledged by {by}; escalated. Set spec.phase: Acknowledged."),
            ),
            (Some(_), _) => set(
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "AcknowledgedLate",
                format!("Acknowledged after the deadline {by}."),
            ),
            (None, Some(_)) => set(
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "Acknowledged",
                format!("Acknowledged before the deadline {by}."),
            ),
            (None, None) => set(
                ACKNOWLEDGEMENT_OVERDUE,
                false,
                "WithinDeadline",
                format!("Must be acknowledged by {by}."),
            ),
        });
    }
    conditions.push(if resolved {
        set(
            ENRICHED,
            true,
            "Frozen",
            "Enrichment was frozen at resolution as the evidence record.".into(),
        )
    } else if observation.truncated {
        set(
            ENRICHED,
            true,
            "Live",
            "Enrichment follows the cluster; selectors matched more workloads than the status holds, the first ones are shown.".into(),
        )
    } else {
        set(
            ENRICHED,
            true,
            "Live",
            "Enrichment follows the cluster.".into(),
        )
    });
    if frozen {
        conditions.extend(
            [DEPLOYMENTS_FOUND, METRICS_AVAILABLE]
                .iter()
                .filter_map(|t| crate::domain::conditions::find(prev, t).cloned()),
        );
    } else {
        conditions.extend(deployments_found(status, observation, namespace, &set));
        conditions.extend(metrics_available(observation, &set));
    }
    if !policy.queries.is_empty() && !status.metrics.is_empty() {
        let failed: Vec<String> = status
            .metrics
            .iter()
            .filter_map(|m| Some(format!("{}: {}", m.name, m.error.as_deref()?)))
            .collect();
        let denied = status.metrics.iter().any(|m| {
            m.error
                .as_deref()
                .is_some_and(|e| e.starts_with(EGRESS_DENIED))
        });
        conditions.push(if failed.is_empty() {
            set(
                QUERIES_SUCCEEDED,
                true,
                "QueriesSucceeded",
                "Every Prometheus query returned a value.".into(),
            )
        } else if denied {
            set(
                QUERIES_SUCCEEDED,
                false,
                "EgressDenied",
                enrich::truncate(&failed.join("; "), 1000),
            )
        } else {
            set(
                QUERIES_SUCCEEDED,
                false,
                "QueryFailed",
                enrich::truncate(&failed.join("; "), 1000),
            )
        });
    }
    conditions.extend(delivery(&status.notifications, prev, generation, now));
    conditions
}

fn deployments_found(
    status: &IncidentStatus,
    observation: &Observation,
    namespace: &str,
    set: &dyn Fn(&str, bool, &str, String) -> Condition,
) -> Option<Condition> {
    if !observation.invalid_selectors.is_empty() {
        return Some(set(
            DEPLOYMENTS_FOUND,
            false,
            "InvalidSelector",
            enrich::truncate(
                &format!(
                    "{}; such an entry matches nothing. Fix the selector.",
                    observation.invalid_selectors.join("; ")
                ),
                1000,
            ),
        ));
    }
    status.workloads().next()?;
    // `Deployment a, b; StatefulSet c`, per kind.
    let mut missing: Vec<String> = Vec::new();
    for kind in WorkloadKind::ALL {
        let names: Vec<&str> = status
            .workloads()
            .filter(|(k, d)| *k == kind && !d.found)
            .map(|(_, d)| d.name.as_str())
            .collect();
        if !names.is_empty() {
            missing.push(format!("{kind} {}", names.join(", ")));
        }
    }
    Some(if missing.is_empty() {
        set(
            DEPLOYMENTS_FOUND,
            true,
            "AllFound",
            "Every affected workload was found.".into(),
        )
    } else {
        set(
            DEPLOYMENTS_FOUND,
            false,
            "DeploymentNotFound",
            enrich::truncate(
                &format!(
                    "{} not found in namespace {namespace}; it will be linked as soon as it exists.",
                    missing.join("; ")
                ),
                1000,
            ),
        )
    })
}

fn metrics_available(
    observation: &Observation,
    set: &dyn Fn(&str, bool, &str, String) -> Condition,
) -> Option<Condition> {
    match observation.metrics_available? {
        true => Some(set(
            METRICS_AVAILABLE,
            true,
            "MetricsAPIAvailable",
            "CPU and memory come from metrics.k8s.io.".into(),
        )),
        false => Some(set(
            METRICS_AVAILABLE,
            false,
            "MetricsAPIUnavailable",
            "metrics.k8s.io is not served in this cluster (install metrics-server); CPU and memory are not shown.".into(),
        )),
    }
}

/// `NotificationsDelivered`, once anything was routed.
fn delivery(
    notifications: &[NotificationState],
    prev: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Option<Condition> {
    if notifications.is_empty() {
        return None;
    }
    let failed: Vec<String> = notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Failed)
        .map(|n| format!("{} ({})", n.receiver, n.trigger))
        .collect();
    let pending: Vec<&NotificationState> = notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Pending)
        .collect();
    let set = |ok: bool, reason: &str, message: String| {
        condition(
            prev,
            NOTIFICATIONS_DELIVERED,
            ok,
            reason,
            message,
            generation,
            now,
        )
    };
    let denied = notifications
        .iter()
        .filter(|n| n.state != DeliveryState::Delivered)
        .find_map(|n| {
            let message = n.message.as_deref()?;
            message
                .starts_with(EGRESS_DENIED)
                .then(|| format!("{}: {message}", n.receiver))
        });
    Some(if let Some(denied) = denied {
        // Never contacted: no retry will change that until the policy does.
        set(false, "EgressDenied", enrich::truncate(&denied, 1000))
    } else if !failed.is_empty() {
        set(
            false,
            "DeliveryFailed",
            enrich::truncate(
                &format!("Gave up delivering to {}.", failed.join(", ")),
                1000,
            ),
        )
    } else if !pending.is_empty() {
        let why = pending
            .iter()
            .find_map(|n| {
                Some(format!(
                    " Last error ({}): {}",
                    n.receiver,
                    n.message.as_deref()?
                ))
            })
            .unwrap_or_default();
        set(
            false,
            "Pending",
            enrich::truncate(
                &format!("{} notification(s) pending.{why}", pending.len()),
                1000,
            ),
        )
    } else {
        set(
            true,
            "Delivered",
            "Every routed notification was delivered.".into(),
        )
    })
}

/// Brings `NotificationsDelivered` in line with the ledger after
/// deliveries began or finished.
pub fn refresh_delivery(status: &mut IncidentStatus, generation: Option<i64>, now: &Time) {
    let fresh = delivery(&status.notifications, &status.conditions, generation, now);
    status
        .conditions
        .retain(|c| c.type_ != NOTIFICATIONS_DELIVERED);
    status.conditions.extend(fresh);
}

/// What the summary may start with, most urgent first.
const PROBLEMS: [&str; 4] = [
    "unknown severity",
    "commander missing",
    "postmortem required",
    "acknowledgement overdue",
];

/// Puts what needs attention at the front of the summary line.
pub fn prefix_summary(
    incident: &Incident,
    policy: &EffectivePolicy,
    status: &mut IncidentStatus,
    overdue: bool,
) {
    strip_problems(&mut status.summary);
    let needs = requirements(incident, policy);
    let flags = [
        needs.unknown_severity,
        needs.commander_missing,
        needs.postmortem_missing,
        overdue,
    ];
    let prefix: Vec<&str> = PROBLEMS
        .iter()
        .zip(flags)
        .filter_map(|(p, on)| on.then_some(*p))
        .collect();
    if prefix.is_empty() {
        return;
    }
    let rest = status.summary.take().unwrap_or_default();
    let line = if rest.is_empty() {
        prefix.join("; ")
    } else {
        format!("{}; {rest}", prefix.join("; "))
    };
    status.summary = Some(enrich::truncate(&line, 512));
}

/// Removes problem prefixes a previous pass put on a kept summary.
fn strip_problems(summary: &mut Option<String>) {
    let Some(text) = summary.as_mut() else { return };
    let mut rest = text.as_str();
    loop {
        let before = rest;
        for problem in PROBLEMS {
            if let Some(after) = rest.strip_prefix(problem) {
                rest = after.strip_prefix("; ").unwrap_or(after);
            }
        }
        if rest == before {
            break;
        }
    }
    *text = rest.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, incident, payments_policy};

    fn entry(state: DeliveryState, message: Option<&str>) -> NotificationState {
        NotificationState {
            receiver: "org/hook".into(),
            trigger: "Declared".into(),
            transition: None,
            state,
            attempts: 1,
            last_attempt_at: None,
            next_attempt_at: None,
            idempotency_key: None,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn the_delivery_condition_names_the_last_error_and_the_receivers_given_up() {
        let now = Time(at("2026-11-24T14:10:05Z"));
        let pending = delivery(
            &[entry(
                DeliveryState::Pending,
                Some("the receiver answered HTTP 503"),
            )],
            &[],
            Some(1),
            &now,
        )
        .expect("condition");
        assert_eq!(
            (pending.status.as_str(), pending.reason.as_str()),
            ("False", "Pending")
        );
        assert!(pending.message.contains("HTTP 503"), "{}", pending.message);
        let failed =
            delivery(&[entry(DeliveryState::Failed, None)], &[], Some(1), &now).expect("condition");
        assert_eq!(failed.reason, "DeliveryFailed");
        assert!(failed.message.contains("org/hook (Declared)"));
        let done = delivery(&[entry(DeliveryState::Delivered, None)], &[], Some(1), &now)
            .expect("condition");
        assert_eq!(done.status, "True");
        assert!(delivery(&[], &[], Some(1), &now).is_none());
    }

    #[test]
    fn problems_lead_the_summary_once_however_often_it_is_planned() {
        let inc = incident(Phase::Triggered, "SEV1");
        let mut status = IncidentStatus {
            summary: Some("checkout 1/3 ready".into()),
            ..Default::default()
        };
        for _ in 0..3 {
            prefix_summary(&inc, &payments_policy(), &mut status, true);
        }
        assert_eq!(
            status.summary.as_deref(),
            Some("commander missing; acknowledgement overdue; checkout 1/3 ready")
        );
    }
}
