//! The acknowledgement deadline from the policy's ladder, and escalation
//! once it passes unacknowledged.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    lifecycle::Change,
    timeline::{Kind, Reports},
};
use crate::{
    api::{Incident, IncidentStatus, Phase, policy::Trigger},
    domain::policy::{EffectivePolicy, humantime},
};

pub struct Deadline {
    /// Triggered past its deadline.
    pub overdue: bool,
    /// The escalation this plan makes, once per incident.
    pub escalation: Option<Change>,
}

pub fn apply(
    incident: &Incident,
    policy: &EffectivePolicy,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> Deadline {
    let spec = &incident.spec;
    let level = policy.level(&spec.severity);
    status.acknowledge_by = level
        .and_then(|l| l.acknowledge_within)
        .zip(status.declared_at.as_ref())
        .and_then(|(within, declared)| {
            let within = SignedDuration::try_from(within).ok()?;
            declared.0.checked_add(within).ok().map(Time)
        });
    let overdue = spec.phase == Phase::Triggered
        && status
            .acknowledge_by
            .as_ref()
            .is_some_and(|by| by.0 <= now.0);
    let mut escalation = None;
    if overdue && status.escalated_at.is_none() {
        status.escalated_at = Some(now.clone());
        let within = level
            .and_then(|l| l.acknowledge_within)
            .map(humantime)
            .unwrap_or_default();
        let to = if policy.escalation.is_empty() {
            "no escalation receivers are defined".to_string()
        } else {
            format!("escalating to {}", policy.escalation.join(", "))
        };
        reports.add(
            &mut status.timeline,
            now.clone(),
            Kind::Escalated,
            format!(
                "Not acknowledged within {within} of declaration ({} ladder); {to}",
                spec.severity
            ),
        );
        escalation = Some(Change {
            triggers: vec![Trigger::Escalated],
            text: format!("not acknowledged within {within}"),
        });
    }
    Deadline {
        overdue,
        escalation,
    }
}

/// The deadline, while it may still escalate.
pub fn next(status: &IncidentStatus, phase: Phase) -> Option<Timestamp> {
    status
        .acknowledge_by
        .as_ref()
        .filter(|_| phase == Phase::Triggered && status.escalated_at.is_none())
        .map(|t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, incident, payments_policy};

    fn run(incident: &Incident, now: &str) -> (IncidentStatus, Deadline) {
        let mut status = incident.status.clone().unwrap_or_default();
        status.declared_at = Some(Time(at("2026-11-24T14:10:00Z")));
        let mut reports = Reports::default();
        let deadline = apply(
            incident,
            &payments_policy(),
            &mut status,
            &mut reports,
            &Time(at(now)),
        );
        (status, deadline)
    }

    #[test]
    fn the_deadline_follows_the_ladder_and_escalates_once() {
        let mut inc = incident(Phase::Triggered, "SEV1");
        let (status, deadline) = run(&inc, "2026-11-24T14:14:59Z");
        assert_eq!(
            status.acknowledge_by,
            Some(Time(at("2026-11-24T14:15:00Z"))),
            "SEV1: 5m"
        );
        assert!(!deadline.overdue && deadline.escalation.is_none());
        assert_eq!(
            next(&status, Phase::Triggered),
            Some(at("2026-11-24T14:15:00Z"))
        );

        let (status, deadline) = run(&inc, "2026-11-24T14:15:00Z");
        assert!(deadline.overdue);
        assert_eq!(
            deadline.escalation.map(|c| c.triggers),
            Some(vec![Trigger::Escalated])
        );
        assert_eq!(next(&status, Phase::Triggered), None, "escalated already");
        inc.status = Some(status);
        let (_, again) = run(&inc, "2026-11-24T14:20:00Z");
        assert!(again.overdue && again.escalation.is_none(), "once");
    }

    #[test]
    fn an_acknowledged_incident_never_escalates() {
        let inc = incident(Phase::Acknowledged, "SEV1");
        let (status, deadline) = run(&inc, "2026-11-24T16:00:00Z");
        assert!(!deadline.overdue && deadline.escalation.is_none());
        assert_eq!(status.escalated_at, None);
        assert_eq!(next(&status, Phase::Acknowledged), None);
    }
}
