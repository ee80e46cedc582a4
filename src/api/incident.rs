//! The `Incident` kind: what responders declare, and the status the operator
//! keeps current for them.

// kube's derive takes repeated `printcolumn(...)` / `validation = ...`
// arguments, which this lint mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::limits::*;

/// Times the operator can read and do arithmetic on, with room to spare:
/// the schema refuses the rest, so no stored object is unreadable.
const NOTE_TIME_RULE: &str = "!has(self.time) || (timestamp(self.time) >= timestamp('1000-01-01T00:00:00Z') && timestamp(self.time) < timestamp('9000-01-01T00:00:00Z'))";
const IMPACT_TIME_RULE: &str = "!has(self.impactStartedAt) || (timestamp(self.impactStartedAt) >= timestamp('1000-01-01T00:00:00Z') && timestamp(self.impactStartedAt) < timestamp('9000-01-01T00:00:00Z'))";

/// The user who made the change that produced the generation named by
/// [`ACTOR_GENERATION_ANNOTATION`]; `kubectl incident` sets both, and an
/// admission policy makes sure they name the requester.
pub const ACTOR_ANNOTATION: &str = "klaxon.dev/actor";
/// The generation [`ACTOR_ANNOTATION`]'s change made.
pub const ACTOR_GENERATION_ANNOTATION: &str = "klaxon.dev/actor-generation";

impl Incident {
    /// Who made the change that produced this generation, when the
    /// plugin recorded it for exactly this generation.
    pub fn actor(&self) -> Option<&str> {
        let annotations = self.metadata.annotations.as_ref()?;
        let generation = annotations.get(ACTOR_GENERATION_ANNOTATION)?;
        let actor = annotations.get(ACTOR_ANNOTATION)?;
        (self.metadata.generation.map(|g| g.to_string()).as_ref() == Some(generation)
            && !actor.is_empty())
        .then_some(actor.as_str())
    }
}

/// An incident a team is responding to, and the affected Deployments whose
/// state the operator collects into its status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "klaxon.dev",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    shortname = "inc",
    category = "klaxon",
    status = "IncidentStatus",
    derive = "PartialEq",
    doc = "An incident a team is responding to; the operator links the affected Deployments and keeps their state in the status.",
    printcolumn(name = "Severity", type_ = "string", json_path = ".spec.severity"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".spec.phase"),
    printcolumn(name = "Title", type_ = "string", json_path = ".spec.title"),
    printcolumn(name = "Team", type_ = "string", json_path = ".status.team"),
    printcolumn(name = "Overdue", type_ = "boolean", json_path = ".status.overdue"),
    printcolumn(name = "Summary", type_ = "string", json_path = ".status.summary"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = 1
    ),
    selectable = ".spec.severity",
    selectable = ".spec.phase"
)]
#[x_kube(validation = kube::core::Rule::new(IMPACT_TIME_RULE)
    .message("impactStartedAt must lie between the years 1000 and 9000").field_path(".impactStartedAt"))]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// What is wrong, in a few words.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,

    /// A level of the effective severity ladder (default ladder: SEV1, most
    /// severe, to SEV4).
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub severity: String,

    /// Where the response stands. Resolved is final: a Resolved incident
    /// takes no other phase; declare a new incident instead.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("oldSelf != 'Resolved' || self == 'Resolved'")
        .message("a Resolved incident is final and cannot change phase; declare a new incident instead (it may link this one)"))]
    pub phase: Phase,

    /// What responders know so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub summary: Option<String>,

    /// Who leads the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PERSON))]
    pub commander: Option<String>,

    /// Who else is working on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = MAX_PERSON)))]
    pub responders: Vec<String>,

    /// The workloads this incident is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<Affected>,

    /// Responder notes, appended over time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NOTES))]
    pub notes: Vec<Note>,

    /// Where the postmortem lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<Postmortem>,

    /// When users were first hurt, if before the declaration: the start
    /// of every duration but time to acknowledge (`status.startedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_started_at: Option<Time>,

    /// Action items. They stay editable after resolution; their titles are
    /// unique within the incident.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FOLLOW_UPS))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["title".into()]))]
    pub follow_ups: Vec<FollowUp>,

    /// Other incidents of the same namespace this one relates to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RELATED))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub related: Vec<RelatedLink>,
}

