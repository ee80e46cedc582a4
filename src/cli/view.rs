//! What `kubectl incident show`, `list` and `timeline` print: plain text
//! from an Incident as the operator left it, most important first, with
//! colour only when asked for. Pure functions of the incident and the time,
//! so the output can be checked line by line.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Incident, IncidentStatus, Phase,
    incident::{DeliveryState, DeploymentState},
};

/// Deployments shown one by one; the rest are counted.
const SHOW_DEPLOYMENTS: usize = 5;
/// Worst pods shown per Deployment.
const SHOW_PODS: usize = 3;
/// Most recent Warning events shown.
const SHOW_EVENTS: usize = 5;
/// Most recent timeline entries shown.
const SHOW_TIMELINE: usize = 6;
/// A line is cut at this many characters (a terminal is rarely wider).
const WIDTH: usize = 160;

/// ANSI styles, or nothing when the output is not a terminal.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    fn red(&self, text: &str) -> String {
        self.paint("1;31", text)
    }
    fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// `3m`, `2h5m`, `4d`: how long ago, or how long until, from `now`.
pub fn span(from: Timestamp, to: Timestamp) -> String {
    let seconds = (to.as_second() - from.as_second()).unsigned_abs();
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 && (s % 3600) / 60 > 0 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `14:02:05Z`, the time of day in UTC, for entries of one incident.
fn clock(time: &Time) -> String {
    time.0.strftime("%H:%M:%SZ").to_string()
}

fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    crate::domain::enrich::truncate(&one_line, max)
}

/// Where the acknowledgement deadline stands, if one applies.
pub fn deadline(status: &IncidentStatus, phase: Phase, now: Timestamp) -> Option<Deadline> {
    let by = status.acknowledge_by.as_ref()?;
    if let Some(at) = &status.acknowledged_at {
        return Some(Deadline::Met {
            late: at.0 > by.0,
            at: at.clone(),
        });
    }
    if phase != Phase::Triggered {
        return None;
    }
    Some(if now >= by.0 {
        Deadline::Overdue {
            by: span(by.0, now),
        }
    } else {
        Deadline::Due {
            within: span(now, by.0),
            at: by.clone(),
        }
    })
}

#[derive(Clone, Debug, PartialEq)]
pub enum Deadline {
    Due { within: String, at: Time },
    Overdue { by: String },
    Met { at: Time, late: bool },
}

impl Deadline {
    fn render(&self, style: Style) -> String {
        match self {
            Deadline::Due { within, at } => {
                style.yellow(&format!("acknowledge within {within} (by {})", clock(at)))
            }
            Deadline::Overdue { by } => style.red(&format!("OVERDUE by {by}: not acknowledged")),
            Deadline::Met { at, late: false } => {
                style.green(&format!("acknowledged at {}", clock(at)))
            }
            Deadline::Met { at, late: true } => {
                style.yellow(&format!("acknowledged late, at {}", clock(at)))
            }
        }
    }

    /// For the list's column.
    fn short(&self) -> String {
        match self {
            Deadline::Due { within, .. } => format!("in {within}"),
            Deadline::Overdue { by } => format!("OVERDUE {by}"),
            Deadline::Met { .. } => "acked".into(),
        }
    }
}

fn severity(style: Style, severity: &str, phase: Phase) -> String {
    if phase == Phase::Resolved {
        return style.green(severity);
    }
    match severity {
        "SEV1" | "P1" | "critical" => style.red(severity),
        "SEV2" | "P2" | "high" => style.yellow(severity),
        other => style.bold(other),
    }
}

