//! The controllers and what they share: the client, metrics, the caches,
//! the operator's namespace, and which namespaces this replica owns
//! ([`Shards`]: every controller that writes for a namespace asks).
//!
//! - [`incident`]: observe → plan → execute for each Incident, with its
//!   notification outbox;
//! - [`policy`]: the status of ResponsePolicies and ClusterResponsePolicies;
//! - [`signals`]: declares incidents from policy signals;
//! - [`unreadable`]: reports objects the operator cannot read on them.

pub mod alerts;
pub mod incident;
pub mod narrate;
pub mod policy;
pub mod signals;
pub mod unreadable;
pub mod written;

use std::{sync::Arc, time::Duration};

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::{
    cluster::{cache, shards::Shards, watch::Watches},
    domain::incident::Backoff,
    health::Health,
    integrations::secrets::{self, Secrets},
    metrics::Metrics,
};

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    /// Where ClusterResponsePolicy receiver Secrets live.
    pub namespace: String,
    /// How often PodMetrics are sampled and Prometheus queries refreshed.
    pub metrics_interval: Duration,
    /// Incidents reconciled at once.
    pub concurrent_reconciles: u16,
    /// Routine status writes a second, all incidents together.
    pub routine_writes: f64,
    /// How notification deliveries are retried.
    pub delivery: Backoff,
    /// Which Secrets receivers may name.
    pub secrets: secrets::Access,
    /// Where Alertmanager's alerts go in, once the caches exist.
    pub intake: Arc<std::sync::OnceLock<alerts::Intake>>,
    /// The Secret (in `namespace`, key `token`) Alertmanager's bearer
    /// token must match.
    pub alerts_token_secret: String,
    /// Whether Alertmanager's webhook is served (`--alerts-address`).
    pub alerts_enabled: bool,
    /// Which namespaces this replica works on: every controller that
    /// writes for a namespace asks first.
    pub shards: Shards,
}

/// Runs every controller until `shutdown`; marks the operator ready once
/// their caches are synced.
pub async fn run(context: Context, health: Health, shutdown: CancellationToken) {
    let (invalid, unreadable) = futures::channel::mpsc::unbounded();
    let watches = Watches::new(health.clone(), context.metrics.clone(), Some(invalid));
    let (caches, streams) = cache::start(&context.client, &watches);
    let secrets = Secrets::new(context.client.clone(), context.secrets);
    let policy_status = Arc::new(tokio::sync::Notify::new());
    let intake = alerts::Intake {
        client: context.client.clone(),
        caches: caches.clone(),
        secrets: secrets.clone(),
        metrics: context.metrics.clone(),
        namespace: context.namespace.clone(),
        token_secret: context.alerts_token_secret.clone(),
        heartbeats: alerts::Heartbeats::new(context.shards.clone()),
        groups: alerts::Groups::default(),
    };
    if context.alerts_enabled {
        // Heartbeats arrive only through the alerts receiver: without it,
        // every heartbeat would look silent.
        tokio::spawn(alerts::watch_heartbeats(
            intake.clone(),
            context.shards.clone(),
            shutdown.clone(),
        ));
    }
    // Alerts are taken on any replica: declaring (by a name derived from
    // the alert group) and recording (on the resourceVersion read) are
    // both conditional on the apiserver, so two replicas never declare
    // twice or lose an alert, and Alertmanager need not find the owner.
    let _ = context.intake.set(intake);
    {
        // The gauges count only the owned namespaces' incidents, so a sum
        // over replicas counts each once.
        let shards = context.shards.clone();
        let _ = context
            .metrics
            .record
            .scope
            .set(Arc::new(move |namespace: &str| shards.owns(namespace)));
    }
    tokio::spawn(unreadable::run(
        context.client.clone(),
        unreadable,
        context.shards.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(signals::run(
        context.client.clone(),
        caches.clone(),
        context.namespace.clone(),
        context.metrics.clone(),
        context.shards.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(policy::run(
        context.client.clone(),
        caches.clone(),
        secrets.clone(),
        context.namespace.clone(),
        policy_status.clone(),
        context.shards.clone(),
        shutdown.clone(),
    ));
    incident::run(
        context,
        health,
        caches,
        streams,
        secrets,
        policy_status,
        shutdown,
    )
    .await;
}
