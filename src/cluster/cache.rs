//! Shared watch caches for the objects the controllers read. Each is one
//! watch for the whole cluster (see [`super::watch`]), feeding a reflector
//! store and the indexes over it; objects are trimmed to what the
//! operator uses before they are stored, so memory stays flat as the
//! cluster grows. Reconciles read these through the indexes, never LIST
//! and never walk a whole store.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Event, Namespace, Pod},
};
use kube::{
    Api, Client,
    runtime::{
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use super::{
    index::Index,
    keyed::{self, Keyed},
    watch::{Changes, Watches, reflect},
};
use crate::{
    api::{ClusterResponsePolicy, Incident, ResponsePolicy},
    domain::enrich::deployment::REVISION_ANNOTATION,
};

/// Readers of every cache, and the indexes over them.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<Deployment>,
    /// Deployments by namespace (selectors, signals).
    pub deployments_by_namespace: Keyed<Deployment>,
    pub replicasets: Store<ReplicaSet>,
    /// ReplicaSets by `<namespace>/<owning Deployment>`.
    pub replicasets_by_owner: Keyed<ReplicaSet>,
    pub pods: Store<Pod>,
    /// Pods by `<namespace>/<owning ReplicaSet>`.
    pub pods_by_owner: Keyed<Pod>,
    pub events: Store<Event>,
    /// Warning events by `<namespace>/<kind>/<name>` of their object.
    pub events_by_object: Keyed<Event>,
    pub policies: Store<ResponsePolicy>,
    pub policies_by_namespace: Keyed<ResponsePolicy>,
    pub cluster_policies: Store<ClusterResponsePolicy>,
    pub namespaces: Store<Namespace>,
    pub incidents: Store<Incident>,
    pub incidents_by_namespace: Keyed<Incident>,
    /// Which open incidents look at which Deployments.
    pub links: Index,
}

/// The change streams behind the caches. Polling them keeps the caches
/// current; each item is an object that changed.
pub struct Streams {
    pub deployments: Changes<Deployment>,
    pub replicasets: Changes<ReplicaSet>,
    pub pods: Changes<Pod>,
    pub events: Changes<Event>,
    pub policies: Changes<ResponsePolicy>,
    pub cluster_policies: Changes<ClusterResponsePolicy>,
    pub namespaces: Changes<Namespace>,
    pub incidents: Changes<Incident>,
}

/// Watches every kind the operator reads, once for the whole cluster.
pub fn start(client: &Client, watches: &Watches) -> (Caches, Streams) {
    let all = || watcher::Config::default();
    let links = Index::default();

    let deployments_by_namespace = Keyed::new(keyed::by_namespace::<Deployment>);
    let (deployments, deployments_stream) = reflect(
        Api::all(client.clone()),
        all(),
        trim_deployment,
        feed(&deployments_by_namespace),
        watches,
    );
    let replicasets_by_owner =
        Keyed::new(|rs: &ReplicaSet| keyed::owner_key(&rs.metadata, "Deployment"));
    let (replicasets, replicasets_stream) = reflect(
        Api::all(client.clone()),
        all(),
        trim_replicaset,
        feed(&replicasets_by_owner),
        watches,
    );
    let pods_by_owner = Keyed::new(|pod: &Pod| keyed::owner_key(&pod.metadata, "ReplicaSet"));
    let (pods, pods_stream) = reflect(
        Api::all(client.clone()),
        all(),
        trim_pod,
        feed(&pods_by_owner),
        watches,
    );
    let events_by_object = Keyed::new(event_key);
    let (events, events_stream) = reflect(
        Api::all(client.clone()),
        all().fields("type=Warning"),
        trim_event,
        feed(&events_by_object),
        watches,
    );
    let policies_by_namespace = Keyed::new(keyed::by_namespace::<ResponsePolicy>);
    let (policies, policies_stream) = reflect(
        Api::all(client.clone()),
        all(),
        |p: &mut ResponsePolicy| p.metadata.managed_fields = None,
        feed(&policies_by_namespace),
        watches,
    );
    let (cluster_policies, cluster_policies_stream) = reflect(
        Api::all(client.clone()),
        all(),
        |p: &mut ClusterResponsePolicy| p.metadata.managed_fields = None,
        |_: &watcher::Event<ClusterResponsePolicy>| {},
        watches,
    );
    let (namespaces, namespaces_stream) = reflect(
        Api::all(client.clone()),
        all(),
        trim_namespace,
        |_: &watcher::Event<Namespace>| {},
        watches,
    );
    let incidents_by_namespace = Keyed::new(keyed::by_namespace::<Incident>);
    let (incidents, incidents_stream) = {
        let (by_namespace, links) = (incidents_by_namespace.clone(), links.clone());
        let relisted = std::sync::Mutex::new(std::collections::HashSet::new());
        reflect(
            Api::all(client.clone()),
            all(),
            trim_incident,
            move |event: &watcher::Event<Incident>| {
                by_namespace.apply(event);
                // A deleted incident looks at nothing anymore; after a
                // relist, neither does one that was not listed.
                let mut relisted = relisted.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    watcher::Event::Delete(incident) => {
                        links.unlink(&ObjectRef::from_obj(incident));
                    }
                    watcher::Event::Init => relisted.clear(),
                    watcher::Event::InitApply(incident) => {
                        relisted.insert(ObjectRef::from_obj(incident));
                    }
                    watcher::Event::InitDone => links.retain(&std::mem::take(&mut *relisted)),
                    watcher::Event::Apply(_) => {}
                }
            },
            watches,
        )
    };
    (
        Caches {
            deployments,
            deployments_by_namespace,
            replicasets,
            replicasets_by_owner,
            pods,
            pods_by_owner,
            events,
            events_by_object,
            policies,
            policies_by_namespace,
            cluster_policies,
            namespaces,
            incidents,
            incidents_by_namespace,
            links,
        },
        Streams {
            deployments: deployments_stream,
            replicasets: replicasets_stream,
            pods: pods_stream,
            events: events_stream,
            policies: policies_stream,
            cluster_policies: cluster_policies_stream,
            namespaces: namespaces_stream,
            incidents: incidents_stream,
        },
    )
}

