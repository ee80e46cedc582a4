//! The plan as a whole: what one pass over an incident decides.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Rest, budget::fit, conditions::*, rest, testing::*};
use crate::{
    api::{Phase, incident::Note},
    domain::conditions::READY,
};

#[test]
fn first_pass_declares_and_explains_the_rollout() {
    let now = at("2026-11-24T14:10:05Z");
    let out = plan(
        &incident(Phase::Triggered, "SEV2"),
        observation(vec![checkout(1, &[("CrashLoopBackOff", 2)])]),
        now,
    );
    let s = &out.status;
    assert_eq!(
        s.declared_at.as_ref().map(|t| t.0),
        Some(at("2026-11-24T14:10:00Z"))
    );
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        s.summary.as_deref(),
        Some("checkout 1/3 ready; 2 CrashLoopBackOff")
    );
    let timeline: Vec<(&str, &str)> = s
        .timeline
        .iter()
        .map(|e| (e.type_.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        timeline,
        [
            (
                "Rollout",
                "checkout rolled out revision 2 9m before the incident was declared: shop/checkout:v41 → shop/checkout:v42"
            ),
            ("Declared", "Declared SEV2: Checkout returns 5xx"),
            ("PodFailure", "checkout: pods show CrashLoopBackOff"),
        ]
    );
    let reasons: Vec<&str> = out.events.iter().map(|t| t.reason.as_str()).collect();
    assert_eq!(reasons, ["Declared", "Rollout", "PodFailure"]);
    // The evidence stays in the timeline; only the declaration is an Event.
    let narrated: Vec<&str> = out
        .events
        .iter()
        .filter(|t| t.narrated)
        .map(|t| t.reason.as_str())
        .collect();
    assert_eq!(narrated, ["Declared"]);
    let types: Vec<(&str, &str)> = s
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("Ready", "True"),
            ("Enriched", "True"),
            ("DeploymentsFound", "True"),
            ("MetricsAvailable", "True")
        ]
    );
}

#[test]
fn a_second_pass_with_nothing_new_changes_nothing() {
    let mut inc = incident(Phase::Triggered, "SEV2");
    let first = plan(
        &inc,
        observation(vec![checkout(1, &[])]),
        at("2026-11-24T14:10:05Z"),
    );
    inc.status = Some(first.status.clone());
    let second = plan(
        &inc,
        observation(vec![checkout(1, &[])]),
        at("2026-11-24T14:20:00Z"),
    );
    assert_eq!(
        second.status, first.status,
        "no change must mean no status write"
    );
    assert!(second.events.is_empty());
}

#[test]
fn a_rollout_enters_the_timeline_once_even_when_details_arrive_later() {
    let mut inc = incident(Phase::Triggered, "SEV2");
    let mut early = checkout(1, &[]);
    early.previous_images.clear();
    let first = plan(&inc, observation(vec![early]), at("2026-11-24T14:10:05Z"));
    inc.status = Some(first.status);
    let second = plan(
        &inc,
        observation(vec![checkout(1, &[])]),
        at("2026-11-24T14:10:06Z"),
    );
    let rollouts = second
        .status
        .timeline
        .iter()
        .filter(|e| e.type_ == "Rollout")
        .count();
    assert_eq!(rollouts, 1);
    assert!(second.events.is_empty());
}

