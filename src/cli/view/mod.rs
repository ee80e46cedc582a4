//! What `kubectl incident show`, `list` and `timeline` print: plain text
//! from an Incident as the operator left it, most important first, with
//! colour only when asked for. Pure functions of the incident and the time,
//! so the output can be checked line by line.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Incident, IncidentStatus, Phase};

mod list;
pub mod show;
mod timeline;

pub use self::{list::list, show::show, timeline::timeline};

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
/// When the incident was declared: as the operator recorded it, else its
/// creation.
pub fn declared(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.declared_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The incident as `kubectl get -o json` would print it, without its
/// managed fields.
pub fn json(incident: &Incident) -> Result<String, crate::cli::Error> {
    serde_json::to_string_pretty(&without_managed_fields(incident))
        .map(|s| s + "\n")
        .map_err(|e| crate::cli::Error::Api(e.to_string()))
}

/// The incident as YAML, without its managed fields.
pub fn yaml(incident: &Incident) -> Result<String, crate::cli::Error> {
    serde_saphyr::to_string(&without_managed_fields(incident))
        .map_err(|e| crate::cli::Error::Api(e.to_string()))
}

fn without_managed_fields(incident: &Incident) -> Incident {
    let mut incident = incident.clone();
    incident.metadata.managed_fields = None;
    incident
}

/// The cells of `table` padded to their column's width, with a gap of
/// three spaces; the last column is left as it is.
pub fn columns(table: &[Vec<String>]) -> Vec<Vec<String>> {
    let count = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|c| {
            table
                .iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    table
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(c, cell)| {
                    if c + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell:<width$}   ", width = widths[c])
                    }
                })
                .collect()
        })
        .collect()
}

/// The rows of `table` as aligned text, one line each.
pub fn aligned(table: &[Vec<String>]) -> String {
    columns(table)
        .iter()
        .map(|row| row.concat().trim_end().to_string() + "\n")
        .collect()
}

/// SEV1 < SEV2 < … by the number in the name; names without one last,
/// alphabetically.
pub fn severity_rank(severity: &str) -> (u64, String) {
    let digits: String = severity.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits.parse().unwrap_or(u64::MAX), severity.to_string())
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
    fn show_says_where_a_resolved_incidents_aftercare_stands() {
        let incident: Incident =
            serde_saphyr::from_str(include_str!("../../../tests/golden/resolved.yaml"))
                .expect("fixture");
        let text = show(
            &incident,
            at("2026-12-02T09:00:00Z"),
            Style { colour: false },
        );
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("durations: "))
            .expect("durations line");
        assert_eq!(
            lines[at - 1..at + 5],
            [
                "resolved at 14:57:00Z",
                "durations: detect 7m · acknowledge 7m · mitigate 29m · resolve 1h2m · recover 55m50s",
                "postmortem OVERDUE (due 2026-11-26 14:57Z) · follow-ups 2 open (1 overdue), 1 done",
                "  1. Canary for the card processor (bob, due 2026-12-10)",
                "  2. Alert on the 5xx ratio (carol, due 2026-11-30, overdue)",
                "related: card-processor-timeouts (CausedBy, resolved 2026-11-24); checkout-5xx-1030 (RecurrenceOf, found by Klaxon, resolved 2026-10-30)",
            ],
            "{text}"
        );
    }

    #[test]
    fn severities_sort_by_their_number_then_by_name() {
        let mut names = vec!["SEV3", "critical", "SEV1", "P2", "SEV10"];
        names.sort_by_key(|s| severity_rank(s));
        assert_eq!(names, ["SEV1", "P2", "SEV3", "SEV10", "critical"]);
    }
}
