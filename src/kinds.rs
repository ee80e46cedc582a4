//! What Klaxon reads of Kubernetes' own kinds: Deployments, ReplicaSets,
//! Pods and Events, with only the fields enrichment and signals use.
//!
//! The operator caches every one of these in the cluster, so their size
//! is its memory: a k8s-openapi `Pod` is 2.2 KB before a single field is
//! set (each `Container` another 2.1 KB), and deserializing one allocates
//! its managed fields, labels and probes only for them to be dropped.
//! These types have the same field names and shapes as k8s-openapi's (so
//! code reads the same), skip everything else while parsing, and keep
//! only the metadata their kind needs.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    fmt,
    sync::{Arc, LazyLock, Mutex},
};

use k8s_openapi::{
    ClusterResourceScope, NamespaceResourceScope,
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{MicroTime, OwnerReference, Time},
    },
};
use kube::api::ObjectMeta;
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{IgnoredAny, MapAccess, Visitor},
};

/// Distinct strings [`shared`] keeps at most.
const SHARED_MAX: usize = 10_000;

/// One shared copy of a short string that many cached objects repeat (a
/// namespace, a kind, a reason, a phase), instead of one per object.
/// Bounded: past [`SHARED_MAX`] distinct strings, new ones get their own.
pub fn shared(text: &str) -> Arc<str> {
    static SHARED: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Mutex::default);
    let mut known = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = known.get(text) {
        return known.clone();
    }
    let text: Arc<str> = text.into();
    if known.len() < SHARED_MAX {
        known.insert(text.clone());
    }
    text
}

/// A 128-bit fingerprint of `text` (two independent 64-bit SipHashes):
/// 16 bytes in place of a name kept only to look something up by it.
/// Two names share one only if both halves collide, about one chance in
/// 10^26 among a million names.
pub fn fingerprint(text: &str) -> u128 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        (salt, text).hash(&mut hasher);
        u128::from(hasher.finish())
    };
    (half(0) << 64) | half(1)
}

/// The annotation that numbers a Deployment's and a ReplicaSet's revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// On a ReplicaSet the Deployment controller reused for a later revision
/// (a rollback): the revisions it had before.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";

macro_rules! resource {
    ($ty:ident, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        resource!(
            $ty,
            $kind,
            $group,
            $version,
            $plural,
            NamespaceResourceScope
        );
    };
    ($ty:ident, $kind:literal, $group:literal, $version:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Metadata

/// The metadata fields any of these kinds keeps; managed fields, finalizers
/// and the rest are skipped without being allocated, and so are labels
/// unless `LABELS` (only Deployments are selected by label here).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta<const LABELS: bool> {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    #[serde(default, deserialize_with = "owners")]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default, deserialize_with = "revision_only")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "labels::<_, LABELS>")]
    labels: Option<BTreeMap<String, String>>,
}

impl<const LABELS: bool> From<Meta<LABELS>> for ObjectMeta {
    fn from(m: Meta<LABELS>) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            owner_references: m.owner_references,
            annotations: m.annotations,
            labels: m.labels,
            ..Default::default()
        }
    }
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Meta::<true>::deserialize(d).map(ObjectMeta::from)
}

fn meta_without_labels<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Meta::<false>::deserialize(d).map(ObjectMeta::from)
}

fn labels<'de, D: Deserializer<'de>, const KEEP: bool>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    if KEEP {
        Option::deserialize(d)
    } else {
        IgnoredAny::deserialize(d).map(|_| None)
    }
}

/// Only the controlling owner reference: the one ownership follows.
fn owners<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<OwnerReference>>, D::Error> {
    let all: Option<Vec<OwnerReference>> = Option::deserialize(d)?;
    Ok(all.and_then(|all| {
        let controller: Vec<OwnerReference> = all
            .into_iter()
            .filter(|o| o.controller == Some(true))
            .take(1)
            .map(|o| OwnerReference {
                api_version: String::new(),
                block_owner_deletion: None,
                ..o
            })
            .collect();
        (!controller.is_empty()).then_some(controller)
    }))
}