/// An action item the incident leaves behind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// Who will do it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PERSON))]
    pub owner: Option<String>,
    /// Where it is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: Option<String>,
    /// The day it is due (`2026-12-10`); overdue from the next day, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"), length(max = 10))]
    pub due: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// A link to another incident of the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelatedLink {
    /// The other Incident's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    pub relation: Relation,
}

/// How an incident relates to another.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Relation {
    /// The same failure again.
    RecurrenceOf,
    /// The other incident caused this one.
    CausedBy,
    /// The same incident, declared twice.
    DuplicateOf,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::RecurrenceOf => "RecurrenceOf",
            Relation::CausedBy => "CausedBy",
            Relation::DuplicateOf => "DuplicateOf",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    #[default]
    Triggered,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Triggered => "Triggered",
            Phase::Acknowledged => "Acknowledged",
            Phase::Mitigated => "Mitigated",
            Phase::Resolved => "Resolved",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Affected {
    /// Deployments in the Incident's namespace, each by name or by label
    /// selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AFFECTED))]
    pub deployments: Vec<AffectedDeployment>,
    /// StatefulSets in the Incident's namespace, each by name or by label
    /// selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AFFECTED))]
    pub stateful_sets: Vec<AffectedDeployment>,
    /// DaemonSets in the Incident's namespace, each by name or by label
    /// selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_AFFECTED))]
    pub daemon_sets: Vec<AffectedDeployment>,
}

impl Affected {
    /// The entries naming workloads of `kind`.
    pub fn of(&self, kind: WorkloadKind) -> &[AffectedWorkload] {
        match kind {
            WorkloadKind::Deployment => &self.deployments,
            WorkloadKind::StatefulSet => &self.stateful_sets,
            WorkloadKind::DaemonSet => &self.daemon_sets,
        }
    }

    /// Affects `name` of `kind` by name.
    pub fn names(&self, kind: WorkloadKind, name: &str) -> bool {
        self.of(kind)
            .iter()
            .any(|entry| entry.name.as_deref() == Some(name))
    }

    /// An entry naming one workload.
    pub fn one(kind: WorkloadKind, name: &str) -> Affected {
        let entry = vec![AffectedWorkload {
            name: Some(name.to_string()),
            selector: None,
        }];
        let mut affected = Affected::default();
        match kind {
            WorkloadKind::Deployment => affected.deployments = entry,
            WorkloadKind::StatefulSet => affected.stateful_sets = entry,
            WorkloadKind::DaemonSet => affected.daemon_sets = entry,
        }
        affected
    }
}

/// The kinds of workload an incident may affect.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    /// The kind as `kubectl` names it (`statefulset`).
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }

    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind || k.resource() == kind)
    }

    /// How the operator and its records name one workload within its
    /// namespace: a Deployment by its name (as records always have), the
    /// other kinds as `kubectl` would (`statefulset/ledger-db`). Names hold
    /// no `/`, so the key is unambiguous.
    pub fn key(self, name: &str) -> String {
        match self {
            WorkloadKind::Deployment => name.to_string(),
            other => format!("{}/{name}", other.resource()),
        }
    }

    /// The kind and name a [`WorkloadKind::key`] stands for.
    pub fn of_key(key: &str) -> (WorkloadKind, &str) {
        match key.split_once('/') {
            Some((kind, name)) => match WorkloadKind::parse(kind) {
                Some(kind) => (kind, name),
                None => (WorkloadKind::Deployment, key),
            },
            None => (WorkloadKind::Deployment, key),
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of `spec.affected`: one workload by name, or a selector.
pub type AffectedWorkload = AffectedDeployment;

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("has(self.name) != has(self.selector)")
    .message("set exactly one of name or selector"))]
#[serde(rename_all = "camelCase")]
pub struct AffectedDeployment {
    /// The workload's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// A label selector over the namespace's workloads of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new(NOTE_TIME_RULE)
    .message("time must lie between the years 1000 and 9000").field_path(".time"))]
