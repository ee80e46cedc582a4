//! Shared watch caches for the objects the controllers read. Each is one
//! watch for the whole cluster (see [`super::watch`]), feeding a reflector
//! store and the indexes over it; objects are trimmed to what the
//! operator uses before they are stored, so memory stays flat as the
//! cluster grows. Reconciles read these through the indexes, never LIST
//! and never walk a whole store.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use k8s_openapi::api::core::v1::Namespace;
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
    store::Cache,
    watch::{self, Changes, Watches, reflect},
};
use crate::{
    api::{ClusterResponsePolicy, Incident, ResponsePolicy},
    domain::enrich::{events::Warning, pods::PodView},
    kinds::{
        ControllerRevision, DaemonSet, Deployment, Event, Node, PersistentVolumeClaim, Pod,
        ReplicaSet, StatefulSet,
    },
};

/// Readers of every cache, and the indexes over them.
#[derive(Clone)]
pub struct Caches {
    /// Deployments, by namespace (selectors, signals).
    pub deployments: Cache<Deployment>,
    /// ReplicaSets, by `<namespace>/<owning Deployment>`.
    pub replicasets: Cache<ReplicaSet>,
    /// StatefulSets, by namespace.
    pub statefulsets: Cache<StatefulSet>,
    /// DaemonSets, by namespace.
    pub daemonsets: Cache<DaemonSet>,
    /// ControllerRevisions, by `<namespace>/<owner kind>/<owner>`.
    pub revisions: Cache<ControllerRevision>,
    /// PersistentVolumeClaims: storage class and phase, read by name.
    pub claims: Cache<PersistentVolumeClaim>,
    /// Nodes: conditions, cordon and taints, read by name.
    pub nodes: Cache<Node>,
    /// Events about Nodes, Normal ones too (`NodeNotReady` is Normal), by
    /// [`node_key`].
    pub node_events: Cache<Warning>,
    /// Pods (what is read of them), by `<namespace>/<owner kind>/<owner>`
    /// of their controller (a ReplicaSet, StatefulSet or DaemonSet), and by
    /// [`node_key`] of their node.
    pub pods: Cache<PodView>,
    /// Warning events (as much as a summary shows), by
    /// `<namespace>/<kind>/<name>` of their object.
    pub events: Cache<Warning>,
    pub policies: Store<ResponsePolicy>,
    pub policies_by_namespace: Keyed<ResponsePolicy>,
    pub cluster_policies: Store<ClusterResponsePolicy>,
    pub namespaces: Store<Namespace>,
    pub incidents: Store<Incident>,
    pub incidents_by_namespace: Keyed<Incident>,
    /// Incidents by `<namespace>/<deployment>` of each Deployment they
    /// affect, resolved ones too: where recurrences are looked up.
    pub incidents_by_workload: Keyed<Incident>,
    /// Which open incidents look at which Deployments.
    pub links: Index,
}

/// The change streams behind the caches. Polling them keeps the caches
/// current; each item is an object that changed.
pub struct Streams {
    pub deployments: Changes<Deployment>,
    pub replicasets: Changes<ReplicaSet>,
    pub statefulsets: Changes<StatefulSet>,
    pub daemonsets: Changes<DaemonSet>,
    pub revisions: Changes<ControllerRevision>,
    pub claims: Changes<PersistentVolumeClaim>,
    pub nodes: Changes<Node>,
    pub node_events: Changes<Event>,
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

