//! Which open Incidents look at which workloads, so a changed Pod,
//! ReplicaSet, workload or Event wakes exactly the Incidents it concerns.
//! Workloads are named by [`WorkloadKind::key`]: a Deployment by its name,
//! the other kinds as `statefulset/<name>`.
//! The Incident reconciler keeps it current; watch mappers read it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use kube::runtime::reflector::ObjectRef;

use super::store::Cache;
use crate::{
    api::{Incident, incident::WorkloadKind},
    domain::enrich::pods::PodView,
    kinds::ReplicaSet,
};

type Key = (String, String); // (namespace, workload key)

#[derive(Default)]
struct Inner {
    by_deployment: HashMap<Key, HashSet<ObjectRef<Incident>>>,
    /// Incidents with a selector entry, per namespace: any Deployment
    /// change there may change what they match.
    by_selector_namespace: HashMap<String, HashSet<ObjectRef<Incident>>>,
    linked: HashMap<ObjectRef<Incident>, (Vec<Key>, Option<String>)>,
    /// Incidents linked to anything, per namespace.
    by_namespace: HashMap<String, HashSet<ObjectRef<Incident>>>,
}

#[derive(Clone, Default)]
pub struct Index(Arc<RwLock<Inner>>, Arc<tokio::sync::Notify>);

impl Index {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that `incident` looks at `deployments` in `namespace`, and
    /// whether it selects Deployments by label.
    pub fn link(
        &self,
        incident: ObjectRef<Incident>,
        namespace: &str,
        deployments: &[String],
        selects: bool,
    ) {
        let keys: Vec<Key> = deployments
            .iter()
            .map(|name| (namespace.to_string(), name.clone()))
            .collect();
        let selector_ns = selects.then(|| namespace.to_string());
        let mut inner = self.write();
        if inner.linked.get(&incident) == Some(&(keys.clone(), selector_ns.clone())) {
            return;
        }
        Self::unlink_locked(&mut inner, &incident);
        for key in &keys {
            inner
                .by_deployment
                .entry(key.clone())
                .or_default()
                .insert(incident.clone());
        }
        if let Some(ns) = &selector_ns {
            inner
                .by_selector_namespace
                .entry(ns.clone())
                .or_default()
                .insert(incident.clone());
        }
        let links_something = !keys.is_empty() || selector_ns.is_some();
        let new_namespace = links_something && !inner.by_namespace.contains_key(namespace);
        if links_something {
            inner
                .by_namespace
                .entry(namespace.to_string())
                .or_default()
                .insert(incident.clone());
        }
        inner.linked.insert(incident, (keys, selector_ns));
        if new_namespace {
            // Keeps a permit when nobody waits, so no link is missed.
            self.1.notify_one();
        }
    }

    /// Resolves when an Incident was linked in a namespace that had none.
    pub async fn namespace_linked(&self) {
        self.1.notified().await
    }

    /// Forgets `incident` (resolved or deleted): nothing wakes it anymore.
    pub fn unlink(&self, incident: &ObjectRef<Incident>) {
        Self::unlink_locked(&mut self.write(), incident);
    }

    /// Forgets every incident not in `present` (a relist is the truth:
    /// an incident deleted while the watch was down has no Delete event).
    pub fn retain(&self, present: &HashSet<ObjectRef<Incident>>) {
        let mut inner = self.write();
        let gone: Vec<ObjectRef<Incident>> = inner
            .linked
            .keys()
            .filter(|incident| !present.contains(*incident))
            .cloned()
            .collect();
        for incident in gone {
            Self::unlink_locked(&mut inner, &incident);
        }
    }

    fn unlink_locked(inner: &mut Inner, incident: &ObjectRef<Incident>) {
        if let Some(ns) = incident.namespace.as_deref()
            && let Some(set) = inner.by_namespace.get_mut(ns)
        {
            set.remove(incident);
            if set.is_empty() {
                inner.by_namespace.remove(ns);
            }
        }
        if let Some((keys, selector_ns)) = inner.linked.remove(incident) {
            for key in keys {
                if let Some(set) = inner.by_deployment.get_mut(&key) {
                    set.remove(incident);
                    if set.is_empty() {
                        inner.by_deployment.remove(&key);
                    }
                }
            }
            if let Some(ns) = selector_ns
                && let Some(set) = inner.by_selector_namespace.get_mut(&ns)
            {
                set.remove(incident);
                if set.is_empty() {
                    inner.by_selector_namespace.remove(&ns);
                }
            }
        }
    }