#[serde(rename_all = "camelCase")]
pub struct Note {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PERSON))]
    pub author: Option<String>,
    #[schemars(length(min = 1, max = 2048))]
    pub text: String,
    /// When the note was written; the operator uses the time it first saw
    /// the note when this is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Postmortem {
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: String,
}

/// What the operator knows about the incident. Every list is bounded.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready is always present; others as features name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// One line for humans and the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,

    /// The owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,

    /// The phase, severity and number of notes this status last recorded,
    /// so changes enter the timeline exactly once, across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_notes: Option<i32>,

    /// The policies in effect for this incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReference>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,

    /// The acknowledgement deadline from the policy's ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_by: Option<Time>,
    /// For an incident declared from a signal: since when its workload is
    /// healthy again (policy `autoResolve` resolves it after `healthyFor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
    /// When the deadline passed unacknowledged and the incident escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<Time>,
    /// True while the acknowledgement deadline has passed unacknowledged
    /// (absent otherwise); the `Overdue` printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<bool>,

    /// The few lines a responder needs first: `kubectl describe` prints
    /// fields alphabetically, and this one sorts before the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief: Option<Brief>,

    /// When the enrichment below was last refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enriched_at: Option<Time>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LINKED_DEPLOYMENTS))]
    pub deployments: Vec<DeploymentState>,

    /// The affected StatefulSets, in the Deployment entries' shape and
    /// with their revisions and unbound claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LINKED_DEPLOYMENTS))]
    pub stateful_sets: Vec<StatefulSetState>,

    /// The affected DaemonSets, in the Deployment entries' shape and with
    /// their scheduling and the nodes whose pods fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LINKED_DEPLOYMENTS))]
    pub daemon_sets: Vec<DaemonSetState>,

    /// The nodes that host affected pods and have a problem: not ready,
    /// under pressure, cordoned or tainted NoExecute. Most affected pods
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NODES))]
    pub nodes: Vec<NodeState>,

    /// Alerts grouped into this incident (when Alertmanager declared or
    /// joined it): firing first, then the most recently seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ALERTS))]
    pub alerts: Vec<AlertState>,

    /// On the alert-flood incident of a namespace: the alert groups that
    /// joined it because the namespace already had
    /// `alertLimits.maxOpenIncidents` open incidents from alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<AlertFlood>,

    /// Warning events of the affected workloads, most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EVENTS))]
    pub events: Vec<EventSummary>,

    /// When the Prometheus queries last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_at: Option<Time>,

    /// Results of the policy's Prometheus queries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_METRICS))]
    pub metrics: Vec<MetricValue>,

    /// What happened, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_TIMELINE))]
    pub timeline: Vec<TimelineEntry>,

    /// The number of the latest notifiable transition (the declaration is
    /// 1; each severity change, phase change, escalation and resolution
    /// adds one). Part of every notification's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition: Option<i32>,

    /// One entry per (receiver, transition), oldest first. When the ledger
    /// is full, the oldest Delivered and Failed entries are summarised in
    /// `notificationHistory`; a Pending entry is never dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_NOTIFICATIONS_STORED))]
    pub notifications: Vec<NotificationState>,

    /// Notifications summarised out of the ledger to keep it bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_history: Option<NotificationHistory>,

    /// Findings already recorded in the timeline (a rollout, the first
    /// OOMKill or crash loop of a Deployment, an overdue postmortem or
    /// follow-up), each once, by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FINDINGS), inner(length(max = 600)))]
    pub findings: Vec<String>,

    /// When impact started: the earliest of `spec.impactStartedAt`, the
    /// first grouped alert's `startsAt`, the declaring signal's condition
    /// start, and `declaredAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,

    /// How long each stage took; each is set once its end exists and
    /// never changes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<Durations>,

    /// Rollouts of affected Deployments in the hour before the
    /// declaration, as first seen: what changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ROLLOUTS))]
    pub rollouts: Vec<RolloutRecord>,

    /// What changed in the affected workloads within the event lookback
    /// before the declaration and while the incident was open, most
    /// recent first; kept as first seen (a rollback later does not erase
    /// the rollout it undid), frozen at resolution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CHANGES))]
    pub changes: Vec<Change>,

    /// The worst each affected Deployment got while the incident was open:
    /// what the record says about impact once the enrichment shows health
    /// again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMPACT))]
    pub impact: Vec<WorkloadImpact>,

    /// The last lines failing containers wrote while the incident was
    /// open, the latest read of each container, most recently read first:
    /// evidence that outlives the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LOG_RECORDS))]
    pub logs: Vec<RecordedLog>,

    /// The follow-ups, counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_ups: Option<FollowUpCounts>,

    /// Where the postmortem stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<PostmortemStatus>,

    /// The spec's links, and recurrences the operator found: earlier
    /// incidents of this namespace that affected one of the same
    /// workloads and resolved within 30 days before the declaration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RELATED_STATUS))]
    pub related: Vec<RelatedIncident>,
}

