//! The learning record's clock: when impact started, how long each stage
//! took, and the rollouts of affected Deployments that preceded the
//! declaration. Each duration is set once its end exists and never
//! changes afterwards; [`observed`] tells which ones a status write
//! recorded first, so metrics observe each exactly once.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    findings::ROLLOUT_WINDOW,
    timeline::{Kind, Reports},
};
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{Durations, ReasonCount, RecordedLog, RolloutRecord, WorkloadImpact},
        limits::{MAX_IMPACT, MAX_IMPACT_REASONS, MAX_LOG_RECORDS, MAX_ROLLOUTS},
    },
    domain::{alerts, policy::humantime, signals},
};

/// When the outage an auto-declared incident is about began (RFC 3339):
/// the signal's condition start, the first alert's `startsAt`, the last
/// heartbeat. Set by the operator when it declares.
pub const STARTED_AT_ANNOTATION: &str = "klaxon.dev/started-at";

/// How an incident was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// By a person.
    Manual,
    /// By Klaxon, from a policy's signal.
    Signal,
    /// By Klaxon, from Alertmanager's alerts.
    Alert,
    /// By Klaxon, for a silent heartbeat.
    Heartbeat,
}

impl Source {
    /// The `source` label of `klaxon_incidents_declared_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::Signal => "signal",
            Source::Alert => "alert",
            Source::Heartbeat => "heartbeat",
        }
    }
}

/// How an incident was declared, from the labels Klaxon marks its own with.
pub fn source(incident: &Incident) -> Source {
    let labels = incident.metadata.labels.as_ref();
    let has = |label: &str| labels.is_some_and(|l| l.contains_key(label));
    if has(alerts::HEARTBEAT_LABEL) {
        Source::Heartbeat
    } else if has(alerts::GROUP_LABEL) {
        Source::Alert
    } else if has(signals::SIGNAL_LABEL) {
        Source::Signal
    } else {
        Source::Manual
    }
}

/// Keeps `startedAt`, the rollouts before the declaration (until the
/// record is frozen) and the durations current.
pub fn apply(
    incident: &Incident,
    frozen: bool,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) {
    let Some(declared) = status.declared_at.clone() else {
        return;
    };
    started(incident, &declared, status, reports, now);
    if !frozen {
        rollouts(&declared, status);
        impact(status);
        logs(status);
    }
    durations(status);
}

/// Keeps, per affected workload (by [`WorkloadKind::key`]), the worst it got: the fewest ready
/// replicas, the most restarts, and every failure reason with the most
/// pods that failed with it at once.
fn impact(status: &mut IncidentStatus) {
    let mut impact = std::mem::take(&mut status.impact);
    for (kind, d) in status.workloads().filter(|(_, d)| d.found) {
        let name = kind.key(&d.name);
        let at = match impact.iter().position(|i| i.name == name) {
            Some(at) => at,
            None if impact.len() < MAX_IMPACT as usize => {
                impact.push(WorkloadImpact {
                    name,
                    ..Default::default()
                });
                impact.len() - 1
            }
            None => continue,
        };
        let worst = &mut impact[at];
        let ready = d.ready_replicas.unwrap_or(0);
        if worst.worst_ready.is_none_or(|w| ready < w) {
            worst.worst_ready = Some(ready);
            worst.replicas = d.replicas;
        }
        let Some(pods) = &d.pods else { continue };
        worst.restarts = Some(worst.restarts.unwrap_or(0).max(pods.restarts));
        // Pods failing at once: not those running and ready again.
        for reason in pods.reasons.iter().filter(|r| r.failing() > 0) {
            match worst.reasons.iter_mut().find(|r| r.reason == reason.reason) {
                Some(seen) => seen.count = seen.count.max(reason.failing()),
                None => worst.reasons.push(ReasonCount {
                    reason: reason.reason.clone(),
                    count: reason.failing(),
                    recovered: None,
                }),
            }
        }
        worst
            .reasons
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        worst.reasons.truncate(MAX_IMPACT_REASONS as usize);
    }
    status.impact = impact;
}

