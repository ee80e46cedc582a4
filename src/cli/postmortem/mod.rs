//! `kubectl incident postmortem`: a Markdown draft of the postmortem from
//! the incident's record, rendered from a template (minijinja, Jinja2
//! syntax) over [`Context`].
//!
//! The context is the template's contract: its field names are stable
//! and each is documented in `context.rs` and in the README ("Postmortems"). Names
//! are snake_case, as Jinja templates write them. Every time is in UTC,
//! written `2026-11-24 14:02:05 UTC`; a time, duration or value the
//! record lacks is `none`, and a list it lacks is empty, so a template can
//! test any field with `{% if ... %}`.

mod context;
mod template;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use self::{
    context::*,
    template::{BUILTIN, Origin, Template, find, render},
};
use super::view::span;
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{
            AlertState, AlertStatus, DeliveryState, PostmortemState, ReasonCount, TimelineEntry,
            WorkloadKind,
        },
    },
    domain::incident::{aftercare::overdue_at, record},
};

/// `2026-11-24 14:02:05 UTC`.
pub fn utc(time: &Time) -> String {
    time.0.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn utc_opt(time: &Option<Time>) -> Option<String> {
    time.as_ref().map(utc)
}

/// `+5m`, `-50s`: from the declaration to `at`.
fn since(declared: Option<&Time>, at: &Time) -> Option<String> {
    let declared = declared?;
    let sign = if at.0 < declared.0 { "-" } else { "+" };
    Some(format!("{sign}{}", span(declared.0, at.0)))
}

fn reasons(reasons: &[ReasonCount]) -> Vec<Reason> {
    reasons
        .iter()
        .map(|r| Reason {
            reason: r.reason.clone(),
            count: r.count,
        })
        .collect()
}

/// The context of the draft of `incident`, made at `now`.
pub fn context(incident: &Incident, now: Timestamp) -> Context {
    let empty = IncidentStatus::default();
    let status = incident.status.as_ref().unwrap_or(&empty);
    let spec = &incident.spec;
    let declared = status.declared_at.as_ref();
    let timeline: Vec<Entry> = status.timeline.iter().map(|e| entry(declared, e)).collect();
    let follow_ups = follow_ups(incident, now);
    let follow_up_counts = FollowUpCounts {
        open: follow_ups.iter().filter(|f| !f.done).count(),
        done: follow_ups.iter().filter(|f| f.done).count(),
        overdue: follow_ups.iter().filter(|f| f.overdue).count(),
    };
    let d = status.durations.clone().unwrap_or_default();
    Context {
        drafted_at: utc(&Time(now)),
        incident: about(incident, status),
        times: Times {
            started_at: utc_opt(&status.started_at),
            impact_started_at: utc_opt(&spec.impact_started_at),
            declared_at: utc_opt(&status.declared_at),
            acknowledge_by: utc_opt(&status.acknowledge_by),
            acknowledged_at: utc_opt(&status.acknowledged_at),
            escalated_at: utc_opt(&status.escalated_at),
            mitigated_at: utc_opt(&status.mitigated_at),
            resolved_at: utc_opt(&status.resolved_at),
        },
        durations: Durations {
            to_detect: d.to_detect,
            to_acknowledge: d.to_acknowledge,
            to_mitigate: d.to_mitigate,
            to_resolve: d.to_resolve,
            to_recover: d.to_recover,
        },
        impact: impact(status),
        rollouts: rollouts(status),
        changes: changes(status),
        paging: paging(status, &timeline),
        timeline,
        notes: spec
            .notes
            .iter()
            .map(|n| NoteLine {
                time: utc_opt(&n.time),
                author: n.author.clone(),
                text: n.text.clone(),
            })
            .collect(),
        evidence: evidence(status),
        alerts: status.alerts.iter().map(alert).collect(),
        follow_ups,
        follow_up_counts,
        postmortem: Postmortem {
            required: status.postmortem.as_ref().is_some_and(|p| p.required),
            state: status
                .postmortem
                .as_ref()
                .map(|p| p.state.as_str().to_string()),
            due: status.postmortem.as_ref().and_then(|p| utc_opt(&p.due)),
            url: spec.postmortem.as_ref().map(|p| p.url.clone()),
        },
        related: status
            .related
            .iter()
            .map(|r| Related {
                name: r.name.clone(),
                relation: r.relation.as_str().to_string(),
                resolved_at: utc_opt(&r.resolved_at),
                detected: r.detected,
            })
            .collect(),
    }
}

fn about(incident: &Incident, status: &IncidentStatus) -> About {
    let spec = &incident.spec;
    About {
        name: incident.metadata.name.clone().unwrap_or_default(),
        namespace: incident.metadata.namespace.clone().unwrap_or_default(),
        title: spec.title.clone(),
        severity: spec.severity.clone(),
        phase: spec.phase.to_string(),
        team: status.team.clone(),
        commander: spec.commander.clone().filter(|c| !c.is_empty()),
        responders: spec.responders.clone(),
        summary: spec.summary.clone(),
        status_summary: status.summary.clone(),
        source: record::source(incident).as_str().to_string(),
    }
}

fn entry(declared: Option<&Time>, e: &TimelineEntry) -> Entry {
    Entry {
        time: utc(&e.time),
        clock: e.time.0.strftime("%H:%M:%S").to_string(),
        since_declared: since(declared, &e.time),
        type_: e.type_.clone(),
        message: e.message.clone(),
    }
}

/// The follow-ups numbered from 1, each overdue once its due day (UTC)
/// is over at `now`.
fn follow_ups(incident: &Incident, now: Timestamp) -> Vec<FollowUp> {
    incident
        .spec
        .follow_ups
        .iter()
        .enumerate()
        .map(|(n, item)| FollowUp {
            number: n + 1,
            title: item.title.clone(),
            owner: item.owner.clone(),
            due: item.due.clone(),
            url: item.url.clone(),
            done: item.done,
            overdue: !item.done
                && item
                    .due
                    .as_deref()
                    .and_then(overdue_at)
                    .is_some_and(|at| at <= now),
        })
        .collect()
}

fn changes(status: &IncidentStatus) -> Vec<ChangeLine> {
    let declared = status.declared_at.as_ref();
    status
        .changes
        .iter()
        .rev()
        .map(|c| ChangeLine {
            at: utc(&c.time),
            before_declaration: declared
                .filter(|d| c.time.0 <= d.0)
                .map(|d| span(c.time.0, d.0)),
            workload: c.label(),
            change: c.change.clone(),
            by: c.by.clone(),
            source: c.source.clone(),
            suspect: c.suspect == Some(true),
        })
        .collect()
}

fn rollouts(status: &IncidentStatus) -> Vec<Rollout> {
    let declared = status.declared_at.as_ref();
    status
        .rollouts
        .iter()
        .map(|r| Rollout {
            workload: r.name.clone(),
            revision: r.revision.clone(),
            at: utc(&r.at),
            before_declaration: declared
                .filter(|d| r.at.0 <= d.0)
                .map(|d| span(r.at.0, d.0)),
            images: r.images.clone(),
            previous_images: r.previous_images.clone(),
        })
        .collect()
}

fn alert(a: &AlertState) -> Alert {
    Alert {
        name: a.labels.get("alertname").cloned(),
        state: match a.state {
            AlertStatus::Firing => "Firing",
            AlertStatus::Resolved => "Resolved",
        }
        .to_string(),
        starts_at: utc(&a.starts_at),
        ends_at: utc_opt(&a.ends_at),
        link: a.link.clone(),
        labels: a.labels.clone(),
    }
}

/// The worst each workload got, else how it was last seen.
fn impact(status: &IncidentStatus) -> Impact {
    let metrics = status
        .metrics
        .iter()
        .map(|m| Metric {
            name: m.name.clone(),
            value: m.value.clone(),
            query: m.query.clone(),
            error: m.error.clone(),
        })
        .collect();
    if !status.impact.is_empty() {
        let mut workloads: Vec<Workload> = status
            .impact
            .iter()
            .map(|w| (WorkloadKind::of_key(&w.name), w))
            .map(|((kind, name), w)| Workload {
                kind: kind.as_str().into(),
                name: name.to_string(),
                found: true,
                ready: w.worst_ready,
                replicas: w.replicas,
                restarts: w.restarts,
                reasons: reasons(&w.reasons),
            })
            .collect();
        // A workload never found has no worst; it still was affected.
        workloads.extend(
            status
                .workloads()
                .filter(|(kind, d)| {
                    !d.found && !status.impact.iter().any(|w| w.name == kind.key(&d.name))
                })
                .map(|(kind, d)| Workload {
                    kind: kind.as_str().into(),
                    name: d.name.clone(),
                    found: false,
                    ready: None,
                    replicas: None,
                    restarts: None,
                    reasons: vec![],
                }),
        );
        return Impact {
            basis: "worst".into(),
            workloads,
            metrics,
        };
    }
    Impact {
        basis: "last".into(),
        workloads: status
            .workloads()
            .map(|(kind, d)| Workload {
                kind: kind.as_str().into(),
                name: d.name.clone(),
                found: d.found,
                ready: d.found.then(|| d.ready_replicas.unwrap_or(0)),
                replicas: d.replicas,
                restarts: d.pods.as_ref().map(|p| p.restarts),
                reasons: d
                    .pods
                    .as_ref()
                    .map(|p| reasons(&p.reasons))
                    .unwrap_or_default(),
            })
            .collect(),
        metrics,
    }
}

fn paging(status: &IncidentStatus, timeline: &[Entry]) -> Paging {
    let count = |state: DeliveryState| {
        status
            .notifications
            .iter()
            .filter(|n| n.state == state)
            .count() as i32
    };
    let history = status.notification_history.clone().unwrap_or_default();
    Paging {
        notifications: status
            .notifications
            .iter()
            .map(|n| Page {
                receiver: n.receiver.clone(),
                trigger: n.trigger.clone(),
                transition: n.transition.clone(),
                state: match n.state {
                    DeliveryState::Pending => "Pending",
                    DeliveryState::Delivered => "Delivered",
                    DeliveryState::Failed => "Failed",
                }
                .to_string(),
                attempts: n.attempts,
                last_attempt_at: utc_opt(&n.last_attempt_at),
                message: n.message.clone(),
            })
            .collect(),
        delivered: count(DeliveryState::Delivered) + history.delivered,
        failed: count(DeliveryState::Failed) + history.failed,
        pending: count(DeliveryState::Pending),
        summarised: history.delivered + history.failed,
        escalations: timeline
            .iter()
            .filter(|e| e.type_ == "Escalated")
            .cloned()
            .collect(),
    }
}

fn evidence(status: &IncidentStatus) -> Evidence {
    let mut events: Vec<Event> = status
        .events
        .iter()
        .map(|e| Event {
            reason: e.reason.clone(),
            object: e.object.clone(),
            message: e.message.clone(),
            count: e.count,
            first_seen: utc_opt(&e.first_seen),
            last_seen: utc_opt(&e.last_seen),
        })
        .collect();
    // Stable: the most recent first among equal counts, as recorded.
    events.sort_by_key(|e| std::cmp::Reverse(e.count));
    let impact = self::impact(status);
    let mut reasons: Vec<WorkloadReason> = impact
        .workloads
        .iter()
        .flat_map(|w| {
            w.reasons.iter().map(|r| WorkloadReason {
                workload: WorkloadKind::parse(&w.kind)
                    .map(|k| k.key(&w.name))
                    .unwrap_or_else(|| w.name.clone()),
                reason: r.reason.clone(),
                count: r.count,
            })
        })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.count));
    let pods = status
        .workloads()
        .flat_map(|(kind, d)| {
            d.pods
                .iter()
                .flat_map(|p| &p.items)
                .filter(|p| !p.ready)
                .map(move |p| Pod {
                    workload: kind.key(&d.name),
                    name: p.name.clone(),
                    reason: p.reason.clone().or_else(|| p.phase.clone()),
                    restarts: p.restarts,
                    message: p.message.clone(),
                })
        })
        .collect();
    let logs = status
        .logs
        .iter()
        .map(|r| Log {
            workload: r.workload.clone(),
            pod: r.pod.clone(),
            container: r.log.container.clone(),
            read_at: r.log.fetched_at.as_ref().map(utc),
            previous: r.log.previous,
            lines: r.log.lines.clone(),
            truncated: r.log.truncated,
        })
        .collect();
    Evidence {
        events,
        reasons,
        pods,
        logs,
    }
}

/// Whether the postmortem is overdue: the operator says so, or it is
/// required, not linked, and past its due time.
pub fn overdue(incident: &Incident, now: Timestamp) -> bool {
    let Some(pm) = incident.status.as_ref().and_then(|s| s.postmortem.as_ref()) else {
        return false;
    };
    pm.state == PostmortemState::Overdue
        || (pm.required
            && incident.spec.postmortem.is_none()
            && pm.due.as_ref().is_some_and(|d| d.0 <= now))
}

#[cfg(test)]
mod tests;