/// Durations such as `4m12s`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// startedAt → declaredAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_detect: Option<String>,
    /// declaredAt → acknowledgedAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_acknowledge: Option<String>,
    /// startedAt → mitigatedAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_mitigate: Option<String>,
    /// startedAt → resolvedAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_resolve: Option<String>,
    /// The rollout that preceded the declaration → resolvedAt (DORA's
    /// failed deployment recovery time), when a rollout preceded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_recover: Option<String>,
}

/// The worst one Deployment got while the incident was open.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadImpact {
    pub name: String,
    /// The fewest ready replicas seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_ready: Option<i32>,
    /// The replicas wanted when that was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The most restarts seen, summed over its pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i32>,
    /// Every failure reason seen, with the most pods that showed it at
    /// once; most common first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMPACT_REASONS))]
    pub reasons: Vec<ReasonCount>,
}

/// One change to an affected workload, or to what its pods use or run on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub time: Time,
    /// `Deployment`, `StatefulSet` or `DaemonSet` (a rollout).
    #[schemars(length(max = 63))]
    pub kind: String,
    #[schemars(length(max = 253))]
    pub name: String,
    /// What changed, e.g. `revision 4: image app shop/web:v1 → shop/web:v2;
    /// env FEATURE_CARDS added`. Variables by name only, never a value.
    #[schemars(length(max = MAX_CHANGE_TEXT))]
    pub change: String,
    /// The revision a rollout rolled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub revision: Option<String>,
    /// The field manager that made it, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub by: Option<String>,
    /// The GitOps revision behind it, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub source: Option<String>,
    /// The change nearest before impact started: the first to suspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<bool>,
}

impl Change {
    /// What changed as `kubectl` names it: a Deployment by its name (as
    /// the workloads list does), anything else as `kind/name`.
    pub fn label(&self) -> String {
        WorkloadKind::parse(&self.kind)
            .map(|k| k.key(&self.name))
            .unwrap_or_else(|| format!("{}/{}", self.kind.to_lowercase(), self.name))
    }
}

/// A rollout of an affected Deployment before the declaration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// The Deployment.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When it started.
    pub at: Time,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMAGES))]
    pub images: Vec<String>,
    /// The images it replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMAGES))]
    pub previous_images: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowUpCounts {
    pub open: i32,
    pub done: i32,
    /// Open past their due day.
    pub overdue: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostmortemStatus {
    /// The ladder requires one for this severity.
    pub required: bool,
    /// When it is due: the resolution plus the ladder's `postmortemWithin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Time>,
    pub state: PostmortemState,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PostmortemState {
    /// Not required, and none linked.
    NotRequired,
    /// Required, not linked yet, not past its due time.
    Pending,
    /// Required, not linked, past its due time.
    Overdue,
    /// `spec.postmortem.url` exists.
    Done,
}

impl PostmortemState {
    pub fn as_str(self) -> &'static str {
        match self {
            PostmortemState::NotRequired => "NotRequired",
            PostmortemState::Pending => "Pending",
            PostmortemState::Overdue => "Overdue",
            PostmortemState::Done => "Done",
        }
    }
}

/// Another incident this one relates to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelatedIncident {
    pub name: String,
    pub relation: Relation,
    /// When the other incident resolved, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// Detected by the operator (a recurrence), not linked by a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detected: bool,
}