    /// Incidents that look at the workload `key` names in `namespace`.
    pub fn for_workload(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Incident>> {
        let inner = self.read();
        let named = inner
            .by_deployment
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten();
        let selecting = inner
            .by_selector_namespace
            .get(namespace)
            .into_iter()
            .flatten();
        let unique: HashSet<&ObjectRef<Incident>> = named.chain(selecting).collect();
        unique.into_iter().cloned().collect()
    }

    /// Namespaces with a linked Deployment or a selecting Incident.
    pub fn linked_namespaces(&self) -> HashSet<String> {
        self.read().by_namespace.keys().cloned().collect()
    }

    /// Incidents linked to anything in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<ObjectRef<Incident>> {
        self.read()
            .by_namespace
            .get(namespace)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn all(&self) -> Vec<ObjectRef<Incident>> {
        self.read().linked.keys().cloned().collect()
    }
}

/// The Deployment that owns a ReplicaSet.
pub fn deployment_of_replicaset(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "Deployment" && o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// The workload behind a Pod, as a [`WorkloadKind::key`]: its StatefulSet
/// or DaemonSet, or the Deployment of its ReplicaSet, from the cache when
/// the ReplicaSet is there, else from the ReplicaSet's name, which the
/// Deployment controller forms as `<deployment>-<pod-template-hash>`.
pub fn workload_of_pod(pod: &PodView, replicasets: &Cache<ReplicaSet>) -> Option<String> {
    let owner = pod.owner.as_ref()?;
    if let Some(kind) = WorkloadKind::parse(owner.kind.as_str()) {
        return Some(kind.key(&owner.name));
    }
    match replicasets.get(&pod.namespace, &owner.name) {
        Some(rs) => deployment_of_replicaset(&rs),
        None => owner
            .name
            .rsplit_once('-')
            .map(|(deployment, _)| deployment.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(name: &str) -> ObjectRef<Incident> {
        ObjectRef::new(name).within("shop")
    }

    #[test]
    fn maps_deployments_to_incidents_and_forgets_unlinked_ones() {
        let index = Index::default();
        index.link(incident("a"), "shop", &["checkout".into()], false);
        index.link(incident("b"), "shop", &["ledger".into()], true);
        assert_eq!(
            index.for_workload("shop", "checkout").len(),
            2,
            "b selects by label"
        );
        assert_eq!(index.for_workload("shop", "ledger"), vec![incident("b")]);
        assert!(index.for_workload("decoy", "checkout").is_empty());
        index.link(incident("a"), "shop", &["payments".into()], false);
        assert_eq!(index.for_workload("shop", "checkout"), vec![incident("b")]);
        index.unlink(&incident("b"));
        assert!(index.for_workload("shop", "checkout").is_empty());
        assert_eq!(index.linked_namespaces(), HashSet::from(["shop".into()]));
        index.unlink(&incident("a"));
        assert!(index.linked_namespaces().is_empty());
    }

    #[test]
    fn a_relist_forgets_incidents_that_are_gone() {
        let index = Index::default();
        index.link(incident("a"), "shop", &["checkout".into()], false);
        index.link(incident("b"), "shop", &["ledger".into()], false);
        index.retain(&HashSet::from([incident("b")]));
        assert!(index.for_workload("shop", "checkout").is_empty());
        assert_eq!(index.in_namespace("shop"), vec![incident("b")]);
    }

    #[test]
    fn a_selector_alone_links_its_namespace_and_wakes_the_poller() {
        let index = Index::default();
        index.link(incident("a"), "shop", &[], true);
        assert_eq!(index.linked_namespaces(), HashSet::from(["shop".into()]));
        // The permit was stored although nobody waited yet.
        let woken = index.namespace_linked();
        futures::pin_mut!(woken);
        assert!(futures::FutureExt::now_or_never(woken).is_some());
        // A second incident in the same namespace is not news.
        index.link(incident("b"), "shop", &["checkout".into()], false);
        let again = index.namespace_linked();
        futures::pin_mut!(again);
        assert!(futures::FutureExt::now_or_never(again).is_none());
    }
}
