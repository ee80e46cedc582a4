//! The Incident controller: links the affected Deployments and keeps the
//! Incident's status current.
//!
//! Each reconcile is a pipeline: gather (from the shared caches, never a
//! LIST) → compute ([`status::compute`], pure) → apply (one server-side
//! apply of `/status`, only when it changed) → report (Events, metrics).

pub mod status;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Event as CoreEvent, Pod},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::{Selector, SelectorExt},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use self::status::Enrichment;
use super::{
    Context,
    index::{self, Index},
    written::Written,
};
use crate::{
    api::{self, Incident, Phase, limits::MAX_LINKED_DEPLOYMENTS, policy::Trigger},
    cache::{self, Caches},
    enrich,
    notify::{self, Notifier},
    podmetrics::{self, MetricsCache},
    policy::Settings,
    prometheus::Prometheus,
    server::Health,
};

pub const CONTROLLER: &str = "incident";
pub const FIELD_MANAGER: &str = "klaxon";

/// How long a reconcile waits for a new namespace's first PodMetrics.
const FIRST_SAMPLE_WAIT: Duration = Duration::from_millis(750);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the Incident's status: {0}")]
    PatchStatus(#[source] kube::Error),
    #[error("cannot resolve the auto-declared Incident: {0}")]
    Resolve(#[source] kube::Error),
}

impl Error {
    /// The reason used for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::PatchStatus(_) => "PatchStatus",
            Error::Resolve(_) => "Resolve",
        }
    }
}

struct State {
    context: Context,
    caches: Caches,
    synced: AtomicBool,
    index: Index,
    metrics: MetricsCache,
    recorder: Recorder,
    written: Written<ObjectRef<Incident>, api::IncidentStatus>,
    notifier: Notifier,
    prometheus: Prometheus,
    /// Wakes the policy status loop.
    policy_status: Arc<tokio::sync::Notify>,
}

pub async fn run(context: Context, health: Health, shutdown: CancellationToken) {
    let client = context.client.clone();
    let (caches, streams) = cache::start(&client);
    let index = Index::default();
    let metrics = MetricsCache::default();
    let (trigger, triggered) = futures::channel::mpsc::unbounded();
    tokio::spawn(podmetrics::poll(
        client.clone(),
        index.clone(),
        metrics.clone(),
        context.metrics_interval,
        trigger,
        shutdown.clone(),
    ));

    let controller = Controller::new(
        Api::<Incident>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    let incidents = controller.store();
    let incidents_store = incidents.clone();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "klaxon".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let policy_status = Arc::new(tokio::sync::Notify::new());
    let state = Arc::new(State {
        context: context.clone(),
        caches: caches.clone(),
        synced: AtomicBool::new(false),
        index: index.clone(),
        metrics,
        recorder,
        written: Written::default(),
        notifier: Notifier::new(client.clone(), context.delivery),
        prometheus: Prometheus::default(),
        policy_status: policy_status.clone(),
    });
    {
        let state = state.clone();
        tokio::spawn(async move {
            if state.caches.wait_until_ready().await && super::wait_until_ready(&incidents).await {
                // The metrics API probe is quick; do not wait on it forever.
                let deadline = Instant::now() + Duration::from_secs(5);
                while state.metrics.available().is_none() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                state.synced.store(true, Ordering::Release);
                health.set_ready(true);
            }
        });
    }

    let by_deployment = {
        let index = index.clone();
        move |d: Deployment| match (d.namespace(), d.metadata.name.as_deref()) {
            (Some(ns), Some(name)) => index.for_deployment(&ns, name),
            _ => Vec::new(),
        }
    };
    let by_replicaset = {
        let index = index.clone();
        move |rs: ReplicaSet| match (rs.namespace(), index::deployment_of_replicaset(&rs)) {
            (Some(ns), Some(name)) => index.for_deployment(&ns, &name),
            _ => Vec::new(),
        }
    };
    let by_pod = {
        let index = index.clone();
        let replicasets = caches.replicasets.clone();
        move |pod: Pod| match (
            pod.namespace(),
            index::deployment_of_pod(&pod, &replicasets),
        ) {
            (Some(ns), Some(name)) => index.for_deployment(&ns, &name),
            _ => Vec::new(),
        }
    };
    let by_event = {
        let index = index.clone();
        let caches = caches.clone();
        move |event: CoreEvent| {
            let ns = event
                .involved_object
                .namespace
                .clone()
                .or_else(|| event.namespace());
            match (ns, deployment_of_event(&event, &caches)) {
                (Some(ns), Some(name)) => index.for_deployment(&ns, &name),
                _ => Vec::new(),
            }
        }
    };

    tokio::spawn(super::signals::run(
        client.clone(),
        caches.clone(),
        incidents_store.clone(),
        context.namespace.clone(),
        context.metrics.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(super::policy::run(
        client.clone(),
        caches.clone(),
        incidents_store.clone(),
        policy_status.clone(),
        shutdown.clone(),
    ));
    // A policy or namespace label change re-evaluates the incidents it
    // governs, and the policy statuses.
    let in_namespace = {
        let incidents = incidents_store.clone();
        move |namespace: &str| -> Vec<ObjectRef<Incident>> {
            incidents
                .state()
                .iter()
                .filter(|i| i.metadata.namespace.as_deref() == Some(namespace))
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect()
        }
    };
    let by_policy = {
        let (in_namespace, wake) = (in_namespace.clone(), policy_status.clone());
        move |rp: api::ResponsePolicy| {
            wake.notify_one();
            rp.namespace()
                .map(|ns| in_namespace(&ns))
                .unwrap_or_default()
        }
    };
    let by_namespace = {
        let (in_namespace, wake) = (in_namespace.clone(), policy_status.clone());
        move |ns: k8s_openapi::api::core::v1::Namespace| {
            wake.notify_one();
            in_namespace(&ns.name_any())
        }
    };
    let by_cluster_policy = {
        let (incidents, wake) = (incidents_store.clone(), policy_status.clone());
        move |_: api::ClusterResponsePolicy| {
            wake.notify_one();
            incidents
                .state()
                .iter()
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
        }
    };

    controller
        .watches_stream(streams.policies, by_policy)
        .watches_stream(streams.cluster_policies, by_cluster_policy)
        .watches_stream(streams.namespaces, by_namespace)
        .watches_stream(streams.deployments, by_deployment)
        .watches_stream(streams.replicasets, by_replicaset)
        .watches_stream(streams.pods, by_pod)
        .watches_stream(streams.events, by_event)
        .reconcile_on(triggered)
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "reconcile loop");
            }
        })
        .await;
}

