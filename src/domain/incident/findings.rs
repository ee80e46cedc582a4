//! Findings: timeline-worthy facts in the enrichment (a recent rollout,
//! the first OOMKill, crash loop or image pull failure of a Deployment).
//! Each has a key and is recorded once in `status.findings`, so it enters
//! the timeline once, whatever the timeline has shed since.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::{Entry, Kind, Reports};
use crate::api::{
    IncidentStatus,
    incident::{DeploymentState, WorkloadKind},
};

/// A rollout this long before the declaration is worth a timeline entry.
pub(crate) const ROLLOUT_WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// Pod failure reasons worth a timeline entry.
const FAILURES: [&str; 3] = ["OOMKilled", "CrashLoopBackOff", "ImagePullBackOff"];

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Identifies the fact, e.g. `Rollout/checkout/2`.
    pub key: String,
    /// When it happened, where known.
    pub time: Option<Time>,
    /// Its timeline entry's kind, and what it is about.
    pub entry: Entry,
    pub message: String,
}

/// When something happened, as a timeline entry says it: `4m before the
/// incident was declared`.
pub(crate) fn when(at: &Time, declared: &Time) -> String {
    if at.0 <= declared.0 {
        let seconds = declared.0.duration_since(at.0).as_secs();
        if seconds < 60 {
            format!("{seconds}s before the incident was declared")
        } else {
            format!("{}m before the incident was declared", seconds / 60)
        }
    } else {
        "after the incident was declared".to_string()
    }
}

/// Records the findings not yet recorded.
pub fn apply(status: &mut IncidentStatus, reports: &mut Reports, now: &Time) {
    let Some(declared) = status.declared_at.clone() else {
        return;
    };
    let found = find(status.workloads(), &declared);
    for finding in found {
        // Recorded in the timeline by a version that kept no keys.
        let in_timeline = status
            .timeline
            .iter()
            .any(|e| e.type_ == finding.entry.kind.as_str() && e.message == finding.message);
        if !super::remember(status, finding.key) || in_timeline {
            continue;
        }
        reports.add(
            &mut status.timeline,
            finding.time.unwrap_or_else(|| now.clone()),
            finding.entry,
            finding.message,
        );
    }
}

/// The findings in `workloads`' states; each is about a workload as its
/// [`WorkloadKind::key`](crate::api::incident::WorkloadKind::key) names it.
pub fn find<'a>(
    workloads: impl Iterator<Item = (WorkloadKind, &'a DeploymentState)>,
    declared: &Time,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let window_start = declared.0.checked_sub(ROLLOUT_WINDOW).unwrap_or(declared.0);
    for (kind, d) in workloads.filter(|(_, d)| d.found) {
        let name = kind.key(&d.name);
        if let Some(at) = &d.rollout_at
            && at.0 >= window_start
        {
            let revision = d.revision.as_deref().unwrap_or("?");
            let when = when(at, declared);
            let change = if d.previous_images.is_empty() || d.previous_images == d.images {
                String::new()
            } else {
                format!(
                    ": {} → {}",
                    d.previous_images.join(", "),
                    d.images.join(", ")
                )
            };
            found.push(Finding {
                key: format!("Rollout/{name}/{revision}"),
                time: Some(at.clone()),
                entry: Kind::Rollout.about(&name),
                message: format!("{name} rolled out revision {revision} {when}{change}"),
            });
        }
        let reasons = d
            .pods
            .as_ref()
            .map(|p| p.reasons.as_slice())
            .unwrap_or_default();
        for reason in FAILURES {
            if reasons.iter().any(|r| r.reason == reason) {
                found.push(Finding {
                    key: format!("PodFailure/{name}/{reason}"),
                    time: None,
                    entry: Kind::PodFailure.about(reason),
                    message: format!("{name}: pods show {reason}"),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, checkout};

    #[test]
    fn a_finding_is_recorded_once_even_after_the_timeline_shed_it() {
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-11-24T14:10:00Z"))),
            deployments: vec![checkout(1, &[("OOMKilled", 1)])],
            ..Default::default()
        };
        let now = Time(at("2026-11-24T14:10:05Z"));
        let mut reports = Reports::default();
        apply(&mut status, &mut reports, &now);
        assert_eq!(
            status.findings,
            ["Rollout/checkout/2", "PodFailure/checkout/OOMKilled"]
        );
        assert_eq!(reports.into_inner().len(), 2);
        // The timeline lost them (it is bounded); the findings stay facts.
        status.timeline.clear();
        let mut again = Reports::default();
        apply(&mut status, &mut again, &now);
        assert!(again.into_inner().is_empty());
        assert!(status.timeline.is_empty());
    }

    #[test]
    fn a_new_revision_is_a_new_finding() {
        let declared = Time(at("2026-11-24T14:10:00Z"));
        let mut d = checkout(1, &[]);
        let one =
            |d: &DeploymentState| find([(WorkloadKind::Deployment, d)].into_iter(), &declared);
        let first = one(&d);
        d.revision = Some("3".into());
        let second = one(&d);
        assert_ne!(first[0].key, second[0].key);
        assert!(second[0].message.contains("revision 3"));
        let set = find([(WorkloadKind::StatefulSet, &d)].into_iter(), &declared);
        assert_eq!(set[0].key, "Rollout/statefulset/checkout/3");
        assert!(
            set[0]
                .message
                .starts_with("statefulset/checkout rolled out")
        );
    }
}
