//! CPU and memory from `metrics.k8s.io/v1beta1` PodMetrics. The metrics
//! API cannot be watched, so a poller samples it on an interval, and only
//! in namespaces where open incidents link Deployments. When the API is
//! not served, incidents say so in a condition instead of retrying hot.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{StreamExt, channel::mpsc::UnboundedSender};
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
    cluster::index::Index,
    domain::enrich::usage::{PodSample, PodSamples, parse_quantity},
    domain::incident::pace::Pace,
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
    samples: HashMap<String, Samples>,
}

/// One namespace's samples, by pod.
pub type Samples = Arc<PodSamples>;

/// The latest samples, shared between the poller and the reconciler.
#[derive(Clone, Default)]
pub struct MetricsCache {
    state: Arc<RwLock<State>>,
    /// Told whenever a round ends a namespace's listing, sampled or not.
    listed: Arc<tokio::sync::Notify>,
}

impl MetricsCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits at most `bound` for `namespace`'s first sample, when the
    /// metrics API is served and the namespace has none yet; returns at
    /// once otherwise. A fresh incident's first status then carries CPU
    /// and memory in the same write instead of a second one a moment
    /// later; a slow or failing metrics API delays it by `bound` only.
    pub async fn first_sample(&self, namespace: &str, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let listed = self.listed.notified();
            futures::pin_mut!(listed);
            // Registered before the check, so a sample landing between
            // the check and the wait is not missed.
            listed.as_mut().enable();
            {
                let state = self.read();
                if state.available != Some(true) || state.samples.contains_key(namespace) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, listed).await.is_err() {
                return;
            }
        }
    }

    /// Wakes [`Self::first_sample`]'s waiters.
    fn listed(&self) {
        self.listed.notify_waiters();
    }

    /// Whether the metrics API is served; `None` before the first probe.
    pub fn available(&self) -> Option<bool> {
        self.read().available
    }

    /// The samples of `namespace`'s pods (shared, not copied: a reconcile
    /// reads a few of them).
    pub fn samples(&self, namespace: &str) -> Samples {
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
                (crate::kinds::shared(&c.name), get("cpu"), get("memory"))
            })
            .collect(),
        timestamp: metrics.timestamp.as_ref().map(|t| t.0),
    }
}

/// How many namespaces' PodMetrics are listed at once.
const PARALLEL_LISTS: usize = 8;

/// Samples PodMetrics every `interval` until `shutdown`, and sends the
/// Incidents whose usage may have changed to `trigger`.
pub async fn poll(
    client: Client,
    index: Index,
    cache: MetricsCache,
    interval: Duration,
    trigger: UnboundedSender<(ObjectRef<Incident>, Pace)>,
    shutdown: CancellationToken,
) {
    // Known before the first reconcile, so a fresh incident's conditions
    // do not flip from Unknown a moment later.
    if let Some(available) = discover(&client).await {
        cache.write().available = Some(available);
    }
    let poller = Poller {
        client,
        index,
        cache,
        trigger,
    };
    // Every namespace on the interval; a newly linked one at once, so a
    // fresh incident shows usage within a second, not an interval. The two
    // run side by side: a full round over hundreds of namespaces must not
    // hold up a fresh incident's first sample.
    let periodic = async {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => poller.round(true).await,
            }
        }
    };
    let fresh = async {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = poller.index.namespace_linked() => poller.round(false).await,
            }
        }
    };
    tokio::join!(periodic, fresh);
}

/// What one sampling round needs.
struct Poller {
    client: Client,
    index: Index,
    cache: MetricsCache,
    trigger: UnboundedSender<(ObjectRef<Incident>, Pace)>,
}