/// Keeps `index` current from a watch's events.
fn feed<K>(index: &Keyed<K>) -> impl Fn(&watcher::Event<K>) + Send + Sync + 'static
where
    K: kube::Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let index = index.clone();
    move |event| index.apply(event)
}

/// `<namespace>/<kind>/<name>` of the object an Event is about.
pub fn event_key(event: &Event) -> Vec<String> {
    let object = &event.involved_object;
    let namespace = object
        .namespace
        .as_deref()
        .or(event.metadata.namespace.as_deref());
    match (namespace, object.kind.as_deref(), object.name.as_deref()) {
        (Some(ns), Some(kind), Some(name)) => vec![object_key(ns, kind, name)],
        _ => Vec::new(),
    }
}

pub fn object_key(namespace: &str, kind: &str, name: &str) -> String {
    format!("{namespace}/{kind}/{name}")
}

impl Caches {
    /// Waits until every cache holds its initial list.
    pub async fn wait_until_ready(&self) -> bool {
        use self::wait_until_ready as ready;
        ready(&self.deployments).await
            && ready(&self.replicasets).await
            && ready(&self.pods).await
            && ready(&self.events).await
            && ready(&self.policies).await
            && ready(&self.cluster_policies).await
            && ready(&self.namespaces).await
            && ready(&self.incidents).await
    }

    /// A namespace's labels (empty when it is not cached).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// The objects `index` files under `key`, from `store`.
    pub fn lookup<K>(store: &Store<K>, index: &Keyed<K>, key: &str) -> Vec<Arc<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        index
            .get(key)
            .iter()
            .filter_map(|reference| store.get(reference))
            .collect()
    }

    /// The namespace's Deployments.
    pub fn deployments_in(&self, namespace: &str) -> Vec<Arc<Deployment>> {
        Self::lookup(&self.deployments, &self.deployments_by_namespace, namespace)
    }

    /// The ReplicaSets a Deployment controls.
    pub fn replicasets_of(&self, namespace: &str, deployment: &str) -> Vec<Arc<ReplicaSet>> {
        Self::lookup(
            &self.replicasets,
            &self.replicasets_by_owner,
            &format!("{namespace}/{deployment}"),
        )
    }

    /// The Pods a ReplicaSet controls.
    pub fn pods_of(&self, namespace: &str, replicaset: &str) -> Vec<Arc<Pod>> {
        Self::lookup(
            &self.pods,
            &self.pods_by_owner,
            &format!("{namespace}/{replicaset}"),
        )
    }

    /// The Warning events about one object.
    pub fn events_about(&self, namespace: &str, kind: &str, name: &str) -> Vec<Arc<Event>> {
        Self::lookup(
            &self.events,
            &self.events_by_object,
            &object_key(namespace, kind, name),
        )
    }

    /// The namespace's Incidents.
    pub fn incidents_in(&self, namespace: &str) -> Vec<Arc<Incident>> {
        Self::lookup(&self.incidents, &self.incidents_by_namespace, namespace)
    }

    /// The effective policy of `namespace`, from the caches.
    pub fn effective_policy(
        &self,
        namespace: &str,
        operator_namespace: &str,
    ) -> crate::domain::policy::EffectivePolicy {
        let labels = self.namespace_labels(namespace);
        let cluster_policies = self.cluster_policies.state();
        let baselines = crate::domain::policy::baselines_for(
            cluster_policies.iter().map(|p| p.as_ref()),
            &labels,
        );
        let policies = Self::lookup(&self.policies, &self.policies_by_namespace, namespace);
        let (team, _) = crate::domain::policy::primary(policies.iter().map(|p| p.as_ref()));
        crate::domain::policy::effective(
            namespace,
            &baselines,
            team,
            labels
                .get(crate::domain::policy::TEAM_LABEL)
                .map(String::as_str),
            operator_namespace,
        )
    }
}

