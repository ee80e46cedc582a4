//! Auto-declaration: every few seconds, evaluate the effective policy's
//! signals against the cached workloads (Deployments, StatefulSets,
//! DaemonSets) and Pods of the namespaces that have any, and declare an incident for each firing that no open incident
//! already covers. Reads caches only, through their indexes (a tick costs
//! the governed namespaces' objects, not the cluster's); writes only
//! Incidents it creates.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{ObjectMeta, PostParams},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    api::{
        Incident, IncidentSpec, Phase,
        incident::{Affected, WorkloadKind},
    },
    cluster::{cache::Caches, shards::Shards},
    domain::enrich::pods::PodView,
    domain::enrich::truncate,
    domain::incident::record::STARTED_AT_ANNOTATION,
    domain::policy::selects,
    domain::signals::{self, Firing, MESSAGE_ANNOTATION, SIGNAL_LABEL, Subject},
};

/// How often signals are evaluated; a signal's `for` is minutes, so a few
/// seconds of delay do not matter, and a tick costs only cache reads.
const TICK: Duration = Duration::from_secs(3);

pub async fn run(
    client: Client,
    caches: Caches,
    operator_namespace: String,
    metrics: crate::metrics::Metrics,
    shards: Shards,
    shutdown: CancellationToken,
) {
    // Deciding from half-filled caches could declare what is covered.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        ready = caches.wait_until_ready() => {
            if !ready {
                return;
            }
        }
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Timestamp::now();
        // Another replica declares for the namespaces it owns.
        for namespace in namespaces_with_signals(&caches)
            .into_iter()
            .filter(|ns| shards.owns(ns))
        {
            let policy = caches.effective_policy(&namespace, &operator_namespace);
            for firing in firings(&caches, &namespace, &policy.signals, now) {
                if covered(&caches, &namespace, firing.kind, &firing.workload) {
                    continue;
                }
                if declare(&client, &namespace, &firing).await {
                    metrics.auto_declared.inc();
                }
            }
        }
        metrics.signal_evaluations.inc();
    }
}

/// Namespaces some policy with signals may govern.
fn namespaces_with_signals(caches: &Caches) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = caches
        .policies
        .state()
        .iter()
        .filter(|p| !p.spec.signals.is_empty())
        .filter_map(|p| p.namespace())
        .collect();
    let baselines: Vec<_> = caches
        .cluster_policies
        .state()
        .into_iter()
        .filter(|p| !p.spec.policy.signals.is_empty())
        .collect();
    if !baselines.is_empty() {
        for ns in caches.namespaces.state() {
            let labels = ns.labels().clone();
            if baselines
                .iter()
                .any(|b| selects(b.spec.namespace_selector.as_ref(), &labels))
            {
                out.insert(ns.name_any());
            }
        }
    }
    out
}

fn firings(
    caches: &Caches,
    namespace: &str,
    signals: &[crate::api::policy::Signal],
    now: Timestamp,
) -> Vec<Firing> {
    if signals.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Firing> = Vec::new();
    let mut evaluate = |subject: Subject| {
        for signal in signals {
            if let Some(firing) = signals::evaluate(signal, &subject, now)
                && !out
                    .iter()
                    .any(|f| f.kind == firing.kind && f.workload == firing.workload)
            {
                // One incident per outage, from the first signal that fires.
                out.push(firing);
            }
        }
    };
    for deployment in caches.deployments_in(namespace) {
        let name = deployment.name_any();
        let pods: Vec<Arc<PodView>> = caches
            .replicasets_of(namespace, &name)
            .iter()
            .flat_map(|rs| caches.pods_of(namespace, "ReplicaSet", &rs.name_any()))
            .collect();
        let own: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        evaluate(Subject::deployment(&deployment, &own));
    }
    for set in caches.statefulsets.by_key(namespace) {
        let pods = caches.pods_of(namespace, "StatefulSet", &set.name_any());
        let own: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        evaluate(Subject::statefulset(&set, &own));
    }
    for set in caches.daemonsets.by_key(namespace) {
        let pods = caches.pods_of(namespace, "DaemonSet", &set.name_any());
        let own: Vec<&PodView> = pods.iter().map(Arc::as_ref).collect();
        evaluate(Subject::daemonset(&set, &own));
    }
    out
}

/// Whether an open incident in `namespace` already names the workload.
fn covered(caches: &Caches, namespace: &str, kind: WorkloadKind, name: &str) -> bool {
    caches.incidents_in(namespace).iter().any(|i| {
        i.spec.phase != Phase::Resolved
            && i.spec
                .affected
                .as_ref()
                .is_some_and(|a| a.names(kind, name))
    })
}

/// True when this call created the incident.
async fn declare(client: &Client, namespace: &str, firing: &Firing) -> bool {
    let name = firing.incident_name();
    let mut labels = std::collections::BTreeMap::from([(
        SIGNAL_LABEL.to_string(),
        format!("{:?}", firing.signal),
    )]);
    if firing.workload.len() <= 63 {
        labels.insert(
            signals::workload_label(firing.kind).to_string(),
            firing.workload.clone(),
        );
    }
    let incident = Incident {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(
                [
                    (
                        MESSAGE_ANNOTATION.to_string(),
                        truncate(&firing.message, 1000),
                    ),
                    (STARTED_AT_ANNOTATION.to_string(), firing.since.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: IncidentSpec {
            title: truncate(&firing.title(), 200),
            severity: firing.severity.clone(),
            phase: Phase::Triggered,
            summary: Some(truncate(&firing.message, 4096)),
            commander: None,
            responders: vec![],
            affected: Some(Affected::one(firing.kind, &firing.workload)),
            notes: vec![],
            postmortem: None,
            ..Default::default()
        },
        status: None,
    };
    let api: Api<Incident> = Api::namespaced(client.clone(), namespace);
    match api.create(&PostParams::default(), &incident).await {
        Ok(_) => {
            info!(%namespace, %name, signal = ?firing.signal, "declared an incident from a signal");
            true
        }
        // Declared already, by an earlier tick or another replica.
        Err(kube::Error::Api(status)) if status.code == 409 => false,
        Err(error) => {
            warn!(%namespace, %name, %error, "cannot declare an incident from a signal");
            false
        }
    }
}
