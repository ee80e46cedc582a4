//! CPU and memory from `metrics.k8s.io/v1beta1` PodMetrics. The metrics
//! API cannot be watched, so a poller samples it on an interval, and only
//! in namespaces where open incidents link Deployments. When the API is
//! not served, incidents say so in a condition instead of retrying hot.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::{
    NamespaceResourceScope,
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, ObjectMeta},
    runtime::reflector::ObjectRef,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{
    api::Incident,
    controller::index::Index,
    enrich::usage::{PodSample, parse_quantity},
};

pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// One pod's usage as metrics-server reports it.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PodMetrics {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub timestamp: Option<Time>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

impl Resource for PodMetrics {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "PodMetrics".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "metrics.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[derive(Default)]
struct State {
    available: Option<bool>,
    /// namespace → pod → sample
    samples: HashMap<String, HashMap<String, PodSample>>,
}

/// The latest samples, shared between the poller and the reconciler.
#[derive(Clone, Default)]
pub struct MetricsCache(Arc<RwLock<State>>);

impl MetricsCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the metrics API is served; `None` before the first probe.
    pub fn available(&self) -> Option<bool> {
        self.read().available
    }

    /// The samples of `namespace`'s pods.
    pub fn samples(&self, namespace: &str) -> HashMap<String, PodSample> {
        self.read()
            .samples
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }
}

fn sample(metrics: &PodMetrics) -> PodSample {
    PodSample {
        containers: metrics
            .containers
            .iter()
            .map(|c| {
                let get = |key: &str| {
                    c.usage
                        .get(key)
                        .and_then(|q| parse_quantity(&q.0))
                        .unwrap_or(0.0)
                };
                (c.name.clone(), (get("cpu"), get("memory")))
            })
            .collect(),
        timestamp: metrics.timestamp.as_ref().map(|t| t.0),
    }
}

/// Samples PodMetrics every `interval` until `shutdown`, and sends the
/// Incidents whose usage may have changed to `trigger`.
pub async fn poll(
    client: Client,
    index: Index,
    cache: MetricsCache,
    interval: Duration,
    trigger: UnboundedSender<ObjectRef<Incident>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let namespaces: HashSet<String> = index
            .linked_deployments()
            .into_iter()
            .map(|(ns, _)| ns)
            .collect();
        if namespaces.is_empty() {
            continue;
        }
        let available = match client.list_api_group_resources(GROUP_VERSION).await {
            Ok(list) => list.resources.iter().any(|r| r.name == "pods"),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(error) => {
                warn!(%error, "cannot discover {GROUP_VERSION}; keeping the last known state");
                continue;
            }
        };
        let was = cache.write().available.replace(available);
        if was != Some(available) {
            debug!(available, "metrics API availability changed");
            for incident in index.all() {
                let _ = trigger.unbounded_send(incident);
            }
        }
        if !available {
            cache.write().samples.clear();
            continue;
        }
        for namespace in &namespaces {
            let api: Api<PodMetrics> = Api::namespaced(client.clone(), namespace);
            let list = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                Err(error) => {
                    warn!(%error, namespace, "cannot list PodMetrics");
                    continue;
                }
            };
            let samples: HashMap<String, PodSample> = list
                .items
                .iter()
                .filter_map(|m| Some((m.metadata.name.clone()?, sample(m))))
                .collect();
            let changed = cache.read().samples.get(namespace) != Some(&samples);
            if changed {
                cache.write().samples.insert(namespace.clone(), samples);
                for incident in index.in_namespace(namespace) {
                    let _ = trigger.unbounded_send(incident);
                }
            }
        }
        cache
            .write()
            .samples
            .retain(|ns, _| namespaces.contains(ns));
    }
}
