//! `KLAXON_BENCH=kinds make bench`: what each kind the operator caches
//! costs, in heap bytes per object as the cache keeps it.
//!
//! Each kind is written as the apiserver returns it (managed fields,
//! labels, annotations, a full pod template with env, probes and
//! resources; a node with its images and conditions), parsed and trimmed
//! exactly as the operator's watch does, and 10,000 are kept. The bytes
//! the allocator holds for them, divided by their number, is the cost of
//! one: the cached form, not counting its entry in the cache's maps (a
//! few dozen bytes). No cluster is needed.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
};

use klaxon::{
    domain::enrich::pods::PodView,
    kinds::{ControllerRevision, DaemonSet, Node, PersistentVolumeClaim, Pod, StatefulSet},
};
use serde_json::{Value, json};

/// Counts the bytes allocated and not yet freed.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

const OBJECTS: usize = 10_000;

/// Heap bytes per object of what `keep` makes of each of `OBJECTS`
/// objects `make` writes.
fn cost<T>(make: impl Fn(usize) -> Value, keep: impl Fn(Value) -> T) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let mut kept = Vec::with_capacity(OBJECTS);
    let vec_bytes = LIVE.load(Ordering::Relaxed) - before;
    for i in 0..OBJECTS {
        kept.push(Arc::new(keep(make(i))));
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before - vec_bytes;
    drop(kept);
    bytes as f64 / OBJECTS as f64
}

fn parsed<K: serde::de::DeserializeOwned + kube::Resource>(value: Value) -> K {
    let mut object: K = serde_json::from_value(value).expect("a valid object");
    // As the watch trims it (`cache::trim_version`).
    object.meta_mut().resource_version = None;
    object
}

fn managed_fields() -> Value {
    json!([{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
        "time": "2026-12-01T10:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}}])
}

fn template(name: &str, i: usize) -> Value {
    json!({
        "metadata": {"labels": {"app": name, "tier": "payments", "version": format!("v{}", i % 7)},
            "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {"containers": [{"name": name, "image": format!("registry.example/{name}:v{}", i % 7),
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "db"}],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"}}}]}
    })
}

fn statefulset(i: usize) -> Value {
    let name = format!("ledger-db-{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": format!("team-{}", i % 200), "uid": format!("uid-{i}"),
            "resourceVersion": "12345", "generation": 3, "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app": name, "tier": "payments"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}"},
            "managedFields": managed_fields()},
        "spec": {"replicas": 3, "serviceName": name, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": template("db", i),
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                    "resources": {"requests": {"storage": "10Gi"}}}}]},
        "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
            "currentReplicas": 3, "observedGeneration": 3, "collisionCount": 0,
            "currentRevision": format!("{name}-5b9c8d7f4"), "updateRevision": format!("{name}-5b9c8d7f4")}
    })
}

fn daemonset(i: usize) -> Value {
    let name = format!("node-agent-{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": format!("team-{}", i % 200), "uid": format!("uid-{i}"),
            "resourceVersion": "12345", "generation": 2, "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app": name}, "annotations": {"deprecated.daemonset.template.generation": "2"},
            "managedFields": managed_fields()},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template("agent", i),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"desiredNumberScheduled": 100, "currentNumberScheduled": 100, "numberReady": 100,
            "numberAvailable": 100, "numberMisscheduled": 0, "updatedNumberScheduled": 100,
            "observedGeneration": 2}
    })
}

/// The metadata of `name`, the `i`-th StatefulSet's revision or pod.
fn owned_by_statefulset(name: String, i: usize) -> Value {
    json!({"name": name, "namespace": format!("team-{}", i % 200),
        "uid": format!("uid-{i}"), "resourceVersion": "12345", "creationTimestamp": "2026-12-01T10:00:00Z",
        "labels": {"app": "ledger-db", "controller-revision-hash": "5b9c8d7f4"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": format!("ledger-db-{i}"),
            "uid": format!("owner-{i}"), "controller": true, "blockOwnerDeletion": true}],
        "managedFields": managed_fields()})
}