#[test]
fn phase_severity_and_notes_enter_the_timeline_once() {
    let mut inc = incident(Phase::Triggered, "SEV2");
    let first = plan(&inc, observation(vec![]), at("2026-11-24T14:10:05Z"));
    inc.status = Some(first.status);
    inc.spec.phase = Phase::Acknowledged;
    inc.spec.severity = "SEV1".into();
    inc.spec.notes.push(Note {
        author: Some("alice".into()),
        text: "Rolled back to v41".into(),
        time: Some(Time(at("2026-11-24T14:20:00Z"))),
    });
    let second = plan(&inc, observation(vec![]), at("2026-11-24T14:21:00Z"));
    let s = &second.status;
    assert_eq!(
        s.acknowledged_at.as_ref().map(|t| t.0),
        Some(at("2026-11-24T14:21:00Z"))
    );
    let reasons: Vec<&str> = second.events.iter().map(|t| t.reason.as_str()).collect();
    assert_eq!(reasons, ["PhaseChanged", "SeverityChanged", "Note"]);
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message == "Triggered → Acknowledged")
    );
    assert!(s.timeline.iter().any(|e| e.message == "SEV2 → SEV1"));
    assert!(
        s.timeline
            .iter()
            .any(|e| e.message == "alice: Rolled back to v41")
    );
    inc.status = Some(s.clone());
    let third = plan(&inc, observation(vec![]), at("2026-11-24T14:22:00Z"));
    assert!(third.events.is_empty());
}

#[test]
fn resolution_freezes_the_observation() {
    let mut inc = incident(Phase::Triggered, "SEV2");
    let first = plan(
        &inc,
        observation(vec![checkout(1, &[])]),
        at("2026-11-24T14:10:05Z"),
    );
    inc.status = Some(first.status);
    inc.spec.phase = Phase::Resolved;
    let resolving = plan(
        &inc,
        observation(vec![checkout(3, &[])]),
        at("2026-11-24T15:00:00Z"),
    );
    assert_eq!(resolving.status.deployments[0].ready_replicas, Some(3));
    inc.status = Some(resolving.status.clone());
    let later = plan(
        &inc,
        observation(vec![checkout(0, &[("OOMKilled", 3)])]),
        at("2026-11-24T15:30:00Z"),
    );
    assert_eq!(later.status.deployments, resolving.status.deployments);
    assert_eq!(later.status.summary, resolving.status.summary);
    let enriched =
        crate::domain::conditions::find(&later.status.conditions, ENRICHED).expect("Enriched");
    assert_eq!(enriched.reason, "Frozen");
}

#[test]
fn a_missing_deployment_is_a_condition() {
    let out = plan(
        &incident(Phase::Triggered, "SEV2"),
        observation(vec![crate::domain::enrich::deployment::not_found("ledger")]),
        at("2026-11-24T14:10:05Z"),
    );
    let found = crate::domain::conditions::find(&out.status.conditions, DEPLOYMENTS_FOUND)
        .expect("condition");
    assert_eq!(found.status, "False");
    assert_eq!(found.reason, "DeploymentNotFound");
    assert!(found.message.contains("ledger"), "{}", found.message);
}

#[test]
fn the_status_stays_bounded_under_an_event_storm() {
    let mut storm = observation(vec![checkout(0, &[])]);
    storm.events = event_storm(100);
    let mut status = plan(
        &incident(Phase::Triggered, "SEV2"),
        storm,
        at("2026-11-24T14:10:05Z"),
    )
    .status;
    fit(&mut status, 8 * 1024);
    assert!(
        serde_json::to_vec(&status)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
            <= 8 * 1024
    );
    assert!(!status.events.is_empty());
}

#[test]
fn an_unknown_severity_lists_the_valid_levels() {
    let out = plan_with(
        &incident(Phase::Triggered, "P1"),
        observation(vec![]),
        &payments_policy(),
        at("2026-11-24T14:10:05Z"),
    );
    let ready = crate::domain::conditions::find(&out.status.conditions, READY).expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "UnknownSeverity")
    );
    assert!(
        ready.message.contains("valid levels: SEV1, SEV2"),
        "{}",
        ready.message
    );
    assert_eq!(out.status.acknowledge_by, None);
}

