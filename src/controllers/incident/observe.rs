//! Observe: what the cluster shows about one incident's workloads, read
//! from the watch caches through their indexes. A reconcile touches only
//! the objects of its own linked workloads (their ReplicaSets or
//! ControllerRevisions, claims, Pods and Events), never a whole store, and
//! never LISTs.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
    runtime::reflector::ObjectRef,
};

use super::{
    State,
    logs::{Logs, Target},
};
use crate::{
    api::{
        Incident,
        incident::{
            DaemonSetState, DeploymentState, LogExcerpt, NodeState, PodsSummary, StatefulSetState,
            WorkloadKind,
        },
        limits::MAX_LINKED_DEPLOYMENTS,
    },
    cluster::cache::Caches,
    domain::enrich::{events::Warning, pods::PodView},
    domain::{
        enrich,
        incident::Observation,
        policy::{EffectivePolicy, LogSettings, Settings},
    },
    kinds::{ControllerRevision, ReplicaSet},
};

/// The workloads an incident affects: named ones as written, selected
/// ones sorted, at most the status bound of each kind.
#[derive(Default)]
pub struct Affected {
    /// Per kind, the names.
    pub names: Vec<(WorkloadKind, Vec<String>)>,
    /// Whether any entry selects by label.
    pub selects: bool,
    /// Selectors matched more workloads than a status holds.
    pub truncated: bool,
    /// Entries that cannot be used, with why.
    pub invalid: Vec<String>,
}

impl Affected {
    /// Every workload as a [`WorkloadKind::key`].
    pub fn keys(&self) -> Vec<String> {
        self.names
            .iter()
            .flat_map(|(kind, names)| names.iter().map(|n| kind.key(n)))
            .collect()
    }

    pub fn of(&self, kind: WorkloadKind) -> &[String] {
        self.names
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, names)| names.as_slice())
            .unwrap_or_default()
    }
}

/// How long a fresh incident's first pass waits for its namespace's first
/// CPU and memory sample: a listing on a healthy cluster takes a few
/// milliseconds, and a slow metrics API must not hold the first status.
const FIRST_SAMPLE_WAIT: Duration = Duration::from_millis(300);

pub async fn observe(state: &State, incident: &Incident, policy: &EffectivePolicy) -> Observation {
    let namespace = incident.namespace().unwrap_or_default();
    let reference = ObjectRef::from_obj(incident);
    let affected = affected(incident, &state.caches, &namespace);
    let keys = affected.keys();
    state
        .caches
        .links
        .link(reference, &namespace, &keys, affected.selects);
    // A namespace linked for the first time is sampled at once. A fresh
    // incident's first pass waits a moment for that sample, beside its
    // queries, so its first status carries CPU and memory; a later
    // sample wakes the incident again, so no pass waits longer than
    // FIRST_SAMPLE_WAIT for it.
    let first_sample = async {
        if incident.status.is_none() && !keys.is_empty() {
            state
                .metrics
                .first_sample(&namespace, FIRST_SAMPLE_WAIT)
                .await;
        }
    };
    let queries = async {
        if !queries_due(incident, policy, state.context.metrics_interval) {
            return None;
        }
        let found: Vec<String> = affected
            .of(WorkloadKind::Deployment)
            .iter()
            .filter(|name| state.caches.deployments.get(&namespace, name).is_some())
            .cloned()
            .collect();
        Some(
            state
                .prometheus
                .run_all(&policy.queries, &namespace, &incident.name_any(), &found)
                .await,
        )
    };
    let ((), queries) = futures::join!(first_sample, queries);
    let mut observation = gather(state, incident, &namespace, &affected, &policy.settings);
    observation.truncated = affected.truncated;
    observation.invalid_selectors = affected.invalid;
    observation.queries = queries;
    observation.delivery_errors = state.delivery_errors(incident);
    observation.related = related(state, incident, &keys);
    observation
}

/// The other incidents a plan relates this one to: earlier ones of the
/// same workloads (`keys`, and the ones it recorded) while it is open,
/// and those its spec links.
pub fn related(
    state: &State,
    incident: &Incident,
    keys: &[String],
) -> Vec<crate::domain::incident::related::Earlier> {
    let status = incident.status.as_ref();
    if status.is_some_and(crate::domain::incident::frozen) {
        // A frozen record looks for no more recurrences.
        return state.caches.related_to(incident, &[], None);
    }
    let mut workloads = crate::domain::incident::related::workloads(incident, status);
    for key in keys {
        if !workloads.contains(key) {
            workloads.push(key.clone());
        }
    }
    // The first pass has no declaredAt yet: the creation is the declaration.
    let declared = status
        .and_then(|s| s.declared_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref());
    state.caches.related_to(incident, &workloads, declared)
}

