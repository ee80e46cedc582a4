//! `ResponsePolicy` (a team's process, per namespace) and
//! `ClusterResponsePolicy` (the organisation's baseline). Both share one spec
//! shape, [`ResponsePolicySpec`]; the cluster kind adds `namespaceSelector`.

// kube's derive takes repeated `printcolumn(...)` / `validation = ...`
// arguments, which this lint mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{duration::Duration, limits::*};

/// A team's incident process for its namespace: routes, receivers, signals
/// and enrichment, within the bounds of the organisation's baseline.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "klaxon.dev",
    version = "v1alpha1",
    kind = "ResponsePolicy",
    namespaced,
    shortname = "rp",
    category = "klaxon",
    status = "PolicyStatus",
    derive = "PartialEq",
    doc = "A team's incident process for its namespace, within the bounds of the ClusterResponsePolicy baseline.",
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.team.name"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Open", type_ = "integer", json_path = ".status.openIncidents"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = kube::core::Rule::new(
        "!has(self.routes) || self.routes.all(r, r.receivers.all(n, has(self.receivers) && self.receivers.exists(x, x.name == n)))"
    ).message("every receiver a route names must be defined in spec.receivers").field_path(".routes"),
    validation = kube::core::Rule::new(
        "!has(self.escalation) || !has(self.escalation.receivers) || self.escalation.receivers.all(n, has(self.receivers) && self.receivers.exists(x, x.name == n))"
    ).message("every escalation receiver must be defined in spec.receivers").field_path(".escalation")
)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePolicySpec {
    /// The team that owns the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,

    /// The severity ladder, most severe first. In a team policy, each level
    /// must exist in the baseline and may only tighten it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SEVERITIES))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub severities: Vec<SeverityLevel>,

    /// What the operator collects for incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,

    /// Where notifications go. URLs come from Secrets, never from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub receivers: Vec<Receiver>,

    /// Which receivers hear about which incidents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS))]
    pub routes: Vec<Route>,

    /// Who is told when an incident's acknowledgement deadline passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,

    /// Conditions under which the operator declares an incident itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS))]
    pub signals: Vec<Signal>,

    /// Resolve auto-declared incidents once their workload stays healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve: Option<AutoResolve>,

    /// Alerts from Alertmanager (`klaxon run --alerts-address`) that
    /// declare incidents here. A namespace opts in only through these: an
    /// alert naming a namespace whose effective policy has no matching
    /// entry declares nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS))]
    pub alerts: Vec<AlertRule>,

    /// A dead man's switch: an alert that always fires (Alertmanager's
    /// Watchdog); when it stops arriving, the monitoring pipeline is silent
    /// and that is itself an incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,

    /// Bounds on what alerts declare in a namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_limits: Option<AlertLimits>,

    /// How `kubectl incident postmortem` drafts this team's postmortems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<PostmortemSettings>,

    /// Where the operator may connect on this policy's behalf: Prometheus
    /// URLs and every receiver URL. Set by a ClusterResponsePolicy, it
    /// bounds every namespace it selects; a team policy may narrow it,
    /// never widen it (a URL must pass every policy that sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
}

/// `egress: {hosts: ["prometheus.monitoring.svc:9090", "*.slack.com"], cidrs: ["10.20.0.0/16"]}`:
/// a URL is allowed when its host (and port, when the entry has one)
/// matches a host, or every address it resolves to lies in a CIDR.
/// Link-local and cloud metadata addresses are refused unless a CIDR
/// names them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new(
        "!has(self.hosts) || self.hosts.all(h, h.matches('^(\\\\*\\\\.)?[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]{1,5})?$') || h.matches('^\\\\[[0-9a-fA-F:.]+\\\\](:[0-9]{1,5})?$'))"
    ).message("egress.hosts entries are a host name, optionally `*.` for its subdomains, or an IP address ([...] for IPv6), with an optional :port"),
    validation = kube::core::Rule::new("!has(self.cidrs) || self.cidrs.all(c, isCIDR(c))")
        .message("egress.cidrs entries are CIDRs, e.g. 10.20.0.0/16 or fd00::/8")
)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// Hosts, with an optional `:port`; `*.example.com` matches every
    /// subdomain of example.com (not example.com itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS), inner(length(min = 1, max = 253)))]
    pub hosts: Vec<String>,
    /// Address ranges the resolved address may lie in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS), inner(length(min = 1, max = 64)))]
    pub cidrs: Vec<String>,
}