/// `kubectl incident show`: one screen, most important first.
pub fn show(incident: &Incident, now: Timestamp, style: Style) -> String {
    let mut out = Lines::default();
    let spec = &incident.spec;
    let empty = IncidentStatus::default();
    let status = incident.status.as_ref().unwrap_or(&empty);
    let name = incident.metadata.name.as_deref().unwrap_or_default();
    let namespace = incident.metadata.namespace.as_deref().unwrap_or_default();

    out.push(format!(
        "{}  {}  {}  {}",
        style.bold(name),
        severity(style, &spec.severity, spec.phase),
        style.bold(&spec.phase.to_string()),
        style.dim(&format!("namespace {namespace}")),
    ));
    out.push(cut(&spec.title, WIDTH));
    let mut who = Vec::new();
    who.push(format!(
        "team {}",
        status.team.as_deref().unwrap_or("(none)")
    ));
    who.push(match spec.commander.as_deref().filter(|c| !c.is_empty()) {
        Some(commander) => format!("commander {commander}"),
        None => "no commander".into(),
    });
    if !spec.responders.is_empty() {
        who.push(format!("responders {}", spec.responders.join(", ")));
    }
    if let Some(declared) = &status.declared_at {
        who.push(format!(
            "declared {} ago at {}",
            span(declared.0, now),
            clock(declared)
        ));
    }
    out.push(who.join(" · "));
    if let Some(deadline) = deadline(status, spec.phase, now) {
        out.push(deadline.render(style));
    }
    if let Some(resolved) = &status.resolved_at {
        let mut line = format!("resolved at {}", clock(resolved));
        if let Some(pm) = &spec.postmortem {
            line.push_str(&format!(" · postmortem {}", pm.url));
        }
        out.push(style.green(&line));
    }

    let attention = crate::domain::incident::brief::attention(status);
    if !attention.is_empty() {
        out.blank();
        out.push(style.bold("Needs attention"));
        for line in attention {
            out.push(format!("  {} {}", style.red("!"), cut(&line, WIDTH - 4)));
        }
    }

    if let Some(summary) = &status.summary {
        out.blank();
        out.push(format!(
            "{} {}",
            style.bold("Summary:"),
            cut(summary, WIDTH)
        ));
    }

    if !status.deployments.is_empty() {
        out.blank();
        out.push(style.bold("Deployments"));
        for d in status.deployments.iter().take(SHOW_DEPLOYMENTS) {
            deployment(&mut out, d, now, style);
        }
        if status.deployments.len() > SHOW_DEPLOYMENTS {
            out.push(style.dim(&format!(
                "  … and {} more (kubectl describe inc {name} -n {namespace})",
                status.deployments.len() - SHOW_DEPLOYMENTS
            )));
        }
    }

    if !status.events.is_empty() {
        out.blank();
        out.push(style.bold("Events"));
        for e in status.events.iter().take(SHOW_EVENTS) {
            let when = e
                .last_seen
                .as_ref()
                .map(|t| format!("{} ago", span(t.0, now)))
                .unwrap_or_default();
            out.push(cut(
                &format!(
                    "  {:<8} {:<18} {:<30} x{:<4} {}",
                    when, e.reason, e.object, e.count, e.message
                ),
                WIDTH,
            ));
        }
    }

    if !status.metrics.is_empty() {
        out.blank();
        out.push(style.bold("Metrics"));
        for m in &status.metrics {
            let value = match (&m.value, &m.error) {
                (Some(v), _) => v.clone(),
                (None, Some(e)) => style.red(&format!("error: {}", cut(e, 100))),
                (None, None) => "no data".into(),
            };
            out.push(format!("  {} = {value}", m.name));
        }
    }

    if !status.timeline.is_empty() {
        out.blank();
        out.push(style.bold("Timeline (latest)"));
        let skip = status.timeline.len().saturating_sub(SHOW_TIMELINE);
        for e in status.timeline.iter().skip(skip) {
            out.push(cut(
                &format!("  {}  {:<18} {}", clock(&e.time), e.type_, e.message),
                WIDTH,
            ));
        }
    }

    let failing: Vec<String> = status
        .notifications
        .iter()
        .filter(|n| {
            n.state == DeliveryState::Failed
                || (n.state == DeliveryState::Pending && n.attempts > 0)
        })
        .map(|n| {
            format!(
                "  {} {} {}: {} after {} attempt{}{}",
                style.red("!"),
                n.receiver,
                n.trigger,
                match n.state {
                    DeliveryState::Failed => "failed",
                    _ => "still failing",
                },
                n.attempts,
                if n.attempts == 1 { "" } else { "s" },
                n.message
                    .as_deref()
                    .map(|m| format!(" ({})", cut(m, 100)))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !failing.is_empty() {
        out.blank();
        out.push(style.bold("Delivery problems"));
        for line in failing {
            out.push(line);
        }
    }
    out.blank();
    out.push(style.dim(&format!(
        "kubectl describe inc {name} -n {namespace} · kubectl incident timeline {name} -n {namespace}"
    )));
    out.finish()
}

fn deployment(out: &mut Lines, d: &DeploymentState, now: Timestamp, style: Style) {
    if !d.found {
        out.push(format!(
            "  {}  {}",
            style.bold(&d.name),
            style.red("not found")
        ));
        return;
    }
    let ready = d.ready_replicas.unwrap_or(0);
    let desired = d.replicas.unwrap_or(0);
    let counts = format!("{ready}/{desired} ready");
    let counts = if ready < desired {
        style.red(&counts)
    } else {
        style.green(&counts)
    };
    let mut head = format!("  {}  {counts}", style.bold(&d.name));
    if let Some(pods) = &d.pods
        && pods.restarts > 0
    {
        head.push_str(&format!("  {} restarts", pods.restarts));
    }
    if let Some(revision) = &d.revision {
        head.push_str(&format!("  revision {revision}"));
    }
    out.push(head);
    if let Some(pods) = &d.pods
        && !pods.reasons.is_empty()
    {
        let reasons: Vec<String> = pods
            .reasons
            .iter()
            .map(|r| format!("{} {}", r.count, r.reason))
            .collect();
        out.push(format!("    reasons: {}", style.red(&reasons.join(", "))));
    }
    if !d.previous_images.is_empty() || d.rollout_at.is_some() {
        let when = d
            .rollout_at
            .as_ref()
            .map(|t| format!("{} ago", span(t.0, now)))
            .unwrap_or_else(|| "?".into());
        let change = if d.previous_images.is_empty() {
            d.images.join(", ")
        } else {
            format!("{} → {}", d.previous_images.join(", "), d.images.join(", "))
        };
        out.push(cut(&format!("    rollout {when}: {change}"), WIDTH));
    }
    if let Some(usage) = &d.usage
        && (usage.cpu.is_some() || usage.memory.is_some())
    {
        let with_ratio = |value: &Option<String>, ratio: &Option<String>, of: &str| {
            let value = value.clone().unwrap_or_else(|| "?".into());
            // Ratios are fractions ("0.82"); people read percentages.
            match ratio.as_deref().map(|r| (r, r.parse::<f64>())) {
                Some((_, Ok(r))) => format!("{value} ({:.0}% of {of})", r * 100.0),
                Some((r, Err(_))) => format!("{value} ({r} of {of})"),
                None => value,
            }
        };
        let (cpu_ratio, cpu_of) = match (&usage.cpu_limit_ratio, &usage.cpu_request_ratio) {
            (Some(r), _) => (Some(r.clone()), "limit"),
            (None, r) => (r.clone(), "request"),
        };
        let (mem_ratio, mem_of) = match (&usage.memory_limit_ratio, &usage.memory_request_ratio) {
            (Some(r), _) => (Some(r.clone()), "limit"),
            (None, r) => (r.clone(), "request"),
        };
        out.push(format!(
            "    usage: cpu {}, memory {}",
            with_ratio(&usage.cpu, &cpu_ratio, cpu_of),
            with_ratio(&usage.memory, &mem_ratio, mem_of)
        ));
    }
    if let Some(pods) = &d.pods {
        for p in pods.items.iter().filter(|p| !p.ready).take(SHOW_PODS) {
            let mut line = format!(
                "    pod {}  {}  {} restarts",
                p.name,
                p.reason
                    .as_deref()
                    .or(p.phase.as_deref())
                    .unwrap_or("NotReady"),
                p.restarts
            );
            if let Some(message) = &p.message {
                line.push_str(&format!("  \"{}\"", cut(message, 80)));
            }
            out.push(cut(&line, WIDTH));
        }
    }
}

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
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in table.iter().enumerate() {
        let last = row.len() - 1;
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let padded = if c == last {
                cell.clone()
            } else {
                format!("{cell:<width$}   ", width = widths[c])
            };
            let deadline_column = c + 2 == row.len();
            line.push_str(&if n == 0 {
                style.bold(&padded)
            } else if deadline_column && cell.starts_with("OVERDUE") {
                style.red(&padded)
            } else {
                padded
            });
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// When the incident was declared: as the operator recorded it, else its
/// creation.
fn declared(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.declared_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// SEV1 < SEV2 < … by the number in the name; names without one last,
/// alphabetically.
fn severity_rank(severity: &str) -> (u64, String) {
    let digits: String = severity.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits.parse().unwrap_or(u64::MAX), severity.to_string())
}

/// `kubectl incident timeline`: every entry, oldest first, with its date.
pub fn timeline(incident: &Incident) -> String {
    let mut out = String::new();
    let entries = incident
        .status
        .as_ref()
        .map(|s| s.timeline.as_slice())
        .unwrap_or_default();
    if entries.is_empty() {
        return "(no timeline yet: the operator has not seen this incident)\n".into();
    }
    let width = entries.iter().map(|e| e.type_.len()).max().unwrap_or(0);
    for e in entries {
        out.push_str(&format!(
            "{}  {:<width$}  {}\n",
            e.time.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
            e.type_,
            e.message.replace('\n', " ")
        ));
    }
    out
}

#[derive(Default)]
struct Lines(Vec<String>);

impl Lines {
    fn push(&mut self, line: String) {
        self.0.push(line);
    }
    fn blank(&mut self) {
        self.0.push(String::new());
    }
    fn finish(self) -> String {
        let mut out = self.0.join("\n");
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn spans_read_at_a_glance() {
        let t = at("2026-11-24T14:00:00Z");
        assert_eq!(span(t, at("2026-11-24T14:00:42Z")), "42s");
        assert_eq!(span(t, at("2026-11-24T14:05:59Z")), "5m");
        assert_eq!(span(t, at("2026-11-24T16:05:00Z")), "2h5m");
        assert_eq!(span(t, at("2026-11-24T16:00:00Z")), "2h");
        assert_eq!(span(t, at("2026-11-27T15:00:00Z")), "3d");
        assert_eq!(
            span(at("2026-11-24T14:05:00Z"), t),
            "5m",
            "either way round"
        );
    }

    #[test]
    fn severities_sort_by_their_number_then_by_name() {
        let mut names = vec!["SEV3", "critical", "SEV1", "P2", "SEV10"];
        names.sort_by_key(|s| severity_rank(s));
        assert_eq!(names, ["SEV1", "P2", "SEV3", "SEV10", "critical"]);
    }
}