pub fn affected(incident: &Incident, caches: &Caches, namespace: &str) -> Affected {
    let mut out = Affected::default();
    let Some(spec) = incident.spec.affected.as_ref() else {
        return out;
    };
    for kind in WorkloadKind::ALL {
        let entries = spec.of(kind);
        if entries.is_empty() {
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        let mut in_namespace: Option<Vec<(String, std::collections::BTreeMap<String, String>)>> =
            None;
        for (i, entry) in entries.iter().enumerate() {
            if let Some(name) = &entry.name {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            } else if let Some(selector) = &entry.selector {
                out.selects = true;
                let selector = match Selector::try_from(selector.clone()) {
                    Ok(selector) => selector,
                    // Matches nothing rather than everything; the incident's
                    // DeploymentsFound condition says why.
                    Err(error) => {
                        out.invalid.push(format!("{}[{i}]: {error}", field(kind)));
                        continue;
                    }
                };
                let candidates =
                    in_namespace.get_or_insert_with(|| caches.workloads_in(kind, namespace));
                let mut matched: Vec<String> = candidates
                    .iter()
                    .filter(|(_, labels)| selector.matches(labels))
                    .map(|(name, _)| name.clone())
                    .collect();
                matched.sort();
                for name in matched {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        let max = MAX_LINKED_DEPLOYMENTS as usize;
        out.truncated |= names.len() > max;
        names.truncate(max);
        out.names.push((kind, names));
    }
    out
}

/// The spec field of a kind's entries.
pub fn field(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "spec.affected.deployments",
        WorkloadKind::StatefulSet => "spec.affected.statefulSets",
        WorkloadKind::DaemonSet => "spec.affected.daemonSets",
    }
}

/// What one reconcile reads: the Warning events of the objects it looked
/// at, and how many objects it read.
struct Reading<'a> {
    caches: &'a Caches,
    namespace: &'a str,
    objects: HashSet<(String, String)>,
    events: Vec<Arc<Warning>>,
    read: usize,
    /// The nodes the pods run on, with how many.
    nodes: std::collections::BTreeMap<Arc<str>, i32>,
}

impl Reading<'_> {
    fn about(&mut self, kind: &str, name: &str) {
        if self.objects.insert((kind.to_string(), name.to_string())) {
            self.events
                .extend(self.caches.events_about(self.namespace, kind, name));
        }
    }

    /// The pods `kind` `owner` (with `uid`) controls, and their events.
    fn pods(&mut self, kind: &str, owner: &str, uid: Option<&str>) -> Vec<Arc<PodView>> {
        let pods: Vec<Arc<PodView>> = self
            .caches
            .pods_of(self.namespace, kind, owner)
            .into_iter()
            .filter(|p| p.owner.as_ref().is_some_and(|o| o.is(kind, uid)))
            .collect();
        for pod in &pods {
            self.about("Pod", &pod.name);
            if let Some(node) = &pod.node {
                *self.nodes.entry(node.clone()).or_default() += 1;
            }
        }
        self.read += pods.len();
        pods
    }

    /// The nodes under the pods read that have a problem, and their
    /// events that speak of it.
    fn nodes(&mut self) -> Vec<NodeState> {
        let mut found = Vec::new();
        for (name, pods) in std::mem::take(&mut self.nodes) {
            let Some(node) = self.caches.nodes.get("", &name) else {
                continue;
            };
            self.read += 1;
            if let Some(state) = enrich::nodes::problem(&node, pods) {
                if self.objects.insert(("Node".to_string(), name.to_string())) {
                    self.events.extend(self.caches.node_events_about(&name));
                }
                found.push(state);
            }
        }
        enrich::nodes::rank(found)
    }

    /// The ControllerRevisions `kind` `owner` (with `uid`) controls.
    fn revisions(
        &mut self,
        kind: &str,
        owner: &str,
        uid: Option<&str>,
    ) -> Vec<Arc<ControllerRevision>> {
        let revisions: Vec<Arc<ControllerRevision>> = self
            .caches
            .revisions_of(self.namespace, kind, owner)
            .into_iter()
            .filter(|r| uid.is_some() && controller_uid(&r.metadata) == uid)
            .collect();
        self.read += revisions.len();
        revisions
    }
}

fn gather(
    state: &State,
    incident: &Incident,
    namespace: &str,
    affected: &Affected,
    settings: &Settings,
) -> Observation {
    let caches = &state.caches;
    let samples = state.metrics.samples(namespace);
    let mut reading = Reading {
        caches,
        namespace,
        objects: HashSet::new(),
        events: Vec::new(),
        read: 0,
        nodes: Default::default(),
    };
    let mut observation = Observation::default();
    // The excerpts the status holds, by pod: kept while they are of the
    // instance that failed last, so a restart of the operator reads no
    // log again.
    let earlier: HashMap<&str, &LogExcerpt> = incident
        .status
        .iter()
        .flat_map(|s| s.workloads())
        .filter_map(|(_, d)| d.pods.as_ref())
        .flat_map(|p| &p.items)
        .filter_map(|p| Some((p.name.as_str(), p.log.as_ref()?)))
        .collect();
    let frozen = incident
        .status
        .as_ref()
        .is_some_and(crate::domain::incident::frozen);
    let reference = ObjectRef::from_obj(incident);
    let node_unreachable = |name: &str| match state.caches.nodes.get("", name) {
        None => Unreachable::Unknown,
        Some(node) => match enrich::nodes::log_unreachable(name, Some(&node)) {
            Some(why) => Unreachable::Down(why),
            None => Unreachable::No,
        },
    };
    let excerpts = Excerpts {
        logs: &state.logs,
        node_unreachable: &node_unreachable,
        namespace,
        settings: settings.logs,
        earlier: &earlier,
        incident: &reference,
    };
    let pods_and_usage = |workload: &mut DeploymentState, pods: &[Arc<PodView>]| {
        let refs: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        let mut summary = enrich::pods::summarize(&refs, settings.max_pods);
        if settings.logs.enabled && !frozen {
            excerpts.attach(&mut summary, pods);
        }
        workload.pods = Some(summary);
        workload.usage = enrich::usage::usage(&refs, &samples);
    };
    let declared = incident
        .status
        .as_ref()
        .and_then(|s| s.declared_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    let lookback =
        SignedDuration::try_from(settings.event_lookback).unwrap_or(SignedDuration::ZERO);
    let since = declared.checked_sub(lookback).unwrap_or(declared);
    for name in affected.of(WorkloadKind::Deployment) {
        reading.about("Deployment", name);
        let Some(deployment) = caches.deployments.get(namespace, name) else {
            observation
                .deployments
                .push(enrich::deployment::not_found(name));
            // Events about a Deployment that is gone still tell a story.
            continue;
        };
        let owned = |rs: &Arc<ReplicaSet>| {
            controller_uid(&rs.metadata).is_some()
                && controller_uid(&rs.metadata) == deployment.metadata.uid.as_deref()
        };
        let replicasets: Vec<Arc<ReplicaSet>> = caches
            .replicasets_of(namespace, name)
            .into_iter()
            .filter(owned)
            .collect();
        let mut pods: Vec<Arc<PodView>> = Vec::new();
        for rs in &replicasets {
            let rs_name = rs.name_any();
            pods.extend(reading.pods("ReplicaSet", &rs_name, rs.metadata.uid.as_deref()));
            reading.about("ReplicaSet", &rs_name);
        }
        reading.read += 1 + replicasets.len();
        let rs: Vec<&ReplicaSet> = replicasets.iter().map(Arc::as_ref).collect();
        let mut state = enrich::deployment::state(name, &deployment, &rs);
        observation.changes.extend(enrich::changes::rollouts(
            WorkloadKind::Deployment,
            name,
            enrich::deployment::revisions(&deployment, &rs),
            since,
        ));
        pods_and_usage(&mut state, &pods);
        observation.deployments.push(state);
    }
    for name in affected.of(WorkloadKind::StatefulSet) {
        reading.about("StatefulSet", name);
        let Some(set) = caches.statefulsets.get(namespace, name) else {
            observation.stateful_sets.push(StatefulSetState {
                workload: enrich::deployment::not_found(name),
                ..Default::default()
            });
            continue;
        };
        let uid = set.metadata.uid.as_deref();
        let revisions = reading.revisions("StatefulSet", name, uid);
        let pods = reading.pods("StatefulSet", name, uid);
        let refs: Vec<&ControllerRevision> = revisions.iter().map(Arc::as_ref).collect();
        let mut state = enrich::revisions::statefulset(name, &set, &refs, |claim| {
            caches.claims.get(namespace, claim)
        });
        observation.changes.extend(enrich::changes::rollouts(
            WorkloadKind::StatefulSet,
            name,
            enrich::revisions::history(&refs),
            since,
        ));
        reading.read += 1 + state.claims.len();
        for claim in &state.claims {
            reading.about("PersistentVolumeClaim", &claim.name);
        }
        pods_and_usage(&mut state.workload, &pods);
        observation.stateful_sets.push(state);
    }
    for name in affected.of(WorkloadKind::DaemonSet) {
        reading.about("DaemonSet", name);
        let Some(set) = caches.daemonsets.get(namespace, name) else {
            observation.daemon_sets.push(DaemonSetState {
                workload: enrich::deployment::not_found(name),
                ..Default::default()
            });
            continue;
        };
        let uid = set.metadata.uid.as_deref();
        let revisions = reading.revisions("DaemonSet", name, uid);
        let pods = reading.pods("DaemonSet", name, uid);
        reading.read += 1;
        let revision_refs: Vec<&ControllerRevision> = revisions.iter().map(Arc::as_ref).collect();
        let pod_refs: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        let mut state = enrich::revisions::daemonset(name, &set, &revision_refs, &pod_refs);
        observation.changes.extend(enrich::changes::rollouts(
            WorkloadKind::DaemonSet,
            name,
            enrich::revisions::history(&revision_refs),
            since,
        ));
        pods_and_usage(&mut state.workload, &pods);
        observation.daemon_sets.push(state);
    }
    observation.nodes = reading.nodes();
    let Reading {
        objects,
        events,
        read,
        ..
    } = reading;
    state
        .context
        .metrics
        .objects_read
        .inc_by(u64::try_from(read + events.len()).unwrap_or(u64::MAX));
    let (events, warnings) = enrich::events::summarize(
        events.iter().map(Arc::as_ref),
        &objects,
        since,
        settings.max_events,
    );
    observation.events = events;
    observation.warnings = warnings;
    observation.metrics_available = state.metrics.available();
    observation
}

/// Whether a node's kubelet can serve logs.
enum Unreachable {
    No,
    /// The cluster does not know the node.
    Unknown,
    /// Not Ready: why.
    Down(String),
}

/// Whether a pod's log is worth asking for, given its node: `None` to ask
/// nobody, else why its kubelet cannot answer (`Some(None)`: it can).
fn readable(node: Option<Unreachable>) -> Option<Option<String>> {
    match node {
        // A node the cluster does not know: its pods are about to be
        // collected, and there is no log to ask anyone for. A pod bound to
        // no node has run nothing to log, and the apiserver refuses to ask.
        Some(Unreachable::Unknown) | None => None,
        Some(Unreachable::Down(why)) => Some(Some(why)),
        Some(Unreachable::No) => Some(None),
    }
}

/// Attaches log excerpts to the worst failing pods of a workload.
struct Excerpts<'a> {
    logs: &'a Arc<Logs>,
    /// Whether the kubelet of a node can serve logs.
    node_unreachable: &'a dyn Fn(&str) -> Unreachable,
    namespace: &'a str,
    settings: LogSettings,
    earlier: &'a HashMap<&'a str, &'a LogExcerpt>,
    incident: &'a ObjectRef<Incident>,
}

impl Excerpts<'_> {
    /// The worst pods come first in `summary`; up to `maxPods` of them
    /// with a failing container that has run get its excerpt: the one
    /// already held while it is of the same instance, else the one read
    /// (or being read: until then the earlier one stays).
    fn attach(&self, summary: &mut PodsSummary, pods: &[Arc<PodView>]) {
        let mut taken = 0;
        for item in &mut summary.items {
            if taken == self.settings.max_pods {
                break;
            }
            if item.ready && item.reason.is_none() {
                continue;
            }
            let Some(pod) = pods.iter().find(|p| *p.name == *item.name) else {
                continue;
            };
            let Some((container, restarts)) = pod.failing.as_deref().cloned() else {
                continue;
            };
            taken += 1;
            let target = Target {
                namespace: self.namespace.to_string(),
                pod: item.name.clone(),
                container: container.to_string(),
                restarts,
            };
            let before = self
                .earlier
                .get(item.name.as_str())
                .copied()
                .filter(|e| e.container == target.container);
            let same = before.filter(|e| e.restart_count == target.restarts && e.error.is_none());
            // The newer of what the status holds and what was read since.
            let Some(unreachable) = readable(pod.node.as_deref().map(self.node_unreachable)) else {
                continue;
            };
            let excerpt = match (same, unreachable) {
                (Some(same), _) => Some(same.clone()),
                // No request a dead kubelet would leave unanswered: what
                // the status holds stays, else why there is nothing.
                (None, Some(why)) => before.cloned().or_else(|| {
                    Some(LogExcerpt {
                        container: target.container.clone(),
                        previous: target.previous(),
                        restart_count: target.restarts,
                        error: Some(why),
                        ..Default::default()
                    })
                }),
                (None, None) => {
                    let read = self.logs.excerpt(&target, self.incident);
                    match (read, before) {
                        (Some(read), Some(before)) if before.restart_count > read.restart_count => {
                            Some(before.clone())
                        }
                        (Some(read), _) => Some(read),
                        (None, before) => before.cloned(),
                    }
                }
            };
            item.log = excerpt.map(|mut e| {
                let excess = e.lines.len().saturating_sub(self.settings.lines);
                e.lines.drain(..excess);
                e.truncated |= excess > 0;
                e
            });
        }
    }
}

