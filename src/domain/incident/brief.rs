//! `status.brief`: the few lines a responder needs, where `kubectl
//! describe` shows them first. kubectl prints a status's fields in
//! alphabetical order, so the summary, the deadline and the workloads
//! would otherwise come after fifty lines of conditions; `brief` sorts
//! before `conditions`, and its own fields (attention, deadline, summary,
//! workloads) read in a sensible order too. Every line is
//! derived from the rest of the status and holds no clock-relative text,
//! so it changes only when the status does.

use crate::{
    api::{
        IncidentStatus, Phase,
        incident::{Brief, DaemonSetState, DeploymentState, StatefulSetState, WorkloadKind},
    },
    domain::{
        enrich::truncate,
        incident::conditions::{
            DEPLOYMENTS_FOUND, METRICS_AVAILABLE, NOTIFICATIONS_DELIVERED, QUERIES_SUCCEEDED,
        },
    },
};

/// Workloads the brief gives a line each; the rest are counted.
pub const BRIEF_DEPLOYMENTS: usize = 5;
/// What-needs-attention lines kept.
pub const BRIEF_ATTENTION: usize = 5;
/// Longest line.
pub const BRIEF_LINE: usize = 300;

/// What needs a human: `Ready`'s message when it is False (it names a
/// missing commander or postmortem, an unknown severity, an overdue
/// acknowledgement), then the other conditions that report trouble.
pub fn attention(status: &IncidentStatus) -> Vec<String> {
    let ready = status
        .conditions
        .iter()
        .filter(|c| c.type_ == "Ready" && c.status == "False");
    let others = status.conditions.iter().filter(|c| {
        matches!(
            c.type_.as_str(),
            DEPLOYMENTS_FOUND | METRICS_AVAILABLE | NOTIFICATIONS_DELIVERED | QUERIES_SUCCEEDED
        ) && c.status == "False"
    });
    ready.chain(others).map(|c| c.message.clone()).collect()
}

/// Where the acknowledgement deadline stands, in absolute times.
pub fn deadline(status: &IncidentStatus, phase: Phase) -> Option<String> {
    let by = status.acknowledge_by.as_ref()?;
    Some(match (&status.acknowledged_at, phase) {
        (Some(at), _) if at.0 > by.0 => format!("acknowledged late at {} (due {})", at.0, by.0),
        (Some(at), _) => format!("acknowledged at {} (due {})", at.0, by.0),
        (None, Phase::Triggered) if status.overdue == Some(true) => {
            format!("OVERDUE: not acknowledged by {}", by.0)
        }
        (None, Phase::Triggered) => format!("acknowledge by {}", by.0),
        (None, _) => return None,
    })
}

/// One line per workload: `checkout 1/3 ready, 14 restarts: 2
/// CrashLoopBackOff, 1 OOMKilled; revision 7 changed v41 → v42`, with the
/// workload named by its [`WorkloadKind::key`].
pub fn deployment(d: &DeploymentState) -> String {
    line(&d.name, d, &[])
}

fn line(name: &str, d: &DeploymentState, extra: &[String]) -> String {
    if !d.found {
        return format!("{name} not found");
    }
    let mut line = format!(
        "{name} {}/{} ready",
        d.ready_replicas.unwrap_or(0),
        d.replicas.unwrap_or(0)
    );
    if let Some(pods) = &d.pods {
        if pods.restarts > 0 {
            line.push_str(&format!(", {} restarts", pods.restarts));
        }
        if !pods.reasons.is_empty() {
            let reasons: Vec<String> = pods
                .reasons
                .iter()
                .map(|r| format!("{} {}", r.count, r.reason))
                .collect();
            line.push_str(&format!(": {}", reasons.join(", ")));
        }
    }
    if !d.previous_images.is_empty() {
        line.push_str(&format!(
            "; revision {} changed {} → {}",
            d.revision.as_deref().unwrap_or("?"),
            d.previous_images.join(", "),
            d.images.join(", ")
        ));
    }
    for extra in extra {
        line.push_str("; ");
        line.push_str(extra);
    }
    if let Some(usage) = &d.usage
        && let (Some(cpu), Some(memory)) = (&usage.cpu, &usage.memory)
    {
        line.push_str(&format!("; using {cpu} CPU, {memory} memory"));
    }
    truncate(&line, BRIEF_LINE)
}

