//! The Incident controller: links the affected Deployments, keeps the
//! Incident's status current, and sends its notifications.
//!
//! Each reconcile is observe → plan → execute:
//! - [`observe`] reads the caches through their indexes (never a LIST,
//!   never a whole store);
//! - [`crate::domain::incident::plan`] is pure: the status, the Events, the
//!   deliveries due, any spec action;
//! - [`execute`] writes the status on the condition that the incident is
//!   still the version planned from (a conflict plans again from the fresh
//!   incident), then emits Events, then delivers, then records outcomes.

pub mod execute;
pub mod gate;
pub mod logs;
pub mod observe;
pub mod pacer;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    ResourceExt,
    runtime::{Controller, controller::Action, events::Reporter, reflector::ObjectRef},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};

use self::execute::WriteError;
use super::narrate::Narrator;
use super::{Context, written::Written};
use crate::{
    api::{
        self, Incident,
        incident::{DeliveryState, WorkloadKind},
    },
    cluster::{
        cache::{Caches, Streams},
        changes, index,
        podmetrics::{self, MetricsCache},
    },
    domain::enrich::pods::PodView,
    domain::incident::{self as plan, Observation, outbox::Outcome, pace::Pace},
    health::Health,
    integrations::{notify::Notifier, prometheus::Prometheus, secrets::Secrets},
    kinds::{
        ControllerRevision, DaemonSet, Deployment, Event, Node, PersistentVolumeClaim, Pod,
        ReplicaSet, StatefulSet,
    },
};

pub const CONTROLLER: &str = "incident";
pub const FIELD_MANAGER: &str = "klaxon";

/// The longest a resolved incident waits for its next due time before it
/// is looked at again.
const FROZEN_REFRESH: Duration = Duration::from_secs(3600);

/// How long after shutdown the controller is stopped even if a reconcile
/// or a cache never finishes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the Incident's status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("cannot read the Incident: {0}")]
    Read(#[source] kube::Error),
    #[error("the Incident kept changing while its status was written; trying again")]
    Conflicts,
    #[error("cannot resolve the auto-declared Incident: {0}")]
    Resolve(#[source] kube::Error),
}

impl Error {
    /// The reason used for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::WriteStatus(_) => "WriteStatus",
            Error::Read(_) => "Read",
            Error::Conflicts => "Conflicts",
            Error::Resolve(_) => "Resolve",
        }
    }
}

pub struct State {
    context: Context,
    caches: Caches,
    synced: AtomicBool,
    metrics: MetricsCache,
    narrator: Narrator,
    /// What this operator last wrote, while the cache has not caught up:
    /// planning from it saves a conflict. An optimisation only: every
    /// write is conditional, so a stale entry costs a retry, never an
    /// outcome.
    written: Written<ObjectRef<Incident>, Incident>,
    /// When each incident's status was last written.
    pacer: Arc<pacer::Pacer>,
    notifier: Notifier,
    prometheus: Prometheus,
    /// Why the last attempt of a still-Pending delivery failed, by
    /// incident and key; written with the next attempt.
    errors: Mutex<HashMap<ObjectRef<Incident>, HashMap<String, String>>>,
    /// Wakes the policy status loop.
    policy_status: Arc<tokio::sync::Notify>,
    /// Container logs read for the incidents' evidence.
    logs: Arc<logs::Logs>,
}