/// `alertLimits: {maxOpenIncidents: 20}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertLimits {
    /// Incidents alerts may have open at once in a namespace (default
    /// 20). Past it, new alert groups join the namespace's one alert-flood
    /// incident instead; nothing is dropped. The lowest any policy of the
    /// namespace sets applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_OPEN_ALERT_INCIDENTS))]
    pub max_open_incidents: Option<u32>,
}

/// `postmortem: {templateConfigMapRef: {name, key}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostmortemSettings {
    /// A ConfigMap in the policy's namespace holding a minijinja template
    /// (Jinja2 syntax) for the draft; the organisation's default applies
    /// without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_config_map_ref: Option<ConfigMapKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Which alerts declare incidents, and how.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.severity) != has(self.severityFrom)")
        .message("set exactly one of severity and severityFrom"),
    validation = kube::core::Rule::new("!has(self.matchers) || self.matchers.all(m, m.matches('^\\\\s*[a-zA-Z_][a-zA-Z0-9_]*\\\\s*(=~|!~|!=|=)'))")
        .message("each matcher is label, operator (=, !=, =~, !~), value, as Alertmanager writes them: alertname=~\"KubePod.*\"")
        .field_path(".matchers")
)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    /// Alertmanager matchers, all of which must hold: `name=value`,
    /// `name!=value`, `name=~regex`, `name!~regex` (values may be quoted;
    /// regexes are anchored, as in Alertmanager). None: every alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS), inner(length(min = 1, max = 512)))]
    pub matchers: Vec<String>,
    /// The incident's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub severity: Option<String>,
    /// The severity from a label of the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_from: Option<SeverityFrom>,
    /// The label naming the namespace (default `namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub namespace_label: Option<String>,
    /// The label naming the affected Deployment (default `deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub deployment_label: Option<String>,
    /// The label naming the affected StatefulSet (default `statefulset`,
    /// as kube-state-metrics writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub stateful_set_label: Option<String>,
    /// The label naming the affected DaemonSet (default `daemonset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub daemon_set_label: Option<String>,
    /// Alerts with the same values of these labels form one incident
    /// (default `[alertname, namespace, deployment]`, with the rule's own
    /// namespace and deployment labels, and its StatefulSet and DaemonSet
    /// labels when the alert has them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(min = 1, max = 128)))]
    pub group_by: Vec<String>,
    /// Resolve the incident once all its alerts resolved and stayed so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_with_alerts: Option<AutoResolve>,
}

/// `severityFrom: {label: severity, map: {critical: SEV1, warning: SEV3}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeverityFrom {
    #[schemars(length(min = 1, max = 128))]
    pub label: String,
    /// Label value → severity; a value not listed is used as the severity
    /// itself (and is refused, like any, if the ladder lacks it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(length(max = 20))]
    pub map: std::collections::BTreeMap<String, String>,
    /// When the alert lacks the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub default: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// The alert that always fires, e.g. `Watchdog` (it labels the
    /// incident, so it must be a label value).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub alertname: String,
    /// How long without it before the silence is an incident.
    pub missing_for: Duration,
    #[schemars(length(min = 1, max = 32))]
    pub severity: String,
}