#[test]
fn requirements_deadlines_routes_and_escalation_follow_the_ladder() {
    let mut inc = incident(Phase::Triggered, "SEV1");
    inc.metadata.uid = Some("u1".into());
    let policy = payments_policy();
    let first = plan_with(
        &inc,
        observation(vec![]),
        &policy,
        at("2026-11-24T14:10:05Z"),
    );
    let s = &first.status;
    assert_eq!(s.team.as_deref(), Some("payments"));
    assert_eq!(s.acknowledge_by, Some(Time(at("2026-11-24T14:15:00Z"))));
    let ready = crate::domain::conditions::find(&s.conditions, READY).expect("Ready");
    assert_eq!(ready.reason, "CommanderMissing");
    assert!(
        s.summary
            .as_deref()
            .is_some_and(|l| l.starts_with("commander missing"))
    );
    let routed: Vec<(&str, &str)> = s
        .notifications
        .iter()
        .map(|n| (n.receiver.as_str(), n.trigger.as_str()))
        .collect();
    assert_eq!(routed, [("org/hook", "Declared")]);
    assert_eq!(
        s.notifications[0].idempotency_key.as_deref(),
        Some("u1.1.Declared.org/hook")
    );

    // The deadline passes unacknowledged: escalate once.
    inc.status = Some(first.status.clone());
    let late = plan_with(
        &inc,
        observation(vec![]),
        &policy,
        at("2026-11-24T14:15:01Z"),
    );
    let overdue = crate::domain::conditions::find(&late.status.conditions, ACKNOWLEDGEMENT_OVERDUE)
        .expect("overdue");
    assert_eq!(overdue.status, "True");
    let ready = crate::domain::conditions::find(&late.status.conditions, "Ready").expect("Ready");
    // Not Ready; the commander (missing since the start) leads, the
    // deadline follows in the message.
    assert_eq!(ready.status, "False", "an overdue incident is not Ready");
    assert!(
        ready.message.contains("kubectl incident ack"),
        "{}",
        ready.message
    );
    assert_eq!(late.status.overdue, Some(true));
    assert!(
        late.events
            .iter()
            .any(|t| t.reason == "Escalated" && t.warning)
    );
    assert!(
        late.status
            .notifications
            .iter()
            .any(|n| n.trigger == "Escalated")
    );
    inc.status = Some(late.status.clone());
    let again = plan_with(
        &inc,
        observation(vec![]),
        &policy,
        at("2026-11-24T14:16:00Z"),
    );
    assert!(again.events.is_empty());
    assert_eq!(
        again.status.notifications.len(),
        late.status.notifications.len()
    );
}

/// Transitions a responder makes, in order, on `inc`; the keys of the
/// notifications each pass adds.
fn walk(inc: &mut crate::api::Incident, steps: &[(&str, Phase)]) -> Vec<Vec<String>> {
    let policy = every_change_policy();
    let mut keys = Vec::new();
    let mut minute = 10;
    for (severity, phase) in steps {
        inc.spec.severity = severity.to_string();
        inc.spec.phase = *phase;
        minute += 1;
        let now = at(&format!("2026-11-24T14:{minute:02}:00Z"));
        let out = plan_with(inc, observation(vec![]), &policy, now);
        let before: Vec<String> = inc
            .status
            .iter()
            .flat_map(|s| &s.notifications)
            .filter_map(|n| n.idempotency_key.clone())
            .collect();
        keys.push(
            out.status
                .notifications
                .iter()
                .filter_map(|n| n.idempotency_key.clone())
                .filter(|k| !before.contains(k))
                .collect(),
        );
        inc.status = Some(out.status);
    }
    keys
}