impl State {
    fn errors(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Incident>, HashMap<String, String>>> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Failures of this incident's deliveries that are still Pending.
    pub fn delivery_errors(&self, incident: &Incident) -> Vec<(String, String)> {
        let reference = ObjectRef::from_obj(incident);
        let mut errors = self.errors();
        let Some(known) = errors.get_mut(&reference) else {
            return Vec::new();
        };
        let pending: Vec<&str> = incident
            .status
            .iter()
            .flat_map(|s| &s.notifications)
            .filter(|n| n.state == DeliveryState::Pending)
            .filter_map(|n| n.idempotency_key.as_deref())
            .collect();
        known.retain(|key, _| pending.contains(&key.as_str()));
        let out = known.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if known.is_empty() {
            errors.remove(&reference);
        }
        out
    }

    pub fn note_delivery(&self, incident: &Incident, key: &str, outcome: &Outcome) {
        let reference = ObjectRef::from_obj(incident);
        let mut errors = self.errors();
        match outcome {
            Outcome::Failed(error) => {
                errors
                    .entry(reference)
                    .or_default()
                    .insert(key.to_string(), error.clone());
            }
            Outcome::Delivered => {
                if let Some(known) = errors.get_mut(&reference) {
                    known.remove(key);
                }
            }
        }
    }
}

pub async fn run(
    context: Context,
    health: Health,
    caches: Caches,
    streams: Streams,
    secrets: Secrets,
    policy_status: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let client = context.client.clone();
    let metrics = MetricsCache::default();
    let (trigger, triggered) = futures::channel::mpsc::unbounded();
    let pacer = Arc::new(pacer::Pacer::new(context.routine_writes));
    let (gate, due) = gate::Gate::new(pacer.clone(), context.metrics.clone());
    let triggered = {
        let gate = gate.clone();
        triggered.filter_map(move |(incident, pace)| std::future::ready(gate.admit(incident, pace)))
    };
    // A shard gained is reconciled at once, a shard lost lets go of its
    // links: every incident of a shard that changed hands is requeued.
    let handed = {
        let (shards, incidents) = (context.shards.clone(), caches.incidents.clone());
        context.shards.changes().flat_map(move |changed| {
            let refs: Vec<ObjectRef<Incident>> = incidents
                .state()
                .iter()
                .filter(|i| changed.contains(&shards.shard_of(&i.namespace().unwrap_or_default())))
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect();
            futures::stream::iter(refs)
        })
    };
    let triggered = futures::stream::select(futures::stream::select(triggered, handed), due);
    tokio::spawn(podmetrics::poll(
        client.clone(),
        caches.links.clone(),
        metrics.clone(),
        context.metrics_interval,
        trigger.clone(),
        shutdown.clone(),
    ));
    let reporter = Reporter {
        controller: "klaxon".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let state = Arc::new(State {
        context: context.clone(),
        caches: caches.clone(),
        synced: AtomicBool::new(false),
        metrics,
        narrator: Narrator::start(client.clone(), reporter, context.metrics.clone()),
        written: Written::default(),
        pacer,
        notifier: Notifier::new(secrets),
        prometheus: Prometheus::default(),
        errors: Mutex::default(),
        policy_status: policy_status.clone(),
        logs: logs::Logs::new(client.clone(), trigger.clone(), context.metrics.clone()),
    });
    {
        let state = state.clone();
        tokio::spawn(async move {
            if state.caches.wait_until_ready().await {
                // The metrics API probe is quick; do not wait on it forever.
                let deadline = Instant::now() + Duration::from_secs(5);
                while state.metrics.available().is_none() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                state.synced.store(true, Ordering::Release);
                let _ = state
                    .context
                    .metrics
                    .record
                    .incidents
                    .set(state.caches.incidents.clone());
                health.set_ready(true);
            }
        });
    }

    let links = caches.links.clone();
    // A workload wakes the incidents that name it (or select in its
    // namespace); so do the ReplicaSets and ControllerRevisions it owns.
    fn workload<K: kube::Resource>(
        links: &index::Index,
        kind: WorkloadKind,
    ) -> impl Fn(K) -> Vec<ObjectRef<Incident>> + use<K> {
        let links = links.clone();
        move |object: K| match (
            object.meta().namespace.as_deref(),
            object.meta().name.as_deref(),
        ) {
            (Some(ns), Some(name)) => links.for_workload(ns, &kind.key(name)),
            _ => Vec::new(),
        }
    }
    let by_deployment = workload::<Deployment>(&links, WorkloadKind::Deployment);
    let by_statefulset = workload::<StatefulSet>(&links, WorkloadKind::StatefulSet);
    let by_daemonset = workload::<DaemonSet>(&links, WorkloadKind::DaemonSet);
    let by_replicaset = {
        let links = links.clone();
        move |rs: ReplicaSet| match (rs.namespace(), index::deployment_of_replicaset(&rs)) {
            (Some(ns), Some(name)) => links.for_workload(&ns, &name),
            _ => Vec::new(),
        }
    };
    let by_revision = {
        let links = links.clone();
        move |revision: ControllerRevision| {
            let Some(ns) = revision.namespace() else {
                return Vec::new();
            };
            revision
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter_map(|o| Some(WorkloadKind::parse(&o.kind)?.key(&o.name)))
                .flat_map(|key| links.for_workload(&ns, &key))
                .collect::<Vec<_>>()
        }
    };
    // Pods and events wake their incidents through the gate: a routine
    // change waits for the incident's next write slot.
    let by_pod = {
        let (links, caches, gate) = (links.clone(), caches.clone(), gate.clone());
        move |pod: Pod| {
            let view = PodView::of(&pod);
            let (Some(ns), Some(key)) = (
                pod.namespace(),
                index::workload_of_pod(&view, &caches.replicasets),
            ) else {
                return Vec::new();
            };
            let incidents = links.for_workload(&ns, &key);
            if incidents.is_empty() {
                gate.forget_pod(&ns, &view.name);
                return incidents;
            }
            let gone = caches.pods.get(&ns, &view.name).is_none();
            let pace = gate.pod(&view, gone);
            incidents
                .into_iter()
                .filter_map(|incident| gate.admit(incident, pace))
                .collect()
        }
    };
    // A node whose trouble changes (not a heartbeat: the cached node
    // keeps no heartbeat times) wakes the incidents of the pods on it.
    let by_node = {
        let (links, caches) = (links.clone(), caches.clone());
        let seen: Mutex<HashMap<String, api::incident::NodeState>> = Mutex::default();
        move |node: Node| {
            let Some(name) = node.metadata.name.clone() else {
                return Vec::new();
            };
            let now = caches
                .nodes
                .get("", &name)
                .and_then(|n| crate::domain::enrich::nodes::problem(&n, 0));
            let before = {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                match &now {
                    Some(state) => seen.insert(name.clone(), state.clone()),
                    None => seen.remove(&name),
                }
            };
            if before == now {
                return Vec::new();
            }
            incidents_on(&caches, &links, &name)
        }
    };
    // A claim's name does not say whose it is (`<template>-<set>-<n>`):
    // it wakes the namespace's linked incidents, routinely. Claims change
    // seldom.
    let by_claim = {
        let (links, gate) = (links.clone(), gate.clone());
        move |claim: PersistentVolumeClaim| {
            claim
                .namespace()
                .map(|ns| links.in_namespace(&ns))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|incident| gate.admit(incident, Pace::Routine))
                .collect::<Vec<_>>()
        }
    };
    // A node's event wakes the incidents of the pods on it, routinely.
    let by_node_event = {
        let (links, caches, gate) = (links.clone(), caches.clone(), gate.clone());
        move |event: Event| {
            let Some(node) = event.involved_object.name.as_deref() else {
                return Vec::new();
            };
            incidents_on(&caches, &links, node)
                .into_iter()
                .filter_map(|incident| gate.admit(incident, Pace::Routine))
                .collect::<Vec<_>>()
        }
    };
    let by_event = {
        let (links, caches, gate) = (links.clone(), caches.clone(), gate.clone());
        move |event: Event| {
            let ns = event
                .involved_object
                .namespace
                .clone()
                .or_else(|| event.namespace());
            let Some(ns) = ns else {
                return Vec::new();
            };
            let incidents = match workload_of_event(&event, &caches) {
                Some(key) => links.for_workload(&ns, &key),
                // About a claim: whose is not known from it.
                None if event.involved_object.kind.as_deref() == Some("PersistentVolumeClaim") => {
                    links.in_namespace(&ns)
                }
                None => Vec::new(),
            };
            // Warning events are routine in every status.
            incidents
                .into_iter()
                .filter_map(|incident| gate.admit(incident, Pace::Routine))
                .collect()
        }
    };
    // A policy or namespace label change re-evaluates the incidents it
    // governs (predicates keep status writes from waking anything).
    let in_namespace = {
        let caches = caches.clone();
        move |namespace: &str| -> Vec<ObjectRef<Incident>> {
            caches
                .incidents_in(namespace)
                .iter()
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
        move |ns: Namespace| {
            wake.notify_one();
            in_namespace(&ns.name_any())
        }
    };
    let by_cluster_policy = {
        let (incidents, wake) = (caches.incidents.clone(), policy_status.clone());
        move |_: api::ClusterResponsePolicy| {
            wake.notify_one();
            incidents
                .state()
                .iter()
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
        }
    };

    let stop = shutdown.clone();
    // Spec and label changes, arrivals and departures wake an incident; a
    // status write (its own, mostly) does not: the plan depends on the
    // status only through what the last pass wrote. Likewise for policies
    // (whose statuses this operator writes) and namespaces.
    // Every delivered version first tells the written memo the cache
    // caught up.
    let incidents = {
        let state = state.clone();
        streams
            .incidents
            .inspect(move |item| {
                if let Ok(incident) = item {
                    state.written.delivered(
                        &ObjectRef::from_obj(incident),
                        incident.metadata.resource_version.as_deref(),
                    );
                }
            })
            .boxed()
    };
    let incidents = changes::meaningful(
        incidents,
        caches.incidents.clone(),
        changes::incident_inputs,
    );
    let policies = changes::meaningful(streams.policies, caches.policies.clone(), changes::spec);
    let cluster_policies = changes::meaningful(
        streams.cluster_policies,
        caches.cluster_policies.clone(),
        changes::spec,
    );
    let namespaces = changes::meaningful(
        streams.namespaces,
        caches.namespaces.clone(),
        changes::labels,
    );
    Controller::for_stream(incidents, caches.incidents.clone())
        .watches_stream(policies, by_policy)
        .watches_stream(cluster_policies, by_cluster_policy)
        .watches_stream(namespaces, by_namespace)
        .watches_stream(streams.deployments, by_deployment)
        .watches_stream(streams.replicasets, by_replicaset)
        .watches_stream(streams.statefulsets, by_statefulset)
        .watches_stream(streams.daemonsets, by_daemonset)
        .watches_stream(streams.revisions, by_revision)
        .watches_stream(streams.claims, by_claim)
        .watches_stream(streams.nodes, by_node)
        .watches_stream(streams.node_events, by_node_event)
        .watches_stream(streams.pods, by_pod)
        .watches_stream(streams.events, by_event)
        .reconcile_on(triggered)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(state.context.concurrent_reconciles),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, state)
        // Stop for good a little after shutdown, even when a cache never
        // synced (the controller would otherwise wait for it).
        .take_until(async move {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        })
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "reconcile loop");
            }
        })
        .await;
}

