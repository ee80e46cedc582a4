//! What an incident leaves to do after it: the postmortem its ladder
//! requires, and its follow-ups. Both stay live after resolution: the
//! postmortem falls due `postmortemWithin` after the resolution, a
//! follow-up the day after its due day (UTC). Each becomes overdue once,
//! and that is routed once (`PostmortemOverdue`, `FollowUpOverdue` per
//! item), remembered in `status.findings` so a restart never repeats it.

use jiff::{SignedDuration, Timestamp, civil::Date, tz::TimeZone};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    lifecycle::{Change, by},
    remember,
    timeline::{Kind, Reports},
};
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{FollowUp, FollowUpCounts, PostmortemState, PostmortemStatus},
        policy::Trigger,
    },
    domain::{enrich::truncate, policy::EffectivePolicy},
};

/// The finding that records an overdue postmortem as routed.
const POSTMORTEM_OVERDUE: &str = "PostmortemOverdue";

/// When a follow-up due on `due` (`2026-12-10`) is overdue: the start of
/// the next day, UTC. `None` when it is not a date.
pub fn overdue_at(due: &str) -> Option<Timestamp> {
    let day: Date = due.parse().ok()?;
    day.tomorrow()
        .ok()?
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether a key of `status.findings` records a reminder routed: what a
/// trimmed cache must keep, and what the findings' bound sheds last, so
/// nothing is routed twice.
pub fn routed(key: &str) -> bool {
    key == POSTMORTEM_OVERDUE || (key.starts_with("FollowUp/") && key.ends_with("/overdue"))
}

/// A follow-up's key in `status.findings`: short and stable whatever its
/// title, e.g. `FollowUp/3f2a…/done`.
fn key(item: &FollowUp, what: &str) -> String {
    format!(
        "FollowUp/{:016x}/{what}",
        crate::domain::fnv1a(item.title.bytes())
    )
}

pub fn apply(
    incident: &Incident,
    policy: &EffectivePolicy,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> Vec<Change> {
    let mut changes = Vec::new();
    changes.extend(postmortem(incident, policy, status, reports, now));
    changes.extend(follow_ups(incident, status, reports, now));
    changes
}

/// The postmortem's due time, for a level that sets `postmortemWithin`.
fn due(policy: &EffectivePolicy, incident: &Incident, status: &IncidentStatus) -> Option<Time> {
    let within = policy.level(&incident.spec.severity)?.postmortem_within?;
    let resolved = status.resolved_at.as_ref()?;
    let within = SignedDuration::try_from(within).ok()?;
    resolved.0.checked_add(within).ok().map(Time)
}

/// Whether the ladder requires a postmortem of this incident, and when it
/// is due: what `status.postmortem` must say under `policy`.
pub fn requirement(
    incident: &Incident,
    policy: &EffectivePolicy,
    status: &IncidentStatus,
) -> (bool, Option<Time>) {
    let required = policy
        .level(&incident.spec.severity)
        .is_some_and(|l| l.require_postmortem);
    (
        required,
        required.then(|| due(policy, incident, status)).flatten(),
    )
}

fn postmortem(
    incident: &Incident,
    policy: &EffectivePolicy,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> Option<Change> {
    // An incident resolved under a version that kept no postmortem state
    // is overdue from the first look: recorded, not routed.
    let first_look = status.postmortem.is_none();
    let (required, due) = requirement(incident, policy, status);
    let state = if incident.spec.postmortem.is_some() {
        PostmortemState::Done
    } else if !required {
        PostmortemState::NotRequired
    } else if due.as_ref().is_some_and(|d| d.0 <= now.0) {
        PostmortemState::Overdue
    } else {
        PostmortemState::Pending
    };
    status.postmortem = Some(PostmortemStatus {
        required,
        due: due.clone(),
        state,
    });
    if state != PostmortemState::Overdue
        || !remember(status, POSTMORTEM_OVERDUE.to_string())
        || first_look
    {
        return None;
    }
    let due = due.map(|d| d.0.to_string()).unwrap_or_default();
    reports.add(
        &mut status.timeline,
        now.clone(),
        Kind::PostmortemOverdue,
        format!(
            "The postmortem was due by {due} and is not linked: draft it with kubectl incident postmortem, then set spec.postmortem.url"
        ),
    );
    Some(Change {
        triggers: vec![Trigger::PostmortemOverdue],
        text: format!("postmortem overdue (due {due})"),
    })
}

fn follow_ups(
    incident: &Incident,
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) -> Vec<Change> {
    let by = by(incident);
    let mut counts = FollowUpCounts::default();
    let mut changes = Vec::new();
    for item in &incident.spec.follow_ups {
        let title = truncate(&item.title, 200);
        if remember(status, key(item, "added")) {
            let mut about = Vec::new();
            if let Some(owner) = &item.owner {
                about.push(format!("owner {}", truncate(owner, 128)));
            }
            if let Some(due) = &item.due {
                about.push(format!("due {due}"));
            }
            let about = if about.is_empty() {
                String::new()
            } else {
                format!(" ({})", about.join(", "))
            };
            reports.add(
                &mut status.timeline,
                now.clone(),
                Kind::FollowUp,
                format!("Follow-up added{by}: {title}{about}"),
            );
        }
        if item.done {
            counts.done += 1;
            if remember(status, key(item, "done")) {
                reports.add(
                    &mut status.timeline,
                    now.clone(),
                    Kind::FollowUp,
                    format!("Follow-up done{by}: {title}"),
                );
            }
            continue;
        }
        counts.open += 1;
        let overdue = item
            .due
            .as_deref()
            .and_then(overdue_at)
            .is_some_and(|at| at <= now.0);
        if !overdue {
            continue;
        }
        counts.overdue += 1;
        if remember(status, key(item, "overdue")) {
            let due = item.due.as_deref().unwrap_or_default();
            let owner = item
                .owner
                .as_deref()
                .map(|o| format!(", owner {}", truncate(o, 128)))
                .unwrap_or_default();
            reports.add(
                &mut status.timeline,
                now.clone(),
                Kind::FollowUpOverdue,
                format!("Follow-up overdue (due {due}{owner}): {title}"),
            );
            changes.push(Change {
                triggers: vec![Trigger::FollowUpOverdue],
                text: format!("follow-up overdue (due {due}{owner}): {title}"),
            });
        }
    }
    status.follow_ups = (!incident.spec.follow_ups.is_empty()).then_some(counts);
    changes
}

/// When something becomes overdue without any change: the postmortem's
/// due time, or the next follow-up's day after. Only what has not been
/// routed yet counts.
pub fn next(incident: &Incident, status: &IncidentStatus) -> Option<Timestamp> {
    let postmortem = status
        .postmortem
        .as_ref()
        .filter(|p| p.state == PostmortemState::Pending)
        .and_then(|p| p.due.as_ref())
        .map(|d| d.0);
    let follow_ups = incident
        .spec
        .follow_ups
        .iter()
        .filter(|item| !item.done && !status.findings.contains(&key(item, "overdue")))
        .filter_map(|item| overdue_at(item.due.as_deref()?));
    postmortem.into_iter().chain(follow_ups).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{Phase, incident::Postmortem},
        domain::incident::testing::{at, incident, payments_policy},
    };

    fn item(title: &str, due: Option<&str>, done: bool) -> FollowUp {
        FollowUp {
            title: title.into(),
            owner: Some("bob".into()),
            url: None,
            due: due.map(str::to_string),
            done,
        }
    }

    fn run(inc: &Incident, status: &mut IncidentStatus, now: &str) -> (Vec<Change>, usize) {
        let mut reports = Reports::default();
        let changes = apply(
            inc,
            &payments_policy(),
            status,
            &mut reports,
            &Time(at(now)),
        );
        (changes, reports.into_inner().len())
    }

    #[test]
    fn a_due_day_is_overdue_from_the_next_day_in_utc() {
        assert_eq!(overdue_at("2026-12-10"), Some(at("2026-12-11T00:00:00Z")));
        assert_eq!(overdue_at("2026-12-31"), Some(at("2027-01-01T00:00:00Z")));
        assert_eq!(overdue_at("next week"), None);
        assert_eq!(overdue_at("2026-02-30"), None);
    }

    #[test]
    fn a_required_postmortem_falls_due_after_resolution_and_is_routed_once() {
        // SEV1 requires a postmortem within 48h of the resolution.
        let mut inc = incident(Phase::Resolved, "SEV1");
        let mut status = IncidentStatus {
            resolved_at: Some(Time(at("2026-11-24T15:00:00Z"))),
            ..Default::default()
        };
        let (changes, _) = run(&inc, &mut status, "2026-11-26T14:59:59Z");
        assert!(changes.is_empty());
        let pm = status.postmortem.clone().expect("postmortem");
        assert_eq!(pm.state, PostmortemState::Pending);
        assert_eq!(pm.due, Some(Time(at("2026-11-26T15:00:00Z"))));
        assert_eq!(next(&inc, &status), Some(at("2026-11-26T15:00:00Z")));

        let (changes, said) = run(&inc, &mut status, "2026-11-26T15:00:00Z");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].triggers, [Trigger::PostmortemOverdue]);
        assert_eq!(said, 1);
        assert_eq!(
            status.postmortem.as_ref().map(|p| p.state),
            Some(PostmortemState::Overdue)
        );
        assert_eq!(next(&inc, &status), None, "nothing left to fall due");
        // Once, however often it is planned.
        let (again, said) = run(&inc, &mut status, "2026-11-27T09:00:00Z");
        assert!(again.is_empty() && said == 0);

        inc.spec.postmortem = Some(Postmortem {
            url: "https://wiki.example/pm/1".into(),
        });
        run(&inc, &mut status, "2026-11-27T10:00:00Z");
        assert_eq!(
            status.postmortem.map(|p| p.state),
            Some(PostmortemState::Done)
        );
    }

    #[test]
    fn an_incident_resolved_before_postmortems_were_kept_is_overdue_unrouted() {
        let inc = incident(Phase::Resolved, "SEV1");
        let mut status = IncidentStatus {
            resolved_at: Some(Time(at("2026-10-01T15:00:00Z"))),
            ..Default::default()
        };
        let (changes, said) = run(&inc, &mut status, "2026-12-03T10:00:00Z");
        assert!(
            changes.is_empty() && said == 0,
            "no reminder flood on upgrade"
        );
        assert_eq!(
            status.postmortem.map(|p| p.state),
            Some(PostmortemState::Overdue)
        );
        assert!(status.findings.contains(&POSTMORTEM_OVERDUE.to_string()));
    }

    #[test]
    fn a_postmortem_not_required_is_not_due() {
        let inc = incident(Phase::Resolved, "SEV2");
        let mut status = IncidentStatus {
            resolved_at: Some(Time(at("2026-11-24T15:00:00Z"))),
            ..Default::default()
        };
        run(&inc, &mut status, "2026-12-24T15:00:00Z");
        let pm = status.postmortem.expect("postmortem");
        assert_eq!(
            (pm.required, pm.due, pm.state),
            (false, None, PostmortemState::NotRequired)
        );
    }

    #[test]
    fn follow_ups_are_counted_and_each_overdue_one_is_routed_once() {
        let mut inc = incident(Phase::Resolved, "SEV2");
        inc.spec.follow_ups = vec![
            item("Canary for the card processor", Some("2026-11-30"), false),
            item("Alert on 5xx ratio", Some("2026-12-10"), false),
            item("Runbook", None, true),
        ];
        let mut status = IncidentStatus::default();
        let (changes, said) = run(&inc, &mut status, "2026-12-01T08:00:00Z");
        assert_eq!(said, 5, "three added, one done, one overdue");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].triggers, [Trigger::FollowUpOverdue]);
        assert_eq!(
            changes[0].text,
            "follow-up overdue (due 2026-11-30, owner bob): Canary for the card processor"
        );
        assert_eq!(
            status.follow_ups,
            Some(FollowUpCounts {
                open: 2,
                done: 1,
                overdue: 1
            })
        );
        assert_eq!(next(&inc, &status), Some(at("2026-12-11T00:00:00Z")));

        let (again, said) = run(&inc, &mut status, "2026-12-05T08:00:00Z");
        assert!(again.is_empty() && said == 0, "once per item");

        // Done after resolution: counted, entered once, not due anymore.
        inc.spec.follow_ups[1].done = true;
        let (changes, said) = run(&inc, &mut status, "2026-12-12T08:00:00Z");
        assert!(changes.is_empty());
        assert_eq!(said, 1);
        assert_eq!(
            status.follow_ups,
            Some(FollowUpCounts {
                open: 1,
                done: 2,
                overdue: 1
            })
        );
        assert_eq!(next(&inc, &status), None);
    }
}
