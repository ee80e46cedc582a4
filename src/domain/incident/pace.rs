//! How soon a planned status must be written.
//!
//! A busy cluster changes an incident's enrichment all the time: a pod
//! restarts again, a replica count moves, an event repeats, a query value
//! drifts. Writing each of those as it happens costs the apiserver one
//! write per pod change and gives responders nothing they can read that
//! fast. So a change is **urgent** (written at once) when it changes what
//! a responder acts on:
//! - anything of the lifecycle: phase, severity, deadlines, escalation,
//!   the timeline, notifications, the record (durations, postmortem,
//!   follow-ups, related), findings;
//! - a condition's status or reason;
//! - the failure reasons of an affected workload's pods, with how many
//!   pods fail with each now (a pod starting to crash-loop is urgent even
//!   when another pod already did). Not the pods that show a reason only
//!   as the last termination of containers running and ready again (a
//!   restart is a count), nor `Pending`, which every new pod shows first;
//! - a workload appearing, disappearing, being rolled out, or its
//!   Available or Progressing condition changing;
//! - a new worst in the impact record (the fewest ready replicas, a new
//!   reason), so the record never misses a low point;
//! - an alert joining, firing or resolving;
//! - the first CPU and memory sample of a workload, the first value or
//!   error of a query.
//!
//! Anything else is **routine** and waits until [`ROUTINE_INTERVAL`] has
//! passed since the incident's last write, and for a slot of the routine
//! write budget all incidents share (`--routine-writes`); the write that
//! follows carries the newest state. Routine: counts (ready, restarts, totals), pod lists,
//! `Pending` pods and pods running again after a failure,
//! CPU and memory once sampled, Warning events, query values once known,
//! summary and brief lines, condition messages, when an alert was last
//! seen.

use std::time::Duration;

use crate::api::IncidentStatus;

/// The least time between two writes of an incident's status that only
/// routine changes separate.
pub const ROUTINE_INTERVAL: Duration = Duration::from_secs(10);

/// The reason of a pod not started yet: every new pod shows it for its
/// first seconds, so it is routine; a pod that cannot be scheduled or
/// pulled says so with a reason of its own.
const PENDING: &str = "Pending";

/// How soon a change must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// At once.
    Urgent,
    /// Once [`ROUTINE_INTERVAL`] has passed since the last write.
    Routine,
}

/// How soon `new` must replace `old`.
pub fn pace(old: Option<&IncidentStatus>, new: &IncidentStatus) -> Pace {
    match old {
        Some(old) if facts(old) == facts(new) => Pace::Routine,
        _ => Pace::Urgent,
    }
}