/// Keeps the latest excerpt read of each failing container (by pod and
/// container), most recently read first, at most the record's bound: the
/// pods recover or are replaced, their last lines stay.
fn logs(status: &mut IncidentStatus) {
    let mut logs = std::mem::take(&mut status.logs);
    for (kind, d) in status.workloads() {
        let items = d.pods.iter().flat_map(|p| &p.items);
        for (pod, log) in items.filter_map(|p| Some((&p.name, p.log.as_ref()?))) {
            if log.lines.is_empty() {
                continue;
            }
            let same = |r: &RecordedLog| r.pod == *pod && r.log.container == log.container;
            match logs.iter_mut().find(|r| same(r)) {
                Some(known) if known.log.restart_count >= log.restart_count => {}
                Some(known) => known.log = log.clone(),
                None => logs.push(RecordedLog {
                    workload: kind.key(&d.name),
                    pod: pod.clone(),
                    log: log.clone(),
                }),
            }
        }
    }
    // A total order: the same ones are kept on every pass.
    logs.sort_by(|a, b| {
        let at = |r: &RecordedLog| r.log.fetched_at.as_ref().map(|t| t.0);
        at(b)
            .cmp(&at(a))
            .then_with(|| (&a.pod, &a.log.container).cmp(&(&b.pod, &b.log.container)))
    });
    logs.truncate(MAX_LOG_RECORDS as usize);
    status.logs = logs;
}

/// The earliest of what says when impact started, with where it came from.
fn impact_start(
    incident: &Incident,
    declared: &Time,
    status: &IncidentStatus,
) -> (Time, &'static str) {
    let annotated = incident
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STARTED_AT_ANNOTATION))
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| (Time(t), "the outage Klaxon declared it for"));
    let alert = status
        .alerts
        .iter()
        .map(|a| &a.starts_at)
        .min_by_key(|t| t.0)
        .map(|t| (t.clone(), "the first alert"));
    let spec = incident
        .spec
        .impact_started_at
        .clone()
        .map(|t| (t, "spec.impactStartedAt"));
    [spec, annotated, alert]
        .into_iter()
        .flatten()
        .map(|(t, from)| (super::second(t.0), from))
        .fold((declared.clone(), "the declaration"), |earliest, next| {
            if next.0.0 < earliest.0.0 {
                next
            } else {
                earliest
            }
        })
}

fn started(
    incident: &Incident,
    declared: &Time,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) {
    let (mut at, mut from) = impact_start(incident, declared, status);
    // Only a person moves it later (by setting spec.impactStartedAt): the
    // alerts that said it started earlier may have been shed since.
    if let Some(before) = &status.started_at
        && at.0 > before.0
        && incident.spec.impact_started_at.is_none()
    {
        (at, from) = (before.clone(), "");
    }
    if let Some(before) = &status.started_at
        && before.0 != at.0
    {
        reports.add(
            &mut status.timeline,
            now.clone(),
            Kind::ImpactStarted,
            format!(
                "Impact started at {} (from {from}), not {}; durations already recorded stay as they were",
                at.0, before.0
            ),
        );
    }
    status.started_at = Some(at);
}

/// Records each rollout of an affected workload in the hour before the
/// declaration once, as first seen (a rollback later replaces what the
/// Deployment shows, not this record).
fn rollouts(declared: &Time, status: &mut IncidentStatus) {
    let window_start = declared.0.checked_sub(ROLLOUT_WINDOW).unwrap_or(declared.0);
    let mut rollouts = std::mem::take(&mut status.rollouts);
    for (kind, d) in status.workloads().filter(|(_, d)| d.found) {
        let Some(at) = &d.rollout_at else { continue };
        if at.0 < window_start || at.0 > declared.0 {
            continue;
        }
        let name = kind.key(&d.name);
        let known = rollouts
            .iter()
            .any(|r| r.name == name && r.revision == d.revision);
        if !known {
            rollouts.push(RolloutRecord {
                name,
                revision: d.revision.clone(),
                at: at.clone(),
                images: d.images.clone(),
                previous_images: d.previous_images.clone(),
            });
        }
    }
    status.rollouts = rollouts;
    // A total order, so the ones kept when there are too many are the same
    // on every pass.
    status
        .rollouts
        .sort_by(|a, b| (a.at.0, &a.name, &a.revision).cmp(&(b.at.0, &b.name, &b.revision)));
    let excess = status.rollouts.len().saturating_sub(MAX_ROLLOUTS as usize);
    status.rollouts.drain(..excess);
}

