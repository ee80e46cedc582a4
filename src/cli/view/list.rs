//! `kubectl incident list`: the open incidents, most severe first.

use jiff::Timestamp;

use super::{Deadline, Style, columns, cut, deadline, declared, severity_rank, span};
use crate::api::Incident;

/// `kubectl incident list`: one row per incident, most severe first.
/// Rows are sorted by severity (SEV1 before SEV2, by the digits in the
/// name), overdue first within one severity, then newest first.
pub fn list(incidents: &[Incident], all_namespaces: bool, now: Timestamp, style: Style) -> String {
    let mut rows: Vec<&Incident> = incidents.iter().collect();
    let key = |i: &Incident| {
        let status = i.status.clone().unwrap_or_default();
        let overdue = matches!(
            deadline(&status, i.spec.phase, now),
            Some(Deadline::Overdue { .. })
        );
        (
            severity_rank(&i.spec.severity),
            !overdue,
            std::cmp::Reverse(declared(i).map(|t| t.as_second()).unwrap_or(0)),
        )
    };
    rows.sort_by_key(|i| key(i));
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut header = vec![];
    if all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(
        [
            "NAME",
            "SEVERITY",
            "PHASE",
            "AGE",
            "TEAM",
            "COMMANDER",
            "DEADLINE",
            "SUMMARY",
        ]
        .map(String::from),
    );
    table.push(header);
    for i in rows {
        let status = i.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if all_namespaces {
            row.push(i.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(i.metadata.name.clone().unwrap_or_default());
        row.push(i.spec.severity.clone());
        row.push(i.spec.phase.to_string());
        row.push(declared(i).map(|t| span(t, now)).unwrap_or_default());
        row.push(status.team.clone().unwrap_or_else(|| "-".into()));
        row.push(
            i.spec
                .commander
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            deadline(&status, i.spec.phase, now)
                .map(|d| d.short())
                .unwrap_or_else(|| "-".into()),
        );
        row.push(cut(status.summary.as_deref().unwrap_or("-"), 80));
        table.push(row);
    }
    let mut out = String::new();
    for (n, row) in columns(&table).iter().enumerate() {
        let mut line = String::new();
        for (c, padded) in row.iter().enumerate() {
            let deadline_column = c + 2 == row.len();
            line.push_str(&if n == 0 {
                style.bold(padded)
            } else if deadline_column && padded.starts_with("OVERDUE") {
                style.red(padded)
            } else {
                padded.clone()
            });
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
