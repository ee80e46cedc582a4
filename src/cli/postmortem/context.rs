//! The postmortem template's context: every field a template can use.
//! These names are the templates' contract; the README ("Postmortems")
//! lists them too.

use serde::Serialize;

/// Everything a postmortem template can use.
#[derive(Clone, Debug, Serialize)]
pub struct Context {
    /// When the draft was made.
    pub drafted_at: String,
    pub incident: About,
    pub times: Times,
    pub durations: Durations,
    pub impact: Impact,
    /// What changed: the rollouts of affected workloads in the hour
    /// before the declaration (`status.rollouts`), oldest first.
    pub rollouts: Vec<Rollout>,
    /// What changed in the affected workloads (`status.changes`), oldest
    /// first; the draft lists these when there are any, else `rollouts`.
    pub changes: Vec<ChangeLine>,
    /// The whole timeline (`status.timeline`), oldest first.
    pub timeline: Vec<Entry>,
    /// Responder notes (`spec.notes`), as written.
    pub notes: Vec<NoteLine>,
    pub paging: Paging,
    pub evidence: Evidence,
    /// Alerts grouped into the incident (`status.alerts`).
    pub alerts: Vec<Alert>,
    /// The action items (`spec.followUps`), numbered from 1 as
    /// `kubectl incident followup --done N` takes them.
    pub follow_ups: Vec<FollowUp>,
    /// The follow-ups, counted.
    pub follow_up_counts: FollowUpCounts,
    pub postmortem: Postmortem,
    /// Other incidents this one relates to (`status.related`): the spec's
    /// links and the recurrences Klaxon found.
    pub related: Vec<Related>,
}

/// What the incident is and who responded.
#[derive(Clone, Debug, Serialize)]
pub struct About {
    pub name: String,
    pub namespace: String,
    pub title: String,
    pub severity: String,
    /// Triggered, Acknowledged, Mitigated or Resolved.
    pub phase: String,
    /// The owning team (`status.team`).
    pub team: Option<String>,
    pub commander: Option<String>,
    pub responders: Vec<String>,
    /// What responders wrote (`spec.summary`).
    pub summary: Option<String>,
    /// Klaxon's one line about the workloads (`status.summary`).
    pub status_summary: Option<String>,
    /// How it was declared: `manual`, `signal`, `alert` or `heartbeat`.
    pub source: String,
}

/// When each stage began (`status.*At`).
#[derive(Clone, Debug, Serialize)]
pub struct Times {
    /// When impact started (`status.startedAt`).
    pub started_at: Option<String>,
    /// When a person said impact started (`spec.impactStartedAt`).
    pub impact_started_at: Option<String>,
    pub declared_at: Option<String>,
    /// The acknowledgement deadline (`status.acknowledgeBy`).
    pub acknowledge_by: Option<String>,
    pub acknowledged_at: Option<String>,
    /// When the deadline passed unacknowledged (`status.escalatedAt`).
    pub escalated_at: Option<String>,
    pub mitigated_at: Option<String>,
    pub resolved_at: Option<String>,
}

/// How long each stage took (`status.durations`), such as `4m12s`.
#[derive(Clone, Debug, Serialize)]
pub struct Durations {
    /// Impact started → declared.
    pub to_detect: Option<String>,
    /// Declared → acknowledged.
    pub to_acknowledge: Option<String>,
    /// Impact started → mitigated.
    pub to_mitigate: Option<String>,
    /// Impact started → resolved.
    pub to_resolve: Option<String>,
    /// The rollout before the declaration → resolved.
    pub to_recover: Option<String>,
}

/// Who and what was hurt.
#[derive(Clone, Debug, Serialize)]
pub struct Impact {
    /// `worst` when the workloads are the worst each got while the
    /// incident was open (`status.impact`), `last` when they are as last
    /// seen (`status.deployments`, for a record without `impact`).
    pub basis: String,
    pub workloads: Vec<Workload>,
    /// The policy's Prometheus queries, as last answered (`status.metrics`).
    pub metrics: Vec<Metric>,
}

/// An affected workload.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    /// `Deployment`.
    pub kind: String,
    pub name: String,
    /// False when it was never found.
    pub found: bool,
    /// The fewest ready replicas (worst), or the ready replicas (last).
    pub ready: Option<i32>,
    /// The replicas wanted then.
    pub replicas: Option<i32>,
    /// Container restarts summed over its pods.
    pub restarts: Option<i32>,
    /// Failure reasons with how many pods showed each, most common first.
    pub reasons: Vec<Reason>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Reason {
    pub reason: String,
    pub count: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub name: String,
    pub value: Option<String>,
    pub query: String,
    /// Why the query gave no value.
    pub error: Option<String>,
}