/// One alert of the group an incident was declared from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    /// Alertmanager's fingerprint of the alert's labels.
    #[schemars(length(max = 64))]
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(length(max = MAX_ALERT_LABELS))]
    pub labels: std::collections::BTreeMap<String, String>,
    pub state: AlertStatus,
    pub starts_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Time>,
    /// When Alertmanager last sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    /// Where it came from (the alert's generatorURL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub link: Option<String>,
}

/// The alert groups an alert-flood incident holds: every one counted,
/// the first [`MAX_FLOOD_GROUPS`] listed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertFlood {
    /// Alert groups that joined, listed or not.
    pub groups: u32,
    /// Alerts that arrived firing in them.
    pub alerts: u32,
    /// The groups, in the order they joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FLOOD_GROUPS))]
    pub items: Vec<FloodGroup>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FloodGroup {
    /// The group's key (`klaxon.dev/alert-group` of an incident of its own).
    #[schemars(length(max = 64))]
    pub group: String,
    /// The alertname of its first alert.
    #[schemars(length(max = 128))]
    pub alertname: String,
    /// Its alerts firing as of their last batch.
    pub firing: u32,
    pub since: Time,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// What `kubectl describe` shows first (its fields print in this order).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Brief {
    /// What needs a human, from the conditions that report trouble.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(length(max = 300)))]
    pub attention: Vec<String>,
    /// Where the acknowledgement deadline stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub deadline: Option<String>,
    /// The summary line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub summary: Option<String>,
    /// One line per affected workload (the first few).
    #[serde(default, alias = "deployments", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6), inner(length(max = 300)))]
    pub workloads: Vec<String>,
    /// The change nearest before impact started, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub suspect: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationHistory {
    pub delivered: i32,
    pub failed: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReference {
    /// The namespace's ResponsePolicy, when one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_policy: Option<String>,
    /// The ClusterResponsePolicies that form the baseline, in precedence order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_response_policies: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentState {
    pub name: String,
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Status of the Deployment's Available condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// Status of the Deployment's Progressing condition, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressing: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMAGES))]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the last rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_at: Option<Time>,
    /// The images the last rollout replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_IMAGES))]
    pub previous_images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A StatefulSet's state: a Deployment entry's fields, and where its
/// ordered rollout and its storage stand.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetState {
    #[serde(flatten)]
    pub workload: DeploymentState,
    /// The ControllerRevision the pods below the partition run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The ControllerRevision pods are being updated to; it differs from
    /// `currentRevision` while a rollout is under way or stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// The rolling update's partition, when set: ordinals below it keep the
    /// current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The claims of its volume claim templates that are not Bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CLAIMS))]
    pub claims: Vec<ClaimState>,
}

/// A PersistentVolumeClaim that is not Bound.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimState {
    pub name: String,
    /// Pending or Lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The StorageClass it asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// A DaemonSet's state: a Deployment entry's fields (`replicas` is the
/// number of nodes that should run it), and where its pods land.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetState {
    #[serde(flatten)]
    pub workload: DeploymentState,
    /// The nodes that should run a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_number_scheduled: Option<i32>,
    /// Nodes that run a pod but should not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_misscheduled: Option<i32>,
    /// The nodes whose pod is failing or not ready, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FAILING_NODES), inner(length(max = 253)))]
    pub failing_nodes: Vec<String>,
}

/// A node under affected pods, and what is wrong with it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    #[schemars(length(max = 253))]
    pub name: String,
    /// What its conditions say: `NotReady` (Ready is False), `Unknown`
    /// (Ready is Unknown: its kubelet stopped reporting), `MemoryPressure`,
    /// `DiskPressure`, `PIDPressure`, `NetworkUnavailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6), inner(length(max = 32)))]
    pub conditions: Vec<String>,
    /// Cordoned: no new pods are scheduled to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// The keys of its NoExecute taints: pods that do not tolerate them
    /// are evicted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(max = 317)))]
    pub no_execute: Vec<String>,
    /// Since when: the earliest transition of the conditions above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// The Ready condition's message, while it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub message: Option<String>,
    /// How many affected pods run there.
    pub pods: i32,
}

