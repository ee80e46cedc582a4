//! The incident's own history: its declaration, each phase's first entry,
//! and every phase change, severity change and note, each entered in the
//! timeline once. Returns the notifiable changes, in the order they are
//! numbered.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::{Kind, Reports};
use crate::{
    api::{Incident, IncidentStatus, Phase, policy::Trigger},
    domain::{enrich, signals::MESSAGE_ANNOTATION},
};

/// One notifiable transition: the triggers it matches, most specific
/// first, and what it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub triggers: Vec<Trigger>,
    /// For people: `Declared SEV2`, `SEV2 → SEV1`, `Triggered → Acknowledged`.
    pub text: String,
}

/// ` by <user>`: who made this generation's change, as the apiserver
/// vouched for it; empty when nobody is known.
pub fn by(incident: &Incident) -> String {
    incident
        .actor()
        .map(|actor| format!(" by {}", enrich::truncate(actor, 128)))
        .unwrap_or_default()
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
    let by = by(incident);
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
            Kind::Declared,
            format!("Declared {}{by}: {}", spec.severity, spec.title),
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
                Kind::Signal,
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
        let text = format!("{old} → {}{by}", spec.phase);
        // Most specific first: a receiver whose routes match both hears
        // of the resolution once, as a resolution.
        let triggers = if spec.phase == Phase::Resolved {
            vec![Trigger::Resolved, Trigger::PhaseChanged]
        } else {
            vec![Trigger::PhaseChanged]
        };
        changes.push(Change {
            triggers,
            text: text.clone(),
        });
        reports.add(&mut status.timeline, now.clone(), Kind::PhaseChanged, text);
    }
    if let Some(old) = &previous.observed_severity
        && *old != spec.severity
    {
        let text = format!("{old} → {}{by}", spec.severity);
        changes.push(Change {
            triggers: vec![Trigger::SeverityChanged],
            text: text.clone(),
        });
        reports.add(
            &mut status.timeline,
            now.clone(),
            Kind::SeverityChanged,
            text,
        );
    }
    let seen_notes = usize::try_from(previous.observed_notes.unwrap_or(0)).unwrap_or(0);
    for note in spec.notes.iter().skip(seen_notes) {
        let author = note.author.as_deref().unwrap_or("someone");
        reports.add(
            &mut status.timeline,
            note.time.clone().unwrap_or_else(|| now.clone()),
            Kind::Note,
            format!("{author}: {}", enrich::truncate(&note.text, 256)),
        );
    }
    status.observed_phase = Some(spec.phase);
    status.observed_severity = Some(spec.severity.clone());
    status.observed_notes = Some(i32::try_from(spec.notes.len()).unwrap_or(i32::MAX));
    status.observed_generation = incident.metadata.generation;
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, incident};

    fn run(incident: &Incident, now: &str) -> (IncidentStatus, Vec<Change>, usize) {
        let previous = incident.status.clone().unwrap_or_default();
        let mut status = previous.clone();
        let mut reports = Reports::default();
        let changes = apply(
            incident,
            &previous,
            &mut status,
            &mut reports,
            &Time(at(now)),
        );
        (status, changes, reports.into_inner().len())
    }

    #[test]
    fn the_first_pass_declares_at_creation_and_later_phases_are_timed_when_seen() {
        let mut inc = incident(Phase::Acknowledged, "SEV2");
        let (status, changes, reports) = run(&inc, "2026-11-24T14:10:05Z");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].triggers, [Trigger::Declared]);
        assert_eq!(reports, 1);
        // Declared already acknowledged: both at the creation time.
        let created = Some(Time(at("2026-11-24T14:10:00Z")));
        assert_eq!(status.declared_at, created);
        assert_eq!(status.acknowledged_at, created);

        inc.status = Some(status);
        inc.spec.phase = Phase::Mitigated;
        let (status, changes, _) = run(&inc, "2026-11-24T14:30:00Z");
        assert_eq!(status.mitigated_at, Some(Time(at("2026-11-24T14:30:00Z"))));
        assert_eq!(changes[0].text, "Acknowledged → Mitigated");
        assert_eq!(changes[0].triggers, [Trigger::PhaseChanged]);
    }

    #[test]
    fn resolving_is_both_a_phase_change_and_a_resolution() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        let (status, _, _) = run(&inc, "2026-11-24T14:10:05Z");
        inc.status = Some(status);
        inc.spec.phase = Phase::Resolved;
        inc.spec.severity = "SEV1".into();
        let (_, changes, reports) = run(&inc, "2026-11-24T15:00:00Z");
        let triggers: Vec<Vec<Trigger>> = changes.iter().map(|c| c.triggers.clone()).collect();
        assert_eq!(
            triggers,
            [
                vec![Trigger::Resolved, Trigger::PhaseChanged],
                vec![Trigger::SeverityChanged]
            ],
            "two changes, numbered apart"
        );
        assert_eq!(reports, 2);
    }

    fn acted(inc: &mut Incident, actor: &str, generation: &str) {
        inc.metadata.annotations = Some(
            [
                (crate::api::incident::ACTOR_ANNOTATION, actor),
                (
                    crate::api::incident::ACTOR_GENERATION_ANNOTATION,
                    generation,
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
    }

    #[test]
    fn a_change_names_who_made_it_only_for_the_generation_they_made() {
        let mut inc = incident(Phase::Triggered, "SEV2");
        inc.metadata.generation = Some(1);
        acted(&mut inc, "alice", "1");
        let (status, _, _) = run(&inc, "2026-11-24T14:10:05Z");
        assert!(
            status.timeline[0]
                .message
                .starts_with("Declared SEV2 by alice: "),
            "{:?}",
            status.timeline
        );

        // alice acknowledges (generation 2): hers.
        inc.status = Some(status);
        inc.spec.phase = Phase::Acknowledged;
        inc.metadata.generation = Some(2);
        acted(&mut inc, "alice", "2");
        let (status, changes, _) = run(&inc, "2026-11-24T14:12:00Z");
        assert_eq!(changes[0].text, "Triggered → Acknowledged by alice");

        // Someone else raises the severity without the plugin: the
        // annotations still name generation 2, so nobody is named.
        inc.status = Some(status);
        inc.spec.severity = "SEV1".into();
        inc.metadata.generation = Some(3);
        let (_, changes, _) = run(&inc, "2026-11-24T14:13:00Z");
        assert_eq!(changes[0].text, "SEV2 → SEV1");
    }
}