/// The Deployment a Warning event is about, directly or through one of its
/// ReplicaSets or Pods.
fn deployment_of_event(event: &CoreEvent, caches: &Caches) -> Option<String> {
    let object = &event.involved_object;
    let name = object.name.as_deref()?;
    let ns = object.namespace.as_deref()?;
    match object.kind.as_deref()? {
        "Deployment" => Some(name.to_string()),
        "ReplicaSet" => match caches.replicasets.get(&ObjectRef::new(name).within(ns)) {
            Some(rs) => index::deployment_of_replicaset(&rs),
            None => name.rsplit_once('-').map(|(d, _)| d.to_string()),
        },
        "Pod" => match caches.pods.get(&ObjectRef::new(name).within(ns)) {
            Some(pod) => index::deployment_of_pod(&pod, &caches.replicasets),
            // <deployment>-<template hash>-<suffix>
            None => name
                .rsplit_once('-')
                .and_then(|(rs, _)| rs.rsplit_once('-'))
                .map(|(d, _)| d.to_string()),
        },
        _ => None,
    }
}

#[instrument(skip_all, fields(namespace = incident.namespace(), name = incident.name_any()))]
async fn reconcile(incident: Arc<Incident>, state: Arc<State>) -> Result<Action, Error> {
    if !state.synced.load(Ordering::Acquire) {
        // Enriching from half-filled caches would report pods as missing.
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let started = Instant::now();
    let namespace = incident.namespace().unwrap_or_default();
    let reference = ObjectRef::from_obj(incident.as_ref());
    let incident = match state
        .written
        .newer_than_cache(&reference, incident.metadata.resource_version.as_deref())
    {
        Some(status) => Arc::new(Incident {
            status: Some(status),
            ..Incident::clone(&incident)
        }),
        None => incident,
    };
    let policy = state
        .caches
        .effective_policy(&namespace, &state.context.namespace);

    // Gather.
    let frozen = incident.spec.phase == Phase::Resolved
        && incident
            .status
            .as_ref()
            .is_some_and(|s| s.resolved_at.is_some());
    let enrichment = if frozen {
        state.index.unlink(&reference);
        Enrichment::default()
    } else {
        let (names, selects, truncated) =
            affected_deployments(&incident, &state.caches, &namespace);
        state
            .index
            .link(reference.clone(), &namespace, &names, selects);
        // A namespace linked for the first time is sampled at once; waiting
        // briefly for it saves a second status write per fresh incident.
        state
            .metrics
            .first_sample(&namespace, FIRST_SAMPLE_WAIT)
            .await;
        let mut enrichment = gather(
            &state,
            &incident,
            &namespace,
            &names,
            &policy.settings,
            truncated,
        );
        if queries_due(&incident, &policy, state.context.metrics_interval) {
            let found: Vec<String> = enrichment
                .deployments
                .iter()
                .filter(|d| d.found)
                .map(|d| d.name.clone())
                .collect();
            enrichment.queries = Some(
                state
                    .prometheus
                    .run_all(&policy.queries, &namespace, &incident.name_any(), &found)
                    .await,
            );
        }
        enrichment
    };

    // Compute.
    let now = Timestamp::now();
    let computed = status::compute(&incident, enrichment, &policy, now);
    let computed_resolve = computed.resolve;
    let mut status = computed.status;
    let due = status::begin_deliveries(&mut status, now, &state.notifier.backoff);

    // Apply, then report.
    let mut current = apply(&state, &incident, &reference, status.clone()).await?;
    report(&state, &incident, computed.transitions).await;

    // Deliver what is due; the attempts are already on record.
    if !due.is_empty() {
        let transitions = deliver(&state, &policy, &incident, &mut status, &due).await;
        status::refresh_delivery_condition(
            &mut status,
            incident.metadata.generation,
            Timestamp::now(),
        );
        current = apply(&state, &incident, &reference, status.clone()).await?;
        report(&state, &incident, transitions).await;
    }
    // Open-incident counts on policies change only with a new incident or
    // a phase change; deletions are caught by the policy loop's resync.
    let phase_seen = incident.status.as_ref().and_then(|s| s.observed_phase);
    if phase_seen != current.observed_phase {
        state.policy_status.notify_one();
    }
    state.context.metrics.observe(CONTROLLER, started.elapsed());

    if computed_resolve {
        let api: Api<Incident> = Api::namespaced(state.context.client.clone(), &namespace);
        // Klaxon declared this incident, so it may write its spec.
        api.patch(
            &incident.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"phase": Phase::Resolved}})),
        )
        .await
        .map_err(Error::Resolve)?;
        info!("auto-resolved: the workload stayed healthy");
    }
    let wake = status::next_wakeup(&current, incident.spec.phase, policy.auto_resolve)
        .map(|at| at.duration_since(Timestamp::now()))
        .and_then(|d| Duration::try_from(d).ok())
        .map(|d| d.max(Duration::from_millis(100)));
    let refresh = if !frozen && !policy.queries.is_empty() {
        state.context.metrics_interval
    } else {
        Duration::from_secs(300)
    };
    Ok(Action::requeue(wake.map_or(refresh, |w| w.min(refresh))))
}

