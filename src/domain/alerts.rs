//! Alerts from Alertmanager, as pure logic: the webhook payload (version
//! 4), Alertmanager's matchers, which policy rule an alert falls under, the
//! group it joins, the incident's deterministic name, and how a batch
//! changes the alerts an incident records.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;

use crate::api::{
    incident::{AlertState, AlertStatus, WorkloadKind},
    limits::{MAX_ALERT_LABELS, MAX_ALERTS},
    policy::AlertRule,
};

/// The label of an incident declared from alerts: its group's key.
pub const GROUP_LABEL: &str = "klaxon.dev/alert-group";
/// Marks an incident declared for a silent heartbeat; its value is the
/// alertname.
pub const HEARTBEAT_LABEL: &str = "klaxon.dev/heartbeat";
/// The annotation holding `resolveWithAlerts.healthyFor`, fixed when the
/// incident is declared.
pub const RESOLVE_ANNOTATION: &str = "klaxon.dev/resolve-with-alerts";
pub const DEFAULT_NAMESPACE_LABEL: &str = "namespace";
pub const DEFAULT_DEPLOYMENT_LABEL: &str = "deployment";
/// kube-state-metrics' labels for the other workload kinds.
pub const DEFAULT_STATEFULSET_LABEL: &str = "statefulset";
pub const DEFAULT_DAEMONSET_LABEL: &str = "daemonset";

/// Alertmanager's webhook payload, version 4.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    /// `0001-01-01T00:00:00Z` while firing.
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("alert")
    }

    pub fn firing(&self) -> bool {
        self.status != "resolved"
    }

    /// When it resolved: `endsAt`, unless it is the zero time of a firing
    /// alert.
    pub fn ended(&self) -> Option<Timestamp> {
        let ends: Timestamp = self.ends_at.as_deref()?.parse().ok()?;
        (!self.firing() && ends.as_second() > 0).then_some(ends)
    }

    /// Its identity: Alertmanager's fingerprint (16 hex characters), else
    /// a hash of its labels; never longer than the status allows.
    pub fn id(&self) -> String {
        if self.fingerprint.is_empty() || self.fingerprint.len() > 64 {
            format!("{:016x}", fnv(&label_text(&self.labels)))
        } else {
            self.fingerprint.clone()
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("not JSON an Alertmanager webhook sends: {0}")]
    Malformed(String),
    #[error("webhook payload version {0:?}; this receiver takes version 4")]
    Version(String),
    /// Beyond what any Alertmanager sends: refused whole.
    #[error("{0}")]
    TooLarge(String),
}

/// Alerts one batch may carry.
pub const MAX_BATCH_ALERTS: usize = 5_000;
/// Labels (and, apart, annotations) one alert may carry.
pub const MAX_LABELS: usize = 100;
/// Bytes of one label or annotation value.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    if payload.version != "4" {
        return Err(PayloadError::Version(payload.version));
    }
    if payload.alerts.len() > MAX_BATCH_ALERTS {
        return Err(PayloadError::TooLarge(format!(
            "{} alerts in one batch; at most {MAX_BATCH_ALERTS} (Alertmanager: lower max_alerts)",
            payload.alerts.len()
        )));
    }
    for (i, alert) in payload.alerts.iter().enumerate() {
        for (what, map) in [
            ("labels", &alert.labels),
            ("annotations", &alert.annotations),
        ] {
            if map.len() > MAX_LABELS {
                return Err(PayloadError::TooLarge(format!(
                    "alerts[{i}] has {} {what}; at most {MAX_LABELS}",
                    map.len()
                )));
            }
            if let Some((key, _)) = map
                .iter()
                .find(|(k, v)| k.len() > MAX_VALUE_BYTES || v.len() > MAX_VALUE_BYTES)
            {
                return Err(PayloadError::TooLarge(format!(
                    "alerts[{i}].{what}: {:?} or its value is longer than {MAX_VALUE_BYTES} bytes",
                    crate::domain::enrich::truncate(key, 64)
                )));
            }
        }
    }
    Ok(payload)
}

/// One Alertmanager matcher: `name=value`, `name!=value`, `name=~re`,
/// `name!~re`.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: Op,
}

