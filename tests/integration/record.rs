//! The learning record on the real control plane: durations from an
//! earlier impact start, series observed once per transition (across an
//! operator restart too), a postmortem and follow-ups falling due after
//! resolution, recurrences, and one page per transition.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use klaxon::{
    api::{
        Incident, Phase,
        incident::{FollowUpCounts, PostmortemState, Relation},
    },
    domain::policy::humantime,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::support::{
    self,
    fixtures::{apply, more_plans, routed_team, wait_for},
    operator::{self, Operator},
    receiver::{Receiver, Request},
};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace whose team policy (team = the namespace's name, so the
/// series of this test are its own) has `ladder` and sends `triggers` to
/// a webhook on `receiver`; returns the namespace and the URL's token.
async fn team_namespace(
    cluster: &support::Cluster,
    client: &Client,
    receiver: &Receiver,
    prefix: &str,
    ladder: &str,
    triggers: &str,
) -> (String, String) {
    let (ns, token) = routed_team(
        cluster,
        client,
        receiver,
        prefix,
        &format!("triggers: {triggers}"),
        |ns| format!("  team: {{name: {ns}}}\n  severities: {ladder}\n"),
    )
    .await;
    crate::support::fixtures::wait_policy_ready(client, &ns, "team", WAIT).await;
    (ns, token)
}

const LADDER: &str = "[{name: SEV1}, {name: SEV2}, {name: SEV3}]";

async fn set_spec(incidents: &Api<Incident>, name: &str, spec: serde_json::Value) {
    incidents
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("change the spec");
}

fn whole_seconds_ago(minutes: i64) -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second() - minutes * 60).expect("time")
}

fn span(from: &Time, to: &Time) -> String {
    humantime(std::time::Duration::from_secs(
        u64::try_from(to.0.as_second() - from.0.as_second()).expect("in order"),
    ))
}