/// Sends the due notifications at once and records each outcome in
/// `status`; returns the timeline entries to report as Events.
async fn deliver(
    state: &State,
    policy: &crate::policy::EffectivePolicy,
    incident: &Incident,
    status: &mut api::IncidentStatus,
    due: &[usize],
) -> Vec<status::Transition> {
    let view = Incident {
        status: Some(status.clone()),
        ..incident.clone()
    };
    let sends = due
        .iter()
        .filter_map(|&i| status.notifications.get(i))
        .map(|n| {
            let trigger = trigger_of(&n.trigger);
            let key = n.idempotency_key.clone().unwrap_or_default();
            let receiver = policy.receiver(&n.receiver);
            let id = n.receiver.clone();
            let (view, notifier) = (&view, &state.notifier);
            async move {
                match (receiver, trigger) {
                    (Some(receiver), Some(trigger)) => {
                        notifier.send(receiver, view, trigger, &key).await
                    }
                    _ => Err(notify::DeliveryError::UnknownReceiver { receiver: id }),
                }
            }
        });
    let outcomes = futures::future::join_all(sends).await;
    let now = Timestamp::now();
    let mut transitions = Vec::new();
    for (&i, outcome) in due.iter().zip(outcomes) {
        if let (Err(error), Some(n)) = (&outcome, status.notifications.get(i)) {
            warn!(receiver = %n.receiver, trigger = %n.trigger, attempt = n.attempts, %error, "notification not delivered");
        }
        transitions.extend(status::finish_delivery(
            status,
            i,
            outcome,
            now,
            state.notifier.backoff.max_attempts,
        ));
    }
    transitions
}