#[derive(Clone, Debug)]
enum Op {
    Equal(String),
    NotEqual(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let at = text.find(['=', '!']).ok_or_else(|| {
            format!("{text:?} is not a matcher such as alertname=\"HighErrorRate\"")
        })?;
        let name = text[..at].trim().to_string();
        let rest = &text[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(|| format!("{text:?}: expected =, !=, =~ or !~ after the label name"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{text:?}: {name:?} is not a label name"));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => value.to_string(),
        };
        let regex = |v: &str| {
            regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("{text:?}: {e}"))
        };
        let op = match op {
            "=~" => Op::Regex(regex(&value)?),
            "!~" => Op::NotRegex(regex(&value)?),
            "!=" => Op::NotEqual(value),
            _ => Op::Equal(value),
        };
        Ok(Self { name, op })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match &self.op {
            Op::Equal(v) => value == v,
            Op::NotEqual(v) => value != v,
            Op::Regex(r) => r.is_match(value),
            Op::NotRegex(r) => !r.is_match(value),
        }
    }
}

/// The matchers of `rules` that do not parse, each with where and why:
/// `spec.alerts[0].matchers[1]: "severity=~(": ...`. Such a rule takes no
/// alert; the policy's status names it.
pub fn invalid_matchers(rules: &[AlertRule]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for (j, text) in rule.matchers.iter().enumerate() {
            if let Err(error) = Matcher::parse(text) {
                out.push(format!("spec.alerts[{i}].matchers[{j}]: {error}"));
            }
        }
    }
    out
}

/// What keeps a policy's alert rules and heartbeat from working: matchers
/// that do not parse, and severities not on `ladder` (when one is known),
/// each with where: `spec.heartbeat.severity: P1 is not on the ladder
/// (SEV1, SEV2)`. An incident with such a severity would be refused.
pub fn rule_problems(
    rules: &[AlertRule],
    heartbeat: Option<&crate::api::policy::Heartbeat>,
    ladder: Option<&[&str]>,
) -> Vec<String> {
    let mut out = invalid_matchers(rules);
    let Some(ladder) = ladder else {
        return out;
    };
    let mut check = |place: String, severity: &str| {
        if !ladder.contains(&severity) {
            out.push(format!(
                "{place}: {severity} is not on the ladder ({})",
                ladder.join(", ")
            ));
        }
    };
    for (i, rule) in rules.iter().enumerate() {
        if let Some(severity) = &rule.severity {
            check(format!("spec.alerts[{i}].severity"), severity);
        }
        if let Some(from) = &rule.severity_from {
            for (value, severity) in &from.map {
                check(
                    format!("spec.alerts[{i}].severityFrom.map[{value}]"),
                    severity,
                );
            }
            if let Some(default) = &from.default {
                check(format!("spec.alerts[{i}].severityFrom.default"), default);
            }
        }
    }
    if let Some(heartbeat) = heartbeat {
        check("spec.heartbeat.severity".into(), &heartbeat.severity);
    }
    out
}

/// Where an alert goes under one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    pub namespace: String,
    /// The affected workload the alert names, if any.
    pub workload: Option<(WorkloadKind, String)>,
    pub severity: String,
    /// The `groupBy` labels and their values.
    pub group: BTreeMap<String, String>,
    /// A stable hash of `group`: the incident's [`GROUP_LABEL`].
    pub group_key: String,
    pub resolve_after: Option<String>,
}

impl AlertRule {
    pub fn namespace_label(&self) -> &str {
        self.namespace_label
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE_LABEL)
    }

    pub fn deployment_label(&self) -> &str {
        self.deployment_label
            .as_deref()
            .unwrap_or(DEFAULT_DEPLOYMENT_LABEL)
    }

    /// The label naming a workload of `kind`.
    pub fn workload_label(&self, kind: WorkloadKind) -> &str {
        match kind {
            WorkloadKind::Deployment => self.deployment_label(),
            WorkloadKind::StatefulSet => self
                .stateful_set_label
                .as_deref()
                .unwrap_or(DEFAULT_STATEFULSET_LABEL),
            WorkloadKind::DaemonSet => self
                .daemon_set_label
                .as_deref()
                .unwrap_or(DEFAULT_DAEMONSET_LABEL),
        }
    }
}