/// A rollout before the declaration.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeLine {
    /// When it happened.
    pub at: String,
    /// How long before the declaration, such as `50s` or `1h5m`.
    pub before_declaration: Option<String>,
    /// As `kubectl` names it (a Deployment by its name).
    pub workload: String,
    pub change: String,
    pub by: Option<String>,
    pub source: Option<String>,
    /// The change nearest before impact started.
    pub suspect: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rollout {
    /// The Deployment.
    pub workload: String,
    pub revision: Option<String>,
    /// When it started.
    pub at: String,
    /// How long before the declaration it started, such as `50s` or `1h5m`.
    pub before_declaration: Option<String>,
    pub images: Vec<String>,
    /// The images it replaced.
    pub previous_images: Vec<String>,
}

/// A timeline entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub time: String,
    /// The time of day, `14:02:05`.
    pub clock: String,
    /// Relative to the declaration: `-50s`, `+0s`, `+5m`, `+2h10m`.
    pub since_declared: Option<String>,
    /// Declared, PhaseChanged, SeverityChanged, Signal, Note, Rollout,
    /// Notification, Escalated, FollowUp, ...
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NoteLine {
    pub time: Option<String>,
    pub author: Option<String>,
    pub text: String,
}

/// Who was paged and when.
#[derive(Clone, Debug, Serialize)]
pub struct Paging {
    /// One per receiver and transition (`status.notifications`), oldest
    /// first.
    pub notifications: Vec<Page>,
    /// Counted over `notifications` and the entries summarised out of
    /// them (`status.notificationHistory`).
    pub delivered: i32,
    pub failed: i32,
    pub pending: i32,
    /// How many of `delivered` and `failed` were summarised out of the
    /// ledger (and so are not in `notifications`).
    pub summarised: i32,
    /// The escalations: the `Escalated` timeline entries.
    pub escalations: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub receiver: String,
    /// Declared, SeverityChanged, PhaseChanged, Escalated, Resolved, ...
    pub trigger: String,
    /// What changed, e.g. `SEV2 → SEV1`.
    pub transition: Option<String>,
    /// Pending, Delivered or Failed.
    pub state: String,
    pub attempts: i32,
    pub last_attempt_at: Option<String>,
    /// Why the last attempt failed.
    pub message: Option<String>,
}

/// What the cluster showed.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    /// Warning events (`status.events`), the most repeated first (most
    /// recent first among equals).
    pub events: Vec<Event>,
    /// Every failure reason of every workload, most pods first.
    pub reasons: Vec<WorkloadReason>,
    /// The worst pods as last seen, with their last termination message.
    pub pods: Vec<Pod>,
    /// The last lines failing containers wrote (`status.logs`), the most
    /// recently read first.
    pub logs: Vec<Log>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub reason: String,
    /// `Kind/name`.
    pub object: String,
    pub message: String,
    pub count: i32,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReason {
    pub workload: String,
    pub reason: String,
    pub count: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pod {
    pub workload: String,
    pub name: String,
    /// CrashLoopBackOff, OOMKilled, ... or the pod's phase.
    pub reason: Option<String>,
    pub restarts: i32,
    pub message: Option<String>,
}

/// The last lines a failing container wrote, as the record kept them
/// (redacted).
#[derive(Clone, Debug, Serialize)]
pub struct Log {
    pub workload: String,
    pub pod: String,
    pub container: String,
    /// When they were read (UTC).
    pub read_at: Option<String>,
    /// Of the instance that crashed, not the running one.
    pub previous: bool,
    pub lines: Vec<String>,
    pub truncated: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// The `alertname` label.
    pub name: Option<String>,
    /// Firing or Resolved.
    pub state: String,
    pub starts_at: String,
    pub ends_at: Option<String>,
    /// Where it came from (the generator URL).
    pub link: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FollowUp {
    /// From 1, in the spec's order.
    pub number: usize,
    pub title: String,
    pub owner: Option<String>,
    /// The day it is due, `2026-12-10`.
    pub due: Option<String>,
    pub url: Option<String>,
    pub done: bool,
    /// Open past its due day (UTC) when the draft was made.
    pub overdue: bool,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FollowUpCounts {
    pub open: usize,
    pub done: usize,
    pub overdue: usize,
}

/// Where the postmortem stands (`status.postmortem`, `spec.postmortem`).
#[derive(Clone, Debug, Serialize)]
pub struct Postmortem {
    /// The ladder requires one for this severity.
    pub required: bool,
    /// NotRequired, Pending, Overdue or Done; `none` before the operator
    /// looked.
    pub state: Option<String>,
    pub due: Option<String>,
    /// Where it lives, once linked.
    pub url: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Related {
    pub name: String,
    /// RecurrenceOf, CausedBy or DuplicateOf.
    pub relation: String,
    pub resolved_at: Option<String>,
    /// Found by Klaxon (a recurrence), not linked by a person.
    pub detected: bool,
}