/// Whether the policy's Prometheus queries should run now.
fn queries_due(
    incident: &Incident,
    policy: &crate::policy::EffectivePolicy,
    interval: Duration,
) -> bool {
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
    let names_changed = added || removed;
    let stale = status.metrics_at.as_ref().is_none_or(|at| {
        let age = Timestamp::now().duration_since(at.0);
        Duration::try_from(age).is_ok_and(|age| age >= interval)
    });
    names_changed || stale
}

fn trigger_of(name: &str) -> Option<Trigger> {
    [
        Trigger::Declared,
        Trigger::SeverityChanged,
        Trigger::PhaseChanged,
        Trigger::Escalated,
        Trigger::Resolved,
    ]
    .into_iter()
    .find(|t| format!("{t:?}") == name)
}

/// Writes `status` by server-side apply when it differs from what the
/// incident (or our last write) shows; returns the status now in effect.
async fn apply(
    state: &State,
    incident: &Incident,
    reference: &ObjectRef<Incident>,
    status: api::IncidentStatus,
) -> Result<api::IncidentStatus, Error> {
    let current = state
        .written
        .newer_than_cache(reference, incident.metadata.resource_version.as_deref())
        .or_else(|| incident.status.clone());
    if current.as_ref() == Some(&status) {
        return Ok(status);
    }
    let namespace = incident.namespace().unwrap_or_default();
    let api: Api<Incident> = Api::namespaced(state.context.client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": api::API_VERSION,
        "kind": "Incident",
        "status": status,
    });
    let written = api
        .patch_status(
            &incident.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::PatchStatus)?;
    state.written.record(
        reference.clone(),
        incident.metadata.resource_version.clone(),
        written.metadata.resource_version.clone(),
        status.clone(),
    );
    if tracing::enabled!(tracing::Level::DEBUG) {
        let changed = changed_fields(current.as_ref(), &status);
        debug!(?changed, "status updated");
    }
    Ok(status)
}

/// One Event per transition, on the Incident.
async fn report(state: &State, incident: &Incident, transitions: Vec<status::Transition>) {
    let object = incident.object_ref(&());
    for transition in transitions {
        let event = Event {
            type_: if transition.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: transition.reason.clone(),
            note: Some(enrich::truncate(&transition.message, 1000)),
            action: transition.action,
            secondary: None,
        };
        if let Err(error) = state.recorder.publish(&event, &object).await {
            warn!(%error, "cannot publish an Event");
        }
    }
}

/// The top-level status fields that differ, for the debug log.
fn changed_fields(old: Option<&api::IncidentStatus>, new: &api::IncidentStatus) -> Vec<String> {
    let as_map = |status: Option<&api::IncidentStatus>| match status.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(Some(new)));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect()
}

fn error_policy(_: Arc<Incident>, error: &Error, state: Arc<State>) -> Action {
    warn!(%error, "reconcile failed");
    state.context.metrics.failed(CONTROLLER, error.reason());
    Action::requeue(Duration::from_secs(5))
}