/// The first rule of a namespace's effective policy that takes `alert`,
/// given that the alert named that namespace with `namespace_label`.
/// Rules whose matchers do not parse take nothing (the policy's status
/// says why).
pub fn route(
    alert: &Alert,
    namespace: &str,
    namespace_label: &str,
    rules: &[AlertRule],
) -> Option<Routed> {
    rules.iter().find_map(|rule| {
        if rule.namespace_label() != namespace_label {
            return None;
        }
        for text in &rule.matchers {
            if !Matcher::parse(text).ok()?.matches(&alert.labels) {
                return None;
            }
        }
        let severity = match (&rule.severity, &rule.severity_from) {
            (Some(severity), _) => severity.clone(),
            (None, Some(from)) => match alert.labels.get(&from.label) {
                Some(value) => from
                    .map
                    .get(value)
                    .cloned()
                    .unwrap_or_else(|| value.clone()),
                None => from.default.clone()?,
            },
            (None, None) => return None,
        };
        // The first kind whose label the alert carries.
        let workload = WorkloadKind::ALL.into_iter().find_map(|kind| {
            let name = alert.labels.get(rule.workload_label(kind))?;
            (!name.is_empty()).then(|| (kind, name.clone()))
        });
        let keys: Vec<String> = if rule.group_by.is_empty() {
            let mut keys: Vec<String> = vec![
                "alertname".into(),
                rule.namespace_label().into(),
                rule.deployment_label().into(),
            ];
            // Only when present, so a Deployment's groups keep their keys.
            for kind in [WorkloadKind::StatefulSet, WorkloadKind::DaemonSet] {
                let label = rule.workload_label(kind);
                if alert.labels.contains_key(label) && !keys.iter().any(|k| k == label) {
                    keys.push(label.to_string());
                }
            }
            keys
        } else {
            rule.group_by.clone()
        };
        let mut group: BTreeMap<String, String> = keys
            .iter()
            .map(|k| (k.clone(), alert.labels.get(k).cloned().unwrap_or_default()))
            .collect();
        // The namespace is always part of the group: a group never spans two.
        group.insert(namespace_label.to_string(), namespace.to_string());
        let group_key = format!("{:016x}", fnv(&label_text(&group)));
        Some(Routed {
            namespace: namespace.to_string(),
            workload,
            severity,
            group,
            group_key,
            resolve_after: rule
                .resolve_with_alerts
                .as_ref()
                .map(|r| r.healthy_for.as_str().to_string()),
        })
    })
}

fn label_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn fnv(text: &str) -> u64 {
    super::fnv1a(text.bytes())
}

/// The incident's name for a group that started at `start`:
/// `<alertname>-<group key>-YYYYMMDD-HHMMSS` (UTC), at most 63 characters.
/// The same group and start give the same name on every replica and after
/// every restart, so an alert never declares twice.
pub fn incident_name(alertname: &str, group_key: &str, start: Timestamp) -> String {
    name_with(
        alertname,
        &format!(
            "-{}-{}",
            &group_key[..group_key.len().min(8)],
            start.strftime("%Y%m%d-%H%M%S")
        ),
    )
}

/// The label of a namespace's alert-flood incident.
pub const FLOOD_LABEL: &str = "klaxon.dev/alert-flood";
/// Its `klaxon.dev/alert-group` (group keys are 16 hex digits: no clash).
pub const FLOOD_GROUP: &str = "flood";

/// The flood incident's name, from when it began: `alert-flood-YYYYMMDD-HHMMSS`.
pub fn flood_name(start: Timestamp) -> String {
    format!("alert-flood-{}", start.strftime("%Y%m%d-%H%M%S"))
}

/// `flood` with one batch of `group`'s alerts added: a group new to it is
/// counted (and listed while the list has room); a known one's firing
/// count is that batch's (Alertmanager sends a group's every alert in
/// each notification).
pub fn flood_merge(
    flood: Option<&crate::api::incident::AlertFlood>,
    group: &str,
    alerts: &[&Alert],
    now: Timestamp,
) -> crate::api::incident::AlertFlood {
    use crate::api::{incident::FloodGroup, limits::MAX_FLOOD_GROUPS};
    let mut flood = flood.cloned().unwrap_or_default();
    let firing = u32::try_from(alerts.iter().filter(|a| a.firing()).count()).unwrap_or(u32::MAX);
    match flood.items.iter_mut().find(|i| i.group == group) {
        Some(known) => known.firing = firing,
        None => {
            flood.groups = flood.groups.saturating_add(1);
            flood.alerts = flood.alerts.saturating_add(firing);
            if flood.items.len() < MAX_FLOOD_GROUPS as usize {
                let alertname = alerts.first().map(|a| a.name()).unwrap_or_default();
                flood.items.push(FloodGroup {
                    group: group.to_string(),
                    alertname: crate::domain::enrich::truncate(alertname, 128),
                    firing,
                    since: Time(now),
                });
            }
        }
    }
    flood
}

