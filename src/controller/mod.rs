//! The controllers and what they share: the client, metrics, and the
//! operator's namespace.

pub mod incident;
pub mod index;
pub mod policy;
pub mod signals;
pub mod written;

use std::time::Duration;

use kube::{Client, runtime::reflector::Store};
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, server::Health};

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub metrics: Metrics,
    /// Where ClusterResponsePolicy receiver Secrets live.
    pub namespace: String,
    /// How often PodMetrics are sampled and Prometheus queries refreshed.
    pub metrics_interval: Duration,
    /// How notification deliveries are retried.
    pub delivery: crate::notify::Backoff,
}

/// Runs every controller until `shutdown`; marks the operator ready once
/// their caches are synced.
pub async fn run(context: Context, health: Health, shutdown: CancellationToken) {
    incident::run(context, health, shutdown).await;
}

/// Resolves once `store` has its initial contents (true), or its writer is
/// gone (false). A store wakes only its most recent waiter, and the
/// controller waits on it too, so this polls again on a short timeout.
pub async fn wait_until_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}
