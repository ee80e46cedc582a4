use super::*;
use crate::api::{
    IncidentSpec, Phase,
    incident::{DeploymentState, PodState, PodsSummary},
};

/// The golden fixture: a resolved incident with a rich record.
fn resolved() -> Incident {
    serde_saphyr::from_str(include_str!("../../../tests/golden/resolved.yaml")).expect("fixture")
}

fn now() -> Timestamp {
    "2026-12-02T09:00:00Z".parse().expect("now")
}

fn from_configmap(text: &str) -> Template {
    Template {
        origin: Origin::ConfigMap {
            namespace: "shop".into(),
            name: "pm-template".into(),
            key: "draft.md".into(),
        },
        text: text.into(),
    }
}

fn error(template: &Template, incident: &Incident) -> String {
    match render(template, &context(incident, now())) {
        Ok(draft) => panic!("rendered: {draft}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_built_in_draft_of_the_golden_incident_is_the_golden_draft() {
    let draft = render(&Template::builtin(), &context(&resolved(), now())).expect("renders");
    assert_eq!(
        draft,
        include_str!("../../../tests/golden/postmortem.md"),
        "KLAXON_GOLDEN=update cargo test --test integration plugin:: rewrites it"
    );
}

#[test]
fn the_built_in_template_drafts_an_incident_the_operator_never_saw() {
    let mut bare = Incident::new(
        "typo",
        IncidentSpec {
            title: "Something is off".into(),
            severity: "SEV3".into(),
            phase: Phase::Triggered,
            ..Default::default()
        },
    );
    bare.metadata.namespace = Some("shop".into());
    let draft = render(&Template::builtin(), &context(&bare, now())).expect("renders");
    assert!(
        draft.starts_with("# Postmortem: Something is off\n"),
        "{draft}"
    );
    assert!(draft.contains("| Team | (none) |"), "{draft}");
    assert!(
        draft.contains("| Postmortem | (not known yet) |"),
        "{draft}"
    );
    assert!(
        draft.contains("_Nobody was paged through Klaxon._"),
        "{draft}"
    );
    assert!(
        draft.contains("kubectl incident followup typo -n shop --title"),
        "{draft}"
    );
    assert!(draft.ends_with("### Where we were lucky\n"), "{draft}");
}

#[test]
fn the_context_numbers_follow_ups_and_says_which_are_overdue() {
    let ctx = context(&resolved(), now());
    let items: Vec<(usize, &str, bool, bool)> = ctx
        .follow_ups
        .iter()
        .map(|f| (f.number, f.title.as_str(), f.done, f.overdue))
        .collect();
    assert_eq!(
        items,
        [
            (1, "Canary for the card processor", false, false),
            (2, "Alert on the 5xx ratio", false, true),
            (3, "Memory limit for checkout", true, false),
        ]
    );
    assert_eq!(
        ctx.follow_up_counts,
        FollowUpCounts {
            open: 2,
            done: 1,
            overdue: 1
        }
    );
    // Due 2026-11-30: not overdue until the day is over, in UTC.
    let on_the_day = context(&resolved(), "2026-11-30T23:59:59Z".parse().expect("t"));
    assert!(!on_the_day.follow_ups[1].overdue);
}

#[test]
fn the_context_says_times_in_utc_and_relative_to_the_declaration() {
    let ctx = context(&resolved(), now());
    assert_eq!(ctx.drafted_at, "2026-12-02 09:00:00 UTC");
    assert_eq!(
        ctx.times.started_at.as_deref(),
        Some("2026-11-24 13:55:00 UTC")
    );
    assert_eq!(ctx.durations.to_resolve.as_deref(), Some("1h2m"));
    assert_eq!(ctx.incident.source, "manual");
    let rollout = &ctx.rollouts[0];
    assert_eq!(
        (rollout.at.as_str(), rollout.before_declaration.as_deref()),
        ("2026-11-24 14:01:10 UTC", Some("50s"))
    );
    let since: Vec<Option<&str>> = ctx.timeline[..3]
        .iter()
        .map(|e| e.since_declared.as_deref())
        .collect();
    assert_eq!(since, [Some("-50s"), Some("+0s"), Some("+5s")]);
    assert_eq!(ctx.timeline[0].clock, "14:01:10");
    assert_eq!(ctx.paging.escalations.len(), 1);
    assert_eq!(
        (
            ctx.paging.delivered,
            ctx.paging.failed,
            ctx.paging.pending,
            ctx.paging.summarised
        ),
        (6, 1, 0, 2)
    );
    assert_eq!(ctx.postmortem.state.as_deref(), Some("Overdue"));
    assert!(ctx.related[1].detected);
}

#[test]
fn impact_is_the_worst_recorded_else_the_workloads_as_last_seen() {
    let ctx = context(&resolved(), now());
    assert_eq!(ctx.impact.basis, "worst");
    let checkout = &ctx.impact.workloads[0];
    assert_eq!(
        (checkout.ready, checkout.replicas, checkout.restarts),
        (Some(0), Some(3), Some(31))
    );
    assert_eq!(ctx.evidence.reasons[0].reason, "CrashLoopBackOff");
    // The most repeated events first, the most recent among equals.
    let counts: Vec<i32> = ctx.evidence.events.iter().map(|e| e.count).collect();
    assert_eq!(counts, [14, 11, 6, 4, 1]);

    let mut older = resolved();
    let status = older.status.as_mut().expect("status");
    status.impact.clear();
    status.deployments = vec![
        DeploymentState {
            name: "checkout".into(),
            found: true,
            replicas: Some(3),
            ready_replicas: Some(1),
            pods: Some(PodsSummary {
                total: 3,
                ready: 1,
                restarts: 9,
                reasons: vec![ReasonCount {
                    reason: "OOMKilled".into(),
                    count: 2,
                    recovered: None,
                }],
                items: vec![PodState {
                    name: "checkout-1".into(),
                    ready: false,
                    restarts: 9,
                    reason: Some("OOMKilled".into()),
                    message: Some("out of memory".into()),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        },
        DeploymentState {
            name: "ledger".into(),
            found: false,
            ..Default::default()
        },
    ];
    let ctx = context(&older, now());
    assert_eq!(ctx.impact.basis, "last");
    let w: Vec<(&str, bool, Option<i32>, Option<i32>)> = ctx
        .impact
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.found, w.ready, w.restarts))
        .collect();
    assert_eq!(
        w,
        [
            ("checkout", true, Some(1), Some(9)),
            ("ledger", false, None, None)
        ]
    );
    assert_eq!(
        ctx.evidence.pods[0].message.as_deref(),
        Some("out of memory")
    );
    let draft = render(&Template::builtin(), &ctx).expect("renders");
    assert!(
        draft.contains("The affected workloads as last seen:"),
        "{draft}"
    );
    assert!(
        draft.contains("| Deployment/ledger | not found | - | - |"),
        "{draft}"
    );
    assert!(
        draft.contains("- `checkout-1` (checkout): OOMKilled, 9 restarts: \"out of memory\""),
        "{draft}"
    );
}

#[test]
fn a_team_template_renders_over_the_same_context() {
    let template = from_configmap(
        "{{ incident.severity }} {{ incident.title }} ({{ durations.to_resolve }})\n{% for f in follow_ups if not f.done %}\n- {{ f.number }}. {{ f.title | upper }}\n{% endfor %}\n| {{ \"a|b\" | cell }} |\n",
    );
    let draft = render(&template, &context(&resolved(), now())).expect("renders");
    assert_eq!(
        draft,
        "SEV1 Checkout returns 5xx after the v42 rollout (1h2m)\n- 1. CANARY FOR THE CARD PROCESSOR\n- 2. ALERT ON THE 5XX RATIO\n| a\\|b |\n"
    );
}

#[test]
fn a_broken_template_is_an_error_naming_its_origin_and_line() {
    let incident = resolved();
    let unknown = from_configmap("# {{ incident.title }}\n\n{{ incident.title | shout }}\n");
    assert_eq!(
        error(&unknown, &incident),
        "template configmap shop/pm-template key draft.md: line 3: unknown filter \"shout\"\n  3 | {{ incident.title | shout }}"
    );
    let syntax = from_configmap("ok\n{% if %}\n");
    assert!(
        error(&syntax, &incident).starts_with(
            "template configmap shop/pm-template key draft.md: line 2: syntax error: "
        ),
        "{}",
        error(&syntax, &incident)
    );
    // A misspelt field fails rather than printing nothing.
    let typo = from_configmap("{{ incident.title }}\n{{ incident.titel }}\n");
    assert_eq!(
        error(&typo, &incident),
        "template configmap shop/pm-template key draft.md: line 2: undefined value: incident.titel\n  2 | {{ incident.titel }}"
    );
    let nested = from_configmap("{{ incident.foo.bar }}");
    assert!(
        error(&nested, &incident).contains("line 1: undefined value: incident.foo.bar"),
        "{}",
        error(&nested, &incident)
    );
    let file = Template {
        origin: Origin::File("team.md.j2".into()),
        text: "{{ 1 + }}".into(),
    };
    assert!(
        error(&file, &incident).starts_with("template file team.md.j2: line 1: syntax error"),
        "{}",
        error(&file, &incident)
    );
}