/// Whether every group of a flood is known to have stopped firing (a
/// group counted past the list's bound is never known to).
pub fn flood_quiet(flood: &crate::api::incident::AlertFlood) -> bool {
    flood.items.len() == flood.groups as usize && flood.items.iter().all(|i| i.firing == 0)
}

/// The incident's name for a heartbeat silent since `since`:
/// `<alertname>-missing-YYYYMMDD-HHMMSS`.
pub fn silence_name(alertname: &str, since: Timestamp) -> String {
    name_with(
        alertname,
        &format!("-missing-{}", since.strftime("%Y%m%d-%H%M%S")),
    )
}

/// `alertname` as a DNS label, cut to leave room for `suffix`.
fn name_with(alertname: &str, suffix: &str) -> String {
    let mut slug: String = alertname
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "alert" } else { slug };
    let room = 63usize.saturating_sub(suffix.len());
    let slug: String = slug.chars().take(room).collect();
    format!("{}{suffix}", slug.trim_end_matches('-'))
}

/// What to do about a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatAction {
    Nothing,
    /// Silent for `missingFor` and no incident open: declare one.
    Declare,
    /// An incident is open and the heartbeat arrived after it was
    /// declared: resolve it.
    Resolve,
}

/// The dead man's switch, as a function of what is known:
/// - `started`: when this operator started (silence is counted from it
///   at the latest, so a restart or failover never declares at once);
/// - `arrived`: the heartbeat's last arrival since then, if any;
/// - `open`: when the open silence incident was declared, if one is open.
///
/// An open incident resolves only on a real arrival after it was declared,
/// never merely because this operator started recently.
pub fn heartbeat_action(
    started: Timestamp,
    arrived: Option<Timestamp>,
    missing_for: std::time::Duration,
    open: Option<Timestamp>,
    now: Timestamp,
) -> HeartbeatAction {
    if let Some(declared) = open {
        return match arrived {
            Some(at) if at > declared => HeartbeatAction::Resolve,
            _ => HeartbeatAction::Nothing,
        };
    }
    let since = arrived.unwrap_or(started).max(started);
    let silent = jiff::SignedDuration::try_from(missing_for)
        .ok()
        .and_then(|d| since.checked_add(d).ok())
        .is_some_and(|due| due <= now);
    if silent {
        HeartbeatAction::Declare
    } else {
        HeartbeatAction::Nothing
    }
}

/// What a batch did to an incident's alerts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    pub alerts: Vec<AlertState>,
    /// Timeline lines: alerts that joined or resolved.
    pub joined: Vec<String>,
    pub resolved: Vec<String>,
}

