//! `kubectl incident report`: how incidents went, per team and severity,
//! over the incidents declared in a window (`--since 30d`).
//!
//! A pure function of the incidents and the clock ([`report`]), printed as
//! aligned tables ([`text()`]) or as JSON (the [`Report`] as serialised,
//! camelCase, a stable shape).
//!
//! Percentiles are nearest-rank ([`nearest_rank`]): the p-th percentile of
//! n values sorted ascending is the value at rank ⌈p·n/100⌉ (counting from
//! 1), so it is always one of the incidents' own durations. They are taken
//! over `status.durations` (`toAcknowledge`, `toResolve`) of the incidents
//! that reached the stage.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use serde::Serialize;

use super::{
    postmortem,
    view::{declared, severity_rank},
};
use crate::{
    api::{Incident, Phase, duration},
    domain::{
        incident::{aftercare::overdue_at, record},
        policy::humantime,
    },
};

/// Workloads listed, the most incidents first.
pub const TOP_WORKLOADS: usize = 10;

/// The report. Its JSON form is `kubectl incident report -o json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The window's start (RFC 3339): incidents declared at or after it
    /// count.
    pub since: String,
    /// The report's clock (RFC 3339): overdue means due before it.
    pub now: String,
    /// The namespace listed; `null` for all namespaces.
    pub namespace: Option<String>,
    /// One per team and severity, by team (no team last), then severity.
    pub groups: Vec<Group>,
    /// Every incident of the window (`team` and `severity` are `null`).
    pub total: Group,
    /// How the incidents were declared.
    pub sources: Sources,
    /// The workloads with the most incidents, at most [`TOP_WORKLOADS`].
    pub workloads: Vec<WorkloadCount>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// `status.team`; `null` when the incident has none.
    pub team: Option<String>,
    pub severity: Option<String>,
    pub declared: usize,
    /// `spec.phase: Resolved`.
    pub resolved: usize,
    /// Not resolved.
    pub open: usize,
    /// Declared → acknowledged (`status.durations.toAcknowledge`).
    pub time_to_acknowledge: Percentiles,
    /// Impact started → resolved (`status.durations.toResolve`).
    pub time_to_resolve: Percentiles,
    /// Postmortems `Overdue`, or required, not linked and past due.
    pub postmortems_overdue: usize,
    /// Follow-ups not done.
    pub follow_ups_open: usize,
    /// Follow-ups not done whose due day (UTC) is over.
    pub follow_ups_overdue: usize,
}

/// p50 and p90 of one duration, nearest-rank; `null` without data.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// How many incidents have the duration.
    pub count: usize,
    /// Such as `4m12s`.
    pub p50: Option<String>,
    pub p50_seconds: Option<u64>,
    pub p90: Option<String>,
    pub p90_seconds: Option<u64>,
}

/// Incidents by how they were declared (`klaxon_incidents_declared_total`'s
/// `source`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sources {
    /// By a person.
    pub manual: usize,
    /// By a policy signal.
    pub signal: usize,
    /// From Alertmanager.
    pub alert: usize,
    /// The monitoring heartbeat went silent.
    pub heartbeat: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadCount {
    pub namespace: String,
    /// `Deployment`.
    pub kind: String,
    pub name: String,
    /// Incidents of the window that affected it.
    pub incidents: usize,
    /// Of those, the ones not resolved.
    pub open: usize,
}

/// `--since`: one or more `<digits><unit>` groups, unit `d`, `h`, `m` or
/// `s` (`30d`, `12h`, `90m`, `1d12h`).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let invalid = || format!("--since {text:?} is not a duration such as 30d, 12h or 90m");
    let days = text.find('d');
    let (day_part, rest) = match days {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => ("", text),
    };
    let mut total = Duration::ZERO;
    if days.is_some() {
        let n: u64 = day_part
            .parse()
            .ok()
            .filter(|_| !day_part.is_empty() && day_part.chars().all(|c| c.is_ascii_digit()))
            .filter(|n| *n <= 36_600)
            .ok_or_else(invalid)?;
        total += Duration::from_secs(n * 86_400);
    }
    if !rest.is_empty() {
        total += duration::parse(rest).map_err(|_| invalid())?;
    } else if days.is_none() {
        return Err(invalid());
    }
    Ok(total)
}

/// The window's start: `--since` (see [`parse_since`]) before `now`.
pub fn since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let window = parse_since(text)?;
    jiff::SignedDuration::try_from(window)
        .ok()
        .and_then(|w| now.checked_sub(w).ok())
        .ok_or_else(|| format!("--since {text} reaches too far back"))
}

/// The value at rank ⌈p·n/100⌉ of `sorted` (ascending), counting from 1.
pub fn nearest_rank(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted.get(rank as usize - 1).copied()
}