impl Poller {
    /// Samples every linked namespace (`full`), or those not sampled yet.
    async fn round(&self, full: bool) {
        let Poller {
            client,
            index,
            cache,
            trigger,
        } = self;
        let linked = index.linked_namespaces();
        let namespaces: Vec<String> = if full {
            linked.iter().cloned().collect()
        } else {
            let cache = cache.read();
            linked
                .iter()
                .filter(|ns| !cache.samples.contains_key(*ns))
                .cloned()
                .collect()
        };
        if namespaces.is_empty() {
            return;
        }
        let known = cache.read().available;
        let available = match known {
            Some(available) if !full => available,
            _ => match discover(client).await {
                Some(available) => available,
                None => return,
            },
        };
        let was = cache.write().available.replace(available);
        if was != Some(available) {
            debug!(available, "metrics API availability changed");
            for incident in index.all() {
                let _ = trigger.unbounded_send((incident, Pace::Urgent));
            }
        }
        if !available {
            cache.write().samples.clear();
            cache.listed();
            return;
        }
        let lists = futures::stream::iter(namespaces)
            .map(|namespace: String| {
                let api: Api<PodMetrics> = Api::namespaced(client.clone(), &namespace);
                async move {
                    // Any recent version will do for usage: the apiserver
                    // answers from its cache without a consistency check
                    // (metrics-server ignores it).
                    let list = api.list(&ListParams::default().match_any()).await;
                    (namespace, list)
                }
            })
            .buffer_unordered(PARALLEL_LISTS);
        futures::pin_mut!(lists);
        while let Some((namespace, list)) = lists.next().await {
            let list = match list {
                Ok(list) => list,
                Err(error) => {
                    warn!(%error, %namespace, "cannot list PodMetrics");
                    cache.listed();
                    continue;
                }
            };
            let samples: PodSamples = list
                .items
                .iter()
                .filter_map(|m| Some((m.metadata.name.as_deref()?, sample(m))))
                .collect();
            let before = cache.read().samples.get(&namespace).cloned();
            if before.as_deref() != Some(&samples) {
                // The first sample is news (urgent); a new value, routine.
                let pace = if before.is_none() {
                    Pace::Urgent
                } else {
                    Pace::Routine
                };
                let incidents = index.in_namespace(&namespace);
                // Samples first: the reconciles triggered below read them.
                cache.write().samples.insert(namespace, Arc::new(samples));
                for incident in incidents {
                    let _ = trigger.unbounded_send((incident, pace));
                }
            }
            cache.listed();
        }
        if full {
            // Linked now, not when the round began: the other loop may have
            // sampled a namespace linked meanwhile.
            let linked = index.linked_namespaces();
            cache.write().samples.retain(|ns, _| linked.contains(ns));
        }
    }
}

/// Whether metrics.k8s.io serves PodMetrics; `None` when discovery failed
/// for another reason, so the last known state stands.
async fn discover(client: &Client) -> Option<bool> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Some(list.resources.iter().any(|r| r.name == "pods")),
        Err(kube::Error::Api(status)) if status.code == 404 => Some(false),
        Err(error) => {
            warn!(%error, "cannot discover {GROUP_VERSION}; keeping the last known state");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> MetricsCache {
        let cache = MetricsCache::default();
        cache.write().available = Some(true);
        cache
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_namespace_waits_for_its_first_sample_and_no_longer() {
        let bound = Duration::from_millis(300);
        // Sampled 100 ms in: the wait ends then, not at the bound.
        let cache = served();
        let poller = cache.clone();
        let sampled = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Another namespace's listing wakes the waiter, which waits on.
            poller.listed();
            tokio::time::sleep(Duration::from_millis(50)).await;
            poller
                .write()
                .samples
                .insert("shop".into(), Arc::new(PodSamples::default()));
            poller.listed();
        });
        let at = tokio::time::Instant::now();
        cache.first_sample("shop", bound).await;
        assert_eq!(at.elapsed(), Duration::from_millis(150));
        sampled.await.expect("sampler");
        // Sampled already: no wait at all.
        let at = tokio::time::Instant::now();
        cache.first_sample("shop", bound).await;
        assert_eq!(at.elapsed(), Duration::ZERO);
        // Never sampled (the listing keeps failing): the bound, once.
        let at = tokio::time::Instant::now();
        cache.first_sample("search", bound).await;
        assert_eq!(at.elapsed(), bound);
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_where_the_metrics_api_is_not_served() {
        for available in [None, Some(false)] {
            let cache = MetricsCache::default();
            cache.write().available = available;
            let at = tokio::time::Instant::now();
            cache.first_sample("shop", Duration::from_millis(300)).await;
            assert_eq!(at.elapsed(), Duration::ZERO, "{available:?}");
        }
    }
}
