//! The effective policy of a namespace: the organisation's baseline
//! (every ClusterResponsePolicy whose `namespaceSelector` picks the
//! namespace) customised by the namespace's ResponsePolicy, within the
//! baseline's bounds. Pure functions; the controllers feed them from their
//! watch caches.
//!
//! Precedence, when several apply:
//! - Baselines combine, strictest wins: the ladder is the union of their
//!   levels (in the order of the first baseline, by name, that lists each);
//!   a level's deadline is the shortest any baseline sets, and a
//!   requirement holds if any baseline sets it. Receivers, routes,
//!   escalation receivers and queries of every baseline all apply.
//!   Enrichment settings come from the first baseline (by name) that sets
//!   each one.
//! - A namespace has at most one ResponsePolicy in effect: the oldest (then
//!   the first by name). Any other is `Ready=False`, reason `Conflict`.
//! - The ResponsePolicy may tighten deadlines, add requirements, receivers,
//!   routes, signals and queries, and change enrichment settings. It may not
//!   loosen a deadline, drop a requirement, or name a severity the baseline
//!   lacks; a policy that does is `Ready=False`, reason `LoosensBaseline`,
//!   with a message naming the field, and is ignored: the baseline alone
//!   applies.
//! - With no baseline, the ResponsePolicy alone applies; with neither, the
//!   default ladder SEV1..SEV4 without deadlines.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::domain::egress::Egress;

use crate::api::policy::{
    ClusterResponsePolicy, Prometheus, Receiver, ResponsePolicy, ResponsePolicySpec, Signal,
    Trigger,
};

/// The ladder used when no policy defines one.
pub const DEFAULT_LADDER: [&str; 4] = ["SEV1", "SEV2", "SEV3", "SEV4"];

/// The namespace label naming the owning team when no policy does.
pub const TEAM_LABEL: &str = "klaxon.dev/team";

/// One level of the effective ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub name: String,
    pub acknowledge_within: Option<Duration>,
    pub require_commander: bool,
    pub require_postmortem: bool,
    /// How soon after resolution a required postmortem is due.
    pub postmortem_within: Option<Duration>,
}

/// Where a receiver's Secret lives and how it is named in statuses.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveReceiver {
    /// `name` for the namespace's own receivers, `<policy>/<name>` for a
    /// baseline's, so two policies never clash.
    pub id: String,
    pub secret_namespace: String,
    pub receiver: Receiver,
    /// Where its URL may lead: the namespace's allow-lists.
    pub egress: Arc<Egress>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveRoute {
    pub receivers: Vec<String>,
    pub severities: Vec<String>,
    pub triggers: Vec<Trigger>,
}

impl EffectiveRoute {
    pub fn matches(&self, severity: &str, trigger: Trigger) -> bool {
        (self.severities.is_empty() || self.severities.iter().any(|s| s == severity))
            && (self.triggers.is_empty() || self.triggers.contains(&trigger))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveQuery {
    pub name: String,
    pub query: String,
    pub url: String,
    pub egress: Arc<Egress>,
    /// The label every selector of the query is confined by (the
    /// namespace's name as its value); `None`: not confined.
    pub namespace_label: Option<String>,
}

/// The label a team's queries are confined by when no baseline renames it.
pub const NAMESPACE_LABEL: &str = "namespace";

/// Enrichment settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub event_lookback: Duration,
    pub max_pods: usize,
    pub max_events: usize,
    pub logs: LogSettings,
}

/// Which container logs enrichment reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub enabled: bool,
    pub lines: usize,
    /// The worst pods of each workload.
    pub max_pods: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lines: crate::api::limits::MAX_LOG_LINES as usize,
            max_pods: 3,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            event_lookback: Duration::from_secs(3600),
            max_pods: 20,
            max_events: 30,
            logs: LogSettings::default(),
        }
    }
}