/// The status without its routine parts.
pub fn facts(status: &IncidentStatus) -> IncidentStatus {
    let mut facts = status.clone();
    facts.enriched_at = None;
    facts.metrics_at = None;
    for metric in &mut facts.metrics {
        metric.value = metric.value.as_ref().map(|_| String::new());
        metric.error = metric.error.as_ref().map(|_| String::new());
    }
    facts.events.clear();
    facts.summary = None;
    facts.brief = None;
    for condition in &mut facts.conditions {
        condition.message.clear();
    }
    for alert in &mut facts.alerts {
        alert.last_seen = None;
    }
    for impact in &mut facts.impact {
        impact.restarts = None;
    }
    for deployment in facts.workloads_mut() {
        deployment.replicas = None;
        deployment.ready_replicas = None;
        deployment.available_replicas = None;
        deployment.updated_replicas = None;
        deployment.usage = deployment.usage.as_ref().map(|_| Default::default());
        if let Some(pods) = &mut deployment.pods {
            pods.reasons
                .retain(|r| r.failing() > 0 && r.reason != PENDING);
            for reason in &mut pods.reasons {
                reason.count = reason.failing();
                reason.recovered = None;
            }
            pods.total = 0;
            pods.ready = 0;
            pods.restarts = 0;
            pods.items.clear();
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::incident::{
        DeploymentState, EventSummary, PodState, PodsSummary, ReasonCount, Usage,
    };

    fn status(ready: i32, restarts: i32, reasons: &[(&str, i32)]) -> IncidentStatus {
        IncidentStatus {
            deployments: vec![DeploymentState {
                name: "checkout".into(),
                found: true,
                replicas: Some(3),
                ready_replicas: Some(ready),
                available: Some("True".into()),
                pods: Some(PodsSummary {
                    total: 3,
                    ready,
                    restarts,
                    reasons: reasons
                        .iter()
                        .map(|(reason, count)| ReasonCount {
                            reason: reason.to_string(),
                            count: *count,
                            recovered: None,
                        })
                        .collect(),
                    items: vec![PodState {
                        name: "checkout-1".into(),
                        ready: ready == 3,
                        restarts,
                        ..Default::default()
                    }],
                }),
                usage: Some(Usage {
                    cpu: Some(format!("{ready}00m")),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn counts_usage_and_events_are_routine() {
        let old = status(3, 1, &[("CrashLoopBackOff", 1)]);
        let mut new = status(2, 4, &[("CrashLoopBackOff", 1)]);
        new.events.push(EventSummary {
            reason: "BackOff".into(),
            count: 9,
            ..Default::default()
        });
        new.summary = Some("2/3 ready".into());
        assert_eq!(pace(Some(&old), &new), Pace::Routine);
    }

    #[test]
    fn failure_reasons_and_their_counts_are_urgent() {
        let old = status(3, 1, &[("CrashLoopBackOff", 1)]);
        for reasons in [
            &[("CrashLoopBackOff", 2)][..],
            &[("CrashLoopBackOff", 1), ("OOMKilled", 1)][..],
            &[][..],
        ] {
            assert_eq!(pace(Some(&old), &status(3, 1, reasons)), Pace::Urgent);
        }
    }

    #[test]
    fn pending_pods_and_pods_running_again_are_routine() {
        let with = |reasons: &[(&str, i32, Option<i32>)]| {
            let mut s = status(3, 1, &[]);
            if let Some(pods) = &mut s.deployments[0].pods {
                pods.reasons = reasons
                    .iter()
                    .map(|(reason, count, recovered)| ReasonCount {
                        reason: reason.to_string(),
                        count: *count,
                        recovered: *recovered,
                    })
                    .collect();
            }
            s
        };
        let old = with(&[("Error", 2, Some(1))]);
        for routine in [
            &[("Error", 3, Some(2))][..],
            &[("Error", 2, Some(1)), ("Pending", 1, None)][..],
        ] {
            assert_eq!(
                pace(Some(&old), &with(routine)),
                Pace::Routine,
                "{routine:?}"
            );
        }
        for urgent in [&[("Error", 3, Some(1))][..], &[("Error", 1, Some(1))][..]] {
            assert_eq!(pace(Some(&old), &with(urgent)), Pace::Urgent, "{urgent:?}");
        }
    }

    #[test]
    fn first_samples_are_urgent_later_ones_routine() {
        let mut old = status(3, 0, &[]);
        old.deployments[0].usage = None;
        let new = status(3, 0, &[]);
        assert_eq!(pace(Some(&old), &new), Pace::Urgent, "first CPU sample");

        let metric = |value: Option<&str>| crate::api::incident::MetricValue {
            name: "error_ratio".into(),
            value: value.map(str::to_string),
            query: "sum(rate(x[5m]))".into(),
            error: None,
        };
        let mut old = new.clone();
        old.metrics = vec![metric(None)];
        let mut first = new.clone();
        first.metrics = vec![metric(Some("0.2"))];
        assert_eq!(pace(Some(&old), &first), Pace::Urgent, "first value");
        let mut later = new.clone();
        later.metrics = vec![metric(Some("0.3"))];
        assert_eq!(pace(Some(&first), &later), Pace::Routine, "a new value");
    }

    #[test]
    fn the_lifecycle_and_the_record_are_urgent() {
        let old = status(3, 0, &[]);
        let mut new = old.clone();
        new.observed_phase = Some(crate::api::Phase::Acknowledged);
        assert_eq!(pace(Some(&old), &new), Pace::Urgent);
        let mut new = old.clone();
        new.deployments[0].available = Some("False".into());
        assert_eq!(pace(Some(&old), &new), Pace::Urgent);
        let mut new = old.clone();
        new.findings.push("rollout/checkout/2".into());
        assert_eq!(pace(Some(&old), &new), Pace::Urgent);
        assert_eq!(pace(None, &old), Pace::Urgent);
    }
}