#[test]
fn each_severity_raise_and_each_phase_change_notifies_again_with_its_own_key() {
    let mut inc = incident(Phase::Triggered, "SEV3");
    inc.metadata.uid = Some("u1".into());
    let added = walk(
        &mut inc,
        &[
            ("SEV3", Phase::Triggered),
            ("SEV2", Phase::Triggered),
            ("SEV1", Phase::Triggered),
            ("SEV1", Phase::Acknowledged),
            ("SEV1", Phase::Mitigated),
            ("SEV1", Phase::Resolved),
            ("SEV1", Phase::Resolved),
        ],
    );
    assert_eq!(
        added,
        [
            vec!["u1.1.Declared.hook".to_string()],
            vec!["u1.2.SeverityChanged.hook".to_string()],
            vec!["u1.3.SeverityChanged.hook".to_string()],
            vec!["u1.4.PhaseChanged.hook".to_string()],
            vec!["u1.5.PhaseChanged.hook".to_string()],
            // A resolution is also a phase change: one page, as a resolution.
            vec!["u1.6.Resolved.hook".to_string()],
            vec![],
        ]
    );
    let status = inc.status.expect("status");
    let transitions: Vec<&str> = status
        .notifications
        .iter()
        .filter_map(|n| n.transition.as_deref())
        .collect();
    assert_eq!(
        transitions,
        [
            "Declared SEV3",
            "SEV3 → SEV2",
            "SEV2 → SEV1",
            "Triggered → Acknowledged",
            "Acknowledged → Mitigated",
            "Mitigated → Resolved"
        ]
    );
}

#[test]
fn planning_again_at_the_same_instant_changes_nothing() {
    let mut inc = incident(Phase::Triggered, "SEV1");
    inc.metadata.uid = Some("u1".into());
    let now = at("2026-11-24T14:10:05Z");
    let first = plan_with(
        &inc,
        observation(vec![checkout(1, &[("OOMKilled", 1)])]),
        &payments_policy(),
        now,
    );
    assert_eq!(first.deliveries.len(), 1, "the declaration is due at once");
    inc.status = Some(first.status.clone());
    let second = plan_with(
        &inc,
        observation(vec![checkout(1, &[("OOMKilled", 1)])]),
        &payments_policy(),
        now,
    );
    assert_eq!(second.status, first.status);
    assert!(second.events.is_empty());
    assert!(second.deliveries.is_empty(), "an attempt is recorded once");
}

mod property {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    use super::super::{Observation, testing::*};
    use crate::api::{
        Phase,
        incident::{DeploymentState, EventSummary, PodState, PodsSummary, ReasonCount},
    };

    const REASONS: [&str; 6] = [
        "CrashLoopBackOff",
        "OOMKilled",
        "ImagePullBackOff",
        "Error",
        "Unschedulable",
        "NotReady",
    ];

    fn deployment() -> impl Strategy<Value = DeploymentState> {
        (
            "[a-z]{1,12}",
            any::<bool>(),
            0..10i32,
            0..10i32,
            proptest::collection::vec((0..REASONS.len(), 1..5i32), 0..4),
            0..3000i64,
            1..9u8,
            proptest::collection::vec(("[a-z]{1,30}", 0..50i32), 0..30),
        )
            .prop_map(
                |(name, found, replicas, ready, reasons, rollout_ago, revision, pods)| {
                    if !found {
                        return crate::domain::enrich::deployment::not_found(&name);
                    }
                    let declared = at("2026-11-24T14:10:00Z").as_second();
                    DeploymentState {
                        name: name.clone(),
                        found,
                        replicas: Some(replicas),
                        ready_replicas: Some(ready.min(replicas)),
                        revision: Some(revision.to_string()),
                        rollout_at: Timestamp::from_second(declared - rollout_ago)
                            .ok()
                            .map(Time),
                        images: vec![format!("{name}:v{revision}")],
                        previous_images: vec![format!("{name}:v{}", revision - 1)],
                        pods: Some(PodsSummary {
                            total: replicas,
                            ready: ready.min(replicas),
                            restarts: reasons.iter().map(|(_, n)| n).sum(),
                            reasons: reasons
                                .iter()
                                .map(|(r, n)| ReasonCount {
                                    reason: REASONS[*r].into(),
                                    count: *n,
                                    recovered: None,
                                })
                                .collect(),
                            items: pods
                                .into_iter()
                                .map(|(pod, restarts)| PodState {
                                    name: pod,
                                    phase: Some("Running".into()),
                                    ready: restarts == 0,
                                    restarts,
                                    reason: (restarts > 0).then(|| "CrashLoopBackOff".into()),
                                    message: Some("x".repeat(restarts as usize * 10)),
                                    log: None,
                                })
                                .collect(),
                        }),
                        ..Default::default()
                    }
                },
            )
    }

