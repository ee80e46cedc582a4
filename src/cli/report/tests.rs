use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::{
    api::{
        IncidentStatus,
        incident::{
            Affected, AffectedDeployment, Durations, FollowUp, Postmortem, PostmortemState,
            PostmortemStatus, WorkloadImpact,
        },
    },
    domain::incident::testing::{at, incident},
};

const NOW: &str = "2026-12-02T09:00:00Z";

/// An incident of `team` declared at `declared`, acknowledged after
/// `ack` and resolved after `resolve` when given.
fn declared(
    name: &str,
    team: Option<&str>,
    severity: &str,
    declared: &str,
    ack: Option<&str>,
    resolve: Option<&str>,
) -> Incident {
    let phase = if resolve.is_some() {
        Phase::Resolved
    } else {
        Phase::Acknowledged
    };
    let mut i = incident(phase, severity);
    i.metadata.name = Some(name.into());
    i.status = Some(IncidentStatus {
        team: team.map(str::to_string),
        declared_at: Some(Time(at(declared))),
        durations: Some(Durations {
            to_acknowledge: ack.map(str::to_string),
            to_resolve: resolve.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    });
    i
}

fn affecting(mut i: Incident, names: &[&str]) -> Incident {
    i.spec.affected = Some(Affected {
        deployments: names
            .iter()
            .map(|n| AffectedDeployment {
                name: Some(n.to_string()),
                selector: None,
            })
            .collect(),
        ..Default::default()
    });
    i
}

fn run(incidents: &[Incident]) -> Report {
    report(incidents, None, at("2026-11-02T09:00:00Z"), at(NOW))
}

#[test]
fn percentiles_are_nearest_rank() {
    let values: Vec<u64> = (1..=10).collect();
    assert_eq!(nearest_rank(&values, 50), Some(5));
    assert_eq!(nearest_rank(&values, 90), Some(9));
    assert_eq!(nearest_rank(&values, 100), Some(10));
    assert_eq!(nearest_rank(&[7], 50), Some(7));
    assert_eq!(nearest_rank(&[7], 90), Some(7));
    // Two values: p50 is the lower, p90 the higher.
    assert_eq!(nearest_rank(&[3, 9], 50), Some(3));
    assert_eq!(nearest_rank(&[3, 9], 90), Some(9));
    // Rank ⌈0.9·3⌉ = 3, ⌈0.5·3⌉ = 2.
    assert_eq!(nearest_rank(&[1, 2, 3], 90), Some(3));
    assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
    assert_eq!(nearest_rank(&[], 50), None);
}

#[test]
fn since_takes_days_hours_minutes() {
    let d = |s: u64| Ok(Duration::from_secs(s));
    assert_eq!(parse_since("30d"), d(30 * 86_400));
    assert_eq!(parse_since("12h"), d(12 * 3600));
    assert_eq!(parse_since("90m"), d(90 * 60));
    assert_eq!(parse_since("1d12h"), d(86_400 + 12 * 3600));
    assert_eq!(parse_since("45s"), d(45));
    for bad in ["", "d", "30", "3w", "1d2d", "d12h", "-1d", "1.5d", "30 d"] {
        assert!(parse_since(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn groups_are_per_team_and_severity_with_percentiles_of_the_durations() {
    let incidents = [
        declared(
            "a",
            Some("payments"),
            "SEV2",
            "2026-11-20T10:00:00Z",
            Some("2m"),
            Some("30m"),
        ),
        declared(
            "b",
            Some("payments"),
            "SEV2",
            "2026-11-21T10:00:00Z",
            Some("4m"),
            Some("1h"),
        ),
        declared(
            "c",
            Some("payments"),
            "SEV2",
            "2026-11-22T10:00:00Z",
            Some("10m"),
            None,
        ),
        declared(
            "d",
            Some("payments"),
            "SEV1",
            "2026-11-23T10:00:00Z",
            None,
            None,
        ),
        declared(
            "e",
            None,
            "SEV3",
            "2026-11-24T10:00:00Z",
            Some("1m"),
            Some("5m"),
        ),
        declared(
            "f",
            Some("search"),
            "SEV10",
            "2026-11-25T10:00:00Z",
            None,
            None,
        ),
        declared(
            "g",
            Some("search"),
            "SEV3",
            "2026-11-25T11:00:00Z",
            None,
            None,
        ),
        // Before the window: not counted.
        declared(
            "old",
            Some("payments"),
            "SEV2",
            "2026-10-01T10:00:00Z",
            Some("1h"),
            Some("2h"),
        ),
    ];
    let r = run(&incidents);
    let keys: Vec<(Option<&str>, Option<&str>)> = r
        .groups
        .iter()
        .map(|g| (g.team.as_deref(), g.severity.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("payments"), Some("SEV1")),
            (Some("payments"), Some("SEV2")),
            (Some("search"), Some("SEV3")),
            (Some("search"), Some("SEV10")),
            (None, Some("SEV3")),
        ],
        "teams by name, no team last; severities by their number"
    );
    let sev2 = &r.groups[1];
    assert_eq!((sev2.declared, sev2.resolved, sev2.open), (3, 2, 1));
    assert_eq!(
        sev2.time_to_acknowledge,
        Percentiles {
            count: 3,
            p50: Some("4m".into()),
            p50_seconds: Some(240),
            p90: Some("10m".into()),
            p90_seconds: Some(600),
        }
    );
    assert_eq!(sev2.time_to_resolve.count, 2);
    assert_eq!(sev2.time_to_resolve.p50.as_deref(), Some("30m"));
    assert_eq!(sev2.time_to_resolve.p90.as_deref(), Some("1h"));
    let sev1 = &r.groups[0];
    assert_eq!(sev1.time_to_acknowledge, Percentiles::default());
    assert_eq!(
        (r.total.declared, r.total.resolved, r.total.open),
        (7, 3, 4)
    );
    assert_eq!(r.total.time_to_acknowledge.count, 4);
    assert_eq!(r.total.time_to_acknowledge.p50.as_deref(), Some("2m"));
    assert_eq!(
        (r.total.team.clone(), r.total.severity.clone()),
        (None, None)
    );
}

#[test]
fn overdue_postmortems_and_follow_ups_are_counted_at_the_reports_clock() {
    let mut a = declared(
        "a",
        Some("payments"),
        "SEV1",
        "2026-11-20T10:00:00Z",
        Some("2m"),
        Some("1h"),
    );
    let status = a.status.as_mut().expect("status");
    // The operator said so.
    status.postmortem = Some(PostmortemStatus {
        required: true,
        due: Some(Time(at("2026-11-22T11:00:00Z"))),
        state: PostmortemState::Overdue,
    });
    a.spec.follow_ups = vec![
        FollowUp {
            title: "due yesterday".into(),
            due: Some("2026-12-01".into()),
            ..Default::default()
        },
        FollowUp {
            title: "due today".into(),
            due: Some("2026-12-02".into()),
            ..Default::default()
        },
        FollowUp {
            title: "no day".into(),
            ..Default::default()
        },
        FollowUp {
            title: "done late".into(),
            due: Some("2026-11-01".into()),
            done: true,
            ..Default::default()
        },
    ];
    // Required and past due, though the operator has not looked since.
    let mut b = declared(
        "b",
        Some("payments"),
        "SEV1",
        "2026-11-21T10:00:00Z",
        None,
        Some("1h"),
    );
    b.status.as_mut().expect("status").postmortem = Some(PostmortemStatus {
        required: true,
        due: Some(Time(at("2026-12-01T00:00:00Z"))),
        state: PostmortemState::Pending,
    });
    // Pending and not yet due; and one linked.
    let mut c = b.clone();
    c.status.as_mut().expect("status").postmortem = Some(PostmortemStatus {
        required: true,
        due: Some(Time(at("2026-12-03T00:00:00Z"))),
        state: PostmortemState::Pending,
    });
    let mut d = b.clone();
    d.spec.postmortem = Some(Postmortem {
        url: "https://wiki.example/pm/1".into(),
    });
    let r = run(&[a, b, c, d]);
    let g = &r.groups[0];
    assert_eq!(g.postmortems_overdue, 2);
    assert_eq!((g.follow_ups_open, g.follow_ups_overdue), (3, 1));
}

#[test]
fn sources_and_the_workloads_with_the_most_incidents() {
    let mut signal = affecting(
        declared(
            "s",
            Some("payments"),
            "SEV3",
            "2026-11-20T10:00:00Z",
            None,
            None,
        ),
        &["checkout"],
    );
    signal.metadata.labels =
        Some([("klaxon.dev/signal".to_string(), "CrashLooping".to_string())].into());
    let mut alert = declared(
        "al",
        Some("search"),
        "SEV2",
        "2026-11-20T10:00:00Z",
        None,
        Some("5m"),
    );
    alert.metadata.namespace = Some("search".into());
    alert.metadata.labels = Some([("klaxon.dev/alert-group".to_string(), "x".to_string())].into());
    alert.status.as_mut().expect("status").impact = vec![WorkloadImpact {
        name: "search-api".into(),
        ..Default::default()
    }];
    let mut heartbeat = declared(
        "h",
        Some("search"),
        "SEV2",
        "2026-11-20T10:00:00Z",
        None,
        None,
    );
    heartbeat.metadata.labels =
        Some([("klaxon.dev/heartbeat".to_string(), "Watchdog".to_string())].into());
    let manual = affecting(
        declared(
            "m",
            Some("payments"),
            "SEV2",
            "2026-11-21T10:00:00Z",
            None,
            Some("1h"),
        ),
        &["checkout", "cart"],
    );
    let twice = affecting(
        declared(
            "m2",
            Some("payments"),
            "SEV2",
            "2026-11-22T10:00:00Z",
            None,
            None,
        ),
        &["checkout", "checkout"],
    );
    let r = run(&[signal, alert, heartbeat, manual, twice]);
    assert_eq!(
        r.sources,
        Sources {
            manual: 2,
            signal: 1,
            alert: 1,
            heartbeat: 1
        }
    );
    let top: Vec<(&str, &str, usize, usize)> = r
        .workloads
        .iter()
        .map(|w| (w.namespace.as_str(), w.name.as_str(), w.incidents, w.open))
        .collect();
    assert_eq!(
        top,
        [
            ("shop", "checkout", 3, 2),
            ("search", "search-api", 1, 0),
            ("shop", "cart", 1, 0),
        ],
        "the most first, a workload named twice counted once per incident"
    );
}

#[test]
fn the_text_is_aligned_tables_and_an_empty_window_says_so() {
    let incidents = [
        affecting(
            declared(
                "a",
                Some("payments"),
                "SEV2",
                "2026-11-20T10:00:00Z",
                Some("2m"),
                Some("30m"),
            ),
            &["checkout"],
        ),
        declared(
            "b",
            Some("search"),
            "SEV1",
            "2026-11-21T10:00:00Z",
            Some("12m"),
            None,
        ),
    ];
    let r = report(
        &incidents,
        Some("shop"),
        at("2026-11-02T09:00:00Z"),
        at(NOW),
    );
    let text = text(&r, "30d");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Incidents declared in namespace shop in the last 30d (since 2026-11-02 09:00 UTC)"
    );
    assert!(
        lines[2].starts_with("TEAM       SEVERITY   DECLARED   RESOLVED   OPEN   ACK P50"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("payments   SEV2       1          1          0      2m"),
        "{text}"
    );
    assert!(
        lines[5].starts_with("(all)      (all)      2          1          1      2m        12m"),
        "{text}"
    );
    assert!(
        text.contains("\nDeclared: 2 manual, 0 from signals, 0 from alerts, 0 by the heartbeat\n")
    );
    assert!(text.contains("NAMESPACE   WORKLOAD              INCIDENTS   OPEN\nshop        Deployment/checkout   1           0\n"), "{text}");

    let empty = report(&[], None, at("2026-11-02T09:00:00Z"), at(NOW));
    assert_eq!(
        super::text(&empty, "30d"),
        "No incidents declared in all namespaces in the last 30d (since 2026-11-02 09:00 UTC).\n"
    );
    let json = serde_json::to_value(&empty).expect("json");
    assert_eq!(
        json["total"]["timeToAcknowledge"]["p50"],
        serde_json::Value::Null
    );
    assert_eq!(json["namespace"], serde_json::Value::Null);
    assert_eq!(json["sources"]["heartbeat"], 0);
}
