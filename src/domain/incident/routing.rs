//! Routing: every notifiable transition is numbered, and gets one Pending
//! entry in the outbox ([`super::outbox`]) per receiver its routes name,
//! each with its own idempotency key.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    lifecycle::Change,
    outbox,
    timeline::{Kind, Reports},
};
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{DeliveryState, NotificationState},
        policy::Trigger,
    },
    domain::policy::EffectivePolicy,
};

/// The idempotency key of one notification: the incident, the
/// transition's number, the trigger, the receiver.
pub fn key(uid: &str, transition: i32, trigger: Trigger, receiver: &str) -> String {
    format!("{uid}.{transition}.{}.{receiver}", trigger.as_str())
}

/// The receivers the policy's routes name for `trigger` at `severity`
/// (and the escalation receivers, for an escalation), each once. A
/// reminder skips the receivers that page for the live incident.
fn receivers<'a>(policy: &'a EffectivePolicy, severity: &str, trigger: Trigger) -> Vec<&'a String> {
    let mut out: Vec<&String> = Vec::new();
    let routed = policy
        .routes
        .iter()
        .filter(|r| r.matches(severity, trigger))
        .flat_map(|r| r.receivers.iter());
    let escalation = policy
        .escalation
        .iter()
        .filter(|_| trigger == Trigger::Escalated);
    let pages = |id: &str| {
        policy
            .receiver(id)
            .is_some_and(|r| matches!(r.receiver.kind(), "pagerduty" | "alertmanager"))
    };
    for receiver in routed.chain(escalation) {
        if trigger.is_reminder() && pages(receiver) {
            continue;
        }
        if !out.contains(&receiver) {
            out.push(receiver);
        }
    }
    out
}

