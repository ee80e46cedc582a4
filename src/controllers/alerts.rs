//! Alertmanager's alerts in: each accepted batch declares or joins
//! incidents, and is answered only once that is recorded, so Alertmanager's
//! retry is the delivery guarantee.
//!
//! - An alert goes to the namespace its own label names (the rule's
//!   `namespaceLabel`), never one the request names, and only when that
//!   namespace's effective policy has a rule that takes it.
//! - Alerts of one group (`groupBy`) share one incident while it is open.
//!   Its name is derived from the group and its first alert's start, so a
//!   retry, a restart or a second replica finds the same incident instead
//!   of declaring another.
//! - The incident's `status.alerts` and timeline are written with the
//!   resourceVersion they were read at; a conflict reads again.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tracing::{info, warn};

use crate::{
    api::{Incident, IncidentSpec, Phase, incident::Affected},
    cluster::cache::Caches,
    domain::{
        alerts::{self, Alert, GROUP_LABEL, Payload, RESOLVE_ANNOTATION, Routed},
        enrich::truncate,
        incident::timeline::{Kind, Reports},
        signals::MESSAGE_ANNOTATION,
    },
    integrations::secrets::{SecretError, Secrets},
    metrics::{AlertLabels, Metrics},
};

use crate::{
    cluster::shards::Shards,
    domain::{alerts::HEARTBEAT_LABEL, incident::record::STARTED_AT_ANNOTATION},
};

/// Timeline entries one batch adds each way before it is summed up in one.
const MAX_ENTRIES_PER_BATCH: usize = 5;

/// Writes of one incident's alerts retried on a conflict.
const ATTEMPTS: usize = 8;

/// How often silent heartbeats are looked for.
pub const HEARTBEAT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// When each heartbeat alert last arrived firing, by alertname, at any
/// replica (see [`Shards::arrived`]). Kept in memory: a new leader counts
/// silence from its own start, so a failover never declares at once.
#[derive(Clone)]
pub struct Heartbeats {
    started: Timestamp,
    shards: Shards,
}

impl Heartbeats {
    pub fn new(shards: Shards) -> Self {
        Self {
            started: Timestamp::now(),
            shards,
        }
    }

    fn arrived(&self, alertname: &str, at: Timestamp) {
        self.shards.arrived(alertname, at);
    }

    /// When `alertname` last arrived firing, since this operator started.
    pub fn last_arrival(&self, alertname: &str) -> Option<Timestamp> {
        self.shards.last_arrival(alertname)
    }
}

#[derive(Clone)]
pub struct Intake {
    pub client: Client,
    pub caches: Caches,
    pub secrets: Secrets,
    pub metrics: Metrics,
    /// The operator's namespace: where the token Secret lives.
    pub namespace: String,
    /// The token Secret's name (key `token`).
    pub token_secret: String,
    pub heartbeats: Heartbeats,
    pub groups: Groups,
}

/// The lock key under which a namespace's declarations are made one at a
/// time (group keys are 16 hex digits: no clash).
const DECLARING: &str = "declaring";

/// Prefixes an incident's name as the lock key its alerts are recorded
/// under.
const RECORDING: &str = "recording/";

/// How long a declaration is remembered for the cache to catch up.
const DECLARED_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// `(namespace, group key)`.
type GroupId = (String, String);
type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

/// Per-group serialization and recent declarations.
#[derive(Clone, Default)]
pub struct Groups {
    locks: Shared<BTreeMap<GroupId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    declared: Shared<BTreeMap<GroupId, (String, std::time::Instant)>>,
}

/// A group of a batch, with its alerts.
type Member<'a> = (Routed, Vec<&'a Alert>);

/// The incident a group's batch goes to.
#[derive(Debug)]
struct Target {
    name: String,
    /// Declared by this batch.
    created: bool,
    /// The namespace's alert-flood incident.
    flood: bool,
}

