//! Related incidents: the links a person made (`spec.related`), and the
//! recurrences Klaxon finds itself: an earlier incident of the same
//! namespace that affected one of the same workloads and resolved within
//! 30 days before this one was declared. Recurrences are looked for while
//! the incident is open; once found, one stays found.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::{Kind, Reports};
use crate::api::{
    Incident, IncidentStatus,
    incident::{RelatedIncident, Relation, WorkloadKind},
    limits::MAX_RELATED_STATUS,
};

/// How long after an incident resolved a new one on the same workload is
/// its recurrence.
pub const RECURRENCE_WINDOW: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Recurrences kept, most recent first.
const MAX_RECURRENCES: usize = 10;

/// Whether an incident resolved `at` may be a recurrence of one declared
/// `declared`: it resolved within the window before.
pub fn recurs(declared: &Time, at: &Time) -> bool {
    let since = declared
        .0
        .checked_sub(RECURRENCE_WINDOW)
        .unwrap_or(declared.0);
    at.0 >= since && at.0 <= declared.0
}

/// What the cache knows of another incident of the namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Earlier {
    pub name: String,
    pub resolved_at: Option<Time>,
    /// The workloads it affected, as [`WorkloadKind::key`]s.
    pub workloads: Vec<String>,
}

/// The workloads an incident affects, as [`WorkloadKind::key`]s: those
/// its status linked, and those its spec names.
pub fn workloads(incident: &Incident, status: Option<&IncidentStatus>) -> Vec<String> {
    let mut keys: Vec<String> = status
        .into_iter()
        .flat_map(|s| s.workloads())
        .filter(|(_, d)| d.found)
        .map(|(kind, d)| kind.key(&d.name))
        .collect();
    if let Some(affected) = incident.spec.affected.as_ref() {
        for kind in WorkloadKind::ALL {
            for name in affected.of(kind).iter().filter_map(|d| d.name.as_deref()) {
                let key = kind.key(name);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

pub fn apply(
    incident: &Incident,
    earlier: &[Earlier],
    frozen: bool,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) {
    let me = incident.metadata.name.as_deref().unwrap_or_default();
    let resolved = |name: &str| {
        earlier
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.resolved_at.clone())
    };
    let mut related: Vec<RelatedIncident> = incident
        .spec
        .related
        .iter()
        .map(|link| RelatedIncident {
            name: link.name.clone(),
            relation: link.relation,
            resolved_at: resolved(&link.name),
            detected: false,
        })
        .collect();
    let linked = |name: &str, related: &[RelatedIncident]| related.iter().any(|r| r.name == name);
    let mut found: Vec<(RelatedIncident, Option<String>)> = status
        .related
        .iter()
        .filter(|r| r.detected && !linked(&r.name, &related))
        .map(|r| (r.clone(), None))
        .collect();
    if !frozen && let Some(declared) = status.declared_at.clone() {
        let mine = workloads(incident, Some(status));
        for other in earlier {
            let Some(at) = other
                .resolved_at
                .as_ref()
                .filter(|at| recurs(&declared, at))
            else {
                continue;
            };
            let shared: Vec<&str> = other
                .workloads
                .iter()
                .filter(|w| mine.contains(w))
                .map(String::as_str)
                .collect();
            if other.name == me
                || shared.is_empty()
                || linked(&other.name, &related)
                || found.iter().any(|(r, _)| r.name == other.name)
            {
                continue;
            }
            let said = format!(
                "Recurrence of {} (resolved {}), which also affected {}",
                other.name,
                at.0,
                shared.join(", ")
            );
            found.push((
                RelatedIncident {
                    name: other.name.clone(),
                    relation: Relation::RecurrenceOf,
                    resolved_at: Some(at.clone()),
                    detected: true,
                },
                Some(said),
            ));
        }
    }
    // The most recent first; those kept are the same on every pass, and
    // only a new one among them enters the timeline.
    found.sort_by(|(a, _), (b, _)| {
        let at = |r: &RelatedIncident| r.resolved_at.as_ref().map(|t| t.0);
        at(b).cmp(&at(a)).then_with(|| a.name.cmp(&b.name))
    });
    found.truncate(MAX_RECURRENCES);
    let found: Vec<RelatedIncident> = found
        .into_iter()
        .map(|(recurrence, new)| {
            if let Some(said) = new {
                reports.add(&mut status.timeline, now.clone(), Kind::Related, said);
            }
            recurrence
        })
        .collect();
    related.extend(found);
    related.truncate(MAX_RELATED_STATUS as usize);
    status.related = related;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{
            Phase,
            incident::{Affected, AffectedDeployment, RelatedLink},
        },
        domain::incident::testing::{at, checkout, incident},
    };

    fn earlier(name: &str, resolved: Option<&str>, workloads: &[&str]) -> Earlier {
        Earlier {
            name: name.into(),
            resolved_at: resolved.map(|t| Time(at(t))),
            workloads: workloads.iter().map(|w| w.to_string()).collect(),
        }
    }

    fn run(inc: &Incident, others: &[Earlier], frozen: bool, status: &mut IncidentStatus) -> usize {
        let mut reports = Reports::default();
        apply(
            inc,
            others,
            frozen,
            status,
            &mut reports,
            &Time(at("2026-11-24T14:10:05Z")),
        );
        reports.into_inner().len()
    }

    #[test]
    fn an_earlier_incident_of_the_same_workload_within_30_days_is_a_recurrence() {
        let inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-11-24T14:10:00Z"))),
            deployments: vec![checkout(1, &[])],
            ..Default::default()
        };
        let others = [
            earlier("checkout-5xx", Some("2026-11-20T10:00:00Z"), &["checkout"]),
            earlier(
                "checkout-slow",
                Some("2026-11-23T10:00:00Z"),
                &["checkout", "cart"],
            ),
            earlier("too-old", Some("2026-10-01T10:00:00Z"), &["checkout"]),
            earlier("elsewhere", Some("2026-11-23T10:00:00Z"), &["search"]),
            earlier("still-open", None, &["checkout"]),
            earlier("later", Some("2026-11-24T15:00:00Z"), &["checkout"]),
        ];
        // The incident itself is in the namespace's list too.
        let mut all = others.to_vec();
        all.push(earlier("checkout-5xx-again", None, &["checkout"]));
        let mut me = inc.clone();
        me.metadata.name = Some("checkout-5xx-again".into());
        assert_eq!(
            run(&me, &all, false, &mut status),
            2,
            "two recurrences entered"
        );
        let names: Vec<&str> = status.related.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["checkout-slow", "checkout-5xx"],
            "most recent first"
        );
        assert!(
            status
                .related
                .iter()
                .all(|r| r.detected && r.relation == Relation::RecurrenceOf)
        );
        let other = me;
        // Found once; planning again enters nothing, and a frozen record
        // keeps what it found.
        assert_eq!(run(&other, &all, false, &mut status), 0);
        assert_eq!(run(&other, &[], true, &mut status), 0);
        assert_eq!(status.related.len(), 2);
    }

    #[test]
    fn links_a_person_made_come_first_with_the_other_incidents_resolution() {
        let mut inc = incident(Phase::Resolved, "SEV2");
        inc.spec.affected = Some(Affected {
            deployments: vec![AffectedDeployment {
                name: Some("checkout".into()),
                selector: None,
            }],
            ..Default::default()
        });
        inc.spec.related = vec![RelatedLink {
            name: "checkout-5xx".into(),
            relation: Relation::CausedBy,
        }];
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-11-24T14:10:00Z"))),
            ..Default::default()
        };
        let others = [earlier(
            "checkout-5xx",
            Some("2026-11-20T10:00:00Z"),
            &["checkout"],
        )];
        // Linked by a person as CausedBy: not also a recurrence.
        assert_eq!(run(&inc, &others, false, &mut status), 0);
        assert_eq!(
            status.related,
            [RelatedIncident {
                name: "checkout-5xx".into(),
                relation: Relation::CausedBy,
                resolved_at: Some(Time(at("2026-11-20T10:00:00Z"))),
                detected: false,
            }]
        );
    }

    #[test]
    fn more_recurrences_than_are_kept_are_entered_once() {
        let inc = incident(Phase::Triggered, "SEV2");
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-11-24T14:10:00Z"))),
            deployments: vec![checkout(1, &[])],
            ..Default::default()
        };
        let others: Vec<Earlier> = (1..=15)
            .map(|day| {
                earlier(
                    &format!("flap-{day:02}"),
                    Some(&format!("2026-11-{day:02}T10:00:00Z")),
                    &["checkout"],
                )
            })
            .collect();
        assert_eq!(run(&inc, &others, false, &mut status), 10, "the ten kept");
        assert_eq!(status.related.len(), 10);
        assert_eq!(status.related[0].name, "flap-15", "most recent first");
        for _ in 0..3 {
            assert_eq!(run(&inc, &others, false, &mut status), 0, "none again");
        }
        assert_eq!(status.related.len(), 10);
    }
}
