//! Which changes of a watched object matter to a controller: its spec
//! (generation), its labels, and its coming and going. A status write (the
//! operator's own, mostly) is not one.
//!
//! kube's predicate filters drop a deletion whose generation is unchanged,
//! and an object that left the cache and came back unchanged; this filter
//! lets both through, because it asks the cache whether the object is
//! still there.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    future::ready,
    hash::{Hash, Hasher},
};

use futures::StreamExt;
use kube::{
    Resource,
    runtime::reflector::{ObjectRef, Store},
};

use super::watch::Changes;

/// The part of an object whose change matters.
pub type Fingerprint<K> = fn(&K) -> u64;

/// Passes an object when it is new to the filter, when its fingerprint
/// changed, or when it is no longer in `store` (deleted, or skipped as
/// unreadable).
pub fn meaningful<K>(stream: Changes<K>, store: Store<K>, fingerprint: Fingerprint<K>) -> Changes<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    stream
        .filter(move |item| {
            let pass = match item {
                Err(_) => true,
                Ok(object) => {
                    let reference = ObjectRef::from_obj(object);
                    if store.get(&reference).is_none() {
                        seen.remove(&reference);
                        true
                    } else {
                        let print = fingerprint(object);
                        seen.insert(reference, print) != Some(print)
                    }
                }
            };
            ready(pass)
        })
        .boxed()
}

fn hash(parts: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// An Incident's inputs: its spec, its labels, and the alerts Alertmanager
/// recorded in its status (the one part of the status the incident
/// controller does not write, so it never wakes itself).
pub fn incident_inputs(incident: &crate::api::Incident) -> u64 {
    let meta = &incident.metadata;
    let alerts = incident
        .status
        .as_ref()
        .filter(|s| !s.alerts.is_empty())
        .map(|s| serde_json::to_string(&s.alerts).unwrap_or_default())
        .unwrap_or_default();
    hash((meta.generation, &meta.labels, alerts))
}

/// Spec (generation) only.
pub fn spec<K: Resource>(object: &K) -> u64 {
    hash(object.meta().generation)
}

/// Labels only (namespaces have no spec worth watching).
pub fn labels<K: Resource>(object: &K) -> u64 {
    hash(&object.meta().labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::Incident, domain::incident::testing};
    use kube::runtime::{reflector, watcher::Event};

    fn incident(generation: i64, status: Option<&str>) -> Incident {
        let mut incident = testing::incident(crate::api::Phase::Triggered, "SEV2");
        incident.metadata.generation = Some(generation);
        incident.status = status.map(|s| crate::api::IncidentStatus {
            summary: Some(s.into()),
            ..Default::default()
        });
        incident
    }

    #[tokio::test]
    async fn status_writes_are_not_changes_but_deletions_and_returns_are() {
        let (store, mut writer) = reflector::store::<Incident>();
        let (send, receive) = futures::channel::mpsc::unbounded();
        let mut filtered = meaningful(receive.boxed(), store, incident_inputs);
        let mut step = |event: Event<Incident>, object: Incident| {
            writer.apply_watcher_event(&event);
            send.unbounded_send(Ok(object)).expect("send");
        };
        let passes = |filtered: &mut Changes<Incident>| {
            futures::FutureExt::now_or_never(filtered.next()).is_some()
        };
        step(Event::Apply(incident(1, None)), incident(1, None));
        assert!(passes(&mut filtered), "new");
        step(
            Event::Apply(incident(1, Some("written"))),
            incident(1, Some("written")),
        );
        assert!(!passes(&mut filtered), "a status write is not a change");
        step(Event::Apply(incident(2, None)), incident(2, None));
        assert!(passes(&mut filtered), "a spec change");
        // Gone from the cache (deleted, or skipped as unreadable) ...
        step(Event::Delete(incident(2, None)), incident(2, None));
        assert!(passes(&mut filtered), "a deletion");
        // ... and back unchanged.
        step(Event::Apply(incident(2, None)), incident(2, None));
        assert!(passes(&mut filtered), "a return");
    }
}