/// Marks an Incident whose cached copy was trimmed: resolved, its record
/// frozen, kept in the cache without its evidence. Never written back.
pub const TRIMMED_ANNOTATION: &str = "klaxon.dev/cache-trimmed";

/// Incidents: managed fields dropped; a resolved incident keeps only what
/// decides whether it needs a reconcile at all (the evidence record stays
/// in the API, read with a GET when a spec change needs it).
pub fn trim_incident(incident: &mut Incident) {
    incident.metadata.managed_fields = None;
    let Some(status) = incident.status.as_mut() else {
        return;
    };
    let pending = status
        .notifications
        .iter()
        .any(|n| n.state == crate::api::incident::DeliveryState::Pending);
    if status.resolved_at.is_none() || pending {
        return;
    }
    *status = crate::api::IncidentStatus {
        observed_generation: status.observed_generation,
        resolved_at: status.resolved_at.take(),
        declared_at: status.declared_at.take(),
        team: status.team.take(),
        ..Default::default()
    };
    incident
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(TRIMMED_ANNOTATION.into(), "true".into());
}

fn trim_meta(meta: &mut kube::api::ObjectMeta, keep_annotations: &[&str]) {
    meta.managed_fields = None;
    meta.finalizers = None;
    meta.generate_name = None;
    if let Some(annotations) = meta.annotations.take() {
        let kept: BTreeMap<String, String> = annotations
            .into_iter()
            .filter(|(k, _)| keep_annotations.contains(&k.as_str()))
            .collect();
        meta.annotations = (!kept.is_empty()).then_some(kept);
    }
}

/// Keeps the pod template's containers (name, image, resources) only.
fn trim_pod_spec(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let containers = std::mem::take(&mut spec.containers);
    let init = spec.init_containers.take();
    *spec = Default::default();
    let slim = |c: k8s_openapi::api::core::v1::Container| k8s_openapi::api::core::v1::Container {
        name: c.name,
        image: c.image,
        resources: c.resources,
        ..Default::default()
    };
    spec.containers = containers.into_iter().map(slim).collect();
    spec.init_containers = init.map(|list| list.into_iter().map(slim).collect());
}

/// Namespaces: name and labels are all policies read.
fn trim_namespace(ns: &mut Namespace) {
    ns.metadata.managed_fields = None;
    ns.metadata.annotations = None;
    ns.spec = None;
    ns.status = None;
}

pub fn trim_deployment(d: &mut Deployment) {
    trim_meta(&mut d.metadata, &[REVISION_ANNOTATION]);
    if let Some(spec) = d.spec.as_mut() {
        spec.template.metadata = None;
        if let Some(pod) = spec.template.spec.as_mut() {
            trim_pod_spec(pod);
        }
    }
}

pub fn trim_replicaset(rs: &mut ReplicaSet) {
    trim_meta(&mut rs.metadata, &[REVISION_ANNOTATION]);
    rs.metadata.labels = None;
    if let Some(template) = rs.spec.as_mut().and_then(|s| s.template.as_mut()) {
        template.metadata = None;
        if let Some(pod) = template.spec.as_mut() {
            trim_pod_spec(pod);
        }
    }
}

pub fn trim_pod(pod: &mut Pod) {
    trim_meta(&mut pod.metadata, &[]);
    if let Some(spec) = pod.spec.as_mut() {
        trim_pod_spec(spec);
    }
    if let Some(status) = pod.status.as_mut() {
        status.pod_ips = None;
        status.host_ips = None;
        status.resource_claim_statuses = None;
    }
}

pub fn trim_event(event: &mut Event) {
    trim_meta(&mut event.metadata, &[]);
    event.metadata.labels = None;
    event.source = None;
    event.related = None;
    event.reporting_component = None;
    event.reporting_instance = None;
    event.action = None;
    event.involved_object.api_version = None;
    event.involved_object.field_path = None;
    event.involved_object.resource_version = None;
    event.involved_object.uid = None;
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
        match tokio::time::timeout(
            std::time::Duration::from_millis(100),
            store.wait_until_ready(),
        )
        .await
        {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}