/// The uid of the object's controlling owner.
fn controller_uid(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Whether the policy's Prometheus queries should run now: on their
/// interval, and when the set of queries changed.
pub fn queries_due(incident: &Incident, policy: &EffectivePolicy, interval: Duration) -> bool {
    if policy.queries.is_empty() {
        return false;
    }
    let Some(status) = incident.status.as_ref() else {
        return true;
    };
    // A query added (one without `$deployment` has exactly one result
    // named after it) or removed since the last run.
    let base = |name: &str| name.split('/').next().unwrap_or_default().to_string();
    let added = policy
        .queries
        .iter()
        .filter(|q| !q.query.contains("$deployment"))
        .any(|q| !status.metrics.iter().any(|m| m.name == q.name));
    let removed = status
        .metrics
        .iter()
        .any(|m| !policy.queries.iter().any(|q| q.name == base(&m.name)));
    let stale = status.metrics_at.as_ref().is_none_or(|at| {
        let age = Timestamp::now().duration_since(at.0);
        Duration::try_from(age).is_ok_and(|age| age >= interval)
    });
    added || removed || stale
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{
        api::{self, Phase, incident::MetricValue},
        domain::policy::EffectiveQuery,
    };

    fn with_metrics(names: &[&str], age: Duration) -> Incident {
        let mut incident = crate::domain::incident::testing::incident(Phase::Triggered, "SEV2");
        let at = Timestamp::now()
            .checked_sub(SignedDuration::try_from(age).expect("age"))
            .expect("time");
        incident.status = Some(api::IncidentStatus {
            metrics_at: Some(Time(at)),
            metrics: names
                .iter()
                .map(|n| MetricValue {
                    name: n.to_string(),
                    value: Some("1".into()),
                    query: String::new(),
                    error: None,
                })
                .collect(),
            ..Default::default()
        });
        incident
    }

    fn policy(queries: &[(&str, &str)]) -> EffectivePolicy {
        EffectivePolicy {
            queries: queries
                .iter()
                .map(|(name, query)| EffectiveQuery {
                    name: name.to_string(),
                    query: query.to_string(),
                    url: "http://prometheus:9090".into(),
                    egress: Default::default(),
                    namespace_label: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn logs_are_asked_only_of_a_known_node() {
        assert_eq!(readable(Some(Unreachable::No)), Some(None));
        assert_eq!(
            readable(Some(Unreachable::Down("NotReady".into()))),
            Some(Some("NotReady".into()))
        );
        assert_eq!(readable(Some(Unreachable::Unknown)), None);
        // Never scheduled.
        assert_eq!(readable(None), None);
    }

    #[test]
    fn queries_run_on_their_interval_and_when_the_set_changes() {
        let minute = Duration::from_secs(60);
        let per_deployment = policy(&[("p99", "x{deployment=\"$deployment\"}")]);
        // A per-Deployment query with no Deployment found: no result, and
        // that is not a reason to query on every reconcile.
        assert!(!queries_due(
            &with_metrics(&[], Duration::ZERO),
            &per_deployment,
            minute
        ));
        assert!(queries_due(
            &with_metrics(&[], minute),
            &per_deployment,
            minute
        ));
        let errors = policy(&[("errors", "sum(x)")]);
        assert!(!queries_due(
            &with_metrics(&["errors"], Duration::ZERO),
            &errors,
            minute
        ));
        // Added, removed.
        assert!(queries_due(
            &with_metrics(&[], Duration::ZERO),
            &errors,
            minute
        ));
        assert!(queries_due(
            &with_metrics(&["errors", "gone"], Duration::ZERO),
            &errors,
            minute
        ));
        assert!(!queries_due(
            &with_metrics(&["errors"], Duration::ZERO),
            &policy(&[]),
            minute
        ));
    }
}