/// The Deployment names the incident affects, in spec order: named ones as
/// written, selected ones sorted; whether any entry selects by label; and
/// whether the list was cut to the status bound.
fn affected_deployments(
    incident: &Incident,
    caches: &Caches,
    namespace: &str,
) -> (Vec<String>, bool, bool) {
    let entries = incident
        .spec
        .affected
        .as_ref()
        .map(|a| a.deployments.as_slice())
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    let mut selects = false;
    let mut in_namespace: Option<Vec<Arc<Deployment>>> = None;
    for entry in entries {
        if let Some(name) = &entry.name {
            if !names.contains(name) {
                names.push(name.clone());
            }
        } else if let Some(selector) = &entry.selector {
            selects = true;
            let Ok(selector) = Selector::try_from(selector.clone()) else {
                // The API server validates selectors; one that slipped
                // through matches nothing rather than everything.
                warn!("ignoring an invalid label selector");
                continue;
            };
            let candidates = in_namespace.get_or_insert_with(|| {
                caches
                    .deployments
                    .state()
                    .into_iter()
                    .filter(|d| d.metadata.namespace.as_deref() == Some(namespace))
                    .collect()
            });
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
    (names, selects, truncated)
}

/// The uid of the object's controlling owner.
fn controller_uid(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

fn gather(
    state: &State,
    incident: &Incident,
    namespace: &str,
    names: &[String],
    settings: &Settings,
    truncated: bool,
) -> Enrichment {
    let caches = &state.caches;
    let found: Vec<(String, Option<Arc<Deployment>>)> = names
        .iter()
        .map(|name| {
            let deployment = caches
                .deployments
                .get(&ObjectRef::new(name).within(namespace));
            (name.clone(), deployment)
        })
        .collect();

    // ReplicaSets by owning Deployment uid, and which Deployment each
    // ReplicaSet uid belongs to.
    let uids: HashMap<String, usize> = found
        .iter()
        .enumerate()
        .filter_map(|(i, (_, d))| Some((d.as_ref()?.metadata.uid.clone()?, i)))
        .collect();
    let mut replicasets: Vec<Vec<Arc<ReplicaSet>>> = vec![Vec::new(); found.len()];
    let mut rs_owner: HashMap<String, usize> = HashMap::new();
    for rs in caches.replicasets.state() {
        if rs.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        if let Some(&i) = controller_uid(&rs.metadata).and_then(|uid| uids.get(uid)) {
            if let Some(uid) = rs.metadata.uid.clone() {
                rs_owner.insert(uid, i);
            }
            replicasets[i].push(rs);
        }
    }
    let mut pods: Vec<Vec<Arc<Pod>>> = vec![Vec::new(); found.len()];
    for pod in caches.pods.state() {
        if pod.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        if let Some(&i) = controller_uid(&pod.metadata).and_then(|uid| rs_owner.get(uid)) {
            pods[i].push(pod);
        }
    }

    let samples = state.metrics.samples(namespace);
    let mut objects: HashSet<(String, String)> = HashSet::new();
    let mut deployments = Vec::with_capacity(found.len());
    for (i, (name, deployment)) in found.iter().enumerate() {
        let Some(deployment) = deployment else {
            deployments.push(enrich::deployment::not_found(name));
            continue;
        };
        let rs: Vec<&ReplicaSet> = replicasets[i].iter().map(Arc::as_ref).collect();
        let pod_refs: Vec<&Pod> = pods[i].iter().map(Arc::as_ref).collect();
        let mut deployment_state = enrich::deployment::state(name, deployment, &rs);
        deployment_state.pods = Some(enrich::pods::summarize(&pod_refs, settings.max_pods));
        deployment_state.usage = enrich::usage::usage(&pod_refs, &samples);
        deployments.push(deployment_state);
        objects.insert(("Deployment".into(), name.clone()));
        objects.extend(
            rs.iter()
                .filter_map(|r| r.metadata.name.clone())
                .map(|n| ("ReplicaSet".to_string(), n)),
        );
        objects.extend(
            pod_refs
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .map(|n| ("Pod".to_string(), n)),
        );
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
    let events = caches.events.state();
    let in_namespace = events
        .iter()
        .map(Arc::as_ref)
        .filter(|e| e.involved_object.namespace.as_deref() == Some(namespace));
    let (events, warnings) =
        enrich::events::summarize(in_namespace, &objects, since, settings.max_events);
    Enrichment {
        deployments,
        events,
        warnings,
        metrics_available: state.metrics.available(),
        truncated,
        queries: None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{
        api::incident::MetricValue,
        policy::{EffectivePolicy, EffectiveQuery},
    };

    fn with_metrics(names: &[&str], age: Duration) -> Incident {
        let mut incident = Incident::new(
            "i",
            api::IncidentSpec {
                title: "t".into(),
                severity: "SEV2".into(),
                phase: Phase::Triggered,
                summary: None,
                commander: None,
                responders: vec![],
                affected: None,
                notes: vec![],
                postmortem: None,
            },
        );
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