/// The earliest of the times given.
fn first(times: &[Option<&Time>]) -> Option<Time> {
    times
        .iter()
        .flatten()
        .min_by_key(|t| t.0)
        .map(|t| (*t).clone())
}

/// The ends of each stage. A phase skipped counts as entered with the
/// next one: an incident resolved straight from Triggered was
/// acknowledged and mitigated when it was resolved.
struct Ends {
    acknowledged: Option<Time>,
    mitigated: Option<Time>,
}

fn ends(status: &IncidentStatus) -> Ends {
    let (ack, mit, res) = (
        status.acknowledged_at.as_ref(),
        status.mitigated_at.as_ref(),
        status.resolved_at.as_ref(),
    );
    Ends {
        acknowledged: first(&[ack, mit, res]),
        mitigated: first(&[mit, res]),
    }
}

/// `to - from`, never negative.
pub fn span(from: &Time, to: &Time) -> std::time::Duration {
    let d = to.0.duration_since(from.0);
    std::time::Duration::try_from(d.max(SignedDuration::ZERO)).unwrap_or_default()
}

/// The rollout a resolution recovers from: the latest before the
/// declaration.
fn recovered_from(status: &IncidentStatus) -> Option<&Time> {
    status.rollouts.iter().map(|r| &r.at).max_by_key(|t| t.0)
}

fn durations(status: &mut IncidentStatus) {
    let (Some(start), Some(declared)) = (status.started_at.clone(), status.declared_at.clone())
    else {
        return;
    };
    let ends = ends(status);
    let resolved = status.resolved_at.clone();
    let rollout = recovered_from(status).cloned();
    let d = status.durations.get_or_insert_with(Durations::default);
    let set = |slot: &mut Option<String>, from: Option<&Time>, to: Option<&Time>| {
        if slot.is_none()
            && let (Some(from), Some(to)) = (from, to)
        {
            *slot = Some(humantime(span(from, to)));
        }
    };
    set(&mut d.to_detect, Some(&start), Some(&declared));
    set(
        &mut d.to_acknowledge,
        Some(&declared),
        ends.acknowledged.as_ref(),
    );
    set(&mut d.to_mitigate, Some(&start), ends.mitigated.as_ref());
    set(&mut d.to_resolve, Some(&start), resolved.as_ref());
    set(&mut d.to_recover, rollout.as_ref(), resolved.as_ref());
}

/// What one status write recorded for the first time, in seconds: each
/// is observed by the metrics exactly once, when the write that first
/// records the end of its stage succeeds. A duration that appears for an
/// end recorded earlier (by a version that kept no durations) is not
/// observed: it happened before this operator could count it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub declared: bool,
    pub resolved: bool,
    pub detect: Option<f64>,
    pub acknowledge: Option<f64>,
    pub mitigate: Option<f64>,
    pub resolve: Option<f64>,
    pub recover: Option<f64>,
}