/// What applies to one namespace.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EffectivePolicy {
    /// The baselines, by name.
    pub cluster_policies: Vec<String>,
    /// The namespace's ResponsePolicy, when it is in effect.
    pub response_policy: Option<String>,
    pub ladder: Vec<Level>,
    pub team: Option<String>,
    pub receivers: Vec<EffectiveReceiver>,
    pub routes: Vec<EffectiveRoute>,
    pub escalation: Vec<String>,
    pub queries: Vec<EffectiveQuery>,
    pub settings: Settings,
    /// Every signal of the team and the baselines.
    pub signals: Vec<Signal>,
    /// How long an auto-declared incident's workload must stay healthy
    /// before it is resolved (the team's, else the first baseline's).
    pub auto_resolve: Option<Duration>,
    /// Alert rules, the team's first, then the baselines'.
    pub alerts: Vec<crate::api::policy::AlertRule>,
    /// The heartbeat: the team's, else the first baseline's.
    pub heartbeat: Option<crate::api::policy::Heartbeat>,
    /// The allow-lists of every policy here that sets `egress`.
    pub egress: Arc<Egress>,
    /// Incidents alerts may keep open here at once: the lowest any policy
    /// sets, else [`MAX_OPEN_ALERT_INCIDENTS`].
    pub max_open_alert_incidents: usize,
}

/// `alertLimits.maxOpenIncidents` when no policy sets it.
pub const MAX_OPEN_ALERT_INCIDENTS: usize = 20;

impl EffectivePolicy {
    pub fn level(&self, severity: &str) -> Option<&Level> {
        self.ladder.iter().find(|l| l.name == severity)
    }

    pub fn ladder_names(&self) -> Vec<&str> {
        self.ladder.iter().map(|l| l.name.as_str()).collect()
    }

    pub fn receiver(&self, id: &str) -> Option<&EffectiveReceiver> {
        self.receivers.iter().find(|r| r.id == id)
    }
}

/// Whether `selector` (absent: everything) picks a namespace with `labels`.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    match selector {
        None => true,
        Some(selector) => match Selector::try_from(selector.clone()) {
            Ok(selector) => selector.matches(labels),
            // An invalid selector picks nothing rather than everything.
            Err(_) => false,
        },
    }
}

/// The baselines for a namespace, sorted by name.
pub fn baselines_for<'a>(
    policies: impl IntoIterator<Item = &'a ClusterResponsePolicy>,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a ClusterResponsePolicy> {
    let mut picked: Vec<&ClusterResponsePolicy> = policies
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| selects(p.spec.namespace_selector.as_ref(), labels))
        .collect();
    picked.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    picked
}

