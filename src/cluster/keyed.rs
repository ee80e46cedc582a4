//! Secondary indexes over a watch cache: objects by a key such as their
//! namespace or their owner, kept up from the watch's own events
//! (delete-aware, rebuilt on a relist), so a lookup costs what it returns,
//! never a walk over the whole store.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use kube::{
    Resource,
    runtime::{reflector::ObjectRef, watcher::Event},
};

/// The keys one object is filed under (often one, sometimes none).
pub type KeyFn<K> = fn(&K) -> Vec<String>;

struct Map<K: Resource<DynamicType = ()>> {
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    keys_of: HashMap<ObjectRef<K>, Vec<String>>,
}

impl<K: Resource<DynamicType = ()>> Default for Map<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Map<K> {
    fn remove(&mut self, reference: &ObjectRef<K>) {
        for key in self.keys_of.remove(reference).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&key) {
                set.remove(reference);
                if set.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, reference: ObjectRef<K>, keys: Vec<String>) {
        if self.keys_of.get(&reference) == Some(&keys) {
            return;
        }
        self.remove(&reference);
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(reference.clone());
        }
        if !keys.is_empty() {
            self.keys_of.insert(reference, keys);
        }
    }
}

struct Inner<K: Resource<DynamicType = ()>> {
    live: Map<K>,
    /// Built during a (re)list, swapped in when it is complete, as the
    /// reflector does with its store.
    relisting: Option<Map<K>>,
}

/// Objects of kind `K` by key. Cheap to clone.
pub struct Keyed<K: Resource<DynamicType = ()>> {
    inner: Arc<RwLock<Inner<K>>>,
    key: KeyFn<K>,
}

impl<K: Resource<DynamicType = ()>> Clone for Keyed<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            key: self.key,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Keyed<K> {
    pub fn new(key: KeyFn<K>) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Inner {
                live: Map::default(),
                relisting: None,
            })),
            key,
        }
    }

    /// Follows one watch event.
    pub fn apply(&self, event: &Event<K>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(object) => {
                let keys = (self.key)(object);
                inner.live.insert(ObjectRef::from_obj(object), keys);
            }
            Event::Delete(object) => inner.live.remove(&ObjectRef::from_obj(object)),
            Event::Init => inner.relisting = Some(Map::default()),
            Event::InitApply(object) => {
                let keys = (self.key)(object);
                inner
                    .relisting
                    .get_or_insert_with(Map::default)
                    .insert(ObjectRef::from_obj(object), keys);
            }
            Event::InitDone => {
                if let Some(fresh) = inner.relisting.take() {
                    inner.live = fresh;
                }
            }
        }
    }

    /// The objects filed under `key`.
    pub fn get(&self, key: &str) -> Vec<ObjectRef<K>> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .live
            .by_key
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many distinct keys are filed (for tests and benchmarks).
    pub fn keys(&self) -> usize {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.live.by_key.len()
    }
}

/// `<namespace>`.
pub fn by_namespace<K: Resource<DynamicType = ()>>(object: &K) -> Vec<String> {
    object.meta().namespace.clone().into_iter().collect()
}

/// `<namespace>/<name of the controlling owner of kind>`.
pub fn owner_key(meta: &kube::api::ObjectMeta, kind: &str) -> Vec<String> {
    let Some(ns) = meta.namespace.as_deref() else {
        return Vec::new();
    };
    meta.owner_references
        .iter()
        .flatten()
        .filter(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| format!("{ns}/{}", o.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(name: &str, ns: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let keyed: Keyed<Pod> = Keyed::new(by_namespace);
        keyed.apply(&Event::Apply(pod("a", "shop")));
        keyed.apply(&Event::Apply(pod("b", "shop")));
        keyed.apply(&Event::Apply(pod("c", "other")));
        assert_eq!(keyed.get("shop").len(), 2);
        keyed.apply(&Event::Delete(pod("a", "shop")));
        assert_eq!(keyed.get("shop"), vec![ObjectRef::new("b").within("shop")]);
        // A relist replaces everything at once, when complete.
        keyed.apply(&Event::Init);
        keyed.apply(&Event::InitApply(pod("d", "shop")));
        assert_eq!(keyed.get("shop").len(), 1, "the old view stands meanwhile");
        keyed.apply(&Event::InitDone);
        assert_eq!(keyed.get("shop"), vec![ObjectRef::new("d").within("shop")]);
        assert!(keyed.get("other").is_empty());
        assert_eq!(keyed.keys(), 1);
    }
}