/// The incidents that look at the workloads of the pods on `node`.
fn incidents_on(caches: &Caches, links: &index::Index, node: &str) -> Vec<ObjectRef<Incident>> {
    let mut incidents: Vec<ObjectRef<Incident>> = caches
        .pods_on(node)
        .iter()
        .filter_map(|pod| {
            let key = index::workload_of_pod(pod, &caches.replicasets)?;
            Some(links.for_workload(&pod.namespace, &key))
        })
        .flatten()
        .collect();
    incidents.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    incidents.dedup();
    incidents
}

/// The workload a Warning event is about (as a [`WorkloadKind::key`]),
/// directly or through one of its ReplicaSets or Pods.
fn workload_of_event(event: &Event, caches: &Caches) -> Option<String> {
    let object = &event.involved_object;
    let name = object.name.as_deref()?;
    let ns = object
        .namespace
        .as_deref()
        .or(event.metadata.namespace.as_deref())?;
    let kind = object.kind.as_deref()?;
    if let Some(kind) = WorkloadKind::parse(kind) {
        return Some(kind.key(name));
    }
    match kind {
        "ReplicaSet" => match caches.replicasets.get(ns, name) {
            Some(rs) => index::deployment_of_replicaset(&rs),
            None => name.rsplit_once('-').map(|(d, _)| d.to_string()),
        },
        "Pod" => match caches.pods.get(ns, name) {
            Some(pod) => index::workload_of_pod(&pod, &caches.replicasets),
            // <deployment>-<template hash>-<suffix>
            None => name
                .rsplit_once('-')
                .and_then(|(rs, _)| rs.rsplit_once('-'))
                .map(|(d, _)| d.to_string()),
        },
        _ => None,
    }
}