fn percentiles(mut seconds: Vec<u64>) -> Percentiles {
    seconds.sort_unstable();
    let (p50, p90) = (nearest_rank(&seconds, 50), nearest_rank(&seconds, 90));
    let text = |s: Option<u64>| s.map(|s| humantime(Duration::from_secs(s)));
    Percentiles {
        count: seconds.len(),
        p50: text(p50),
        p50_seconds: p50,
        p90: text(p90),
        p90_seconds: p90,
    }
}

/// One duration of `status.durations` in seconds.
fn seconds(
    incident: &Incident,
    which: fn(&crate::api::incident::Durations) -> &Option<String>,
) -> Option<u64> {
    let text = which(incident.status.as_ref()?.durations.as_ref()?).as_deref()?;
    duration::parse(text).ok().map(|d| d.as_secs())
}

/// What one group adds up, before percentiles.
#[derive(Default)]
struct Tally {
    group: Group,
    acknowledge: Vec<u64>,
    resolve: Vec<u64>,
}

impl Tally {
    fn add(&mut self, incident: &Incident, now: Timestamp) {
        let g = &mut self.group;
        g.declared += 1;
        if incident.spec.phase == Phase::Resolved {
            g.resolved += 1;
        } else {
            g.open += 1;
        }
        if postmortem::overdue(incident, now) {
            g.postmortems_overdue += 1;
        }
        for item in incident.spec.follow_ups.iter().filter(|f| !f.done) {
            g.follow_ups_open += 1;
            if item
                .due
                .as_deref()
                .and_then(overdue_at)
                .is_some_and(|at| at <= now)
            {
                g.follow_ups_overdue += 1;
            }
        }
        self.acknowledge
            .extend(seconds(incident, |d| &d.to_acknowledge));
        self.resolve.extend(seconds(incident, |d| &d.to_resolve));
    }

    fn finish(self) -> Group {
        Group {
            time_to_acknowledge: percentiles(self.acknowledge),
            time_to_resolve: percentiles(self.resolve),
            ..self.group
        }
    }
}

/// The names of the workloads `incident` affected: named in its spec,
/// linked in its status, or in its impact record.
fn workloads(incident: &Incident) -> Vec<String> {
    let mut names: Vec<String> =
        crate::domain::incident::related::workloads(incident, incident.status.as_ref());
    if let Some(status) = &incident.status {
        names.extend(status.workloads().map(|(kind, d)| kind.key(&d.name)));
        names.extend(status.impact.iter().map(|d| d.name.clone()));
    }
    names.sort();
    names.dedup();
    names
}

/// The report over `incidents` declared at or after `since`, at `now`;
/// `namespace` is what was listed (`None`: all namespaces).
pub fn report(
    incidents: &[Incident],
    namespace: Option<&str>,
    since: Timestamp,
    now: Timestamp,
) -> Report {
    let window: Vec<&Incident> = incidents
        .iter()
        .filter(|i| declared(i).is_some_and(|t| t >= since))
        .collect();
    // Team (none last), then severity as the ladder orders it.
    type Key = (bool, String, (u64, String));
    let mut groups: BTreeMap<Key, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut sources = Sources::default();
    let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for incident in &window {
        let team = incident.status.as_ref().and_then(|s| s.team.clone());
        let severity = incident.spec.severity.clone();
        let key = (
            team.is_none(),
            team.clone().unwrap_or_default(),
            severity_rank(&severity),
        );
        let tally = groups.entry(key).or_insert_with(|| Tally {
            group: Group {
                team,
                severity: Some(severity),
                ..Default::default()
            },
            ..Default::default()
        });
        tally.add(incident, now);
        total.add(incident, now);
        match record::source(incident) {
            record::Source::Signal => sources.signal += 1,
            record::Source::Alert => sources.alert += 1,
            record::Source::Heartbeat => sources.heartbeat += 1,
            record::Source::Manual => sources.manual += 1,
        }
        let ns = incident.metadata.namespace.clone().unwrap_or_default();
        let open = incident.spec.phase != Phase::Resolved;
        for name in workloads(incident) {
            let count = counts.entry((ns.clone(), name)).or_default();
            count.0 += 1;
            count.1 += usize::from(open);
        }
    }
    let mut workloads: Vec<WorkloadCount> = counts
        .into_iter()
        .map(|((namespace, key), (incidents, open))| {
            let (kind, name) = crate::api::incident::WorkloadKind::of_key(&key);
            WorkloadCount {
                namespace,
                kind: kind.as_str().into(),
                name: name.to_string(),
                incidents,
                open,
            }
        })
        .collect();
    // Most incidents first; by namespace and name among equals (stable).
    workloads.sort_by_key(|w| std::cmp::Reverse(w.incidents));
    workloads.truncate(TOP_WORKLOADS);
    Report {
        since: since.to_string(),
        now: now.to_string(),
        namespace: namespace.map(str::to_string),
        groups: groups.into_values().map(Tally::finish).collect(),
        total: total.finish(),
        sources,
        workloads,
    }
}

mod text;

pub use self::text::text;

#[cfg(test)]
mod tests;