/// Records `incoming` into `existing`: a new alert joins, a repeat moves
/// only `lastSeen`, a resolution sets the state and `endsAt`. Firing
/// alerts come first, then the most recently seen; the list is bounded.
pub fn merge(existing: &[AlertState], incoming: &[&Alert], now: Timestamp) -> Merged {
    let mut out = Merged {
        alerts: existing.to_vec(),
        ..Default::default()
    };
    for alert in incoming {
        let id = alert.id();
        let state = if alert.firing() {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        match out.alerts.iter_mut().find(|a| a.fingerprint == id) {
            Some(known) => {
                if known.state == AlertStatus::Firing && state == AlertStatus::Resolved {
                    out.resolved.push(describe(alert));
                } else if known.state == AlertStatus::Resolved && state == AlertStatus::Firing {
                    out.joined.push(describe(alert));
                }
                known.state = state;
                known.ends_at = alert.ended().map(Time);
                known.last_seen = Some(Time(now));
            }
            None => {
                if alert.firing() {
                    out.joined.push(describe(alert));
                } else {
                    out.resolved.push(describe(alert));
                }
                out.alerts.push(state_of(alert, state, now));
            }
        }
    }
    out.alerts.sort_by_key(|a| {
        (
            a.state != AlertStatus::Firing,
            std::cmp::Reverse(a.last_seen.as_ref().map(|t| t.0.as_second())),
        )
    });
    out.alerts.truncate(MAX_ALERTS as usize);
    // Within the status's budget too: the least recent go first.
    while !out.alerts.is_empty()
        && serde_json::to_vec(&out.alerts).map_or(0, |b| b.len()) > ALERTS_BUDGET
    {
        out.alerts.pop();
    }
    out
}

/// The most `status.alerts` may take, serialized, of the status's 64 KiB.
pub const ALERTS_BUDGET: usize = 16 * 1024;

fn state_of(alert: &Alert, state: AlertStatus, now: Timestamp) -> AlertState {
    AlertState {
        fingerprint: alert.id(),
        labels: alert
            .labels
            .iter()
            .take(MAX_ALERT_LABELS as usize)
            .map(|(k, v)| {
                (
                    crate::domain::enrich::truncate(k, 128),
                    crate::domain::enrich::truncate(v, 200),
                )
            })
            .collect(),
        state,
        starts_at: Time(alert.starts_at),
        ends_at: alert.ended().map(Time),
        last_seen: Some(Time(now)),
        link: (alert.generator_url.starts_with("http://")
            || alert.generator_url.starts_with("https://"))
        .then(|| crate::domain::enrich::truncate(&alert.generator_url, 1024)),
    }
}

/// `HighErrorRate (deployment=checkout, severity=critical): 5xx above 5%`.
pub fn describe(alert: &Alert) -> String {
    let labels: Vec<String> = alert
        .labels
        .iter()
        .filter(|(k, _)| *k != "alertname")
        .take(4)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut text = alert.name().to_string();
    if !labels.is_empty() {
        text.push_str(&format!(" ({})", labels.join(", ")));
    }
    if let Some(summary) = alert.annotations.get("summary") {
        text.push_str(&format!(": {summary}"));
    }
    crate::domain::enrich::truncate(&text, 300)
}

/// True when every recorded alert has resolved; the latest end.
pub fn all_resolved(alerts: &[AlertState]) -> Option<Timestamp> {
    if alerts.is_empty() || alerts.iter().any(|a| a.state == AlertStatus::Firing) {
        return None;
    }
    alerts
        .iter()
        .filter_map(|a| a.ends_at.as_ref().or(a.last_seen.as_ref()).map(|t| t.0))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(status: &str, pairs: &[(&str, &str)], fingerprint: &str) -> Alert {
        Alert {
            status: status.into(),
            labels: labels(pairs),
            annotations: BTreeMap::from([("summary".into(), "5xx above 5%".into())]),
            starts_at: "2026-11-24T14:00:00Z".parse().expect("time"),
            ends_at: Some(if status == "resolved" {
                "2026-11-24T14:10:00Z".into()
            } else {
                "0001-01-01T00:00:00Z".into()
            }),
            generator_url: "http://prometheus:9090/graph?g0.expr=x".into(),
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn a_flood_counts_every_group_lists_the_first_and_is_quiet_when_they_all_are() {
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().expect("time");
        let firing = alert("firing", &[("alertname", "PodErrors")], "a");
        let resolved = alert("resolved", &[("alertname", "PodErrors")], "a");
        let mut flood = None;
        let limit = crate::api::limits::MAX_FLOOD_GROUPS as usize;
        for g in 0..limit + 5 {
            flood = Some(flood_merge(
                flood.as_ref(),
                &format!("g{g}"),
                &[&firing],
                now,
            ));
        }
        let full = flood.clone().expect("flood");
        assert_eq!(full.groups as usize, limit + 5);
        assert_eq!(full.alerts as usize, limit + 5);
        assert_eq!(full.items.len(), limit);
        assert_eq!(full.items[0].alertname, "PodErrors");
        // A known group's next batch updates it, and counts nothing twice.
        let again = flood_merge(Some(&full), "g0", &[&resolved], now);
        assert_eq!((again.groups, again.items[0].firing), (full.groups, 0));
        // Quiet only once every group is known to be.
        let mut small = None;
        for g in ["a", "b"] {
            small = Some(flood_merge(small.as_ref(), g, &[&firing], now));
        }
        let small = small.expect("flood");
        assert!(!flood_quiet(&small));
        let a = flood_merge(Some(&small), "a", &[&resolved], now);
        assert!(!flood_quiet(&a));
        assert!(flood_quiet(&flood_merge(Some(&a), "b", &[&resolved], now)));
        let quiet_but_unlisted = (0..limit + 1).fold(full, |f, g| {
            flood_merge(Some(&f), &format!("g{g}"), &[&resolved], now)
        });
        assert!(
            !flood_quiet(&quiet_but_unlisted),
            "a group past the list is never known quiet"
        );
    }

    #[test]
    fn batches_beyond_any_alertmanagers_are_refused() {
        let batch = |alerts: serde_json::Value| {
            serde_json::json!({"version": "4", "alerts": alerts}).to_string()
        };
        let one = |labels: serde_json::Value| serde_json::json!([{"status": "firing", "labels": labels, "startsAt": "2026-12-04T10:00:00Z"}]);
        assert!(parse(batch(one(serde_json::json!({"alertname": "A"}))).as_bytes()).is_ok());
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), serde_json::Value::from("v")))
            .collect();
        let error =
            parse(batch(one(serde_json::Value::Object(many))).as_bytes()).expect_err("refused");
        assert!(error.to_string().contains("at most 100"), "{error}");
        let long = serde_json::json!({"alertname": "x".repeat(MAX_VALUE_BYTES + 1)});
        assert!(matches!(
            parse(batch(one(long)).as_bytes()),
            Err(PayloadError::TooLarge(_))
        ));
        let alerts: Vec<serde_json::Value> = (0..=MAX_BATCH_ALERTS)
            .map(|_| serde_json::json!({"status": "firing", "labels": {}, "startsAt": "2026-12-04T10:00:00Z"}))
            .collect();
        assert!(matches!(
            parse(batch(serde_json::Value::from(alerts)).as_bytes()),
            Err(PayloadError::TooLarge(_))
        ));
        // Nesting deeper than the parser follows is an error, not a crash.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(PayloadError::Malformed(_))
        ));
    }

    proptest::proptest! {
        /// Whatever bytes arrive, parsing answers; it never panics.
        #[test]
        fn any_bytes_parse_or_are_refused(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = parse(&body);
        }
    }

    #[test]
    fn matchers_are_alertmanagers() {
        let l = labels(&[
            ("alertname", "KubePodCrashLooping"),
            ("severity", "critical"),
        ]);
        let yes = [
            r#"alertname=~"KubePod.*|HighErrorRate""#,
            "severity=critical",
            r#"severity!="warning""#,
            "team!~payments|search",
            "missing=",
        ];
        for m in yes {
            assert!(Matcher::parse(m).expect(m).matches(&l), "{m}");
        }
        let no = [
            "alertname=~Kube",
            "severity!=critical",
            r#"alertname="Other""#,
        ];
        for m in no {
            assert!(!Matcher::parse(m).expect(m).matches(&l), "{m}");
        }
        for bad in ["alertname", "=x", "a=~(", "al ert=x"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_routes_with_severity_group_and_a_stable_name() {
        let rule = AlertRule {
            matchers: vec![r#"alertname=~"HighErrorRate""#.into()],
            severity_from: Some(crate::api::policy::SeverityFrom {
                label: "severity".into(),
                map: BTreeMap::from([("critical".into(), "SEV1".into())]),
                default: Some("SEV3".into()),
            }),
            ..Default::default()
        };
        let a = alert(
            "firing",
            &[
                ("alertname", "HighErrorRate"),
                ("namespace", "shop"),
                ("deployment", "checkout"),
                ("severity", "critical"),
                ("pod", "a"),
            ],
            "f1",
        );
        let routed = route(&a, "shop", "namespace", std::slice::from_ref(&rule)).expect("routed");
        assert_eq!(routed.severity, "SEV1");
        assert_eq!(
            routed.workload,
            Some((WorkloadKind::Deployment, "checkout".to_string()))
        );
        assert_eq!(routed.group.len(), 3, "alertname, namespace, deployment");
        // Another pod's alert of the same group: the same key.
        let mut b = a.clone();
        b.labels.insert("pod".into(), "b".into());
        b.labels.remove("severity");
        let other = route(&b, "shop", "namespace", std::slice::from_ref(&rule)).expect("routed");
        assert_eq!(other.group_key, routed.group_key);
        assert_eq!(other.severity, "SEV3", "the default");
        // Another namespace label, or a non-matching alert: not this rule.
        assert!(
            route(
                &a,
                "shop",
                "kubernetes_namespace",
                std::slice::from_ref(&rule)
            )
            .is_none()
        );
        let mut c = a.clone();
        c.labels.insert("alertname".into(), "Other".into());
        assert!(route(&c, "shop", "namespace", &[rule]).is_none());

        let name = incident_name("HighErrorRate", &routed.group_key, a.starts_at);
        assert_eq!(
            name,
            format!("higherrorrate-{}-20261124-140000", &routed.group_key[..8])
        );
        let long = incident_name(&"X".repeat(100), &routed.group_key, a.starts_at);
        assert!(long.len() <= 63, "{long}");
    }

    #[test]
    fn statefulset_and_daemonset_labels_name_their_workloads() {
        let rule = AlertRule {
            severity: Some("SEV2".into()),
            ..Default::default()
        };
        let route_one = |pairs: &[(&str, &str)], rule: &AlertRule| {
            route(
                &alert("firing", pairs, "f1"),
                "shop",
                "namespace",
                std::slice::from_ref(rule),
            )
            .expect("routed")
        };
        // As kube-state-metrics labels them.
        let db = route_one(
            &[
                ("alertname", "KubeStatefulSetReplicasMismatch"),
                ("statefulset", "ledger-db"),
            ],
            &rule,
        );
        assert_eq!(
            db.workload,
            Some((WorkloadKind::StatefulSet, "ledger-db".to_string()))
        );
        assert_eq!(
            db.group.get("statefulset").map(String::as_str),
            Some("ledger-db")
        );
        let agent = route_one(
            &[
                ("alertname", "KubeDaemonSetRolloutStuck"),
                ("daemonset", "node-agent"),
            ],
            &rule,
        );
        assert_eq!(
            agent.workload,
            Some((WorkloadKind::DaemonSet, "node-agent".to_string()))
        );
        assert_ne!(db.group_key, agent.group_key);
        // A rule may rename them; a Deployment alert groups as it always did.
        let renamed = AlertRule {
            stateful_set_label: Some("sts".into()),
            ..rule.clone()
        };
        let db = route_one(&[("alertname", "X"), ("sts", "ledger-db")], &renamed);
        assert_eq!(db.workload.map(|(k, _)| k), Some(WorkloadKind::StatefulSet));
        let web = route_one(&[("alertname", "X"), ("deployment", "web")], &rule);
        assert_eq!(web.group.len(), 3, "alertname, namespace, deployment");
    }

    #[test]
    fn a_batch_joins_repeats_and_resolves() {
        let now: Timestamp = "2026-11-24T14:01:00Z".parse().expect("time");
        let one = alert(
            "firing",
            &[("alertname", "HighErrorRate"), ("pod", "a")],
            "f1",
        );
        let first = merge(&[], &[&one], now);
        assert_eq!(first.joined.len(), 1);
        assert_eq!(first.alerts[0].state, AlertStatus::Firing);

        // A repeat: only lastSeen moves.
        let later: Timestamp = "2026-11-24T14:02:00Z".parse().expect("time");
        let repeat = merge(&first.alerts, &[&one], later);
        assert!(repeat.joined.is_empty() && repeat.resolved.is_empty());
        let mut expected = first.alerts.clone();
        expected[0].last_seen = Some(Time(later));
        assert_eq!(repeat.alerts, expected);

        // A second alert joins; the first resolves.
        let two = alert(
            "firing",
            &[("alertname", "HighErrorRate"), ("pod", "b")],
            "f2",
        );
        let resolved_one = alert(
            "resolved",
            &[("alertname", "HighErrorRate"), ("pod", "a")],
            "f1",
        );
        let next = merge(&repeat.alerts, &[&resolved_one, &two], later);
        assert_eq!(next.joined.len(), 1);
        assert_eq!(next.resolved.len(), 1);
        assert_eq!(next.alerts[0].fingerprint, "f2", "firing first");
        assert_eq!(all_resolved(&next.alerts), None);
        let resolved_two = alert(
            "resolved",
            &[("alertname", "HighErrorRate"), ("pod", "b")],
            "f2",
        );
        let done = merge(&next.alerts, &[&resolved_two], later);
        assert_eq!(
            all_resolved(&done.alerts),
            Some("2026-11-24T14:10:00Z".parse().expect("time"))
        );
    }

    #[test]
    fn a_matcher_that_does_not_parse_is_named_with_its_place() {
        let rules = [
            AlertRule {
                matchers: vec!["alertname=A".into()],
                ..Default::default()
            },
            AlertRule {
                matchers: vec!["severity=critical".into(), r#"alertname=~"(""#.into()],
                ..Default::default()
            },
        ];
        let invalid = invalid_matchers(&rules);
        assert_eq!(invalid.len(), 1, "{invalid:?}");
        assert!(
            invalid[0].starts_with("spec.alerts[1].matchers[1]: "),
            "{invalid:?}"
        );
    }

    #[test]
    fn recorded_alerts_stay_within_their_budget() {
        let now: Timestamp = "2026-11-24T14:01:00Z".parse().expect("time");
        let many: Vec<Alert> = (0..200)
            .map(|i| {
                let pod = format!("pod-{i}-{}", "x".repeat(200));
                alert(
                    "firing",
                    &[("alertname", "HighErrorRate"), ("pod", &pod)],
                    &format!("f{i}"),
                )
            })
            .collect();
        let refs: Vec<&Alert> = many.iter().collect();
        let merged = merge(&[], &refs, now);
        assert!(merged.alerts.len() <= MAX_ALERTS as usize);
        let size = serde_json::to_vec(&merged.alerts).expect("json").len();
        assert!(size <= ALERTS_BUDGET, "{size}");
        assert!(!merged.alerts.is_empty());
    }

    #[test]
    fn the_dead_mans_switch_declares_on_silence_and_resolves_only_on_an_arrival() {
        let t = |s: &str| -> Timestamp { format!("2026-11-24T14:{s}Z").parse().expect("time") };
        let ten = std::time::Duration::from_secs(600);
        use HeartbeatAction::*;
        // Arriving: nothing. Silent since the last arrival for 10m: declare.
        assert_eq!(
            heartbeat_action(t("00:00"), Some(t("05:00")), ten, None, t("10:00")),
            Nothing
        );
        assert_eq!(
            heartbeat_action(t("00:00"), Some(t("05:00")), ten, None, t("15:00")),
            Declare
        );
        // Never arrived: counted from the start.
        assert_eq!(
            heartbeat_action(t("00:00"), None, ten, None, t("09:59")),
            Nothing
        );
        assert_eq!(
            heartbeat_action(t("00:00"), None, ten, None, t("10:00")),
            Declare
        );
        // Open: a restart (no arrival yet) does not resolve it...
        assert_eq!(
            heartbeat_action(t("20:00"), None, ten, Some(t("15:00")), t("21:00")),
            Nothing
        );
        // ...an arrival before it was declared does not either...
        assert_eq!(
            heartbeat_action(
                t("00:00"),
                Some(t("05:00")),
                ten,
                Some(t("15:00")),
                t("16:00")
            ),
            Nothing
        );
        // ...one after it does.
        assert_eq!(
            heartbeat_action(
                t("00:00"),
                Some(t("16:00")),
                ten,
                Some(t("15:00")),
                t("16:01")
            ),
            Resolve
        );
    }

    #[test]
    fn severities_off_the_ladder_are_named() {
        let rules = [AlertRule {
            matchers: vec!["alertname=A".into()],
            severity_from: Some(crate::api::policy::SeverityFrom {
                label: "severity".into(),
                map: BTreeMap::from([
                    ("critical".into(), "P1".into()),
                    ("warning".into(), "SEV3".into()),
                ]),
                default: Some("SEV9".into()),
            }),
            ..Default::default()
        }];
        let heartbeat = crate::api::policy::Heartbeat {
            alertname: "Watchdog".into(),
            missing_for: "10m".into(),
            severity: "SEV2".into(),
        };
        let ladder = ["SEV1", "SEV2", "SEV3"];
        let problems = rule_problems(&rules, Some(&heartbeat), Some(&ladder));
        assert_eq!(
            problems,
            [
                "spec.alerts[0].severityFrom.map[critical]: P1 is not on the ladder (SEV1, SEV2, SEV3)",
                "spec.alerts[0].severityFrom.default: SEV9 is not on the ladder (SEV1, SEV2, SEV3)",
            ]
        );
        assert!(
            rule_problems(&rules, Some(&heartbeat), None).is_empty(),
            "no ladder known"
        );
    }

    #[test]
    fn payloads_other_than_version_4_are_refused() {
        assert!(matches!(parse(b"{"), Err(PayloadError::Malformed(_))));
        assert_eq!(
            parse(br#"{"version":"3","alerts":[]}"#),
            Err(PayloadError::Version("3".into()))
        );
        let ok = parse(
            br#"{"version":"4","groupKey":"{}","status":"firing","receiver":"klaxon","externalURL":"http://am",
                "alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},"startsAt":"2026-11-24T14:00:00.123Z",
                "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p","fingerprint":"abc"}]}"#,
        )
        .expect("parses");
        assert_eq!(ok.alerts[0].ended(), None);
        assert!(ok.alerts[0].firing());
    }
}