/// Only the revision annotations; others are skipped unread.
fn revision_only<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Revision;
    impl<'de> Visitor<'de> for Revision {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == REVISION_ANNOTATION || key == REVISION_HISTORY_ANNOTATION {
                    kept.insert(key.into_owned(), map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok((!kept.is_empty()).then_some(kept))
        }
    }
    d.deserialize_option(Revision)
}

// ---------------------------------------------------------------------------
// Pod templates

/// A container as far as images, resources and what a rollout changed go:
/// its variables' names and what they reference, never their values.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
}

/// An environment variable: its name, a fingerprint of its value (so a
/// changed value is told without keeping it), and what it references.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(
        default,
        rename = "value",
        deserialize_with = "value_fingerprint",
        skip_serializing
    )]
    pub value: Option<u64>,
    /// Boxed: most variables have a value instead.
    pub value_from: Option<Box<EnvVarSource>>,
}

/// A value's fingerprint: a changed value tells a rollout changed a
/// variable; the value itself is never kept.
fn value_fingerprint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let value = Option::<Cow<'de, str>>::deserialize(d)?;
    Ok(value.map(|v| {
        let mut hasher = DefaultHasher::new();
        v.hash(&mut hasher);
        hasher.finish()
    }))
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub config_map_key_ref: Option<NameRef>,
    pub secret_key_ref: Option<NameRef>,
    pub field_ref: Option<FieldRef>,
    pub resource_field_ref: Option<ResourceFieldRef>,
}

/// A variable from a field of the pod (`metadata.name`, `status.podIP`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: Option<String>,
}

/// A variable from a container's request or limit.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFieldRef {
    pub container_name: Option<String>,
    pub resource: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvFrom {
    pub config_map_ref: Option<NameRef>,
    pub secret_ref: Option<NameRef>,
}

/// A reference to a ConfigMap or Secret by name, and for a variable the
/// key it reads (a key is a name, never a value).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct NameRef {
    pub name: Option<String>,
    pub key: Option<String>,
}

