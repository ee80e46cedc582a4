//! The report as text: aligned tables, readable at a glance.

use jiff::Timestamp;

use super::{Group, Report};
use crate::cli::view::aligned;

/// The report as a person reads it: the window, a table per team and
/// severity with a total, the sources, the workloads with the most
/// incidents. `window` says the `--since` as given (`30d`).
pub fn text(report: &Report, window: &str) -> String {
    let since = report
        .since
        .parse::<Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| report.since.clone());
    let scope = match &report.namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".into(),
    };
    if report.total.declared == 0 {
        return format!("No incidents declared in {scope} in the last {window} (since {since}).\n");
    }
    let mut out = format!("Incidents declared in {scope} in the last {window} (since {since})\n\n");
    out.push_str(&groups(report));
    out.push_str(
        "\nACK: declared → acknowledged; RESOLVE: impact started → resolved; p50 and p90 by nearest rank over the incidents that reached the stage.\n",
    );
    let s = &report.sources;
    out.push_str(&format!(
        "\nDeclared: {} manual, {} from signals, {} from alerts, {} by the heartbeat\n",
        s.manual, s.signal, s.alert, s.heartbeat
    ));
    if !report.workloads.is_empty() {
        out.push_str("\nWorkloads with the most incidents\n");
        let mut table = vec![
            ["NAMESPACE", "WORKLOAD", "INCIDENTS", "OPEN"]
                .map(String::from)
                .to_vec(),
        ];
        for w in &report.workloads {
            table.push(vec![
                w.namespace.clone(),
                format!("{}/{}", w.kind, w.name),
                w.incidents.to_string(),
                w.open.to_string(),
            ]);
        }
        out.push_str(&aligned(&table));
    }
    out
}

/// One row per team and severity, then the total.
fn groups(report: &Report) -> String {
    let mut table = vec![
        [
            "TEAM",
            "SEVERITY",
            "DECLARED",
            "RESOLVED",
            "OPEN",
            "ACK P50",
            "ACK P90",
            "RESOLVE P50",
            "RESOLVE P90",
            "POSTMORTEMS",
            "FOLLOW-UPS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for g in &report.groups {
        table.push(row(g, dash(&g.team), dash(&g.severity)));
    }
    table.push(row(&report.total, "(all)".into(), "(all)".into()));
    aligned(&table)
}

fn dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

fn row(g: &Group, team: String, severity: String) -> Vec<String> {
    let follow_ups = match (g.follow_ups_open, g.follow_ups_overdue) {
        (0, _) => "-".to_string(),
        (open, 0) => format!("{open} open"),
        (open, overdue) => format!("{open} open, {overdue} overdue"),
    };
    vec![
        team,
        severity,
        g.declared.to_string(),
        g.resolved.to_string(),
        g.open.to_string(),
        dash(&g.time_to_acknowledge.p50),
        dash(&g.time_to_acknowledge.p90),
        dash(&g.time_to_resolve.p50),
        dash(&g.time_to_resolve.p90),
        match g.postmortems_overdue {
            0 => "-".to_string(),
            n => format!("{n} overdue"),
        },
        follow_ups,
    ]
}