/// The ResponsePolicy in effect among a namespace's (oldest, then by
/// name), and the others.
pub fn primary<'a>(
    policies: impl IntoIterator<Item = &'a ResponsePolicy>,
) -> (Option<&'a ResponsePolicy>, Vec<&'a ResponsePolicy>) {
    let mut all: Vec<&ResponsePolicy> = policies
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    all.sort_by(|a, b| {
        let key = |p: &ResponsePolicy| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut rest = all.into_iter();
    let first = rest.next();
    (first, rest.collect())
}

fn duration_of(level: &crate::api::policy::SeverityLevel) -> Option<Duration> {
    level
        .acknowledge_within
        .as_ref()
        .and_then(|d| d.parse().ok())
}

fn postmortem_within(level: &crate::api::policy::SeverityLevel) -> Option<Duration> {
    level
        .postmortem_within
        .as_ref()
        .and_then(|d| d.parse().ok())
}

/// The stricter of two optional limits: the shorter, or whichever is set.
fn stricter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Level {
    fn of(level: &crate::api::policy::SeverityLevel) -> Level {
        Level {
            name: level.name.clone(),
            acknowledge_within: duration_of(level),
            require_commander: level.require_commander.unwrap_or(false),
            require_postmortem: level.require_postmortem.unwrap_or(false),
            postmortem_within: postmortem_within(level),
        }
    }

    /// Makes this level at least as strict as `other`.
    fn tighten(&mut self, other: &Level) {
        self.acknowledge_within = stricter(self.acknowledge_within, other.acknowledge_within);
        self.postmortem_within = stricter(self.postmortem_within, other.postmortem_within);
        self.require_commander |= other.require_commander;
        self.require_postmortem |= other.require_postmortem;
    }
}

/// The combined ladder of the baselines (strictest wins); `None` when no
/// baseline defines one.
pub fn baseline_ladder(baselines: &[&ClusterResponsePolicy]) -> Option<Vec<Level>> {
    let mut ladder: Vec<Level> = Vec::new();
    for policy in baselines {
        for level in &policy.spec.policy.severities {
            let level = Level::of(level);
            match ladder.iter_mut().find(|l| l.name == level.name) {
                Some(existing) => existing.tighten(&level),
                None => ladder.push(level),
            }
        }
    }
    (!ladder.is_empty()).then_some(ladder)
}

fn default_ladder() -> Vec<Level> {
    DEFAULT_LADDER
        .iter()
        .map(|name| Level {
            name: name.to_string(),
            acknowledge_within: None,
            require_commander: false,
            require_postmortem: false,
            postmortem_within: None,
        })
        .collect()
}

/// How a team policy breaks the baseline's bounds: one message per
/// offending field, naming it. Empty when it stays within them.
pub fn violations(baseline: Option<&[Level]>, team: &ResponsePolicySpec) -> Vec<String> {
    let Some(baseline) = baseline else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let names: Vec<&str> = baseline.iter().map(|l| l.name.as_str()).collect();
    for (i, level) in team.severities.iter().enumerate() {
        let field = format!("spec.severities[{i}]");
        let Some(base) = baseline.iter().find(|l| l.name == level.name) else {
            found.push(format!(
                "{field}.name: severity {} is not on the baseline ladder ({})",
                level.name,
                names.join(", ")
            ));
            continue;
        };
        // A team's deadline may be shorter than the baseline's, not longer.
        let deadlines = [
            (
                "acknowledgeWithin",
                base.acknowledge_within,
                duration_of(level),
                &level.acknowledge_within,
            ),
            (
                "postmortemWithin",
                base.postmortem_within,
                postmortem_within(level),
                &level.postmortem_within,
            ),
        ];
        for (name, limit, within, written) in deadlines {
            if let (Some(limit), Some(within)) = (limit, within)
                && within > limit
            {
                found.push(format!(
                    "{field}.{name}: {} is looser than the baseline's {} for {}",
                    written.as_ref().map(|d| d.as_str()).unwrap_or_default(),
                    humantime(limit),
                    level.name
                ));
            }
        }
        if base.require_commander && level.require_commander == Some(false) {
            found.push(format!(
                "{field}.requireCommander: the baseline requires a commander for {}",
                level.name
            ));
        }
        if base.require_postmortem && level.require_postmortem == Some(false) {
            found.push(format!(
                "{field}.requirePostmortem: the baseline requires a postmortem for {}",
                level.name
            ));
        }
    }
    found
}

/// A duration as the policy language writes it: 5m, 1h30m, 45s.
pub fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        if d.subsec_millis() > 0 && h == 0 && m == 0 && s == 0 {
            return format!("{}ms", d.subsec_millis());
        }
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The ladder after a valid team policy tightened the baseline.
fn tightened(mut ladder: Vec<Level>, team: &ResponsePolicySpec) -> Vec<Level> {
    for level in &team.severities {
        if let Some(base) = ladder.iter_mut().find(|l| l.name == level.name) {
            base.tighten(&Level::of(level));
        }
    }
    ladder
}

fn team_ladder(team: &ResponsePolicySpec) -> Option<Vec<Level>> {
    let ladder: Vec<Level> = team.severities.iter().map(Level::of).collect();
    (!ladder.is_empty()).then_some(ladder)
}

/// The effective policy of `namespace`.
///
/// - `baselines`: from [`baselines_for`];
/// - `team`: the namespace's ResponsePolicy in effect (from [`primary`]),
///   ignored when it breaks the baseline's bounds;
/// - `team_label`: the namespace's `klaxon.dev/team` label;
/// - `operator_namespace`: where baseline receivers keep their Secrets.
pub fn effective(
    namespace: &str,
    baselines: &[&ClusterResponsePolicy],
    team: Option<&ResponsePolicy>,
    team_label: Option<&str>,
    operator_namespace: &str,
) -> EffectivePolicy {
    let base_ladder = baseline_ladder(baselines);
    let team = team.filter(|p| violations(base_ladder.as_deref(), &p.spec).is_empty());
    let ladder = match (base_ladder, team) {
        (Some(ladder), Some(team)) => tightened(ladder, &team.spec),
        (Some(ladder), None) => ladder,
        (None, Some(team)) => team_ladder(&team.spec).unwrap_or_else(default_ladder),
        (None, None) => default_ladder(),
    };

    let mut policy = EffectivePolicy {
        cluster_policies: baselines
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect(),
        response_policy: team.and_then(|p| p.metadata.name.clone()),
        ladder,
        ..Default::default()
    };

    // Sources in precedence order: the team first, then baselines by name.
    let mut sources: Vec<(Option<String>, &ResponsePolicySpec, String)> = Vec::new();
    if let Some(team) = team {
        sources.push((None, &team.spec, namespace.to_string()));
    }
    for base in baselines {
        sources.push((
            base.metadata.name.clone(),
            &base.spec.policy,
            operator_namespace.to_string(),
        ));
    }

    let mut egress = Egress::default();
    for (owner, spec, _) in &sources {
        if let Some(allowed) = &spec.egress {
            let name = match owner {
                Some(owner) => format!("ClusterResponsePolicy {owner}"),
                None => format!(
                    "ResponsePolicy {namespace}/{}",
                    team.and_then(|t| t.metadata.name.as_deref())
                        .unwrap_or_default()
                ),
            };
            egress.add(name, allowed);
        }
    }
    policy.egress = Arc::new(egress);
    // Only the organisation renames the label or turns confinement off.
    let namespace_label = match baselines.iter().find_map(|b| {
        b.spec
            .policy
            .enrichment
            .as_ref()?
            .prometheus
            .as_ref()?
            .namespace_label
            .clone()
    }) {
        Some(label) if label.is_empty() => None,
        Some(label) => Some(label),
        None => Some(NAMESPACE_LABEL.to_string()),
    };

    policy.team = sources
        .iter()
        .find_map(|(_, spec, _)| spec.team.as_ref().map(|t| t.name.clone()))
        .or_else(|| team_label.map(str::to_string));

    for (owner, spec, secret_namespace) in &sources {
        let id = |name: &str| match owner {
            Some(owner) => format!("{owner}/{name}"),
            None => name.to_string(),
        };
        for receiver in &spec.receivers {
            policy.receivers.push(EffectiveReceiver {
                id: id(&receiver.name),
                secret_namespace: secret_namespace.clone(),
                receiver: receiver.clone(),
                egress: policy.egress.clone(),
            });
        }
        for route in &spec.routes {
            policy.routes.push(EffectiveRoute {
                receivers: route.receivers.iter().map(|r| id(r)).collect(),
                severities: route.severities.clone(),
                triggers: route.triggers.clone(),
            });
        }
        if let Some(escalation) = &spec.escalation {
            policy
                .escalation
                .extend(escalation.receivers.iter().map(|r| id(r)));
        }
        policy.signals.extend(spec.signals.iter().cloned());
        policy.alerts.extend(spec.alerts.iter().cloned());
        if policy.heartbeat.is_none() {
            policy.heartbeat = spec.heartbeat.clone();
        }
        if policy.auto_resolve.is_none() {
            policy.auto_resolve = spec
                .auto_resolve
                .as_ref()
                .and_then(|a| a.healthy_for.parse().ok());
        }
        if let Some(Prometheus { url, queries, .. }) =
            spec.enrichment.as_ref().and_then(|e| e.prometheus.as_ref())
        {
            for query in queries {
                if !policy.queries.iter().any(|q| q.name == query.name) {
                    policy.queries.push(EffectiveQuery {
                        name: query.name.clone(),
                        query: query.query.clone(),
                        url: url.clone(),
                        egress: policy.egress.clone(),
                        namespace_label: namespace_label.clone(),
                    });
                }
            }
        }
    }
    policy.escalation.dedup();
    // A flood bound can only be lowered, by any policy of the namespace.
    policy.max_open_alert_incidents = sources
        .iter()
        .filter_map(|(_, spec, _)| spec.alert_limits.as_ref()?.max_open_incidents)
        .map(|n| n as usize)
        .min()
        .unwrap_or(MAX_OPEN_ALERT_INCIDENTS);

    let enrichment = || sources.iter().filter_map(|(_, s, _)| s.enrichment.as_ref());
    let defaults = Settings::default();
    policy.settings = Settings {
        event_lookback: enrichment()
            .find_map(|e| e.event_lookback.as_ref()?.parse().ok())
            .unwrap_or(defaults.event_lookback),
        max_pods: enrichment()
            .find_map(|e| e.max_pods)
            .map(|n| n as usize)
            .unwrap_or(defaults.max_pods),
        max_events: enrichment()
            .find_map(|e| e.max_events)
            .map(|n| n as usize)
            .unwrap_or(defaults.max_events),
        // Logs may hold what an organisation keeps from teams: any policy
        // may read fewer or none, none may read more.
        logs: {
            let logs = || enrichment().filter_map(|e| e.logs.as_ref());
            let least = |field: fn(&crate::api::policy::Logs) -> Option<u32>, default: usize| {
                logs()
                    .filter_map(field)
                    .map(|n| n as usize)
                    .min()
                    .unwrap_or(default)
            };
            LogSettings {
                enabled: logs().all(|l| l.enabled != Some(false)),
                lines: least(|l| l.lines, defaults.logs.lines),
                max_pods: least(|l| l.max_pods, defaults.logs.max_pods),
            }
        },
    };
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{ClusterResponsePolicySpec, SeverityLevel};

    fn level(name: &str, within: Option<&str>, commander: Option<bool>) -> SeverityLevel {
        SeverityLevel {
            name: name.into(),
            acknowledge_within: within.map(Into::into),
            require_commander: commander,
            require_postmortem: None,
            postmortem_within: None,
        }
    }

    fn baseline(name: &str, levels: Vec<SeverityLevel>) -> ClusterResponsePolicy {
        ClusterResponsePolicy::new(
            name,
            ClusterResponsePolicySpec {
                namespace_selector: None,
                policy: ResponsePolicySpec {
                    severities: levels,
                    ..Default::default()
                },
            },
        )
    }

    fn team(levels: Vec<SeverityLevel>) -> ResponsePolicy {
        let mut p = ResponsePolicy::new(
            "payments",
            ResponsePolicySpec {
                severities: levels,
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("shop".into());
        p
    }

    fn org() -> ClusterResponsePolicy {
        baseline(
            "org",
            vec![
                level("SEV1", Some("5m"), Some(true)),
                level("SEV2", Some("15m"), None),
                level("SEV3", None, None),
            ],
        )
    }

    #[test]
    fn a_team_tightens_a_deadline_and_keeps_the_rest_of_the_ladder() {
        let org = org();
        let team = team(vec![level("SEV2", Some("10m"), None)]);
        let p = effective("shop", &[&org], Some(&team), None, "klaxon-system");
        assert_eq!(p.response_policy.as_deref(), Some("payments"));
        assert_eq!(p.ladder_names(), ["SEV1", "SEV2", "SEV3"]);
        assert_eq!(
            p.level("SEV2").and_then(|l| l.acknowledge_within),
            Some(Duration::from_secs(600))
        );
        assert!(p.level("SEV1").is_some_and(|l| l.require_commander));
    }

    #[test]
    fn a_loosening_team_policy_names_each_field_and_is_ignored() {
        let org = org();
        let team = team(vec![
            level("SEV2", Some("1h"), None),
            level("SEV1", None, Some(false)),
            level("SEV0", None, None),
        ]);
        let found = violations(baseline_ladder(&[&org]).as_deref(), &team.spec);
        assert_eq!(
            found,
            [
                "spec.severities[0].acknowledgeWithin: 1h is looser than the baseline's 15m for SEV2",
                "spec.severities[1].requireCommander: the baseline requires a commander for SEV1",
                "spec.severities[2].name: severity SEV0 is not on the baseline ladder (SEV1, SEV2, SEV3)",
            ]
        );
        let p = effective("shop", &[&org], Some(&team), None, "klaxon-system");
        assert_eq!(p.response_policy, None);
        assert_eq!(
            p.level("SEV2").and_then(|l| l.acknowledge_within),
            Some(Duration::from_secs(900))
        );
    }

    #[test]
    fn a_team_may_shorten_the_postmortem_deadline_but_not_lengthen_it() {
        let mut sev1 = level("SEV1", None, None);
        sev1.postmortem_within = Some("72h".into());
        let org = baseline("org", vec![sev1]);
        let mut tighter = level("SEV1", None, None);
        tighter.postmortem_within = Some("24h".into());
        let p = effective("shop", &[&org], Some(&team(vec![tighter])), None, "ns");
        assert_eq!(
            p.level("SEV1").and_then(|l| l.postmortem_within),
            Some(Duration::from_secs(24 * 3600))
        );
        let mut looser = level("SEV1", None, None);
        looser.postmortem_within = Some("168h".into());
        assert_eq!(
            violations(
                baseline_ladder(&[&org]).as_deref(),
                &team(vec![looser]).spec
            ),
            [
                "spec.severities[0].postmortemWithin: 168h is looser than the baseline's 72h for SEV1"
            ]
        );
    }

    #[test]
    fn baselines_combine_strictest_wins() {
        let a = baseline("a", vec![level("SEV1", Some("10m"), None)]);
        let b = baseline(
            "b",
            vec![
                level("SEV1", Some("5m"), Some(true)),
                level("SEV2", None, None),
            ],
        );
        let p = effective("shop", &[&a, &b], None, None, "klaxon-system");
        assert_eq!(p.cluster_policies, ["a", "b"]);
        assert_eq!(p.ladder_names(), ["SEV1", "SEV2"]);
        let sev1 = p.level("SEV1").expect("SEV1");
        assert_eq!(sev1.acknowledge_within, Some(Duration::from_secs(300)));
        assert!(sev1.require_commander);
    }

    #[test]
    fn without_policies_the_default_ladder_and_the_namespace_label_apply() {
        let p = effective("shop", &[], None, Some("payments"), "klaxon-system");
        assert_eq!(p.ladder_names(), DEFAULT_LADDER);
        assert_eq!(p.team.as_deref(), Some("payments"));
        assert_eq!(p.settings, Settings::default());
    }

    #[test]
    fn receivers_keep_their_source_and_secret_namespace() {
        let mut org = org();
        org.spec.policy.receivers = vec![Receiver {
            name: "pager".into(),
            ..Default::default()
        }];
        org.spec.policy.escalation = Some(crate::api::policy::Escalation {
            receivers: vec!["pager".into()],
        });
        let mut team = team(vec![]);
        team.spec.receivers = vec![Receiver {
            name: "pager".into(),
            ..Default::default()
        }];
        let p = effective("shop", &[&org], Some(&team), None, "klaxon-system");
        let ids: Vec<(&str, &str)> = p
            .receivers
            .iter()
            .map(|r| (r.id.as_str(), r.secret_namespace.as_str()))
            .collect();
        assert_eq!(ids, [("pager", "shop"), ("org/pager", "klaxon-system")]);
        assert_eq!(p.escalation, ["org/pager"]);
    }

    #[test]
    fn the_oldest_response_policy_is_in_effect() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let mut old = team(vec![]);
        old.metadata.name = Some("z-old".into());
        old.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        let mut new = team(vec![]);
        new.metadata.name = Some("a-new".into());
        new.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
        let (first, rest) = primary([&new, &old]);
        assert_eq!(
            first.and_then(|p| p.metadata.name.as_deref()),
            Some("z-old")
        );
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn enrichment_settings_come_from_the_team_then_the_first_baseline() {
        use crate::api::policy::Enrichment;
        let mut a = baseline("a", vec![]);
        a.spec.policy.enrichment = Some(Enrichment {
            max_pods: Some(5),
            max_events: Some(7),
            ..Default::default()
        });
        let mut b = baseline("b", vec![]);
        b.spec.policy.enrichment = Some(Enrichment {
            max_pods: Some(9),
            event_lookback: Some("2h".into()),
            ..Default::default()
        });
        let mut team = team(vec![]);
        team.spec.enrichment = Some(Enrichment {
            max_events: Some(3),
            ..Default::default()
        });
        let p = effective("shop", &[&a, &b], Some(&team), None, "klaxon-system");
        assert_eq!(
            p.settings,
            Settings {
                event_lookback: Duration::from_secs(7200),
                max_pods: 5,
                max_events: 3,
                logs: LogSettings::default(),
            }
        );
    }

    #[test]
    fn a_policy_may_read_fewer_logs_than_a_baseline_never_more() {
        use crate::api::policy::{Enrichment, Logs};
        let with = |logs: Logs| Enrichment {
            logs: Some(logs),
            ..Default::default()
        };
        let mut org = baseline("org", vec![]);
        org.spec.policy.enrichment = Some(with(Logs {
            lines: Some(10),
            ..Default::default()
        }));
        let mut team = team(vec![]);
        team.spec.enrichment = Some(with(Logs {
            lines: Some(20),
            max_pods: Some(1),
            ..Default::default()
        }));
        let p = effective("shop", &[&org], Some(&team), None, "klaxon-system");
        assert_eq!(
            p.settings.logs,
            LogSettings {
                enabled: true,
                lines: 10,
                max_pods: 1
            }
        );
        org.spec.policy.enrichment = Some(with(Logs {
            enabled: Some(false),
            ..Default::default()
        }));
        team.spec.enrichment = Some(with(Logs {
            enabled: Some(true),
            ..Default::default()
        }));
        let p = effective("shop", &[&org], Some(&team), None, "klaxon-system");
        assert!(!p.settings.logs.enabled, "the organisation turned them off");
    }

    #[test]
    fn durations_print_as_policies_write_them() {
        assert_eq!(humantime(Duration::from_secs(900)), "15m");
        assert_eq!(humantime(Duration::from_secs(5400)), "1h30m");
        assert_eq!(humantime(Duration::from_secs(3)), "3s");
    }
}