pub fn observed(before: &IncidentStatus, after: &IncidentStatus) -> Observed {
    let mut out = Observed {
        declared: before.declared_at.is_none() && after.declared_at.is_some(),
        resolved: before.resolved_at.is_none() && after.resolved_at.is_some(),
        ..Default::default()
    };
    let (Some(start), Some(declared)) = (&after.started_at, &after.declared_at) else {
        return out;
    };
    let (was, now) = (ends(before), ends(after));
    let had = |d: fn(&Durations) -> &Option<String>| {
        before.durations.as_ref().is_some_and(|b| d(b).is_some())
    };
    let seconds = |from: &Time, to: &Time| span(from, to).as_secs_f64();
    if out.declared && !had(|d| &d.to_detect) {
        out.detect = Some(seconds(start, declared));
    }
    if was.acknowledged.is_none()
        && !had(|d| &d.to_acknowledge)
        && let Some(end) = &now.acknowledged
    {
        out.acknowledge = Some(seconds(declared, end));
    }
    if was.mitigated.is_none()
        && !had(|d| &d.to_mitigate)
        && let Some(end) = &now.mitigated
    {
        out.mitigate = Some(seconds(start, end));
    }
    if out.resolved
        && let Some(end) = &after.resolved_at
    {
        if !had(|d| &d.to_resolve) {
            out.resolve = Some(seconds(start, end));
        }
        if !had(|d| &d.to_recover)
            && let Some(rollout) = recovered_from(after)
        {
            out.recover = Some(seconds(rollout, end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{
            Phase,
            incident::{AlertState, AlertStatus},
        },
        domain::incident::testing::{at, checkout, incident},
    };

    fn time(text: &str) -> Time {
        Time(at(text))
    }

    fn run(inc: &Incident, status: &mut IncidentStatus) {
        apply(
            inc,
            false,
            status,
            &mut Reports::default(),
            &time("2026-11-24T16:30:00Z"),
        );
    }

    #[test]
    fn impact_starts_at_the_earliest_of_what_says_so() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            ..Default::default()
        };
        run(&inc, &mut status);
        assert_eq!(status.started_at, Some(time("2026-11-24T14:10:00Z")));

        status.alerts = vec![AlertState {
            fingerprint: "f".into(),
            labels: Default::default(),
            state: AlertStatus::Firing,
            starts_at: time("2026-11-24T14:06:00Z"),
            ends_at: None,
            last_seen: None,
            link: None,
        }];
        inc.metadata.annotations = Some(
            [(
                STARTED_AT_ANNOTATION.to_string(),
                "2026-11-24T14:07:00Z".to_string(),
            )]
            .into(),
        );
        inc.spec.impact_started_at = Some(time("2026-11-24T13:55:30.250Z"));
        let mut reports = Reports::default();
        apply(
            &inc,
            false,
            &mut status,
            &mut reports,
            &time("2026-11-24T14:11:00Z"),
        );
        assert_eq!(
            status.started_at,
            Some(time("2026-11-24T13:55:30Z")),
            "whole seconds, like every status time"
        );
        let said = reports.into_inner();
        assert_eq!(said.len(), 1);
        assert!(said[0].message.contains("spec.impactStartedAt"), "{said:?}");
    }

    #[test]
    fn each_duration_is_set_once_its_end_exists_and_never_changes() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        inc.spec.impact_started_at = Some(time("2026-11-24T13:55:00Z"));
        let mut status = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            ..Default::default()
        };
        run(&inc, &mut status);
        let d = status.durations.clone().expect("durations");
        assert_eq!(d.to_detect.as_deref(), Some("15m"));
        assert_eq!(d.to_acknowledge, None);

        status.acknowledged_at = Some(time("2026-11-24T14:14:12Z"));
        run(&inc, &mut status);
        status.mitigated_at = Some(time("2026-11-24T14:40:00Z"));
        run(&inc, &mut status);
        status.resolved_at = Some(time("2026-11-24T16:00:05Z"));
        run(&inc, &mut status);
        assert_eq!(
            status.durations,
            Some(Durations {
                to_detect: Some("15m".into()),
                to_acknowledge: Some("4m12s".into()),
                to_mitigate: Some("45m".into()),
                to_resolve: Some("2h5m5s".into()),
                to_recover: None,
            })
        );

        // A later, earlier impact start moves startedAt, not the record.
        inc.spec.impact_started_at = Some(time("2026-11-24T13:00:00Z"));
        let before = status.durations.clone();
        run(&inc, &mut status);
        assert_eq!(status.started_at, Some(time("2026-11-24T13:00:00Z")));
        assert_eq!(status.durations, before);

        // A person may move it later; shed alerts may not.
        inc.spec.impact_started_at = Some(time("2026-11-24T13:50:00Z"));
        run(&inc, &mut status);
        assert_eq!(status.started_at, Some(time("2026-11-24T13:50:00Z")));
        inc.spec.impact_started_at = None;
        run(&inc, &mut status);
        assert_eq!(status.started_at, Some(time("2026-11-24T13:50:00Z")));
    }

    #[test]
    fn the_record_keeps_the_worst_each_deployment_got() {
        let inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            deployments: vec![checkout(2, &[("CrashLoopBackOff", 1)])],
            ..Default::default()
        };
        run(&inc, &mut status);
        status.deployments = vec![checkout(0, &[("OOMKilled", 3), ("CrashLoopBackOff", 2)])];
        run(&inc, &mut status);
        // Healthy again: the record keeps the worst. Pods that show a
        // reason only as a past termination were not failing at once.
        status.deployments = vec![checkout(3, &[("OOMKilled", 3)])];
        if let Some(pods) = &mut status.deployments[0].pods {
            pods.reasons[0].count = 5;
            pods.reasons[0].recovered = Some(5);
        }
        run(&inc, &mut status);
        let worst = &status.impact[0];
        assert_eq!((worst.worst_ready, worst.replicas), (Some(0), Some(3)));
        let reasons: Vec<(&str, i32)> = worst
            .reasons
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect();
        assert_eq!(reasons, [("OOMKilled", 3), ("CrashLoopBackOff", 2)]);
    }

    #[test]
    fn a_skipped_phase_counts_as_entered_with_the_next() {
        let inc = incident(Phase::Resolved, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            resolved_at: Some(time("2026-11-24T14:30:00Z")),
            ..Default::default()
        };
        run(&inc, &mut status);
        let d = status.durations.expect("durations");
        assert_eq!(d.to_acknowledge.as_deref(), Some("20m"));
        assert_eq!(d.to_mitigate.as_deref(), Some("20m"));
        assert_eq!(d.to_resolve.as_deref(), Some("20m"));
    }

    #[test]
    fn a_rollout_before_the_declaration_is_kept_and_recovery_runs_from_it() {
        let inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            // Rolled out at 14:01 (the fixture), revision 2.
            deployments: vec![checkout(1, &[])],
            ..Default::default()
        };
        run(&inc, &mut status);
        assert_eq!(status.rollouts.len(), 1);
        assert_eq!(status.rollouts[0].previous_images, ["shop/checkout:v41"]);

        // The rollback after the declaration is not what changed before.
        let mut rolled_back = checkout(3, &[]);
        rolled_back.revision = Some("3".into());
        rolled_back.rollout_at = Some(time("2026-11-24T14:20:00Z"));
        status.deployments = vec![rolled_back];
        let before = status.clone();
        status.resolved_at = Some(time("2026-11-24T14:31:00Z"));
        run(&inc, &mut status);
        assert_eq!(status.rollouts.len(), 1);
        let d = status.durations.clone().expect("durations");
        assert_eq!(d.to_recover.as_deref(), Some("30m"));

        let seen = observed(&before, &status);
        assert_eq!(seen.recover, Some(1800.0));
        assert!(seen.resolved && !seen.declared);
    }

    #[test]
    fn a_write_observes_only_what_it_recorded_first() {
        let inc = incident(Phase::Triggered, "SEV2");
        let empty = IncidentStatus::default();
        let mut first = IncidentStatus {
            declared_at: Some(time("2026-11-24T14:10:00Z")),
            ..Default::default()
        };
        run(&inc, &mut first);
        let seen = observed(&empty, &first);
        assert!(seen.declared);
        assert_eq!(seen.detect, Some(0.0));
        assert_eq!(seen.acknowledge, None);
        // Planning again observes nothing.
        assert_eq!(observed(&first, &first), Observed::default());

        let mut acked = first.clone();
        acked.acknowledged_at = Some(time("2026-11-24T14:12:00Z"));
        run(&inc, &mut acked);
        assert_eq!(observed(&first, &acked).acknowledge, Some(120.0));

        // An incident acknowledged under a version that kept no
        // durations: the duration appears now, but is not observed.
        let mut old = first.clone();
        old.durations = None;
        old.acknowledged_at = acked.acknowledged_at.clone();
        let mut upgraded = old.clone();
        run(&inc, &mut upgraded);
        assert!(
            upgraded
                .durations
                .as_ref()
                .and_then(|d| d.to_acknowledge.clone())
                .is_some()
        );
        assert_eq!(observed(&old, &upgraded), Observed::default());
    }
}
