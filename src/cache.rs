//! Shared watch caches for the objects enrichment reads. Each is one
//! watch for the whole cluster, feeding a reflector store; objects are
//! trimmed to what enrichment uses before they are stored, so memory stays
//! flat as the cluster grows. Reconciles read these stores, never LIST.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Event, Namespace, Pod},
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};

use crate::{
    api::{ClusterResponsePolicy, ResponsePolicy},
    enrich::deployment::REVISION_ANNOTATION,
};

/// Readers of every cache.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<Deployment>,
    pub replicasets: Store<ReplicaSet>,
    pub pods: Store<Pod>,
    pub events: Store<Event>,
    pub policies: Store<ResponsePolicy>,
    pub cluster_policies: Store<ClusterResponsePolicy>,
    pub namespaces: Store<Namespace>,
}

pub type Changes<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

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
}

pub fn start(client: &Client) -> (Caches, Streams) {
    let (deployments, deployments_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        trim_deployment,
    );
    let (replicasets, replicasets_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        trim_replicaset,
    );
    let (pods, pods_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        trim_pod,
    );
    let (events, events_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default().fields("type=Warning"),
        trim_event,
    );
    let (policies, policies_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        |p: &mut ResponsePolicy| p.metadata.managed_fields = None,
    );
    let (cluster_policies, cluster_policies_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        |p: &mut ClusterResponsePolicy| p.metadata.managed_fields = None,
    );
    let (namespaces, namespaces_stream) = reflect(
        Api::all(client.clone()),
        watcher::Config::default(),
        trim_namespace,
    );
    (
        Caches {
            deployments,
            replicasets,
            pods,
            events,
            policies,
            cluster_policies,
            namespaces,
        },
        Streams {
            deployments: deployments_stream,
            replicasets: replicasets_stream,
            pods: pods_stream,
            events: events_stream,
            policies: policies_stream,
            cluster_policies: cluster_policies_stream,
            namespaces: namespaces_stream,
        },
    )
}

fn reflect<K>(api: Api<K>, config: watcher::Config, trim: fn(&mut K)) -> (Store<K>, Changes<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config.any_semantic())
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .touched_objects();
    (reader, stream.boxed())
}

impl Caches {
    /// Waits until every cache holds its initial list.
    pub async fn wait_until_ready(&self) -> bool {
        use crate::controller::wait_until_ready as ready;
        ready(&self.deployments).await
            && ready(&self.replicasets).await
            && ready(&self.pods).await
            && ready(&self.events).await
            && ready(&self.policies).await
            && ready(&self.cluster_policies).await
            && ready(&self.namespaces).await
    }

    /// A namespace's labels (empty when it is not cached).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// The effective policy of `namespace`, from the caches.
    pub fn effective_policy(
        &self,
        namespace: &str,
        operator_namespace: &str,
    ) -> crate::policy::EffectivePolicy {
        let labels = self.namespace_labels(namespace);
        let cluster_policies = self.cluster_policies.state();
        let baselines =
            crate::policy::baselines_for(cluster_policies.iter().map(|p| p.as_ref()), &labels);
        let policies = self.policies.state();
        let (team, _) = crate::policy::primary(
            policies
                .iter()
                .map(|p| p.as_ref())
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace)),
        );
        crate::policy::effective(
            namespace,
            &baselines,
            team,
            labels.get(crate::policy::TEAM_LABEL).map(String::as_str),
            operator_namespace,
        )
    }
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
