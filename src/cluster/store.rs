//! The cache of a kind the cluster has many of (Deployments, ReplicaSets,
//! Pods, Events): each object once, behind an `Arc`, found by name and by
//! one key (its namespace, its owner, the object it is about).
//!
//! kube's reflector store and a separate index cost three `ObjectRef`s per
//! object (each with its name, namespace, uid and resourceVersion copied)
//! before the object itself; here the index holds the object, so a lookup
//! by key returns it with no second map to consult, and a cached object
//! costs its own size plus a few dozen bytes. Like the reflector, a
//! relist builds a fresh map and swaps it in whole when it is complete.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, RwLock},
};

use kube::{Resource, runtime::watcher::Event};
use tokio::sync::watch;

/// The keys one object is filed under (often one, sometimes none).
pub type KeyFn<K> = fn(&K) -> Vec<String>;

/// An object's name, or a key, as the cache files it: a 128-bit
/// fingerprint (two independent 64-bit SipHashes) in 16 bytes, where the
/// text cost 80 or more for every cached object. Telling two objects apart
/// only fails if both halves collide: about one chance in 10^26 for a
/// million objects.
type Id = u128;

fn id(namespace: Option<&str>, name: &str) -> Id {
    // A cluster-scoped object has no namespace; it is looked up with "".
    let namespace = namespace.filter(|ns| !ns.is_empty());
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        (salt, namespace, name).hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

fn key_id(key: &str) -> Id {
    id(None, key)
}

struct Maps<K> {
    /// The fingerprint of `(namespace, name)` → the object.
    by_name: HashMap<Id, Arc<K>>,
    by_key: HashMap<Id, Vec<Arc<K>>>,
}

impl<K> Default for Maps<K> {
    fn default() -> Self {
        Self {
            by_name: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K> Maps<K> {
    fn insert(&mut self, name: Id, object: Arc<K>, key: KeyFn<K>) {
        if let Some(old) = self.by_name.insert(name, object.clone()) {
            self.unfile(&old, key);
        }
        for k in key(&object) {
            self.by_key
                .entry(key_id(&k))
                .or_default()
                .push(object.clone());
        }
    }

    fn remove(&mut self, name: Id, key: KeyFn<K>) {
        if let Some(old) = self.by_name.remove(&name) {
            self.unfile(&old, key);
        }
    }

    fn unfile(&mut self, old: &Arc<K>, key: KeyFn<K>) {
        for k in key(old) {
            let k = key_id(&k);
            if let Some(list) = self.by_key.get_mut(&k) {
                list.retain(|o| !Arc::ptr_eq(o, old));
                if list.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }
}

fn name_of(meta: &kube::api::ObjectMeta) -> Id {
    id(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

struct Inner<K> {
    live: Maps<K>,
    relisting: Option<Maps<K>>,
}

/// A shared, keyed cache of one kind: objects of a watched kind `W`, each
/// stored as the `K` it converts to. Cheap to clone.
pub struct Cache<K> {
    inner: Arc<RwLock<Inner<K>>>,
    key: KeyFn<K>,
    ready: watch::Receiver<bool>,
    ready_tx: Arc<watch::Sender<bool>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key,
            ready: self.ready.clone(),
            ready_tx: self.ready_tx.clone(),
        }
    }
}

impl<K> Cache<K> {
    pub fn new(key: KeyFn<K>) -> Self {
        let (ready_tx, ready) = watch::channel(false);
        Self {
            inner: Arc::new(RwLock::new(Inner {
                live: Maps::default(),
                relisting: None,
            })),
            key,
            ready,
            ready_tx: Arc::new(ready_tx),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows one watch event; `convert` makes what is stored.
    pub fn apply<W: Resource>(&self, event: &Event<W>, convert: impl Fn(&W) -> K) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(object) => {
                let name = name_of(object.meta());
                inner.live.insert(name, Arc::new(convert(object)), self.key);
            }
            Event::Delete(object) => inner.live.remove(name_of(object.meta()), self.key),
            Event::Init => inner.relisting = Some(Maps::default()),
            Event::InitApply(object) => {
                let name = name_of(object.meta());
                inner.relisting.get_or_insert_with(Maps::default).insert(
                    name,
                    Arc::new(convert(object)),
                    self.key,
                );
            }
            Event::InitDone => {
                if let Some(fresh) = inner.relisting.take() {
                    inner.live = fresh;
                }
                drop(inner);
                self.ready_tx.send_replace(true);
            }
        }
    }

    /// The object named `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read()
            .live
            .by_name
            .get(&id(Some(namespace), name))
            .cloned()
    }

    /// The objects filed under `key`.
    pub fn by_key(&self, key: &str) -> Vec<Arc<K>> {
        self.read()
            .live
            .by_key
            .get(&key_id(key))
            .cloned()
            .unwrap_or_default()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read().live.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many distinct keys are filed (for tests and benchmarks).
    pub fn keys(&self) -> usize {
        self.read().live.by_key.len()
    }

    /// Resolves once the first list is complete (true), or when the watch
    /// feeding this cache is gone (false).
    pub async fn wait_until_ready(&self) -> bool {
        let mut ready = self.ready.clone();
        ready.wait_for(|ready| *ready).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cluster::keyed::by_namespace, kinds::Pod};
    use kube::api::ObjectMeta;

    fn pod(name: &str, ns: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            status: Some(crate::kinds::PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn names(list: Vec<Arc<Pod>>) -> Vec<String> {
        let mut names: Vec<String> = list
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn follows_applies_moves_deletes_and_relists() {
        let cache: Cache<Pod> = Cache::new(by_namespace);
        cache.apply(&Event::Init, Pod::clone);
        cache.apply(&Event::InitApply(pod("a", "shop", "Running")), Pod::clone);
        assert!(
            futures::FutureExt::now_or_never(cache.wait_until_ready()).is_none(),
            "not ready before the list is complete"
        );
        cache.apply(&Event::InitDone, Pod::clone);
        assert!(cache.wait_until_ready().await);
        cache.apply(&Event::Apply(pod("b", "shop", "Running")), Pod::clone);
        cache.apply(&Event::Apply(pod("c", "other", "Running")), Pod::clone);
        assert_eq!(names(cache.by_key("shop")), ["a", "b"]);
        // An update replaces the object in its key, not beside it.
        cache.apply(&Event::Apply(pod("b", "shop", "Failed")), Pod::clone);
        assert_eq!(cache.by_key("shop").len(), 2);
        let b = cache.get("shop", "b").expect("b");
        assert_eq!(
            b.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Failed")
        );
        cache.apply(&Event::Delete(pod("a", "shop", "Running")), Pod::clone);
        assert_eq!(names(cache.by_key("shop")), ["b"]);
        assert!(cache.get("shop", "a").is_none());
        // A relist replaces everything at once, when complete.
        cache.apply(&Event::Init, Pod::clone);
        cache.apply(&Event::InitApply(pod("d", "shop", "Running")), Pod::clone);
        assert_eq!(
            names(cache.by_key("shop")),
            ["b"],
            "the old view stands meanwhile"
        );
        cache.apply(&Event::InitDone, Pod::clone);
        assert_eq!(names(cache.by_key("shop")), ["d"]);
        assert!(cache.by_key("other").is_empty());
        assert_eq!((cache.len(), cache.keys()), (1, 1));
    }

    #[test]
    fn an_object_whose_key_changes_moves() {
        fn phase(pod: &Pod) -> Vec<String> {
            pod.status.iter().filter_map(|s| s.phase.clone()).collect()
        }
        let cache: Cache<Pod> = Cache::new(phase);
        cache.apply(&Event::Apply(pod("a", "shop", "Pending")), Pod::clone);
        cache.apply(&Event::Apply(pod("a", "shop", "Running")), Pod::clone);
        assert!(cache.by_key("Pending").is_empty());
        assert_eq!(names(cache.by_key("Running")), ["a"]);
        assert_eq!(cache.keys(), 1);
    }
}