fn sent(requests: &[Request], trigger: &str) -> Vec<Request> {
    requests
        .iter()
        .filter(|r| {
            r.key
                .as_deref()
                .is_some_and(|k| k.contains(&format!(".{trigger}.")))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_stage_is_timed_from_the_impact_start_and_observed_once() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    // The route lists both triggers a resolution matches.
    let (ns, token) = team_namespace(
        cluster,
        &client,
        &receiver,
        "record",
        LADDER,
        "[PhaseChanged, Resolved]",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let impact = whole_seconds_ago(12);
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: checkout-5xx, namespace: {ns}}}\nspec: {{title: Checkout returns 5xx, severity: SEV2, impactStartedAt: \"{impact}\"}}\n"
        ),
    );
    wait_for(&client, &ns, "checkout-5xx", WAIT, "the declaration", |i| {
        i.status.as_ref().is_some_and(|s| s.declared_at.is_some())
    })
    .await;
    for (phase, done) in [
        ("Acknowledged", "acknowledgedAt"),
        ("Mitigated", "mitigatedAt"),
        ("Resolved", "resolvedAt"),
    ] {
        set_spec(&incidents, "checkout-5xx", json!({"phase": phase})).await;
        wait_for(&client, &ns, "checkout-5xx", WAIT, done, |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.observed_phase.map(|p| p.as_str()) == Some(phase))
        })
        .await;
    }
    let done = incidents.get("checkout-5xx").await.expect("incident");
    let status = done.status.clone().expect("status");
    let started = status.started_at.clone().expect("startedAt");
    assert_eq!(started.0, impact, "impact started before the declaration");
    let declared = status.declared_at.clone().expect("declaredAt");
    let acked = status.acknowledged_at.clone().expect("acknowledgedAt");
    let mitigated = status.mitigated_at.clone().expect("mitigatedAt");
    let resolved = status.resolved_at.clone().expect("resolvedAt");
    let durations = status.durations.clone().expect("durations");
    assert_eq!(
        (
            durations.to_detect.as_deref(),
            durations.to_acknowledge.as_deref(),
            durations.to_mitigate.as_deref(),
            durations.to_resolve.as_deref(),
            durations.to_recover.as_deref(),
        ),
        (
            Some(span(&started, &declared).as_str()),
            Some(span(&declared, &acked).as_str()),
            Some(span(&started, &mitigated).as_str()),
            Some(span(&started, &resolved).as_str()),
            None,
        )
    );
    assert!(
        durations
            .to_detect
            .as_deref()
            .is_some_and(|d| d.starts_with("12m")),
        "{durations:?}"
    );

    // Nothing is observed again, however often the operator plans and
    // writes the incident.
    more_plans(shared.port, &incidents, "checkout-5xx", 5).await;
    let labels = format!(r#"team="{ns}",severity="SEV2""#);
    let sample = |name: &str| shared.metric(&format!("{name}{{{labels}}}"));
    assert_eq!(
        shared.metric(&format!(
            r#"klaxon_incidents_declared_total{{{labels},source="manual"}}"#
        )),
        Some(1.0)
    );
    assert_eq!(sample("klaxon_incidents_resolved_total"), Some(1.0));
    let seconds = |from: &Time, to: &Time| (to.0.as_second() - from.0.as_second()) as f64;
    for (histogram, from, to) in [
        ("klaxon_incident_detect_seconds", &started, &declared),
        ("klaxon_incident_acknowledge_seconds", &declared, &acked),
        ("klaxon_incident_mitigate_seconds", &started, &mitigated),
        ("klaxon_incident_resolve_seconds", &started, &resolved),
    ] {
        assert_eq!(
            sample(&format!("{histogram}_count")),
            Some(1.0),
            "{histogram}"
        );
        assert_eq!(
            sample(&format!("{histogram}_sum")),
            Some(seconds(from, to)),
            "{histogram}"
        );
    }
    // A 12-minute detection lands in the 15-minute bucket, not below.
    assert_eq!(
        shared.metric(&format!(
            r#"klaxon_incident_detect_seconds_bucket{{le="600.0",{labels}}}"#
        )),
        Some(0.0)
    );
    assert_eq!(
        shared.metric(&format!(
            r#"klaxon_incident_detect_seconds_bucket{{le="900.0",{labels}}}"#
        )),
        Some(1.0)
    );
    assert_eq!(
        shared.metric(&format!(r#"klaxon_incidents_open{{team="{ns}","#)),
        None,
        "resolved: not open"
    );

    // The resolution matched both triggers of the route: one page.
    let requests = receiver.requests_to(&token);
    let resolution: Vec<&Request> = requests
        .iter()
        .filter(|r| r.body["transition"].as_str() == Some("Mitigated → Resolved"))
        .collect();
    assert_eq!(resolution.len(), 1, "{requests:#?}");
    assert!(
        resolution[0]
            .key
            .as_deref()
            .is_some_and(|k| k.ends_with(".Resolved.hook")),
        "{resolution:?}"
    );
}

#[tokio::test]
async fn a_postmortem_and_follow_ups_fall_due_after_resolution_each_routed_once() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let (ns, token) = team_namespace(
        cluster,
        &client,
        &receiver,
        "aftercare",
        "[{name: SEV1, requirePostmortem: true, postmortemWithin: 4s}, {name: SEV2}]",
        "[PostmortemOverdue, FollowUpOverdue]",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: ledger-down, namespace: {ns}}}\nspec: {{title: Ledger down, severity: SEV1}}\n"
        ),
    );
    wait_for(&client, &ns, "ledger-down", WAIT, "the declaration", |i| {
        i.status.as_ref().is_some_and(|s| s.declared_at.is_some())
    })
    .await;
    set_spec(&incidents, "ledger-down", json!({"phase": "Resolved"})).await;
    let resolved = wait_for(&client, &ns, "ledger-down", WAIT, "the resolution", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.resolved_at.is_some()
                && s.postmortem.as_ref().map(|p| p.state) == Some(PostmortemState::Pending)
        })
    })
    .await;
    let status = resolved.status.clone().expect("status");
    let due = status
        .postmortem
        .as_ref()
        .and_then(|p| p.due.clone())
        .expect("a due time");
    assert_eq!(
        due.0.as_second()
            - status
                .resolved_at
                .as_ref()
                .expect("resolvedAt")
                .0
                .as_second(),
        4
    );
    let overdue = wait_for(
        &client,
        &ns,
        "ledger-down",
        WAIT,
        "the postmortem overdue",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.postmortem.as_ref())
                .is_some_and(|p| p.state == PostmortemState::Overdue)
        },
    )
    .await;
    assert!(
        overdue
            .status
            .as_ref()
            .is_some_and(|s| s.timeline.iter().any(|e| e.type_ == "PostmortemOverdue")),
        "timelined"
    );
    receiver
        .wait_for(WAIT, "the PostmortemOverdue page", |r| {
            !sent(r, "PostmortemOverdue").is_empty()
        })
        .await;

    // Follow-ups added after resolution: one due yesterday, one next year.
    let yesterday = Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .expect("time")
        .strftime("%Y-%m-%d")
        .to_string();
    set_spec(
        &incidents,
        "ledger-down",
        json!({"followUps": [
            {"title": "Alert on ledger replication lag", "owner": "bob", "due": yesterday},
            {"title": "Game day for a ledger failover", "due": "2099-01-31"},
        ]}),
    )
    .await;
    wait_for(
        &client,
        &ns,
        "ledger-down",
        WAIT,
        "the follow-ups counted",
        |i| {
            i.status.as_ref().and_then(|s| s.follow_ups.clone())
                == Some(FollowUpCounts {
                    open: 2,
                    done: 0,
                    overdue: 1,
                })
        },
    )
    .await;
    receiver
        .wait_for(WAIT, "the FollowUpOverdue page", |r| {
            !sent(r, "FollowUpOverdue").is_empty()
        })
        .await;
    // Closed after resolution.
    set_spec(
        &incidents,
        "ledger-down",
        json!({"followUps": [
            {"title": "Alert on ledger replication lag", "owner": "bob", "due": yesterday},
            {"title": "Game day for a ledger failover", "due": "2099-01-31", "done": true},
        ]}),
    )
    .await;
    let closed = wait_for(
        &client,
        &ns,
        "ledger-down",
        WAIT,
        "the follow-up done",
        |i| {
            i.status.as_ref().and_then(|s| s.follow_ups.clone())
                == Some(FollowUpCounts {
                    open: 1,
                    done: 1,
                    overdue: 1,
                })
        },
    )
    .await;
    assert_eq!(closed.spec.phase, Phase::Resolved);
    let timeline = &closed.status.as_ref().expect("status").timeline;
    assert!(
        timeline
            .iter()
            .any(|e| e.message == "Follow-up done: Game day for a ledger failover"),
        "{timeline:#?}"
    );

    more_plans(shared.port, &incidents, "ledger-down", 5).await;
    let requests = receiver.requests_to(&token);
    assert_eq!(
        sent(&requests, "PostmortemOverdue").len(),
        1,
        "{requests:#?}"
    );
    let follow_up = sent(&requests, "FollowUpOverdue");
    assert_eq!(follow_up.len(), 1, "{requests:#?}");
    assert_eq!(
        follow_up[0].body["transition"].as_str(),
        Some(
            format!(
                "follow-up overdue (due {yesterday}, owner bob): Alert on ledger replication lag"
            )
            .as_str()
        )
    );
    let gauge = |name: &str| shared.metric(&format!(r#"{name}{{team="{ns}"}}"#));
    assert_eq!(gauge("klaxon_follow_ups_open"), Some(1.0));
    assert_eq!(gauge("klaxon_follow_ups_overdue"), Some(1.0));
    assert_eq!(gauge("klaxon_postmortems_overdue"), Some(1.0));

    // The postmortem linked: done, and no longer counted.
    set_spec(
        &incidents,
        "ledger-down",
        json!({"postmortem": {"url": "https://wiki.example/pm/7"}}),
    )
    .await;
    wait_for(
        &client,
        &ns,
        "ledger-down",
        WAIT,
        "the postmortem done",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.postmortem.as_ref())
                .is_some_and(|p| p.state == PostmortemState::Done)
        },
    )
    .await;
    assert_eq!(gauge("klaxon_postmortems_overdue"), Some(0.0));
}