/// Numbers `changes` and records one Pending entry per receiver that a
/// route names for the change. One transition pages a receiver once: when
/// several of its triggers match (a resolution is also a phase change),
/// the receiver's entry takes the first, the most specific.
pub fn route(
    incident: &Incident,
    policy: &EffectivePolicy,
    changes: &[Change],
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) {
    let Some(uid) = incident.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return;
    };
    let severity = &incident.spec.severity;
    for change in changes {
        let number = status.last_transition.unwrap_or(0).saturating_add(1);
        status.last_transition = Some(number);
        let mut chosen: Vec<(&String, Trigger)> = Vec::new();
        for &trigger in &change.triggers {
            for receiver in receivers(policy, severity, trigger) {
                if !chosen.iter().any(|(r, _)| *r == receiver) {
                    chosen.push((receiver, trigger));
                }
            }
        }
        for (receiver, trigger) in chosen {
            status.notifications.push(NotificationState {
                receiver: receiver.clone(),
                trigger: trigger.as_str().to_string(),
                transition: Some(change.text.clone()),
                state: DeliveryState::Pending,
                attempts: 0,
                last_attempt_at: None,
                next_attempt_at: None,
                idempotency_key: Some(key(uid, number, trigger, receiver)),
                message: None,
            });
        }
    }
    let refused = outbox::compact(status);
    if refused > 0 {
        reports.add(
            &mut status.timeline,
            now.clone(),
            Kind::NotificationRefused,
            format!(
                "{refused} notification(s) not recorded: {} are still pending; fix the failing receivers",
                status.notifications.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::limits::MAX_NOTIFICATIONS_STORED,
        domain::incident::testing::{at, change, incident, payments_policy, route_one},
    };

    #[test]
    fn every_change_gets_its_own_numbered_entry_and_key() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let mut status = IncidentStatus::default();
        route_one(
            &inc,
            &policy,
            Trigger::Declared,
            "Declared SEV1",
            &mut status,
        );
        // The same kind of change twice is two notifications.
        for _ in 0..2 {
            route_one(&inc, &policy, Trigger::Resolved, "x", &mut status);
        }
        let keys: Vec<&str> = status
            .notifications
            .iter()
            .filter_map(|n| n.idempotency_key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "u1.1.Declared.org/hook",
                "u1.2.Resolved.org/hook",
                "u1.3.Resolved.org/hook"
            ]
        );
        assert_eq!(status.last_transition, Some(3));
    }

    #[test]
    fn past_the_hard_bound_new_entries_are_refused_and_said_so() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let mut status = IncidentStatus::default();
        let now = Time(at("2026-11-24T14:10:00Z"));
        let mut quiet = Reports::default();
        for _ in 0..MAX_NOTIFICATIONS_STORED {
            route(
                &inc,
                &policy,
                &[change(Trigger::Resolved, "x")],
                &mut status,
                &mut quiet,
                &now,
            );
        }
        assert!(quiet.into_inner().is_empty());
        let first: Vec<_> = status.notifications.clone();
        let mut reports = Reports::default();
        route(
            &inc,
            &policy,
            &[change(Trigger::Resolved, "x")],
            &mut status,
            &mut reports,
            &now,
        );
        assert_eq!(status.notifications, first, "every Pending entry kept");
        let reports = reports.into_inner();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].reason, "NotificationRefused");
        assert!(reports[0].warning);
    }

    #[test]
    fn one_transition_pages_a_receiver_once_under_its_most_specific_trigger() {
        use crate::domain::policy::EffectiveRoute;
        let mut inc = incident(crate::api::Phase::Resolved, "SEV2");
        inc.metadata.uid = Some("u1".into());
        let mut policy = payments_policy();
        // Two routes to one receiver, and a third receiver on one of them.
        policy.routes = vec![
            EffectiveRoute {
                receivers: vec!["hook".into()],
                severities: vec![],
                triggers: vec![Trigger::PhaseChanged, Trigger::Resolved],
            },
            EffectiveRoute {
                receivers: vec!["hook".into(), "chat".into()],
                severities: vec![],
                triggers: vec![Trigger::PhaseChanged],
            },
        ];
        let resolution = Change {
            triggers: vec![Trigger::Resolved, Trigger::PhaseChanged],
            text: "Mitigated → Resolved".into(),
        };
        let mut status = IncidentStatus::default();
        route(
            &inc,
            &policy,
            &[resolution],
            &mut status,
            &mut Reports::default(),
            &Time(at("2026-11-24T14:10:00Z")),
        );
        let keys: Vec<&str> = status
            .notifications
            .iter()
            .filter_map(|n| n.idempotency_key.as_deref())
            .collect();
        assert_eq!(keys, ["u1.1.Resolved.hook", "u1.1.PhaseChanged.chat"]);
    }

    #[test]
    fn reminders_go_to_chat_and_webhooks_not_to_the_pagers() {
        use crate::api::policy::{PagerDutyReceiver, Receiver};
        use crate::domain::policy::{EffectiveReceiver, EffectiveRoute};
        let mut inc = incident(crate::api::Phase::Resolved, "SEV2");
        inc.metadata.uid = Some("u1".into());
        let mut policy = payments_policy();
        let receiver = |id: &str, pager: bool| EffectiveReceiver {
            id: id.into(),
            secret_namespace: "shop".into(),
            receiver: Receiver {
                name: id.into(),
                pagerduty: pager.then(PagerDutyReceiver::default),
                webhook: (!pager).then(Default::default),
                ..Default::default()
            },
            egress: Default::default(),
        };
        policy.receivers = vec![receiver("hook", false), receiver("pager", true)];
        policy.routes = vec![EffectiveRoute {
            receivers: vec!["hook".into(), "pager".into()],
            severities: vec![],
            triggers: vec![],
        }];
        let mut status = IncidentStatus::default();
        for trigger in [Trigger::PostmortemOverdue, Trigger::Resolved] {
            route_one(&inc, &policy, trigger, "x", &mut status);
        }
        let keys: Vec<&str> = status
            .notifications
            .iter()
            .filter_map(|n| n.idempotency_key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "u1.1.PostmortemOverdue.hook",
                "u1.2.Resolved.hook",
                "u1.2.Resolved.pager"
            ]
        );
    }
}