/// The organisation's baseline for the namespaces its selector picks. Team
/// ResponsePolicies may tighten it but not loosen it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "klaxon.dev",
    version = "v1alpha1",
    kind = "ClusterResponsePolicy",
    shortname = "crp",
    category = "klaxon",
    status = "PolicyStatus",
    derive = "PartialEq",
    doc = "The organisation's incident-response baseline for the namespaces its selector picks.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Open", type_ = "integer", json_path = ".status.openIncidents"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResponsePolicySpec {
    /// The namespaces this baseline governs; absent or `{}` picks all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    #[serde(flatten)]
    pub policy: ResponsePolicySpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// How to reach the team, e.g. a chat channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub contact: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("!has(self.acknowledgeWithin) || duration(self.acknowledgeWithin) >= duration('1m')")
    .message("acknowledgeWithin must be at least 1m: a shorter deadline escalates before anyone can respond").field_path(".acknowledgeWithin"))]
#[serde(rename_all = "camelCase")]
pub struct SeverityLevel {
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    )]
    pub name: String,
    /// How soon an incident of this severity must be acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_within: Option<Duration>,
    /// Incidents of this severity must name a commander.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_commander: Option<bool>,
    /// Resolved incidents of this severity must link a postmortem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_postmortem: Option<bool>,
    /// How soon after resolution a required postmortem is due; past it,
    /// `PostmortemOverdue` is routed once. Teams may only shorten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem_within: Option<Duration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Enrichment {
    /// How far before the declaration Warning events are collected (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_lookback: Option<Duration>,
    /// How many pods each Deployment lists, worst first (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_PODS))]
    pub max_pods: Option<u32>,
    /// How many deduplicated events the incident keeps (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_EVENTS))]
    pub max_events: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
    /// The last lines failing containers wrote. A policy may turn them off
    /// or read less than a baseline allows, never more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logs {
    /// False: read no logs (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Lines kept per container (default and most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_LOG_LINES))]
    pub lines: Option<u32>,
    /// The worst pods of each workload whose logs are read (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_LOG_PODS))]
    pub max_pods: Option<u32>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Prometheus {
    /// The Prometheus server's base URL.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub queries: Vec<Query>,
    /// The label every selector of a team's queries is confined by, with
    /// the incident's namespace as its value (default `namespace`; empty:
    /// queries are sent as written). Only a ClusterResponsePolicy sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = r"^([a-zA-Z_][a-zA-Z0-9_]*)?$"))]
    pub namespace_label: Option<String>,
}

/// An instant PromQL query; `$namespace`, `$deployment` and `$incident`
/// are replaced with escaped values before it runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    #[schemars(length(min = 1, max = MAX_NAME), regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9_:-]*$"))]
    pub name: String,
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.webhook), has(self.slack), has(self.pagerduty), has(self.alertmanager)].filter(k, k).size() == 1")
    .message("a receiver must name exactly one kind: webhook, slack, pagerduty or alertmanager"))]
#[serde(rename_all = "camelCase")]
pub struct Receiver {
    #[schemars(length(min = 1, max = MAX_NAME), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// A generic JSON webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<UrlReceiver>,
    /// A Slack incoming webhook (Block Kit, with a plain-text fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<UrlReceiver>,
    /// PagerDuty's Events API v2: triggered on declaration, acknowledged,
    /// resolved, under one dedup_key (the incident's uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutyReceiver>,
    /// An Alertmanager: the incident is posted as an alert to its
    /// `/api/v2/alerts` (the URL in the Secret is Alertmanager's base URL),
    /// so an existing routing tree can page; resolved with the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<UrlReceiver>,
}