#[tokio::test]
async fn a_new_incident_on_the_same_workload_links_the_earlier_one_as_a_recurrence() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let (ns, _) = team_namespace(
        cluster,
        &client,
        &receiver,
        "recurrence",
        LADDER,
        "[Declared]",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let declare = |name: &str, deployment: &str| {
        format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  title: Checkout returns 5xx\n  severity: SEV2\n  affected: {{deployments: [{{name: {deployment}}}]}}\n"
        )
    };
    apply(cluster, &declare("checkout-5xx-monday", "checkout"));
    apply(cluster, &declare("search-slow", "search"));
    for name in ["checkout-5xx-monday", "search-slow"] {
        wait_for(&client, &ns, name, WAIT, "the declaration", |i| {
            i.status.as_ref().is_some_and(|s| s.declared_at.is_some())
        })
        .await;
        set_spec(&incidents, name, json!({"phase": "Resolved"})).await;
    }
    let monday = wait_for(&client, &ns, "checkout-5xx-monday", WAIT, "resolved", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    wait_for(&client, &ns, "search-slow", WAIT, "resolved", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;

    apply(cluster, &declare("checkout-5xx-tuesday", "checkout"));
    let tuesday = wait_for(
        &client,
        &ns,
        "checkout-5xx-tuesday",
        WAIT,
        "the recurrence",
        |i| i.status.as_ref().is_some_and(|s| !s.related.is_empty()),
    )
    .await;
    let status = tuesday.status.expect("status");
    assert_eq!(status.related.len(), 1, "{:?}", status.related);
    let related = &status.related[0];
    assert_eq!(related.name, "checkout-5xx-monday");
    assert_eq!(related.relation, Relation::RecurrenceOf);
    assert!(related.detected);
    assert_eq!(
        related.resolved_at,
        monday.status.and_then(|s| s.resolved_at)
    );
    assert!(
        status
            .timeline
            .iter()
            .any(|e| e.type_ == "Related" && e.message.contains("checkout-5xx-monday")),
        "{:#?}",
        status.timeline
    );
    // Found once, however often the operator plans it.
    more_plans(
        operator::shared().port,
        &incidents,
        "checkout-5xx-tuesday",
        4,
    )
    .await;
    let again = incidents
        .get("checkout-5xx-tuesday")
        .await
        .expect("incident");
    let status = again.status.expect("status");
    let entries = status
        .timeline
        .iter()
        .filter(|e| e.type_ == "Related" && e.message.contains("checkout-5xx-monday"))
        .count();
    assert_eq!(entries, 1, "{:#?}", status.timeline);
    assert_eq!(status.related.len(), 1);
}

#[tokio::test]
async fn after_a_restart_the_open_gauge_is_right_and_nothing_is_observed_twice() {
    let cluster = support::Cluster::start_bare("record-restart");
    cluster.install_crds();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let mut first = Operator::start(
        &cluster.kubeconfig,
        "record-restart-1",
        operator::SHARED_ENV,
    );
    first.wait_ready(WAIT);
    let (ns, _) = team_namespace(
        &cluster,
        &client,
        &receiver,
        "restart",
        LADDER,
        "[Declared]",
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    for (name, severity) in [("checkout-5xx", "SEV2"), ("search-slow", "SEV3")] {
        apply(
            &cluster,
            &format!(
                "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{title: Something is wrong, severity: {severity}}}\n"
            ),
        );
    }
    set_spec(&incidents, "search-slow", json!({"phase": "Acknowledged"})).await;
    wait_for(
        &client,
        &ns,
        "search-slow",
        WAIT,
        "the acknowledgement",
        |i| {
            i.status
                .as_ref()
                .is_some_and(|s| s.acknowledged_at.is_some())
        },
    )
    .await;
    wait_for(&client, &ns, "checkout-5xx", WAIT, "the declaration", |i| {
        i.status.as_ref().is_some_and(|s| s.declared_at.is_some())
    })
    .await;
    let open = |port: u16, severity: &str, phase: &str| {
        operator::metric(
            port,
            &format!(
                r#"klaxon_incidents_open{{team="{ns}",severity="{severity}",phase="{phase}"}}"#
            ),
        )
    };
    let declared = |port: u16, severity: &str| {
        operator::metric(
            port,
            &format!(
                r#"klaxon_incidents_declared_total{{team="{ns}",severity="{severity}",source="manual"}}"#
            ),
        )
    };
    assert_eq!(open(first.port, "SEV2", "Triggered"), Some(1.0));
    assert_eq!(open(first.port, "SEV3", "Acknowledged"), Some(1.0));
    let acknowledge =
        format!(r#"klaxon_incident_acknowledge_seconds_count{{team="{ns}",severity="SEV3"}}"#);
    assert_eq!(operator::metric(first.port, &acknowledge), Some(1.0));
    assert_eq!(declared(first.port, "SEV2"), Some(1.0));

    // Killed at once, as a node failure would; a new process takes over.
    first.kill();
    let mut second = Operator::start(
        &cluster.kubeconfig,
        "record-restart-2",
        operator::SHARED_ENV,
    );
    second.wait_ready(WAIT);
    assert_eq!(
        open(second.port, "SEV2", "Triggered"),
        Some(1.0),
        "right from the first scrape"
    );
    assert_eq!(open(second.port, "SEV3", "Acknowledged"), Some(1.0));
    more_plans(second.port, &incidents, "checkout-5xx", 3).await;
    more_plans(second.port, &incidents, "search-slow", 3).await;
    assert_eq!(declared(second.port, "SEV2"), None, "not observed again");
    assert_eq!(declared(second.port, "SEV3"), None);
    assert_eq!(operator::metric(second.port, &acknowledge), None);

    // What happens after the restart is observed, once.
    set_spec(&incidents, "checkout-5xx", json!({"phase": "Resolved"})).await;
    wait_for(&client, &ns, "checkout-5xx", WAIT, "the resolution", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    more_plans(second.port, &incidents, "checkout-5xx", 3).await;
    let resolved = format!(r#"klaxon_incidents_resolved_total{{team="{ns}",severity="SEV2"}}"#);
    assert_eq!(operator::metric(second.port, &resolved), Some(1.0));
    assert_eq!(
        operator::metric(
            second.port,
            &format!(r#"klaxon_incident_resolve_seconds_count{{team="{ns}",severity="SEV2"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(open(second.port, "SEV2", "Triggered"), None);
    assert_eq!(open(second.port, "SEV3", "Acknowledged"), Some(1.0));
}
