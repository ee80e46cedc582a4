//! Auto-resolution of incidents Klaxon declared from a signal: once the
//! workload has stayed healthy for the policy's `autoResolve.healthyFor`.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::{Kind, Reports};
use crate::{
    api::{Incident, IncidentStatus, Phase, policy::SignalType},
    domain::{
        alerts,
        policy::{EffectivePolicy, humantime},
        signals,
    },
};

/// The signal an incident was declared from, when Klaxon declared it.
fn signal(incident: &Incident) -> Option<SignalType> {
    incident
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(signals::SIGNAL_LABEL))
        .and_then(|s| signals::signal_type(s))
}

/// For an incident declared from alerts whose rule said
/// `resolveWithAlerts`: how long its alerts must stay resolved.
fn with_alerts(incident: &Incident) -> Option<std::time::Duration> {
    let labels = incident.metadata.labels.as_ref()?;
    labels.get(alerts::GROUP_LABEL)?;
    crate::api::duration::parse(
        incident
            .metadata
            .annotations
            .as_ref()?
            .get(alerts::RESOLVE_ANNOTATION)?,
    )
    .ok()
}

/// Alert-declared incidents: healthy since every alert resolved (the last
/// `endsAt`); due once that held for the rule's `healthyFor`.
fn apply_alerts(
    after: std::time::Duration,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> bool {
    // A flood incident holds more alerts than `status.alerts` lists: its
    // groups must all be quiet too.
    let flood_quiet = status.flood.as_ref().is_none_or(alerts::flood_quiet);
    let Some(ended) = alerts::all_resolved(&status.alerts).filter(|_| flood_quiet) else {
        status.healthy_since = None;
        return false;
    };
    status.healthy_since = Some(Time(ended));
    settle(
        ended,
        after,
        status,
        reports,
        now,
        format!(
            "Every alert resolved by {ended} and stayed so for {}; resolving",
            humantime(after)
        ),
    )
}

/// Due once `since` plus `after` has passed; enters the resolution in the
/// timeline once.
fn settle(
    since: jiff::Timestamp,
    after: std::time::Duration,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
    message: String,
) -> bool {
    let due = SignedDuration::try_from(after)
        .ok()
        .and_then(|after| since.checked_add(after).ok())
        .is_some_and(|at| at <= now.0);
    let recorded = |e: &crate::api::incident::TimelineEntry| e.type_ == Kind::AutoResolved.as_str();
    if due && !status.timeline.iter().any(recorded) {
        reports.add(
            &mut status.timeline,
            now.clone(),
            Kind::AutoResolved,
            message,
        );
    }
    due
}

/// Keeps `healthySince` current; true when the incident should resolve.
pub fn apply(
    incident: &Incident,
    policy: &EffectivePolicy,
    frozen: bool,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> bool {
    if frozen {
        return false;
    }
    if let Some(after) = with_alerts(incident) {
        if incident.spec.phase == Phase::Resolved {
            status.healthy_since = None;
            return false;
        }
        return apply_alerts(after, status, reports, now);
    }
    let (Some(signal), Some(after)) = (signal(incident), policy.auto_resolve) else {
        status.healthy_since = None;
        return false;
    };
    if incident.spec.phase == Phase::Resolved {
        status.healthy_since = None;
        return false;
    }
    if !signals::healthy(signal, status) {
        status.healthy_since = None;
        return false;
    }
    let since = status
        .healthy_since
        .get_or_insert_with(|| now.clone())
        .clone();
    settle(
        since.0,
        after,
        status,
        reports,
        now,
        format!(
            "Healthy since {} (for {}); resolving",
            since.0,
            humantime(after)
        ),
    )
}

/// When the incident resolves itself if it stays healthy.
pub fn next(
    status: &IncidentStatus,
    incident: &Incident,
    policy: &EffectivePolicy,
) -> Option<Timestamp> {
    if incident.spec.phase == Phase::Resolved {
        return None;
    }
    let since = status.healthy_since.as_ref()?;
    let after = match with_alerts(incident) {
        Some(after) => after,
        None => policy.auto_resolve?,
    };
    let after = SignedDuration::try_from(after).ok()?;
    since.0.checked_add(after).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::policy::{AutoResolve, ClusterResponsePolicy, ClusterResponsePolicySpec},
        domain::{
            incident::testing::{at, checkout, incident},
            policy,
        },
    };

    fn auto_resolving() -> EffectivePolicy {
        let org = ClusterResponsePolicy::new(
            "org",
            ClusterResponsePolicySpec {
                namespace_selector: None,
                policy: crate::api::ResponsePolicySpec {
                    auto_resolve: Some(AutoResolve {
                        healthy_for: "10m".into(),
                    }),
                    ..Default::default()
                },
            },
        );
        policy::effective("shop", &[&org], None, None, "klaxon-system")
    }

    fn declared_by_signal() -> Incident {
        let mut inc = incident(Phase::Triggered, "SEV2");
        inc.metadata.labels = Some(
            [(
                signals::SIGNAL_LABEL.to_string(),
                "DeploymentUnavailable".to_string(),
            )]
            .into(),
        );
        inc
    }

    /// checkout with `ready` of 3 replicas, Available when all are.
    fn checkout_available(ready: i32) -> crate::api::incident::DeploymentState {
        let mut d = checkout(ready, &[]);
        d.available = Some(if ready == 3 { "True" } else { "False" }.into());
        d
    }

    fn run(inc: &Incident, status: &mut IncidentStatus, now: &str) -> bool {
        let mut reports = Reports::default();
        apply(
            inc,
            &auto_resolving(),
            false,
            status,
            &mut reports,
            &Time(at(now)),
        )
    }

    #[test]
    fn resolves_after_staying_healthy_and_starts_over_when_health_goes() {
        let inc = declared_by_signal();
        let mut status = IncidentStatus {
            deployments: vec![checkout_available(3)],
            ..Default::default()
        };
        assert!(!run(&inc, &mut status, "2026-11-24T14:20:00Z"));
        assert_eq!(status.healthy_since, Some(Time(at("2026-11-24T14:20:00Z"))));
        assert_eq!(
            next(&status, &inc, &auto_resolving()),
            Some(at("2026-11-24T14:30:00Z"))
        );
        // Unhealthy again: the countdown starts over.
        status.deployments = vec![checkout_available(1)];
        assert!(!run(&inc, &mut status, "2026-11-24T14:25:00Z"));
        assert_eq!(status.healthy_since, None);
        status.deployments = vec![checkout_available(3)];
        assert!(!run(&inc, &mut status, "2026-11-24T14:26:00Z"));
        assert!(run(&inc, &mut status, "2026-11-24T14:36:00Z"));
        assert!(status.timeline.iter().any(|e| e.type_ == "AutoResolved"));
    }

    #[test]
    fn only_incidents_klaxon_declared_resolve_themselves() {
        let inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            deployments: vec![checkout_available(3)],
            ..Default::default()
        };
        assert!(!run(&inc, &mut status, "2026-11-24T14:20:00Z"));
        assert!(!run(&inc, &mut status, "2026-11-24T18:00:00Z"));
        assert_eq!(status.healthy_since, None);
    }
}
