//! What changed: the changes the observation shows, merged into
//! `status.changes` as first seen (a rollback later does not rewrite the
//! rollout it undid, and history the cluster sheds stays recorded), most
//! recent first and bounded; the change nearest before impact started is
//! marked as the suspect.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::timeline::{Kind, Reports};
use crate::api::{
    IncidentStatus,
    incident::{Change, WorkloadKind},
    limits::MAX_CHANGES,
};

/// Adds the observed changes not recorded yet. A rollout is identified by
/// its workload and revision (revisions only grow: a rollback takes a new
/// number), so the time first seen stays even where the cluster's moves
/// (a rollback's progress time); anything else by its workload and time.
pub fn merge(status: &mut IncidentStatus, observed: &[Change]) {
    let mut changes = std::mem::take(&mut status.changes);
    for change in observed {
        match changes.iter_mut().find(|c| same(c, change)) {
            // Who made it and from which revision may be learnt later.
            Some(known) => {
                if known.by.is_none() {
                    known.by.clone_from(&change.by);
                }
                if known.source.is_none() {
                    known.source.clone_from(&change.source);
                }
            }
            None => changes.push(Change {
                suspect: None,
                ..change.clone()
            }),
        }
    }
    // A total order, so the ones kept when there are too many are the
    // same on every pass.
    // Within one second (times have second precision), the later
    // revision first.
    changes.sort_by(|a, b| {
        (b.time.0, number(b), &a.kind, &a.name, &a.change).cmp(&(
            a.time.0,
            number(a),
            &b.kind,
            &b.name,
            &b.change,
        ))
    });
    // The most recent, and whatever the suspect is: many changes while
    // the incident is open must not push out the one that started it.
    if changes.len() > MAX_CHANGES as usize {
        let suspect = suspect(&changes, start(status));
        let kept = match suspect {
            Some(i) if i >= MAX_CHANGES as usize => {
                let suspect = changes.swap_remove(i);
                changes.truncate(MAX_CHANGES as usize - 1);
                changes.push(suspect);
                changes
            }
            _ => {
                changes.truncate(MAX_CHANGES as usize);
                changes
            }
        };
        changes = kept;
    }
    status.changes = changes;
}

/// Enters each change in the timeline once, at its own time: `web rolled
/// out revision 4 3m before the incident was declared: web image v1 → v2`.
/// A rollout's entry has the key the rollout finding of the same revision
/// has, so a rollout is entered once, by whichever sees it first.
pub fn timeline(status: &mut IncidentStatus, reports: &mut Reports) {
    let Some(declared) = status.declared_at.clone() else {
        return;
    };
    let entries: Vec<(String, Time, String, String)> = status
        .changes
        .iter()
        // Rollouts: what the list holds today.
        .filter(|c| c.revision.is_some() && WorkloadKind::parse(&c.kind).is_some())
        .map(|c| {
            let label = c.label();
            let revision = c.revision.as_deref().unwrap_or("?");
            // The change's own text, less the revision it names already.
            let what = c
                .change
                .strip_prefix(&format!("revision {revision}"))
                .map(|rest| rest.trim_start_matches(':').trim_start())
                .unwrap_or(&c.change);
            let when = super::findings::when(&c.time, &declared);
            (
                format!("Rollout/{label}/{revision}"),
                c.time.clone(),
                label.clone(),
                if what == "created" {
                    format!("{label} was created {when}")
                } else {
                    format!("{label} rolled out revision {revision} {when}: {what}")
                },
            )
        })
        .collect();
    for (key, time, label, message) in entries {
        if super::remember(status, key) {
            reports.add(
                &mut status.timeline,
                time,
                Kind::Rollout.about(&label),
                message,
            );
        }
    }
}

/// When impact started, or until that is known, the declaration.
fn start(status: &IncidentStatus) -> Option<jiff::Timestamp> {
    status
        .started_at
        .as_ref()
        .or(status.declared_at.as_ref())
        .map(|t| t.0)
}

/// The most recent of `changes` (most recent first) at or before `start`.
fn suspect(changes: &[Change], start: Option<jiff::Timestamp>) -> Option<usize> {
    let start = start?;
    changes.iter().position(|c| c.time.0 <= start)
}

/// Marks the most recent change at or before impact started (or, until
/// that is known, the declaration) as the suspect, and only it.
pub fn mark_suspect(status: &mut IncidentStatus) {
    let suspect = suspect(&status.changes, start(status));
    for (i, change) in status.changes.iter_mut().enumerate() {
        change.suspect = (Some(i) == suspect).then_some(true);
    }
}

fn number(change: &Change) -> i64 {
    change
        .revision
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(-1)
}