fn revision(i: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": owned_by_statefulset(format!("ledger-db-{i}-5b9c8d7f4"), i),
        "data": {"spec": {"template": template("db", i)}},
        "revision": 4
    })
}

fn claim(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": format!("data-ledger-db-{i}"), "namespace": format!("team-{}", i % 200),
            "uid": format!("uid-{i}"), "resourceVersion": "12345", "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app": "ledger-db"},
            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/storage-provisioner": "csi.example"},
            "finalizers": ["kubernetes.io/pvc-protection"],
            "managedFields": managed_fields()},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd", "volumeMode": "Filesystem",
            "volumeName": format!("pvc-{i}"), "resources": {"requests": {"storage": "10Gi"}}},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
    })
}

fn node(i: usize) -> Value {
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": format!("Kubelet{type_}"),
            "message": "kubelet is posting ready status", "lastHeartbeatTime": "2026-12-01T10:00:00Z",
            "lastTransitionTime": "2026-12-01T09:00:00Z"})
    };
    let images: Vec<Value> = (0..30)
        .map(|n| json!({"names": [format!("registry.example/image-{n}@sha256:{:064x}", n), format!("registry.example/image-{n}:v1")],
            "sizeBytes": 123_456_789}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i}"), "uid": format!("uid-{i}"), "resourceVersion": "12345",
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"kubernetes.io/hostname": format!("node-{i}"), "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": "zone-a", "node.kubernetes.io/instance-type": "m5.xlarge"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "managedFields": managed_fields()},
        "spec": {"podCIDR": "10.0.0.0/24", "providerID": format!("aws:///zone-a/i-{i:016x}")},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": format!("node-{i}")}],
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3900m", "memory": "15Gi", "pods": "110"},
            "conditions": [condition("MemoryPressure", "False"), condition("DiskPressure", "False"),
                condition("PIDPressure", "False"), condition("Ready", "True")],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images,
            "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7",
                "kernelVersion": "6.1", "kubeProxyVersion": "v1.34.4", "kubeletVersion": "v1.34.4",
                "machineID": "m", "operatingSystem": "linux", "osImage": "Ubuntu", "systemUUID": "s"}
        }
    })
}

fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": owned_by_statefulset(format!("ledger-db-{i}-0"), i),
        "spec": {"nodeName": format!("node-{}", i % 100), "containers": template("db", i)["spec"]["containers"].clone()},
        "status": {"phase": "Running", "podIP": "10.0.0.9",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:00Z"}],
            "containerStatuses": [{"name": "db", "image": "registry.example/db:v1", "imageID": "sha256:0",
                "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}]}
    })
}

/// Prints the table; nothing here can miss a target.
pub fn bench() -> bool {
    let rows: [(&str, f64); 6] = [
        (
            "StatefulSet",
            cost(statefulset, |v| {
                let mut set = parsed::<StatefulSet>(v);
                if let Some(spec) = set.spec.as_mut() {
                    spec.template.keep_images_and_resources();
                }
                set
            }),
        ),
        (
            "DaemonSet",
            cost(daemonset, |v| {
                let mut set = parsed::<DaemonSet>(v);
                if let Some(spec) = set.spec.as_mut() {
                    spec.template.keep_images_and_resources();
                }
                set
            }),
        ),
        (
            "ControllerRevision",
            cost(revision, parsed::<ControllerRevision>),
        ),
        (
            "PersistentVolumeClaim",
            cost(claim, parsed::<PersistentVolumeClaim>),
        ),
        ("Node", cost(node, parsed::<Node>)),
        (
            "Pod of a StatefulSet (as PodView)",
            cost(pod, |v| {
                PodView::of(&serde_json::from_value::<Pod>(v).expect("pod"))
            }),
        ),
    ];
    println!("| kind | heap bytes per cached object |");
    println!("|---|---|");
    for (kind, bytes) in rows {
        println!("| {kind} | {bytes:.0} B |");
    }
    true
}
