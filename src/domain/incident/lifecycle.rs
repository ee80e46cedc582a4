//! The incident's own history: its declaration, each phase's first entry,
//! and every phase change, severity change and note, each entered in the
//! timeline once. Returns the notifiable changes, in the order they are
//! numbered.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::Reports;
use crate::{
    api::{Incident, IncidentStatus, Phase, policy::Trigger},
    domain::{enrich, signals::MESSAGE_ANNOTATION},
};

/// One notifiable transition: what routes it matches, and what it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub triggers: Vec<Trigger>,
    /// For people: `Declared SEV2`, `SEV2 → SEV1`, `Triggered → Acknowledged`.
    pub text: String,
}

pub fn apply(
    incident: &Incident,
    previous: &IncidentStatus,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> Vec<Change> {
    let spec = &incident.spec;
    let declared = incident
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(|| now.clone());
    let mut changes = Vec::new();
    if status.declared_at.is_none() {
        status.declared_at = Some(declared.clone());
        changes.push(Change {
            triggers: vec![Trigger::Declared],
            text: format!("Declared {}", spec.severity),
        });
        reports.add(
            &mut status.timeline,
            declared.clone(),
            "Declared",
            format!("Declared {}: {}", spec.severity, spec.title),
        );
        if let Some(message) = incident
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MESSAGE_ANNOTATION))
        {
            reports.add(
                &mut status.timeline,
                declared.clone(),
                "Signal",
                format!("Declared by Klaxon: {}", enrich::truncate(message, 512)),
            );
        }
    }

    // Each phase's first entry; on the first pass, the declaration time.
    let first_entry = if previous.declared_at.is_none() {
        declared
    } else {
        now.clone()
    };
    let slot = match spec.phase {
        Phase::Triggered => None,
        Phase::Acknowledged => Some(&mut status.acknowledged_at),
        Phase::Mitigated => Some(&mut status.mitigated_at),
        Phase::Resolved => Some(&mut status.resolved_at),
    };
    if let Some(slot) = slot
        && slot.is_none()
    {
        *slot = Some(first_entry);
    }

    if let Some(old) = previous.observed_phase
        && old != spec.phase
    {
        let text = format!("{old} → {}", spec.phase);
        let mut triggers = vec![Trigger::PhaseChanged];
        if spec.phase == Phase::Resolved {
            triggers.push(Trigger::Resolved);
        }
        changes.push(Change {
            triggers,
            text: text.clone(),
        });
        reports.add(&mut status.timeline, now.clone(), "PhaseChanged", text);
    }
    if let Some(old) = &previous.observed_severity
        && *old != spec.severity
    {
        let text = format!("{old} → {}", spec.severity);
        changes.push(Change {
            triggers: vec![Trigger::SeverityChanged],
            text: text.clone(),
        });
        reports.add(&mut status.timeline, now.clone(), "SeverityChanged", text);
    }
    let seen_notes = usize::try_from(previous.observed_notes.unwrap_or(0)).unwrap_or(0);
    for note in spec.notes.iter().skip(seen_notes) {
        let author = note.author.as_deref().unwrap_or("someone");
        reports.add(
            &mut status.timeline,
            note.time.clone().unwrap_or_else(|| now.clone()),
            "Note",
            format!("{author}: {}", enrich::truncate(&note.text, 256)),
        );
    }
    status.observed_phase = Some(spec.phase);
    status.observed_severity = Some(spec.severity.clone());
    status.observed_notes = Some(i32::try_from(spec.notes.len()).unwrap_or(i32::MAX));
    status.observed_generation = incident.metadata.generation;
    changes
}