fn same(a: &Change, b: &Change) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && match (&a.revision, &b.revision) {
            (Some(a), Some(b)) => a == b,
            (None, None) => a.time == b.time,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::domain::incident::testing::at;

    fn change(time: &str, name: &str, text: &str) -> Change {
        Change {
            time: Time(at(time)),
            kind: "Deployment".into(),
            name: name.into(),
            change: text.into(),
            revision: None,
            by: None,
            source: None,
            suspect: None,
        }
    }

    #[test]
    fn changes_are_kept_as_first_seen_most_recent_first_and_bounded() {
        let mut status = IncidentStatus::default();
        merge(
            &mut status,
            &[
                change(
                    "2026-12-01T10:20:00Z",
                    "web",
                    "revision 2: app image v1 → v2",
                ),
                change(
                    "2026-12-01T10:40:00Z",
                    "api",
                    "revision 7: api env DEBUG added",
                ),
            ],
        );
        // The cluster shed revision 1: the diff it shows now differs, and
        // the recorded one stays; `by` learnt later fills in.
        let mut later = change("2026-12-01T10:20:00Z", "web", "revision 2: created");
        later.by = Some("kubectl-set".into());
        merge(&mut status, &[later]);
        let texts: Vec<(&str, Option<&str>)> = status
            .changes
            .iter()
            .map(|c| (c.change.as_str(), c.by.as_deref()))
            .collect();
        assert_eq!(
            texts,
            [
                ("revision 7: api env DEBUG added", None),
                ("revision 2: app image v1 → v2", Some("kubectl-set")),
            ]
        );
        let many: Vec<Change> = (0..30)
            .map(|i| change(&format!("2026-12-01T09:{i:02}:00Z"), "web", "x"))
            .collect();
        merge(&mut status, &many);
        assert_eq!(status.changes.len(), MAX_CHANGES as usize);
        assert_eq!(status.changes[0].name, "api");
    }

    #[test]
    fn a_rollout_keeps_its_first_seen_time_and_the_suspect_outlasts_many_later_changes() {
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-12-01T10:30:00Z"))),
            ..Default::default()
        };
        let rollback = |time: &str| Change {
            revision: Some("4".into()),
            ..change(time, "web", "revision 4: web image v3 → v2")
        };
        merge(&mut status, &[rollback("2026-12-01T10:20:00Z")]);
        // Its progress time moved on: still one change, at its first time.
        merge(&mut status, &[rollback("2026-12-01T10:21:30Z")]);
        assert_eq!(status.changes.len(), 1);
        assert_eq!(status.changes[0].time, Time(at("2026-12-01T10:20:00Z")));
        // Thirty rollouts while the incident is open.
        let later: Vec<Change> = (0..30)
            .map(|i| Change {
                revision: Some((5 + i).to_string()),
                ..change(&format!("2026-12-01T11:{i:02}:00Z"), "web", "later")
            })
            .collect();
        merge(&mut status, &later);
        mark_suspect(&mut status);
        assert_eq!(status.changes.len(), MAX_CHANGES as usize);
        let last = status.changes.last().expect("changes");
        assert_eq!(
            (last.revision.as_deref(), last.suspect),
            (Some("4"), Some(true))
        );
        assert_eq!(status.changes[0].revision.as_deref(), Some("34"));
    }

    #[test]
    fn each_rollout_enters_the_timeline_once_at_its_own_time() {
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-12-01T10:30:00Z"))),
            ..Default::default()
        };
        let rollout = |time: &str, revision: &str, text: &str| Change {
            revision: Some(revision.into()),
            ..change(time, "web", text)
        };
        merge(
            &mut status,
            &[
                rollout(
                    "2026-12-01T10:10:00Z",
                    "3",
                    "revision 3: web env DEBUG added",
                ),
                rollout("2026-12-01T10:26:30Z", "4", "revision 4: web image v1 → v2"),
            ],
        );
        for _ in 0..2 {
            let mut reports = Reports::default();
            timeline(&mut status, &mut reports);
        }
        let entries: Vec<(String, &str)> = status
            .timeline
            .iter()
            .map(|e| (e.time.0.to_string(), e.message.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                (
                    "2026-12-01T10:10:00Z".to_string(),
                    "web rolled out revision 3 20m before the incident was declared: web env DEBUG added"
                ),
                (
                    "2026-12-01T10:26:30Z".to_string(),
                    "web rolled out revision 4 3m before the incident was declared: web image v1 → v2"
                ),
            ]
        );
        // The rollout finding of revision 4 has the same key: not again.
        assert!(!crate::domain::incident::remember(
            &mut status,
            "Rollout/web/4".into()
        ));
    }

    #[test]
    fn rollouts_within_one_second_are_ordered_by_revision() {
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-12-01T10:30:00Z"))),
            ..Default::default()
        };
        let rollouts: Vec<Change> = [("9", "z"), ("10", "a"), ("8", "m")]
            .into_iter()
            .map(|(revision, text)| Change {
                revision: Some(revision.into()),
                ..change("2026-12-01T10:20:00Z", "web", text)
            })
            .collect();
        merge(&mut status, &rollouts);
        mark_suspect(&mut status);
        let order: Vec<(&str, bool)> = status
            .changes
            .iter()
            .map(|c| (c.revision.as_deref().unwrap_or(""), c.suspect == Some(true)))
            .collect();
        assert_eq!(order, [("10", true), ("9", false), ("8", false)]);
    }

    #[test]
    fn the_change_nearest_before_impact_is_the_suspect() {
        let mut status = IncidentStatus {
            declared_at: Some(Time(at("2026-12-01T10:30:00Z"))),
            ..Default::default()
        };
        merge(
            &mut status,
            &[
                change("2026-12-01T10:10:00Z", "web", "a"),
                change("2026-12-01T10:25:00Z", "api", "b"),
                change("2026-12-01T10:35:00Z", "web", "after"),
            ],
        );
        let suspects = |status: &mut IncidentStatus| -> Vec<String> {
            mark_suspect(status);
            status
                .changes
                .iter()
                .filter(|c| c.suspect == Some(true))
                .map(|c| c.change.clone())
                .collect()
        };
        assert_eq!(suspects(&mut status), ["b"]);
        // Impact started earlier than the declaration.
        status.started_at = Some(Time(at("2026-12-01T10:15:00Z")));
        assert_eq!(suspects(&mut status), ["a"]);
    }
}