    let (deployments, deployments_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        |d: &mut Deployment| {
            trim_version(d);
            if let Some(spec) = d.spec.as_mut() {
                spec.template.keep_images_and_resources();
            }
        },
        Deployment::clone,
        keyed::by_namespace::<Deployment>,
        watches,
    );
    let (replicasets, replicasets_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        trim_version::<ReplicaSet>,
        ReplicaSet::clone,
        |rs: &ReplicaSet| keyed::owner_key(&rs.metadata, "Deployment"),
        watches,
    );
    let (statefulsets, statefulsets_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        |s: &mut StatefulSet| {
            trim_version(s);
            if let Some(spec) = s.spec.as_mut() {
                spec.template.keep_images_and_resources();
            }
        },
        StatefulSet::clone,
        keyed::by_namespace::<StatefulSet>,
        watches,
    );
    let (daemonsets, daemonsets_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        |d: &mut DaemonSet| {
            trim_version(d);
            if let Some(spec) = d.spec.as_mut() {
                spec.template.keep_images_and_resources();
            }
        },
        DaemonSet::clone,
        keyed::by_namespace::<DaemonSet>,
        watches,
    );
    let (revisions, revisions_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        trim_version::<ControllerRevision>,
        ControllerRevision::clone,
        |revision: &ControllerRevision| {
            let meta = &revision.metadata;
            let Some(ns) = meta.namespace.as_deref() else {
                return Vec::new();
            };
            meta.owner_references
                .iter()
                .flatten()
                .map(|o| object_key(ns, &o.kind, &o.name))
                .collect()
        },
        watches,
    );
    let (claims, claims_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        trim_version::<PersistentVolumeClaim>,
        PersistentVolumeClaim::clone,
        |_: &PersistentVolumeClaim| Vec::new(),
        watches,
    );
    let (nodes, nodes_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        trim_version::<Node>,
        Node::clone,
        |_: &Node| Vec::new(),
        watches,
    );
    let (node_events, node_events_stream) = watch::cache(
        Api::all(client.clone()),
        all().fields("involvedObject.kind=Node"),
        |_| {},
        Warning::of,
        |event: &Warning| vec![node_key(&event.object)],
        watches,
    );
    let (pods, pods_stream) = watch::cache(
        Api::all(client.clone()),
        all(),
        |_| {},
        PodView::of,
        |pod: &PodView| {
            pod.owner
                .iter()
                .map(|o| object_key(&pod.namespace, o.kind.as_str(), &o.name))
                .chain(pod.node.iter().map(|node| node_key(node)))
                .collect()
        },
        watches,
    );
    let (events, events_stream) = watch::cache(
        Api::all(client.clone()),
        all().fields("type=Warning"),
        |_| {},
        Warning::of,
        warning_key,
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
    let incidents_by_workload = Keyed::new(workload_keys);
    let (incidents, incidents_stream) = {
        let (by_namespace, by_workload, links) = (
            incidents_by_namespace.clone(),
            incidents_by_workload.clone(),
            links.clone(),
        );
        let relisted = std::sync::Mutex::new(std::collections::HashSet::new());
        reflect(
            Api::all(client.clone()),
            all(),
            trim_incident,
            move |event: &watcher::Event<Incident>| {
                by_namespace.apply(event);
                by_workload.apply(event);
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
            replicasets,
            statefulsets,
            daemonsets,
            revisions,
            claims,
            nodes,
            node_events,
            pods,
            events,
            policies,
            policies_by_namespace,
            cluster_policies,
            namespaces,
            incidents,
            incidents_by_namespace,
            incidents_by_workload,
            links,
        },
        Streams {
            deployments: deployments_stream,
            replicasets: replicasets_stream,
            statefulsets: statefulsets_stream,
            daemonsets: daemonsets_stream,
            revisions: revisions_stream,
            claims: claims_stream,
            nodes: nodes_stream,
            node_events: node_events_stream,
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

/// `<namespace>/<workload key>` of each workload an incident affects.
fn workload_keys(incident: &Incident) -> Vec<String> {
    let Some(namespace) = incident.metadata.namespace.as_deref() else {
        return Vec::new();
    };
    crate::domain::incident::related::workloads(incident, incident.status.as_ref())
        .into_iter()
        .map(|name| format!("{namespace}/{name}"))
        .collect()
}

/// `<namespace>/<kind>/<name>` of the object a Warning event is about.
fn warning_key(warning: &Warning) -> Vec<String> {
    if warning.namespace.is_empty() || warning.kind.is_empty() || warning.object.is_empty() {
        return Vec::new();
    }
    vec![object_key(
        &warning.namespace,
        &warning.kind,
        &warning.object,
    )]
}

pub fn object_key(namespace: &str, kind: &str, name: &str) -> String {
    format!("{namespace}/{kind}/{name}")
}

/// The key of a node's pods and events: a namespaced key never starts
/// with `/`.
pub fn node_key(node: &str) -> String {
    object_key("", "Node", node)
}

impl Caches {
    /// Waits until every cache holds its initial list.
    pub async fn wait_until_ready(&self) -> bool {
        use self::wait_until_ready as ready;
        self.deployments.wait_until_ready().await
            && self.replicasets.wait_until_ready().await
            && self.statefulsets.wait_until_ready().await
            && self.daemonsets.wait_until_ready().await
            && self.revisions.wait_until_ready().await
            && self.claims.wait_until_ready().await
            && self.nodes.wait_until_ready().await
            && self.node_events.wait_until_ready().await
            && self.pods.wait_until_ready().await
            && self.events.wait_until_ready().await
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

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .is_some()
    }

    /// Every alert rule of every policy: as many as there are policies,
    /// not objects in the cluster.
    pub fn alert_rules(&self) -> Vec<crate::api::policy::AlertRule> {
        let mut rules: Vec<crate::api::policy::AlertRule> = self
            .cluster_policies
            .state()
            .iter()
            .flat_map(|p| p.spec.policy.alerts.clone())
            .collect();
        rules.extend(
            self.policies
                .state()
                .iter()
                .flat_map(|p| p.spec.alerts.clone()),
        );
        rules
    }

    /// The alertnames policies name as heartbeats.
    pub fn heartbeat_names(&self) -> BTreeSet<String> {
        self.heartbeats("")
            .into_iter()
            .map(|(_, h)| h.alertname)
            .collect()
    }

    /// Every policy's heartbeat, with the namespace its incident goes in:
    /// a team policy's own, a baseline's `operator_namespace`.
    pub fn heartbeats(
        &self,
        operator_namespace: &str,
    ) -> Vec<(String, crate::api::policy::Heartbeat)> {
        let mut out: Vec<(String, crate::api::policy::Heartbeat)> = self
            .cluster_policies
            .state()
            .iter()
            .filter_map(|p| p.spec.policy.heartbeat.clone())
            .map(|h| (operator_namespace.to_string(), h))
            .collect();
        out.extend(
            self.policies
                .state()
                .iter()
                .filter_map(|p| Some((p.metadata.namespace.clone()?, p.spec.heartbeat.clone()?))),
        );
        out
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
        self.deployments.by_key(namespace)
    }

    /// The ReplicaSets a Deployment controls.
    pub fn replicasets_of(&self, namespace: &str, deployment: &str) -> Vec<Arc<ReplicaSet>> {
        self.replicasets
            .by_key(&format!("{namespace}/{deployment}"))
    }

    /// The Pods a ReplicaSet, StatefulSet or DaemonSet (`kind`) controls.
    pub fn pods_of(&self, namespace: &str, kind: &str, owner: &str) -> Vec<Arc<PodView>> {
        self.pods.by_key(&object_key(namespace, kind, owner))
    }

    /// The ControllerRevisions of a StatefulSet or DaemonSet.
    pub fn revisions_of(
        &self,
        namespace: &str,
        kind: &str,
        owner: &str,
    ) -> Vec<Arc<ControllerRevision>> {
        self.revisions.by_key(&object_key(namespace, kind, owner))
    }

    /// The names and labels of the namespace's workloads of `kind`.
    pub fn workloads_in(
        &self,
        kind: crate::api::incident::WorkloadKind,
        namespace: &str,
    ) -> Vec<(String, BTreeMap<String, String>)> {
        use crate::api::incident::WorkloadKind;
        fn named<K: kube::Resource>(all: Vec<Arc<K>>) -> Vec<(String, BTreeMap<String, String>)> {
            all.iter()
                .filter_map(|o| {
                    let meta = o.meta();
                    Some((meta.name.clone()?, meta.labels.clone().unwrap_or_default()))
                })
                .collect()
        }
        match kind {
            WorkloadKind::Deployment => named(self.deployments.by_key(namespace)),
            WorkloadKind::StatefulSet => named(self.statefulsets.by_key(namespace)),
            WorkloadKind::DaemonSet => named(self.daemonsets.by_key(namespace)),
        }
    }

    /// The pods on a node.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<PodView>> {
        self.pods.by_key(&node_key(node))
    }

    /// The events about a node that speak of trouble.
    pub fn node_events_about(&self, node: &str) -> Vec<Arc<Warning>> {
        let mut events = self.node_events.by_key(&node_key(node));
        events.retain(|e| e.troubles_a_node());
        events
    }

    /// The Warning events about one object.
    pub fn events_about(&self, namespace: &str, kind: &str, name: &str) -> Vec<Arc<Warning>> {
        self.events.by_key(&object_key(namespace, kind, name))
    }

    /// The namespace's Incidents.
    pub fn incidents_in(&self, namespace: &str) -> Vec<Arc<Incident>> {
        Self::lookup(&self.incidents, &self.incidents_by_namespace, namespace)
    }

    /// The incidents a plan may relate `incident` to: those of its
    /// namespace that affected one of `workloads` and resolved within the
    /// recurrence window before `declared`, and those its `spec.related`
    /// names. Costs the incidents of those workloads.
    pub fn related_to(
        &self,
        incident: &Incident,
        workloads: &[String],
        declared: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> Vec<crate::domain::incident::related::Earlier> {
        use crate::domain::incident::related;
        let Some(namespace) = incident.metadata.namespace.as_deref() else {
            return Vec::new();
        };
        let resolved_at =
            |other: &Incident| other.status.as_ref().and_then(|s| s.resolved_at.clone());
        let mut seen: HashSet<String> = HashSet::new();
        let mut found = Vec::new();
        let mut add = |other: &Incident| {
            let name = other.metadata.name.clone().unwrap_or_default();
            if other.metadata.name == incident.metadata.name || !seen.insert(name.clone()) {
                return;
            }
            found.push(related::Earlier {
                name,
                resolved_at: resolved_at(other),
                workloads: related::workloads(other, other.status.as_ref()),
            });
        };
        if let Some(declared) = declared {
            for workload in workloads {
                for other in Self::lookup(
                    &self.incidents,
                    &self.incidents_by_workload,
                    &format!("{namespace}/{workload}"),
                ) {
                    if resolved_at(&other).is_some_and(|at| related::recurs(declared, &at)) {
                        add(&other);
                    }
                }
            }
        }
        for link in &incident.spec.related {
            if let Some(other) = self
                .incidents
                .get(&reflector::ObjectRef::new(&link.name).within(namespace))
            {
                add(&other);
            }
        }
        found
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
/// decides whether it needs a reconcile at all, what the metrics count,
/// and what a later incident's recurrence lookup needs (the evidence
/// record stays in the API, read with a GET when a spec change needs it).
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
    use crate::api::incident::{DaemonSetState, DeploymentState, StatefulSetState};
    let found = |d: &DeploymentState| {
        d.found.then(|| DeploymentState {
            name: d.name.clone(),
            found: true,
            ..Default::default()
        })
    };
    let workloads = status.deployments.iter().filter_map(found).collect();
    let stateful_sets = status
        .stateful_sets
        .iter()
        .filter_map(|s| found(&s.workload))
        .map(|workload| StatefulSetState {
            workload,
            ..Default::default()
        })
        .collect();
    let daemon_sets = status
        .daemon_sets
        .iter()
        .filter_map(|s| found(&s.workload))
        .map(|workload| DaemonSetState {
            workload,
            ..Default::default()
        })
        .collect();
    *status = crate::api::IncidentStatus {
        observed_generation: status.observed_generation,
        resolved_at: status.resolved_at.take(),
        declared_at: status.declared_at.take(),
        team: status.team.take(),
        deployments: workloads,
        stateful_sets,
        daemon_sets,
        postmortem: status.postmortem.take(),
        // Which overdue postmortems and follow-ups were routed already.
        findings: std::mem::take(&mut status.findings)
            .into_iter()
            .filter(|f| crate::domain::incident::aftercare::routed(f))
            .collect(),
        ..Default::default()
    };
    incident
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(TRIMMED_ANNOTATION.into(), "true".into());
}

/// A cached Deployment or ReplicaSet needs no resourceVersion once the
/// watch has read it; the types in [`crate::kinds`] never parse the rest.
fn trim_version<K: kube::Resource>(object: &mut K) {
    object.meta_mut().resource_version = None;
}

/// Namespaces: name and labels are all policies read.
fn trim_namespace(ns: &mut Namespace) {
    ns.metadata.managed_fields = None;
    ns.metadata.annotations = None;
    ns.spec = None;
    ns.status = None;
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
