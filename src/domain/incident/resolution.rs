//! Auto-resolution of incidents Klaxon declared from a signal: once the
//! workload has stayed healthy for the policy's `autoResolve.healthyFor`.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::Reports;
use crate::{
    api::{Incident, IncidentStatus, Phase, policy::SignalType},
    domain::{
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
    let (Some(signal), Some(after)) = (signal(incident), policy.auto_resolve) else {
        status.healthy_since = None;
        return false;
    };
    if incident.spec.phase == Phase::Resolved {
        status.healthy_since = None;
        return false;
    }
    if !signals::healthy(signal, &status.deployments) {
        status.healthy_since = None;
        return false;
    }
    let since = status
        .healthy_since
        .get_or_insert_with(|| now.clone())
        .clone();
    let due = SignedDuration::try_from(after)
        .ok()
        .and_then(|after| since.0.checked_add(after).ok())
        .is_some_and(|at| at <= now.0);
    if due && !status.timeline.iter().any(|e| e.type_ == "AutoResolved") {
        reports.add(
            &mut status.timeline,
            now.clone(),
            "AutoResolved",
            format!(
                "Healthy since {} (for {}); resolving",
                since.0,
                humantime(after)
            ),
        );
    }
    due
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
    let after = SignedDuration::try_from(policy.auto_resolve?).ok()?;
    since.0.checked_add(after).ok()
}
