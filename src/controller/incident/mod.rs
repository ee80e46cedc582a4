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
use tracing::{debug, instrument, warn};

use self::status::Enrichment;
use super::{
    Context,
    index::{self, Index},
    written::Written,
};
use crate::{
    api::{self, Incident, Phase, limits::MAX_LINKED_DEPLOYMENTS},
    cache::{self, Caches},
    enrich,
    podmetrics::{self, MetricsCache},
    server::Health,
};

pub const CONTROLLER: &str = "incident";
pub const FIELD_MANAGER: &str = "klaxon";

/// Enrichment settings; policies (ResponsePolicy) refine them.
#[derive(Clone, Debug)]
pub struct Settings {
    pub event_lookback: Duration,
    pub max_pods: usize,
    pub max_events: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            event_lookback: Duration::from_secs(3600),
            max_pods: 20,
            max_events: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the Incident's status: {0}")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    /// The reason used for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::PatchStatus(_) => "PatchStatus",
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
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "klaxon".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let state = Arc::new(State {
        context,
        caches: caches.clone(),
        synced: AtomicBool::new(false),
        index: index.clone(),
        metrics,
        recorder,
        written: Written::default(),
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

    controller
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
    let name = incident.name_any();
    let reference = ObjectRef::from_obj(incident.as_ref());
    let settings = Settings::default();
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
        gather(&state, &incident, &namespace, &names, &settings, truncated)
    };

    // Compute.
    let computed = status::compute(&incident, enrichment, Timestamp::now());

    // Apply.
    if incident.status.as_ref() != Some(&computed.status) {
        let api: Api<Incident> = Api::namespaced(state.context.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": api::API_VERSION,
            "kind": "Incident",
            "status": computed.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::PatchStatus)?;
        state.written.record(
            reference.clone(),
            incident.metadata.resource_version.clone(),
            computed.status.clone(),
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            let changed = changed_fields(incident.status.as_ref(), &computed.status);
            debug!(?changed, "status updated");
        }
    }

    // Report.
    let object = incident.object_ref(&());
    for transition in computed.transitions {
        let event = Event {
            type_: EventType::Normal,
            reason: transition.reason.clone(),
            note: Some(enrich::truncate(&transition.message, 1000)),
            action: transition.action,
            secondary: None,
        };
        if let Err(error) = state.recorder.publish(&event, &object).await {
            warn!(%error, "cannot publish an Event");
        }
    }
    state.context.metrics.observe(CONTROLLER, started.elapsed());
    Ok(Action::requeue(Duration::from_secs(300)))
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
    }
}