/// What a batch did.
#[derive(Debug, Default, serde::Serialize, PartialEq)]
pub struct Outcome {
    pub declared: Vec<String>,
    pub updated: Vec<String>,
    /// Alerts no policy took.
    pub unmatched: usize,
    /// Heartbeat alerts that arrived firing.
    pub heartbeats: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The API refused the write as invalid (400, 422): a retry would be
    /// refused too.
    #[error("the API refused incident {namespace}/{name}: {reason}")]
    Refused {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("the token Secret cannot be read: {0}")]
    Token(SecretError),
    #[error("cannot record the alerts of incident {namespace}/{name}: {reason}")]
    Write {
        namespace: String,
        name: String,
        reason: String,
    },
}

impl Intake {
    /// The bearer token Alertmanager must send.
    pub async fn token(&self) -> Result<Vec<u8>, IntakeError> {
        self.secrets
            .value(&self.namespace, &self.token_secret, "token")
            .await
            .map(|t| trim(&t).to_vec())
            .map_err(IntakeError::Token)
    }

    /// The token just failed to match: read the Secret again soon, in case
    /// it was rotated.
    pub fn suspect_token(&self) {
        self.secrets.suspect(&self.namespace, &self.token_secret);
    }

    pub async fn accept(&self, payload: Payload) -> Result<Outcome, IntakeError> {
        let now = Timestamp::now();
        let labels = self.namespace_labels();
        let heartbeats = self.caches.heartbeat_names();
        let mut groups: BTreeMap<(String, String), (Routed, Vec<&Alert>)> = BTreeMap::new();
        let mut outcome = Outcome::default();
        for alert in &payload.alerts {
            // Klaxon's own incidents, posted back by an alertmanager
            // receiver and routed here again: never an incident of their own.
            if alert.name() == crate::integrations::notify::OWN_ALERTNAME {
                self.count("own");
                continue;
            }
            if heartbeats.contains(alert.name()) {
                // A heartbeat is only ever a sign of life, never an incident.
                if alert.firing() {
                    self.heartbeats.arrived(alert.name(), now);
                    outcome.heartbeats += 1;
                    self.count("heartbeat");
                }
                continue;
            }
            match self.route(alert, &labels) {
                Some(routed) => {
                    groups
                        .entry((routed.namespace.clone(), routed.group_key.clone()))
                        .or_insert_with(|| (routed, Vec::new()))
                        .1
                        .push(alert);
                }
                None => {
                    outcome.unmatched += 1;
                    self.count("unmatched");
                    info!(
                        alert = %alerts::describe(alert),
                        "no policy takes this alert: no namespace it names opts in"
                    );
                }
            }
        }
        // Every group is tried; a passing failure of one fails the batch
        // (Alertmanager retries it) only after the others are recorded.
        let mut failed = None;
        // Each group's incident first (holding the groups' locks, taken in
        // one order by every batch), then one write per incident with all
        // of its groups: a batch of a thousand groups past the flood bound
        // makes one write, not a thousand.
        let mut held = Vec::new();
        let mut targets: BTreeMap<(String, String), (Target, Vec<Member>)> = BTreeMap::new();
        for (_, (routed, group)) in groups {
            held.push(
                self.group_lock(&routed.namespace, &routed.group_key)
                    .lock_owned()
                    .await,
            );
            match self.incident_for(&routed, &group).await {
                // Only resolved alerts of a group with no open incident.
                Ok(None) => {}
                Ok(Some(target)) => {
                    let members = &mut targets
                        .entry((routed.namespace.clone(), target.name.clone()))
                        .or_insert_with(|| (target, Vec::new()))
                        .1;
                    members.push((routed, group));
                }
                Err(error) => failed = self.refused_or(error).or(failed),
            }
        }
        for ((namespace, name), (target, members)) in targets {
            let alerts: usize = members.iter().map(|(_, group)| group.len()).sum();
            match self.record(&namespace, &target, &members, now).await {
                Ok(()) => {
                    self.count_by(if target.flood { "flooded" } else { "accepted" }, alerts);
                    let entry = format!("{namespace}/{name}");
                    if target.created {
                        outcome.declared.push(entry);
                    } else {
                        outcome.updated.push(entry);
                    }
                }
                Err(error) => failed = self.refused_or(error).or(failed),
            }
        }
        drop(held);
        match failed {
            Some(error) => Err(error),
            None => Ok(outcome),
        }
    }