#[instrument(skip_all, fields(namespace = cached.namespace(), name = cached.name_any()))]
async fn reconcile(cached: Arc<Incident>, state: Arc<State>) -> Result<Action, Error> {
    if !state.synced.load(Ordering::Acquire) {
        // Enriching from half-filled caches would report pods as missing.
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    // Another replica's shard: requeued here when this one gains it.
    let (shards, namespace) = (
        &state.context.shards,
        cached.namespace().unwrap_or_default(),
    );
    if !shards.owns(&namespace) {
        state
            .caches
            .links
            .unlink(&ObjectRef::from_obj(cached.as_ref()));
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    // A shard lost mid-pass stops the pass: its next holder may start.
    let result = tokio::select! {
        result = pass(cached, &state) => result,
        () = shards.lost(&namespace) => Ok(Action::await_change()),
    };
    state.context.metrics.observe(CONTROLLER, started.elapsed());
    result
}

/// One pass over one incident: observe, plan, execute.
async fn pass(cached: Arc<Incident>, state: &Arc<State>) -> Result<Action, Error> {
    let state = state.as_ref();
    let reference = ObjectRef::from_obj(cached.as_ref());
    let namespace = cached.namespace().unwrap_or_default();
    // Shared with the cache until a newer version replaces it.
    let mut current: Arc<Incident> = match state
        .written
        .newer_than_cache(&reference, cached.metadata.resource_version.as_deref())
    {
        Some(written) => Arc::new(written),
        None => cached,
    };
    let policy = state
        .caches
        .effective_policy(&namespace, &state.context.namespace);
    let now = Timestamp::now();
    match plan::rest(&current, &policy, now) {
        plan::Rest::Settled => {
            state.caches.links.unlink(&reference);
            state.pacer.forget(&reference);
            return Ok(Action::await_change());
        }
        // Looked at again within the hour anyway: watches can miss things.
        plan::Rest::Until(at) => {
            state.caches.links.unlink(&reference);
            state.pacer.forget(&reference);
            return Ok(Action::requeue(until(at, now).min(FROZEN_REFRESH)));
        }
        plan::Rest::Work => {}
    }
    let trimmed = current
        .annotations()
        .contains_key(crate::cluster::cache::TRIMMED_ANNOTATION);
    if trimmed {
        // The cache keeps a resolved incident without its record.
        match execute::fresh(state, &current).await? {
            Some(full) => current = Arc::new(full),
            None => return Ok(gone(state, &reference)),
        }
    }
    let frozen = current.status.as_ref().is_some_and(plan::frozen);
    let observation = if frozen {
        state.caches.links.unlink(&reference);
        // The record is frozen, but links a person adds still resolve.
        Observation {
            related: observe::related(state, &current, &[]),
            ..Default::default()
        }
    } else {
        observe::observe(state, &current, &policy).await
    };
    let phase_seen = current.status.as_ref().and_then(|s| s.observed_phase);

    // Plan, and write the status on the condition that the incident is
    // still the version planned from; on conflict, plan again.
    let mut conflicts = 0;
    let (written, plan) = loop {
        let plan = plan::plan(
            &current,
            &policy,
            observation.clone(),
            Timestamp::now(),
            &state.context.delivery,
        );
        if current.status.as_ref() == Some(&plan.status) {
            break (current, plan);
        }
        // Routine changes wait for the incident's write interval (they
        // come with no Event, delivery or action); the write that follows
        // carries the newest state.
        let routine = plan.events.is_empty() && plan.deliveries.is_empty() && !plan.resolve;
        if routine
            && let Some(wait) = state.pacer.wait(
                &reference,
                plan::pace::pace(current.status.as_ref(), &plan.status),
            )
        {
            let empty = api::IncidentStatus::default();
            let status = current.status.as_ref().unwrap_or(&empty);
            let wake =
                plan::next_wakeup(status, &current, &policy).map(|at| until(at, Timestamp::now()));
            return Ok(Action::requeue(wake.map_or(wait, |w| w.min(wait))));
        }
        // The write that first records a transition observes it: it was
        // conditional on `current`, so no other did.
        let observe = |written: &Incident| {
            let empty = api::IncidentStatus::default();
            state
                .context
                .metrics
                .record
                .observe(written, current.status.as_ref().unwrap_or(&empty));
        };
        match execute::write_status(state, &current, &plan.status).await {
            Ok(written) => {
                observe(&written);
                break (Arc::new(written), plan);
            }
            Err(WriteError::Conflict) if conflicts < execute::MAX_CONFLICTS => {
                conflicts += 1;
                match execute::fresh(state, &current).await? {
                    Some(fresh) => current = Arc::new(fresh),
                    None => return Ok(gone(state, &reference)),
                }
            }
            Err(WriteError::Conflict) => return Err(Error::Conflicts),
            Err(WriteError::Gone) => return Ok(gone(state, &reference)),
            Err(WriteError::Other(error)) => {
                // The write may have landed with its answer lost: then the
                // incident holds what was planned, and this pass goes on.
                match execute::fresh(state, &current).await {
                    Ok(Some(fresh)) if fresh.status.as_ref() == Some(&plan.status) => {
                        observe(&fresh);
                        break (Arc::new(fresh), plan);
                    }
                    _ => return Err(Error::WriteStatus(error)),
                }
            }
        }
    };

    // Side effects, now that the status records them.
    execute::report(state, &written, plan.events);
    let mut current = written;
    if !plan.deliveries.is_empty() {
        let attempts = execute::deliver(state, &policy, &current, &plan.deliveries).await;
        current = Arc::new(execute::settle(state, Incident::clone(&current), attempts).await?);
    }
    // Open-incident counts on policies change only with a new incident or
    // a phase change; deletions are caught by the policy loop's resync.
    if phase_seen != current.status.as_ref().and_then(|s| s.observed_phase) {
        state.policy_status.notify_one();
    }
    if plan.resolve {
        execute::resolve(state, &current).await?;
    }

    let empty = api::IncidentStatus::default();
    let status = current.status.as_ref().unwrap_or(&empty);
    // A wake-up already past (a slow delivery outlasted the next retry)
    // is due at once, not at the next refresh.
    let wake = plan::next_wakeup(status, &current, &policy).map(|at| until(at, Timestamp::now()));
    let refresh = if frozen {
        // A resolved incident waits for a change or its next due time.
        FROZEN_REFRESH
    } else if !policy.queries.is_empty() {
        state.context.metrics_interval
    } else {
        Duration::from_secs(300)
    };
    Ok(Action::requeue(wake.map_or(refresh, |w| w.min(refresh))))
}

/// How long from `now` until `at`: at least 100 ms, so a wake-up already
/// past is due at once.
fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now))
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(100))
}

/// The incident is gone: it looks at nothing anymore.
fn gone(state: &State, reference: &ObjectRef<Incident>) -> Action {
    state.caches.links.unlink(reference);
    state.pacer.forget(reference);
    Action::await_change()
}

fn error_policy(_: Arc<Incident>, error: &Error, state: Arc<State>) -> Action {
    warn!(%error, "reconcile failed");
    state.context.metrics.failed(CONTROLLER, error.reason());
    // Jittered, so incidents failing together do not retry together.
    Action::requeue(Duration::from_millis(2500 + fastrand::u64(0..5000)))
}