impl IncidentStatus {
    /// Every affected workload's state, to change.
    pub fn workloads_mut(&mut self) -> impl Iterator<Item = &mut DeploymentState> {
        self.deployments
            .iter_mut()
            .chain(self.stateful_sets.iter_mut().map(|s| &mut s.workload))
            .chain(self.daemon_sets.iter_mut().map(|d| &mut d.workload))
    }

    /// Every affected workload's state with its kind: Deployments, then
    /// StatefulSets, then DaemonSets.
    pub fn workloads(&self) -> impl Iterator<Item = (WorkloadKind, &DeploymentState)> {
        self.deployments
            .iter()
            .map(|d| (WorkloadKind::Deployment, d))
            .chain(
                self.stateful_sets
                    .iter()
                    .map(|s| (WorkloadKind::StatefulSet, &s.workload)),
            )
            .chain(
                self.daemon_sets
                    .iter()
                    .map(|d| (WorkloadKind::DaemonSet, &d.workload)),
            )
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsSummary {
    pub total: i32,
    pub ready: i32,
    pub restarts: i32,
    /// Failure reasons with how many pods show each, most common first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_REASONS))]
    pub reasons: Vec<ReasonCount>,
    /// The worst pods first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PODS))]
    pub items: Vec<PodState>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    pub reason: String,
    pub count: i32,
    /// Of `count`, the pods that show the reason only as the last
    /// termination of containers running and ready again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<i32>,
}

impl ReasonCount {
    /// The pods failing with the reason now.
    pub fn failing(&self) -> i32 {
        self.count - self.recovered.unwrap_or(0)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub ready: bool,
    pub restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An excerpt of the last termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last lines its failing container wrote (the worst pods of each
    /// workload only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogExcerpt>,
}

/// A log excerpt in the record, with whose it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedLog {
    /// The workload, as `kubectl` names it (`statefulset/ledger-db`; a
    /// Deployment by its name).
    #[schemars(length(max = 300))]
    pub workload: String,
    #[schemars(length(max = 253))]
    pub pod: String,
    #[serde(flatten)]
    pub log: LogExcerpt,
}

/// The last lines a failing container wrote: those of the instance that
/// crashed when it restarted, else of the one running. Fetched once per
/// restart; secrets in it are redacted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogExcerpt {
    #[schemars(length(max = 253))]
    pub container: String,
    /// The previous instance's (the one that crashed), not the running one's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous: bool,
    /// The container's restart count when it was fetched: which instance
    /// the lines are from.
    #[serde(default)]
    pub restart_count: i32,
    /// Oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LOG_LINES), inner(length(max = MAX_LOG_BYTES)))]
    pub lines: Vec<String>,
    /// The container wrote more than these lines or bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_at: Option<Time>,
    /// Why the lines could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 300))]
    pub error: Option<String>,
}

/// CPU and memory summed over the Deployment's pods. Ratios are fractions
/// of the summed requests and limits, where every container sets them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request_ratio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit_ratio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request_ratio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_ratio: Option<String>,
    /// When the metrics were sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the object the event is about.
    pub object: String,
    pub message: String,
    pub count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricValue {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub query: String,
    /// Why the query gave no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub time: Time,
    /// Declared, PhaseChanged, SeverityChanged, Signal, Note, Rollout,
    /// Notification, Escalated, ...
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationState {
    pub receiver: String,
    pub trigger: String,
    /// What changed, e.g. `SEV2 → SEV1` or `Acknowledged → Mitigated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
    pub state: DeliveryState,
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// When a pending delivery is next attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    /// Sent as the `Idempotency-Key` header with every attempt, so a
    /// receiver can drop a repeat after an operator restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}