    /// An error that fails the batch (Alertmanager retries it), or `None`
    /// when the API refused the write as invalid: a retry would be refused
    /// too, so it is counted and logged instead.
    fn refused_or(&self, error: IntakeError) -> Option<IntakeError> {
        match error {
            IntakeError::Refused {
                namespace,
                name,
                reason,
            } => {
                self.count("refused");
                warn!(%namespace, %name, %reason, "the API refused an alert's incident; not retried");
                None
            }
            error => Some(error),
        }
    }

    /// One batch at a time per group: two batches of one group never both
    /// see no incident and declare two.
    /// (Also, under the key [`DECLARING`], one declaration at a time per
    /// namespace, so concurrent batches never overshoot its bound.)
    fn group_lock(&self, namespace: &str, key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.groups.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
        locks
            .entry((namespace.to_string(), key.to_string()))
            .or_default()
            .clone()
    }

    /// Remembers a declaration until the incident cache has caught up.
    fn remember(&self, namespace: &str, key: &str, name: &str) {
        let mut declared = self
            .groups
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        declared.retain(|_, (_, at)| at.elapsed() < DECLARED_MEMORY);
        declared.insert(
            (namespace.to_string(), key.to_string()),
            (name.to_string(), std::time::Instant::now()),
        );
    }

    /// The incident of group `key` declared moments ago, which the cache
    /// may not show yet.
    fn recently_declared(&self, namespace: &str, key: &str) -> Option<String> {
        let declared = self
            .groups
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        declared
            .get(&(namespace.to_string(), key.to_string()))
            .filter(|(_, at)| at.elapsed() < DECLARED_MEMORY)
            .map(|(name, _)| name.clone())
    }

