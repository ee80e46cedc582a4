//! Observe: what the cluster shows about one incident's workloads, read
//! from the watch caches through their indexes. A reconcile touches only
//! the objects of its own linked Deployments (their ReplicaSets, Pods and
//! Events), never a whole store, and never LISTs.

use std::{collections::HashSet, sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
    runtime::reflector::ObjectRef,
};

use super::State;
use crate::{
    api::{Incident, limits::MAX_LINKED_DEPLOYMENTS},
    cluster::cache::Caches,
    domain::enrich::{events::Warning, pods::PodView},
    domain::{
        enrich,
        incident::Observation,
        policy::{EffectivePolicy, Settings},
    },
    kinds::{Deployment, ReplicaSet},
};

/// The Deployments an incident affects: named ones as written, selected
/// ones sorted, at most the status bound.
pub struct Affected {
    pub names: Vec<String>,
    /// Whether any entry selects by label.
    pub selects: bool,
    /// Selectors matched more Deployments than a status holds.
    pub truncated: bool,
    /// Entries that cannot be used, with why.
    pub invalid: Vec<String>,
}

pub async fn observe(state: &State, incident: &Incident, policy: &EffectivePolicy) -> Observation {
    let namespace = incident.namespace().unwrap_or_default();
    let reference = ObjectRef::from_obj(incident);
    let affected = affected(incident, &state.caches, &namespace);
    state
        .caches
        .links
        .link(reference, &namespace, &affected.names, affected.selects);
    // A namespace linked for the first time is sampled at once, and the
    // sample wakes the incident again: the first status does not wait
    // for CPU and memory.
    let mut observation = gather(
        state,
        incident,
        &namespace,
        &affected.names,
        &policy.settings,
    );
    observation.truncated = affected.truncated;
    observation.invalid_selectors = affected.invalid;
    if queries_due(incident, policy, state.context.metrics_interval) {
        let found: Vec<String> = observation
            .deployments
            .iter()
            .filter(|d| d.found)
            .map(|d| d.name.clone())
            .collect();
        observation.queries = Some(
            state
                .prometheus
                .run_all(&policy.queries, &namespace, &incident.name_any(), &found)
                .await,
        );
    }
    observation.delivery_errors = state.delivery_errors(incident);
    observation.related = related(state, incident, &affected.names);
    observation
}

/// The other incidents a plan relates this one to: earlier ones of the
/// same workloads (`names`, and the ones it recorded) while it is open,
/// and those its spec links.
pub fn related(
    state: &State,
    incident: &Incident,
    names: &[String],
) -> Vec<crate::domain::incident::related::Earlier> {
    let status = incident.status.as_ref();
    if status.is_some_and(crate::domain::incident::frozen) {
        // A frozen record looks for no more recurrences.
        return state.caches.related_to(incident, &[], None);
    }
    let deployments = status.map(|s| s.deployments.as_slice()).unwrap_or_default();
    let mut workloads = crate::domain::incident::related::workloads(incident, deployments);
    for name in names {
        if !workloads.contains(name) {
            workloads.push(name.clone());
        }
    }
    // The first pass has no declaredAt yet: the creation is the declaration.
    let declared = status
        .and_then(|s| s.declared_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref());
    state.caches.related_to(incident, &workloads, declared)
}

pub fn affected(incident: &Incident, caches: &Caches, namespace: &str) -> Affected {
    let entries = incident
        .spec
        .affected
        .as_ref()
        .map(|a| a.deployments.as_slice())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    let mut selects = false;
    let mut invalid = Vec::new();
    let mut in_namespace: Option<Vec<Arc<Deployment>>> = None;
    for (i, entry) in entries.iter().enumerate() {
        if let Some(name) = &entry.name {
            if !names.contains(name) {
                names.push(name.clone());
            }
        } else if let Some(selector) = &entry.selector {
            selects = true;
            let selector = match Selector::try_from(selector.clone()) {
                Ok(selector) => selector,
                // Matches nothing rather than everything; the incident's
                // DeploymentsFound condition says why.
                Err(error) => {
                    invalid.push(format!("entry {i}: {error}"));
                    continue;
                }
            };
            let candidates = in_namespace.get_or_insert_with(|| caches.deployments_in(namespace));
            let mut matched: Vec<String> = candidates
                .iter()
                .filter(|d| selector.matches(d.labels()))
                .filter_map(|d| d.metadata.name.clone())
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
    let truncated = names.len() > max;
    names.truncate(max);
    Affected {
        names,
        selects,
        truncated,
        invalid,
    }
}

fn gather(
    state: &State,
    incident: &Incident,
    namespace: &str,
    names: &[String],
    settings: &Settings,
) -> Observation {
    let caches = &state.caches;
    let samples = state.metrics.samples(namespace);
    let mut objects: HashSet<(String, String)> = HashSet::new();
    let mut events: Vec<Arc<Warning>> = Vec::new();
    let mut about = |kind: &str, name: &str, events: &mut Vec<Arc<Warning>>| {
        if objects.insert((kind.to_string(), name.to_string())) {
            events.extend(caches.events_about(namespace, kind, name));
        }
    };
    let mut deployments = Vec::with_capacity(names.len());
    let mut read = 0usize;
    for name in names {
        let Some(deployment) = caches.deployments.get(namespace, name) else {
            deployments.push(enrich::deployment::not_found(name));
            // Events about a Deployment that is gone still tell a story.
            about("Deployment", name, &mut events);
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
            pods.extend(
                caches.pods_of(namespace, &rs_name).into_iter().filter(|p| {
                    p.owner.as_ref().map(|(_, uid)| &**uid) == rs.metadata.uid.as_deref()
                }),
            );
            about("ReplicaSet", &rs_name, &mut events);
        }
        about("Deployment", name, &mut events);
        for pod in &pods {
            about("Pod", &pod.name, &mut events);
        }
        read += 1 + replicasets.len() + pods.len();
        let rs: Vec<&ReplicaSet> = replicasets.iter().map(Arc::as_ref).collect();
        let pod_refs: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        let mut state = enrich::deployment::state(name, &deployment, &rs);
        state.pods = Some(enrich::pods::summarize(&pod_refs, settings.max_pods));
        state.usage = enrich::usage::usage(&pod_refs, &samples);
        deployments.push(state);
    }
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
    read += events.len();
    state
        .context
        .metrics
        .objects_read
        .inc_by(u64::try_from(read).unwrap_or(u64::MAX));
    let (events, warnings) = enrich::events::summarize(
        events.iter().map(Arc::as_ref),
        &objects,
        since,
        settings.max_events,
    );
    Observation {
        deployments,
        events,
        warnings,
        metrics_available: state.metrics.available(),
        ..Default::default()
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
                })
                .collect(),
            ..Default::default()
        }
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