    fn observations() -> impl Strategy<Value = Observation> {
        (
            proptest::collection::vec(deployment(), 1..=50),
            proptest::collection::vec(("[A-Za-z]{1,20}", "[a-z ]{0,200}", 1..100i32), 0..100),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(deployments, events, metrics_available)| Observation {
                deployments,
                events: events
                    .into_iter()
                    .map(|(reason, message, count)| EventSummary {
                        type_: "Warning".into(),
                        reason,
                        object: "Pod/x".into(),
                        message,
                        count,
                        first_seen: None,
                        last_seen: None,
                    })
                    .collect(),
                warnings: 3,
                metrics_available,
                ..Default::default()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The plan's own output is a fixed point: planning over it again
        /// at the same instant writes nothing and emits nothing.
        #[test]
        fn planning_over_the_plans_output_changes_nothing(
            observation in observations(),
            severity in prop::sample::select(vec!["SEV1", "SEV2", "SEV3", "P1"]),
            phase in prop::sample::select(vec![Phase::Triggered, Phase::Acknowledged, Phase::Mitigated, Phase::Resolved]),
            minutes_later in 0..120i64,
            with_policy in any::<bool>(),
            follow_ups in proptest::collection::vec(("[a-z ]{1,30}", 0..4usize, any::<bool>()), 0..8),
            impact_minutes in proptest::option::of(0..600i64),
            earlier in proptest::collection::vec(("[a-z]{1,8}", 0..40i64, "[a-z]{1,3}"), 0..15),
        ) {
            let mut inc = incident(phase, severity);
            inc.metadata.uid = Some("u1".into());
            let days = ["2026-11-01", "2026-11-24", "2026-11-25", "2027-01-01"];
            inc.spec.follow_ups = follow_ups
                .into_iter()
                .map(|(title, due, done)| crate::api::incident::FollowUp {
                    title,
                    due: Some(days[due].to_string()),
                    done,
                    ..Default::default()
                })
                .collect();
            inc.spec.follow_ups.dedup_by(|a, b| a.title == b.title);
            inc.spec.impact_started_at = impact_minutes.map(|m| {
                Time(Timestamp::from_second(at("2026-11-24T14:10:00Z").as_second() - m * 60).expect("time"))
            });
            let mut observation = observation;
            observation.related = earlier
                .into_iter()
                .map(|(name, days_ago, workload)| crate::domain::incident::related::Earlier {
                    name,
                    resolved_at: Timestamp::from_second(
                        at("2026-11-24T14:10:00Z").as_second() - days_ago * 86_400,
                    )
                    .ok()
                    .map(Time),
                    workloads: vec![workload],
                })
                .collect();
            let policy = if with_policy { payments_policy() } else { no_policy() };
            let now = Timestamp::from_second(at("2026-11-24T14:10:00Z").as_second() + minutes_later * 60)
                .expect("time");
            let first = plan_with(&inc, observation.clone(), &policy, now);
            inc.status = Some(first.status.clone());
            let second = plan_with(&inc, observation, &policy, now);
            let (a, b) = (
                serde_json::to_value(&first.status).unwrap_or_default(),
                serde_json::to_value(&second.status).unwrap_or_default(),
            );
            let differ: Vec<String> = a
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| b.get(k.as_str()) != Some(*v))
                .map(|(k, v)| format!("{k}: {v} -> {:?}", b.get(k.as_str())))
                .collect();
            prop_assert!(differ.is_empty(), "changed: {}", differ.join("\n"));
            prop_assert_eq!(&second.status, &first.status);
            prop_assert!(second.events.is_empty(), "emitted again: {:?}", second.events);
            prop_assert!(second.deliveries.is_empty());
            prop_assert_eq!(second.resolve, first.resolve);
        }
    }
}

#[test]
fn an_unusable_selector_is_a_condition_not_a_silent_match_of_nothing() {
    let mut obs = observation(vec![]);
    obs.invalid_selectors = vec!["entry 0: invalid operator".into()];
    let out = plan(
        &incident(Phase::Triggered, "SEV2"),
        obs,
        at("2026-11-24T14:10:05Z"),
    );
    let found = crate::domain::conditions::find(&out.status.conditions, DEPLOYMENTS_FOUND)
        .expect("DeploymentsFound");
    assert_eq!(
        (found.status.as_str(), found.reason.as_str()),
        ("False", "InvalidSelector")
    );
    assert!(found.message.contains("entry 0"), "{}", found.message);
}

#[test]
fn a_resolved_incident_rests_until_something_falls_due_or_the_policy_changes() {
    use crate::api::incident::FollowUp;
    let now = at("2026-11-25T10:00:00Z");
    let mut inc = incident(Phase::Resolved, "SEV1");
    inc.metadata.uid = Some("u1".into());
    // SEV1 requires a postmortem within 48h of the resolution.
    let policy = payments_policy();
    // Declared resolved: resolved at its creation, 14:10.
    let mut resolved = plan_with(
        &inc,
        observation(vec![]),
        &policy,
        at("2026-11-24T15:00:00Z"),
    );
    assert_eq!(rest(&inc, &policy, now), Rest::Work, "not planned yet");
    for n in &mut resolved.status.notifications {
        n.state = crate::api::incident::DeliveryState::Delivered;
    }
    inc.status = Some(resolved.status.clone());
    assert_eq!(
        rest(&inc, &policy, now),
        Rest::Until(at("2026-11-26T14:10:00Z")),
        "the postmortem falls due"
    );
    assert_eq!(rest(&inc, &policy, at("2026-11-26T14:10:00Z")), Rest::Work);
    // Something still to deliver.
    resolved.status.notifications[0].state = crate::api::incident::DeliveryState::Pending;
    let pending = crate::api::Incident {
        status: Some(resolved.status),
        ..inc.clone()
    };
    assert_eq!(rest(&pending, &policy, now), Rest::Work);

    // Linked: nothing left to fall due.
    inc.spec.postmortem = Some(crate::api::incident::Postmortem {
        url: "https://wiki.example/pm/1".into(),
    });
    inc.metadata.generation = Some(2);
    assert_eq!(rest(&inc, &policy, now), Rest::Work, "a spec change");
    let linked = plan_with(&inc, observation(vec![]), &policy, now);
    inc.status = Some(linked.status);
    assert_eq!(rest(&inc, &policy, now), Rest::Settled);

    // A follow-up added later falls due too.
    inc.spec.follow_ups = vec![FollowUp {
        title: "Canary".into(),
        due: Some("2026-12-10".into()),
        ..Default::default()
    }];
    inc.metadata.generation = Some(3);
    let followed = plan_with(&inc, observation(vec![]), &policy, now);
    inc.status = Some(followed.status);
    assert_eq!(
        rest(&inc, &policy, now),
        Rest::Until(at("2026-12-11T00:00:00Z"))
    );

    // The ladder stops requiring a postmortem: the record is out of date.
    assert_eq!(rest(&inc, &no_policy(), now), Rest::Work);
    // So is one kept by a version without postmortem state.
    if let Some(status) = inc.status.as_mut() {
        status.postmortem = None;
    }
    assert_eq!(rest(&inc, &policy, now), Rest::Work);
}