    /// The incidents alerts have open in `namespace` (the flood incident
    /// aside), counting those declared moments ago the cache may not show.
    fn open_from_alerts(&self, namespace: &str) -> usize {
        let from_alerts = |i: &Incident| {
            i.metadata.labels.as_ref().is_some_and(|l| {
                l.contains_key(GROUP_LABEL) && !l.contains_key(alerts::FLOOD_LABEL)
            })
        };
        let cached = self.caches.incidents_in(namespace);
        let known: BTreeSet<&str> = cached
            .iter()
            .filter_map(|i| i.metadata.name.as_deref())
            .collect();
        let open = cached
            .iter()
            .filter(|i| i.spec.phase != Phase::Resolved && from_alerts(i))
            .count();
        let declared = self
            .groups
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Declared moments ago and not in the cache yet (once it is, the
        // cache says whether it is still open).
        let unseen = declared
            .iter()
            .filter(|((ns, key), (name, at))| {
                ns == namespace
                    && key != alerts::FLOOD_GROUP
                    && at.elapsed() < DECLARED_MEMORY
                    && !known.contains(name.as_str())
            })
            .count();
        open + unseen
    }

    /// The namespace's open flood incident, if any.
    async fn open_flood(&self, namespace: &str) -> Result<Option<Incident>, IntakeError> {
        let cached = self
            .caches
            .incidents_in(namespace)
            .into_iter()
            .filter(|i| i.spec.phase != Phase::Resolved)
            .find(|i| {
                i.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(alerts::FLOOD_LABEL))
            });
        if let Some(open) = cached {
            return Ok(Some(open.as_ref().clone()));
        }
        let Some(name) = self.recently_declared(namespace, alerts::FLOOD_GROUP) else {
            return Ok(None);
        };
        let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
        let found = api.get_opt(&name).await.map_err(|e| IntakeError::Write {
            namespace: namespace.to_string(),
            name: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(found.filter(|i| i.spec.phase != Phase::Resolved))
    }

    /// The flood incident a group joins: the open one, else one declared
    /// now.
    async fn flood_for(
        &self,
        routed: &Routed,
        first: &Alert,
        limit: usize,
    ) -> Result<Target, IntakeError> {
        if let Some(open) = self.open_flood(&routed.namespace).await? {
            return Ok(Target {
                name: open.metadata.name.clone().unwrap_or_default(),
                created: false,
                flood: true,
            });
        }
        let name = alerts::flood_name(Timestamp::now());
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &routed.namespace);
        let mut incident = declaration(&name, routed, first);
        let labels = incident.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(GROUP_LABEL.to_string(), alerts::FLOOD_GROUP.to_string());
        labels.insert(alerts::FLOOD_LABEL.to_string(), "true".to_string());
        incident.spec.title = format!(
            "Alert flood in {}: more than {limit} alert groups at once",
            routed.namespace
        );
        incident.spec.summary = Some(format!(
            "{} incidents from alerts were already open (alertLimits.maxOpenIncidents); further alert groups join this incident, listed in status.flood.",
            limit
        ));
        incident.spec.affected = None;
        match api.create(&PostParams::default(), &incident).await {
            Ok(_) => {
                warn!(namespace = %routed.namespace, %name, limit, "alert flood: further alert groups join one incident");
                Ok(Target {
                    name,
                    created: true,
                    flood: true,
                })
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Target {
                name,
                created: false,
                flood: true,
            }),
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => {
                Err(IntakeError::Refused {
                    namespace: routed.namespace.clone(),
                    name,
                    reason: status.message,
                })
            }
            Err(error) => Err(IntakeError::Write {
                namespace: routed.namespace.clone(),
                name,
                reason: error.to_string(),
            }),
        }
    }

    fn count_by(&self, outcome: &'static str, alerts: usize) {
        self.metrics
            .alerts
            .get_or_create(&AlertLabels { outcome })
            .inc_by(u64::try_from(alerts).unwrap_or(u64::MAX));
    }

    fn count(&self, outcome: &'static str) {
        self.count_by(outcome, 1);
    }

    /// The labels that may name an alert's namespace: `namespace` and
    /// every `namespaceLabel` a policy uses. Bounded by the policies, not
    /// the cluster.
    fn namespace_labels(&self) -> BTreeSet<String> {
        let mut labels = BTreeSet::from([alerts::DEFAULT_NAMESPACE_LABEL.to_string()]);
        for rule in self.caches.alert_rules() {
            labels.insert(rule.namespace_label().to_string());
        }
        labels
    }

    fn route(&self, alert: &Alert, labels: &BTreeSet<String>) -> Option<Routed> {
        labels.iter().find_map(|label| {
            let namespace = alert.labels.get(label)?;
            if !self.caches.namespace_exists(namespace) {
                return None;
            }
            let policy = self.caches.effective_policy(namespace, &self.namespace);
            alerts::route(alert, namespace, label, &policy.alerts)
        })
    }

    /// The incident the group belongs to: the open one of its group, else
    /// the one named for its first firing alert, declared now if it does
    /// not exist. `None` when nothing fires and nothing is open.
    async fn incident_for(
        &self,
        routed: &Routed,
        group: &[&Alert],
    ) -> Result<Option<Target>, IntakeError> {
        let own = |name: String, created: bool| Target {
            name,
            created,
            flood: false,
        };
        let open = self
            .caches
            .incidents_in(&routed.namespace)
            .into_iter()
            .filter(|i| i.spec.phase != Phase::Resolved)
            .find(|i| {
                i.metadata.labels.as_ref().and_then(|l| l.get(GROUP_LABEL))
                    == Some(&routed.group_key)
            });
        if let Some(open) = open {
            return Ok(open.metadata.name.clone().map(|n| own(n, false)));
        }
        // A group that joined the flood stays with it while it is open.
        if let Some(flood) = self.open_flood(&routed.namespace).await?
            && flood
                .status
                .as_ref()
                .and_then(|s| s.flood.as_ref())
                .is_some_and(|f| f.items.iter().any(|i| i.group == routed.group_key))
        {
            return Ok(Some(Target {
                name: flood.metadata.name.clone().unwrap_or_default(),
                created: false,
                flood: true,
            }));
        }
        let api: Api<Incident> = Api::namespaced(self.client.clone(), &routed.namespace);
        let read = |name: String| {
            let api = api.clone();
            async move {
                api.get_opt(&name).await.map_err(|e| IntakeError::Write {
                    namespace: routed.namespace.clone(),
                    name: name.clone(),
                    reason: e.to_string(),
                })
            }
        };
        // Declared moments ago, not in the cache yet.
        if let Some(name) = self.recently_declared(&routed.namespace, &routed.group_key)
            && read(name.clone())
                .await?
                .is_some_and(|i| i.spec.phase != Phase::Resolved)
        {
            return Ok(Some(own(name, false)));
        }
        // Alerts a resolved incident of the group already holds belong to
        // it: the first firing alert it does not hold names the new one.
        let mut settled: Vec<String> = Vec::new();
        let (name, first) = loop {
            let Some(first) = group
                .iter()
                .filter(|a| a.firing() && !settled.contains(&a.id()))
                .min_by_key(|a| (a.starts_at, a.id()))
            else {
                return Ok(None);
            };
            let name = alerts::incident_name(first.name(), &routed.group_key, first.starts_at);
            match read(name.clone()).await? {
                None => break (name, *first),
                Some(existing) if existing.spec.phase != Phase::Resolved => {
                    return Ok(Some(own(name, false)));
                }
                Some(resolved) => {
                    let held = resolved.status.map(|s| s.alerts).unwrap_or_default();
                    let before = settled.len();
                    settled.extend(
                        group
                            .iter()
                            .map(|a| a.id())
                            .filter(|id| held.iter().any(|h| &h.fingerprint == id)),
                    );
                    settled.push(first.id());
                    settled.dedup();
                    if settled.len() == before {
                        return Ok(None);
                    }
                }
            }
        };
        // One declaration at a time in a namespace; past its bound, a new
        // group joins the flood.
        let declaring = self.group_lock(&routed.namespace, DECLARING);
        let _one_declaration = declaring.lock().await;
        let limit = self
            .caches
            .effective_policy(&routed.namespace, &self.namespace)
            .max_open_alert_incidents;
        if self.open_from_alerts(&routed.namespace) >= limit {
            let target = self.flood_for(routed, first, limit).await?;
            if target.created {
                self.remember(&routed.namespace, alerts::FLOOD_GROUP, &target.name);
            }
            return Ok(Some(target));
        }
        let failed = |reason: String| IntakeError::Write {
            namespace: routed.namespace.clone(),
            name: name.clone(),
            reason,
        };
        let incident = declaration(&name, routed, first);
        match api.create(&PostParams::default(), &incident).await {
            Ok(_) => {
                info!(namespace = %routed.namespace, %name, alert = %alerts::describe(first), "declared from an alert");
                self.remember(&routed.namespace, &routed.group_key, &name);
                Ok(Some(own(name, true)))
            }
            // Another replica, or an earlier try of this batch, won.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Some(own(name, false))),
            // The API refused it (a severity off the ladder, say): a retry
            // would be refused too. Counted and logged, not retried.
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => {
                Err(IntakeError::Refused {
                    namespace: routed.namespace.clone(),
                    name: name.clone(),
                    reason: status.message,
                })
            }
            Err(error) => Err(failed(error.to_string())),
        }
    }

    /// Records the group's alerts in the incident's status, with timeline
    /// entries for those that joined or resolved.
    async fn record(
        &self,
        namespace: &str,
        target: &Target,
        members: &[Member<'_>],
        now: Timestamp,
    ) -> Result<(), IntakeError> {
        let name = target.name.as_str();
        // Batches of different groups meet at a flood incident: they write
        // it one at a time rather than racing each other to a conflict.
        let writing = self.group_lock(namespace, &format!("{RECORDING}{name}"));
        let _one_writer = writing.lock().await;
        let group: Vec<&Alert> = members
            .iter()
            .flat_map(|(_, g)| g.iter().copied())
            .collect();
        let api: Api<Incident> = Api::namespaced(self.client.clone(), namespace);
        let failed = |reason: String| IntakeError::Write {
            namespace: namespace.to_string(),
            name: name.to_string(),
            reason,
        };
        for _ in 0..ATTEMPTS {
            let incident = api.get(name).await.map_err(|e| failed(e.to_string()))?;
            let status = incident.status.clone().unwrap_or_default();
            let merged = alerts::merge(&status.alerts, &group, now);
            let mut timeline = status.timeline.clone();
            let mut reports = Reports::default();
            let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
            // A batch of many alerts is one entry each way, so it cannot
            // push the rest of the story out of the bounded timeline.
            for (kind, lines, what) in [
                (Kind::AlertFiring, &merged.joined, "firing"),
                (Kind::AlertResolved, &merged.resolved, "resolved"),
            ] {
                if lines.len() > MAX_ENTRIES_PER_BATCH {
                    let first: Vec<&str> = lines.iter().take(3).map(String::as_str).collect();
                    let line = format!("{} alerts {what}: {}, ...", lines.len(), first.join("; "));
                    reports.add(&mut timeline, at.clone(), kind, truncate(&line, 500));
                } else {
                    for line in lines {
                        reports.add(&mut timeline, at.clone(), kind, line.clone());
                    }
                }
            }
            let mut flood = status.flood.clone();
            if target.flood {
                for (routed, alerts) in members {
                    flood = Some(alerts::flood_merge(
                        flood.as_ref(),
                        &routed.group_key,
                        alerts,
                        now,
                    ));
                }
            }
            if merged.alerts == status.alerts
                && timeline == status.timeline
                && flood == status.flood
            {
                return Ok(());
            }
            let body = json!({
                "metadata": {"resourceVersion": incident.metadata.resource_version},
                "status": {"alerts": merged.alerts, "timeline": timeline, "flood": flood},
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(kube::Error::Api(status)) if matches!(status.code, 400 | 422) => {
                    return Err(IntakeError::Refused {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        reason: status.message,
                    });
                }
                Err(error) => return Err(failed(error.to_string())),
            }
        }
        warn!(%namespace, %name, "the incident kept changing while its alerts were recorded");
        Err(failed("it kept changing; Alertmanager will retry".into()))
    }
}

/// The incident a group's first alert declares.
fn declaration(name: &str, routed: &Routed, first: &Alert) -> Incident {
    let alertname = first.name();
    let title = match first.annotations.get("summary") {
        Some(summary) => format!("{alertname}: {summary}"),
        None => match &routed.workload {
            Some((kind, name)) => format!("{alertname} on {}", kind.key(name)),
            None => alertname.to_string(),
        },
    };
    let mut labels = BTreeMap::from([(GROUP_LABEL.to_string(), routed.group_key.clone())]);
    labels.insert(
        "klaxon.dev/declared-by".to_string(),
        "alertmanager".to_string(),
    );
    let mut annotations = BTreeMap::from([
        (
            MESSAGE_ANNOTATION.to_string(),
            format!("alert {}", alerts::describe(first)),
        ),
        (
            STARTED_AT_ANNOTATION.to_string(),
            first.starts_at.to_string(),
        ),
    ]);
    if let Some(after) = &routed.resolve_after {
        annotations.insert(RESOLVE_ANNOTATION.to_string(), after.clone());
    }
    Incident {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(routed.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: IncidentSpec {
            title: truncate(&title, 200),
            severity: routed.severity.clone(),
            phase: Phase::Triggered,
            summary: first
                .annotations
                .get("description")
                .map(|d| truncate(d, 4096)),
            commander: None,
            responders: vec![],
            affected: routed
                .workload
                .as_ref()
                .map(|(kind, name)| Affected::one(*kind, name)),
            notes: vec![],
            postmortem: None,
            ..Default::default()
        },
        status: None,
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Declares an incident when a policy's heartbeat has been silent for its
/// `missingFor`, and resolves it when the heartbeat is back. A team
/// policy's goes in its namespace, a baseline's in the operator's.
pub async fn watch_heartbeats(
    intake: Intake,
    shards: crate::cluster::shards::Shards,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_CHECK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let heartbeats = intake.caches.heartbeats(&intake.namespace);
        for (namespace, heartbeat) in heartbeats.into_iter().filter(|(ns, _)| shards.owns(ns)) {
            if let Err(error) = check_heartbeat(&intake, &namespace, &heartbeat).await {
                warn!(%namespace, alertname = %heartbeat.alertname, %error, "cannot act on a heartbeat");
            }
        }
    }
}

async fn check_heartbeat(
    intake: &Intake,
    namespace: &str,
    heartbeat: &crate::api::policy::Heartbeat,
) -> Result<(), kube::Error> {
    let Ok(missing_for) = heartbeat.missing_for.parse() else {
        return Ok(());
    };
    let now = Timestamp::now();
    let arrived = intake.heartbeats.last_arrival(&heartbeat.alertname);
    let since = arrived.unwrap_or(intake.heartbeats.started);
    let open = intake.caches.incidents_in(namespace).into_iter().find(|i| {
        i.spec.phase != Phase::Resolved
            && i.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HEARTBEAT_LABEL))
                == Some(&heartbeat.alertname)
    });
    let api: Api<Incident> = Api::namespaced(intake.client.clone(), namespace);
    let declared = open
        .as_ref()
        .map(|o| o.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0));
    match alerts::heartbeat_action(
        intake.heartbeats.started,
        arrived,
        missing_for,
        declared,
        now,
    ) {
        alerts::HeartbeatAction::Declare => {
            let name = alerts::silence_name(&heartbeat.alertname, since);
            let message = format!(
                "The heartbeat alert {} has not arrived since {since} ({} or longer): the monitoring pipeline (Prometheus, Alertmanager, or the way to Klaxon) is silent, so other alerts may be lost too.",
                heartbeat.alertname,
                crate::domain::policy::humantime(missing_for)
            );
            let incident = Incident {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_string()),
                    labels: Some(BTreeMap::from([(
                        HEARTBEAT_LABEL.to_string(),
                        heartbeat.alertname.clone(),
                    )])),
                    annotations: Some(BTreeMap::from([
                        (MESSAGE_ANNOTATION.to_string(), message.clone()),
                        (STARTED_AT_ANNOTATION.to_string(), since.to_string()),
                    ])),
                    ..Default::default()
                },
                spec: IncidentSpec {
                    title: truncate(
                        &format!("Monitoring is silent: no {} heartbeat", heartbeat.alertname),
                        200,
                    ),
                    severity: heartbeat.severity.clone(),
                    phase: Phase::Triggered,
                    summary: Some(message),
                    commander: None,
                    responders: vec![],
                    affected: None,
                    notes: vec![],
                    postmortem: None,
                    ..Default::default()
                },
                status: None,
            };
            match api.create(&PostParams::default(), &incident).await {
                Ok(_) => {
                    info!(%namespace, %name, alertname = %heartbeat.alertname, "declared: the heartbeat is silent");
                    Ok(())
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error),
            }
        }
        alerts::HeartbeatAction::Resolve => {
            let Some(open) = open else { return Ok(()) };
            let name = open.metadata.name.clone().unwrap_or_default();
            let body = json!({
                "metadata": {"resourceVersion": open.metadata.resource_version},
                "spec": {"phase": Phase::Resolved},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(body))
                .await
            {
                Ok(_) => {
                    info!(%namespace, %name, alertname = %heartbeat.alertname, "resolved: the heartbeat is back");
                    Ok(())
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                Err(error) => Err(error),
            }
        }
        alerts::HeartbeatAction::Nothing => Ok(()),
    }
}