/// A volume as far as the ConfigMaps and Secrets it mounts go.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub config_map: Option<NameRef>,
    pub secret: Option<SecretVolume>,
    pub projected: Option<Projected>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolume {
    pub secret_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Projected {
    #[serde(default)]
    pub sources: Vec<Projection>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    pub config_map: Option<NameRef>,
    pub secret: Option<NameRef>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ResourceRequirements {
    pub requests: Option<Resources>,
    pub limits: Option<Resources>,
}

/// CPU and memory; other resources are skipped.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Resources {
    pub cpu: Option<Quantity>,
    pub memory: Option<Quantity>,
}

impl Resources {
    pub fn get(&self, resource: &str) -> Option<&Quantity> {
        match resource {
            "cpu" => self.cpu.as_ref(),
            "memory" => self.memory.as_ref(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub containers: Vec<Container>,
    pub init_containers: Option<Vec<Container>>,
    /// Where the pod was scheduled (Pods only; templates have none).
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

impl PodSpec {
    /// The ConfigMaps (`secret` false) or Secrets its containers and
    /// volumes reference, sorted, each once.
    pub fn references(&self, secret: bool) -> std::collections::BTreeSet<&str> {
        let mut names = std::collections::BTreeSet::new();
        let containers = self
            .containers
            .iter()
            .chain(self.init_containers.iter().flatten());
        for c in containers {
            for e in &c.env {
                let r = e.value_from.as_ref().and_then(|from| {
                    if secret {
                        from.secret_key_ref.as_ref()
                    } else {
                        from.config_map_key_ref.as_ref()
                    }
                });
                names.extend(r.and_then(|r| r.name.as_deref()));
            }
            for e in &c.env_from {
                let r = if secret {
                    &e.secret_ref
                } else {
                    &e.config_map_ref
                };
                names.extend(r.as_ref().and_then(|r| r.name.as_deref()));
            }
        }
        for v in &self.volumes {
            if secret {
                names.extend(v.secret.as_ref().and_then(|s| s.secret_name.as_deref()));
            } else {
                names.extend(v.config_map.as_ref().and_then(|c| c.name.as_deref()));
            }
            for p in v.projected.iter().flat_map(|p| &p.sources) {
                let r = if secret { &p.secret } else { &p.config_map };
                names.extend(r.as_ref().and_then(|r| r.name.as_deref()));
            }
        }
        names.retain(|n| !n.is_empty());
        names
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PodTemplateSpec {
    pub spec: Option<PodSpec>,
}

impl PodTemplateSpec {
    /// Forgets variables and volumes: a workload's own template is read for
    /// its images and resources, and what a rollout changed is read from
    /// its ReplicaSets' or ControllerRevisions' copies.
    pub fn keep_images_and_resources(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            spec.volumes = Vec::new();
            let containers = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for c in containers {
                c.env = Vec::new();
                c.env_from = Vec::new();
            }
        }
    }
}

/// A condition's type, status, reason and when it last changed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub last_transition_time: Option<Time>,
}

/// A Deployment's condition: a pod's, plus when the controller last made
/// progress and about which ReplicaSet.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
    pub last_update_time: Option<Time>,
}

// ---------------------------------------------------------------------------
// Deployments and ReplicaSets

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Deployment {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<DeploymentSpec>,
    pub status: Option<DeploymentStatus>,
}
resource!(Deployment, "Deployment", "apps", "v1", "deployments");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct DeploymentSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub conditions: Option<Vec<DeploymentCondition>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ReplicaSet {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    pub spec: Option<ReplicaSetSpec>,
}
resource!(ReplicaSet, "ReplicaSet", "apps", "v1", "replicasets");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ReplicaSetSpec {
    pub template: Option<PodTemplateSpec>,
}

// ---------------------------------------------------------------------------
// StatefulSets, DaemonSets and their ControllerRevisions

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct StatefulSet {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<StatefulSetSpec>,
    pub status: Option<StatefulSetStatus>,
}
resource!(StatefulSet, "StatefulSet", "apps", "v1", "statefulsets");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    pub update_strategy: Option<UpdateStrategy>,
    /// Only each template's name: claims are `<template>-<set>-<ordinal>`.
    pub volume_claim_templates: Option<Vec<NameOnly>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct RollingUpdate {
    pub partition: Option<i32>,
}

/// An object of which only its name is read.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct NameOnly {
    #[serde(default)]
    pub metadata: Named,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Named {
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    pub replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct DaemonSet {
    #[serde(default, deserialize_with = "meta")]
    pub metadata: ObjectMeta,
    pub spec: Option<DaemonSetSpec>,
    pub status: Option<DaemonSetStatus>,
}
resource!(DaemonSet, "DaemonSet", "apps", "v1", "daemonsets");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct DaemonSetSpec {
    #[serde(default)]
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    #[serde(default)]
    pub desired_number_scheduled: i32,
    #[serde(default)]
    pub current_number_scheduled: i32,
    #[serde(default)]
    pub number_misscheduled: i32,
    #[serde(default)]
    pub number_ready: i32,
    pub number_available: Option<i32>,
    pub number_unavailable: Option<i32>,
    pub updated_number_scheduled: Option<i32>,
}

/// A StatefulSet's or DaemonSet's revision: its number and the pod
/// template it recorded (the controllers store the template as the patch
/// `{"spec": {"template": ...}}`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ControllerRevision {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub revision: i64,
    pub data: Option<RevisionData>,
}
resource!(
    ControllerRevision,
    "ControllerRevision",
    "apps",
    "v1",
    "controllerrevisions"
);

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct RevisionData {
    pub spec: Option<RevisionSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct RevisionSpec {
    pub template: Option<PodTemplateSpec>,
}

impl ControllerRevision {
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        self.data.as_ref()?.spec.as_ref()?.template.as_ref()
    }
}

// ---------------------------------------------------------------------------
// Nodes

/// A node as far as its trouble goes: its conditions, whether it is
/// cordoned, and its taints. Heartbeat times are skipped, so a heartbeat
/// leaves the cached node as it was.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Node {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    pub spec: Option<NodeSpec>,
    pub status: Option<NodeStatus>,
}
resource!(Node, "Node", "", "v1", "nodes", ClusterResourceScope);

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct NodeSpec {
    #[serde(default)]
    pub unschedulable: bool,
    pub taints: Option<Vec<Taint>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Taint {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub effect: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct NodeStatus {
    pub conditions: Option<Vec<NodeCondition>>,
}

/// A node condition without its heartbeat time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
}

// ---------------------------------------------------------------------------
// Claims

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct PersistentVolumeClaim {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    pub spec: Option<ClaimSpec>,
    pub status: Option<ClaimStatus>,
}
resource!(
    PersistentVolumeClaim,
    "PersistentVolumeClaim",
    "",
    "v1",
    "persistentvolumeclaims"
);

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSpec {
    pub storage_class_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ClaimStatus {
    pub phase: Option<String>,
}

// ---------------------------------------------------------------------------
// Pods

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Pod {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}
resource!(Pod, "Pod", "", "v1", "pods");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub conditions: Option<Vec<Condition>>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub restart_count: i32,
    /// Passes its readiness probe.
    #[serde(default)]
    pub ready: bool,
    pub state: Option<ContainerState>,
    pub last_state: Option<ContainerState>,
}

/// Waiting or terminated, with reason and message; running carries
/// nothing read here.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ContainerState {
    pub waiting: Option<StateDetail>,
    pub terminated: Option<StateDetail>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct StateDetail {
    pub reason: Option<String>,
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------
// Events

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub involved_object: InvolvedObject,
    /// Warning or Normal.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub count: Option<i32>,
    pub first_timestamp: Option<Time>,
    pub last_timestamp: Option<Time>,
    pub event_time: Option<MicroTime>,
    pub series: Option<EventSeries>,
}
resource!(Event, "Event", "", "v1", "events");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct InvolvedObject {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries {
    pub count: Option<i32>,
    pub last_observed_time: Option<MicroTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_is_used_and_skips_the_rest() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "checkout-1", "namespace": "shop", "uid": "u1",
                "resourceVersion": "7", "labels": {"app": "checkout"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "x"},
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "o1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-abc",
                        "uid": "rs1", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "app", "image": "checkout:v42",
                "env": [{"name": "A", "value": "b"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi",
                    "ephemeral-storage": "1Gi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "containerStatuses": [{"name": "app", "image": "checkout:v42", "imageID": "",
                    "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        }))
        .expect("pod");
        assert_eq!(pod.metadata.labels, None);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("7"));
        let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].name.as_str(), owners[0].uid.as_str()),
            ("checkout-abc", "rs1")
        );
        let container = &pod.spec.as_ref().expect("spec").containers[0];
        let requests = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        assert_eq!(
            requests.and_then(|r| r.get("cpu")).map(|q| q.0.as_str()),
            Some("100m")
        );
        let status = pod.status.as_ref().expect("status");
        let last = status.container_statuses.as_ref().expect("statuses")[0]
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_deref());
        assert_eq!(last, Some("OOMKilled"));
    }

    #[test]
    fn deployments_keep_labels_and_only_the_revision_annotation() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "checkout", "labels": {"tier": "payments"},
                "annotations": {REVISION_ANNOTATION: "4",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"replicas": 3, "selector": {}, "template": {}}
        }))
        .expect("deployment");
        assert_eq!(
            deployment.metadata.labels,
            Some(BTreeMap::from([("tier".into(), "payments".into())]))
        );
        assert_eq!(
            deployment.metadata.annotations,
            Some(BTreeMap::from([(REVISION_ANNOTATION.into(), "4".into())]))
        );
    }

    #[test]
    fn what_the_types_skip_is_not_an_error() {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e", "namespace": "shop", "annotations": null},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{app}"},
            "type": "Warning", "reason": "BackOff", "count": 2,
            "source": {"component": "kubelet"}, "reportingComponent": "kubelet"
        }))
        .expect("event");
        assert_eq!(event.involved_object.name.as_deref(), Some("p"));
        assert_eq!(event.count, Some(2));
    }
}