impl Receiver {
    /// The kind, for metrics and messages.
    pub fn kind(&self) -> &'static str {
        match (
            &self.webhook,
            &self.slack,
            &self.pagerduty,
            &self.alertmanager,
        ) {
            (Some(_), _, _, _) => "webhook",
            (_, Some(_), _, _) => "slack",
            (_, _, Some(_), _) => "pagerduty",
            (_, _, _, Some(_)) => "alertmanager",
            _ => "unknown",
        }
    }

    /// The Secret key it needs: the URL, or PagerDuty's routing key.
    pub fn secret_ref(&self) -> Option<&SecretKeyRef> {
        self.webhook
            .as_ref()
            .or(self.slack.as_ref())
            .or(self.alertmanager.as_ref())
            .map(|r| &r.url_secret_ref)
            .or(self.pagerduty.as_ref().map(|p| &p.routing_key_secret_ref))
    }
}

/// The default Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PagerDutyReceiver {
    /// The Secret key holding the integration's routing key.
    pub routing_key_secret_ref: SecretKeyRef,
    /// The Events API endpoint (default
    /// https://events.pagerduty.com/v2/enqueue; EU accounts use
    /// https://events.eu.pagerduty.com/v2/enqueue). It carries no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), regex(pattern = r"^https?://"))]
    pub url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlReceiver {
    /// The Secret key that holds the URL (in the policy's namespace; for a
    /// ClusterResponsePolicy, in the operator's namespace).
    pub url_secret_ref: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    #[schemars(length(min = 1, max = MAX_POLICY_ITEMS), inner(length(min = 1, max = MAX_NAME)))]
    pub receivers: Vec<String>,
    /// Severities this route matches; empty matches all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SEVERITIES), inner(length(min = 1, max = 32)))]
    pub severities: Vec<String>,
    /// Triggers this route matches; empty matches all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub triggers: Vec<Trigger>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum Trigger {
    Declared,
    SeverityChanged,
    PhaseChanged,
    Escalated,
    Resolved,
    /// A required postmortem is past its due time unlinked (once).
    PostmortemOverdue,
    /// A follow-up is past its due day and not done (once per item).
    FollowUpOverdue,
}

impl Trigger {
    pub const ALL: [Trigger; 7] = [
        Trigger::Declared,
        Trigger::SeverityChanged,
        Trigger::PhaseChanged,
        Trigger::Escalated,
        Trigger::Resolved,
        Trigger::PostmortemOverdue,
        Trigger::FollowUpOverdue,
    ];

    /// The name a route and the notification ledger use.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Declared => "Declared",
            Trigger::SeverityChanged => "SeverityChanged",
            Trigger::PhaseChanged => "PhaseChanged",
            Trigger::Escalated => "Escalated",
            Trigger::Resolved => "Resolved",
            Trigger::PostmortemOverdue => "PostmortemOverdue",
            Trigger::FollowUpOverdue => "FollowUpOverdue",
        }
    }

    /// A reminder of what an incident left to do, after it is over: it
    /// goes to chat and webhooks, not to the receivers that page on-call
    /// for the live incident (PagerDuty, Alertmanager).
    pub fn is_reminder(self) -> bool {
        matches!(self, Trigger::PostmortemOverdue | Trigger::FollowUpOverdue)
    }

    /// The trigger a ledger entry names.
    pub fn of(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Escalation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POLICY_ITEMS), inner(length(min = 1, max = MAX_NAME)))]
    pub receivers: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    #[serde(rename = "type")]
    pub type_: SignalType,
    /// How long the condition must hold before an incident is declared.
    #[serde(rename = "for")]
    pub for_: Duration,
    #[schemars(length(min = 1, max = 32))]
    pub severity: String,
    /// Which workloads of the namespace the signal watches, by their
    /// labels; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SignalType {
    /// A Deployment's `Available` condition is False.
    DeploymentUnavailable,
    /// A StatefulSet has fewer ready replicas than it wants.
    StatefulSetUnavailable,
    /// A DaemonSet's pods are not ready on every node that should run one.
    DaemonSetUnavailable,
    /// A pod of any affected kind waits in CrashLoopBackOff.
    CrashLooping,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoResolve {
    pub healthy_for: Duration,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// How many unresolved incidents this policy governs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_incidents: Option<i32>,
}