/// What a StatefulSet's line adds: a rollout under way or stuck, and its
/// unbound claims.
pub fn statefulset_notes(s: &StatefulSetState) -> Vec<String> {
    let mut notes = Vec::new();
    if let (Some(current), Some(update)) = (&s.current_revision, &s.update_revision)
        && current != update
    {
        let partition = s
            .partition
            .map(|p| format!(", partition {p}"))
            .unwrap_or_default();
        notes.push(format!(
            "updating {current} → {update} ({}/{} updated{partition})",
            s.workload.updated_replicas.unwrap_or(0),
            s.workload.replicas.unwrap_or(0)
        ));
    }
    if !s.claims.is_empty() {
        let claims: Vec<String> = s
            .claims
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    c.phase.as_deref().unwrap_or("Pending"),
                    c.storage_class
                        .as_deref()
                        .map(|class| format!(" (class {class})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        notes.push(format!("unbound claims: {}", claims.join(", ")));
    }
    notes
}

/// What a DaemonSet's line adds: the nodes whose pods fail, and pods
/// where none should run.
pub fn daemonset_notes(d: &DaemonSetState) -> Vec<String> {
    let mut notes = Vec::new();
    if !d.failing_nodes.is_empty() {
        notes.push(format!("failing on {}", d.failing_nodes.join(", ")));
    }
    if let Some(n) = d.number_misscheduled.filter(|n| *n > 0) {
        notes.push(format!("{n} misscheduled"));
    }
    notes
}

/// A line for every affected workload: Deployments, then StatefulSets,
/// then DaemonSets.
pub fn lines(status: &IncidentStatus) -> Vec<String> {
    let deployments = status.deployments.iter().map(|d| line(&d.name, d, &[]));
    let sets = status.stateful_sets.iter().map(|s| {
        let name = WorkloadKind::StatefulSet.key(&s.workload.name);
        line(&name, &s.workload, &statefulset_notes(s))
    });
    let daemons = status.daemon_sets.iter().map(|d| {
        let name = WorkloadKind::DaemonSet.key(&d.workload.name);
        line(&name, &d.workload, &daemonset_notes(d))
    });
    deployments.chain(sets).chain(daemons).collect()
}

pub fn build(status: &IncidentStatus, phase: Phase) -> Brief {
    let mut workloads = lines(status);
    if workloads.len() > BRIEF_DEPLOYMENTS {
        let more = workloads.len() - BRIEF_DEPLOYMENTS;
        workloads.truncate(BRIEF_DEPLOYMENTS);
        workloads.push(format!("… and {more} more in the status below"));
    }
    Brief {
        attention: attention(status)
            .iter()
            .take(BRIEF_ATTENTION)
            .map(|l| truncate(l, BRIEF_LINE))
            .collect(),
        deadline: deadline(status, phase),
        summary: status.summary.clone(),
        workloads,
        suspect: suspect(status).map(|l| truncate(&l, BRIEF_LINE)),
    }
}

/// `web: revision 3: app image v1 → v2 · by kubectl-set (main@sha1:1f2e3d),
/// 4m before impact started`.
pub fn suspect(status: &IncidentStatus) -> Option<String> {
    let change = status.changes.iter().find(|c| c.suspect == Some(true))?;
    let label = change.label();
    let mut line = format!("{label}: {}", change.change);
    if let Some(by) = &change.by {
        line.push_str(&format!(" · by {by}"));
    }
    if let Some(source) = &change.source {
        line.push_str(&format!(" ({source})"));
    }
    let start = status.started_at.as_ref().or(status.declared_at.as_ref());
    if let Some(start) = start {
        let before = super::record::span(&change.time, start);
        line.push_str(&format!(
            ", {} before impact started",
            crate::domain::policy::humantime(before)
        ));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::incident::{PodsSummary, ReasonCount};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn time(text: &str) -> Time {
        Time(text.parse().expect("time"))
    }

    #[test]
    fn the_brief_leads_with_what_needs_a_human() {
        let condition = |type_: &str, status: &str, message: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            message: message.into(),
            reason: "R".into(),
            last_transition_time: time("2026-11-24T14:00:00Z"),
            observed_generation: None,
        };
        let status = IncidentStatus {
            summary: Some("checkout 1/3 ready".into()),
            acknowledge_by: Some(time("2026-11-24T14:05:00Z")),
            overdue: Some(true),
            conditions: vec![
                condition("Ready", "False", "Not acknowledged by 14:05."),
                condition("DeploymentsFound", "True", "All found."),
                condition("NotificationsDelivered", "False", "hook: 503."),
            ],
            deployments: vec![
                DeploymentState {
                    name: "checkout".into(),
                    found: true,
                    replicas: Some(3),
                    ready_replicas: Some(1),
                    revision: Some("7".into()),
                    images: vec!["shop/checkout:v42".into()],
                    previous_images: vec!["shop/checkout:v41".into()],
                    pods: Some(PodsSummary {
                        restarts: 14,
                        reasons: vec![ReasonCount {
                            reason: "CrashLoopBackOff".into(),
                            count: 2,
                            recovered: None,
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                DeploymentState {
                    name: "ledger".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let brief = build(&status, Phase::Triggered);
        assert_eq!(
            brief.attention,
            ["Not acknowledged by 14:05.", "hook: 503."]
        );
        assert_eq!(
            brief.deadline.as_deref(),
            Some("OVERDUE: not acknowledged by 2026-11-24T14:05:00Z")
        );
        assert_eq!(
            brief.workloads,
            [
                "checkout 1/3 ready, 14 restarts: 2 CrashLoopBackOff; revision 7 changed shop/checkout:v41 → shop/checkout:v42",
                "ledger not found"
            ]
        );
        assert_eq!(brief.summary.as_deref(), Some("checkout 1/3 ready"));

        let sets = IncidentStatus {
            stateful_sets: vec![StatefulSetState {
                workload: DeploymentState {
                    name: "ledger-db".into(),
                    found: true,
                    replicas: Some(3),
                    ready_replicas: Some(2),
                    updated_replicas: Some(1),
                    ..Default::default()
                },
                current_revision: Some("ledger-db-aaa".into()),
                update_revision: Some("ledger-db-bbb".into()),
                partition: Some(1),
                claims: vec![crate::api::incident::ClaimState {
                    name: "data-ledger-db-2".into(),
                    phase: Some("Pending".into()),
                    storage_class: Some("fast".into()),
                }],
            }],
            daemon_sets: vec![DaemonSetState {
                workload: DeploymentState {
                    name: "node-agent".into(),
                    found: true,
                    replicas: Some(3),
                    ready_replicas: Some(1),
                    ..Default::default()
                },
                failing_nodes: vec!["kwok-node-0".into(), "kwok-node-2".into()],
                number_misscheduled: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            lines(&sets),
            [
                "statefulset/ledger-db 2/3 ready; updating ledger-db-aaa → ledger-db-bbb (1/3 updated, partition 1); unbound claims: data-ledger-db-2 Pending (class fast)",
                "daemonset/node-agent 1/3 ready; failing on kwok-node-0, kwok-node-2"
            ]
        );

        let mut acked = status.clone();
        acked.acknowledged_at = Some(time("2026-11-24T14:03:00Z"));
        assert_eq!(
            deadline(&acked, Phase::Acknowledged).as_deref(),
            Some("acknowledged at 2026-11-24T14:03:00Z (due 2026-11-24T14:05:00Z)")
        );
    }
}
