//! The floor during churn: the same minimal writer as the large tier's
//! floor (one merge patch of an enriched-looking status per object, made
//! when its watch shows the object without one), kept running beside the
//! operator while the cluster churns, so that declared → enriched is judged
//! against what the busy apiserver alone takes.
//!
//! The operator reconciles every Incident, so the writer's objects are
//! Incidents of a copy of the CRD in a group of their own
//! (`floor.klaxon.dev`): the same schema, CEL rules and admission policies,
//! so the apiserver does the same work for each create and status write,
//! and the operator never sees them.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio::sync::oneshot;

use crate::large::{self, lock};
use crate::support::{self, Cluster};

const GROUP: &str = "floor.klaxon.dev";

/// The CRD and admission policies of `crds/`, moved to [`GROUP`].
pub(super) fn install(cluster: &Cluster) {
    let mut copies = Vec::new();
    for file in [
        "crds/incidents.yaml",
        "crds/actor-admission.yaml",
        "crds/severity-admission.yaml",
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        copies.push(
            text.replace(
                "name: incidents.klaxon.dev",
                &format!("name: incidents.{GROUP}"),
            )
            .replace("group: klaxon.dev", &format!("group: {GROUP}"))
            .replace("apiGroups: [klaxon.dev]", &format!("apiGroups: [{GROUP}]"))
            .replace("klaxon-incident-", "floor-incident-"),
        );
    }
    let path = cluster.dir().join("floor-crds.yaml");
    std::fs::write(&path, copies.join("\n---\n")).expect("writing the floor's CRD");
    let path = path.to_string_lossy().into_owned();
    let out = cluster.kubectl(&["apply", "--server-side", "-f", &path]);
    assert!(
        out.status.success(),
        "installing the floor's CRD: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/incidents.{GROUP}"),
    ]);
    assert!(out.status.success(), "the floor's CRD was not established");
}

/// The writer, and a watcher of its writes, in a namespace of their own.
pub(super) struct Floor {
    api: Api<DynamicObject>,
    ns: String,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Floor {
    pub(super) async fn start(cluster: &Cluster, client: &Client) -> Floor {
        let ns = support::namespace(client, "floor-churn").await;
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, "v1alpha1", "Incident"),
            "incidents",
        );
        // Each on a client of its own, as the operator and the benchmark's
        // observer are.
        let writer: Api<DynamicObject> =
            Api::namespaced_with(cluster.client().await, &ns, &resource);
        let watched: Api<DynamicObject> =
            Api::namespaced_with(cluster.client().await, &ns, &resource);
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>> = Arc::default();
        let (writer_ready, writer_synced) = oneshot::channel();
        let (watcher_ready, watcher_synced) = oneshot::channel();
        let write = {
            let ns = ns.clone();
            tokio::spawn(async move {
                let mut ready = Some(writer_ready);
                let mut written = HashSet::new();
                let mut stream = watcher(writer.clone(), watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    let Some(object) = applied(event, &mut ready) else {
                        continue;
                    };
                    let name = object.metadata.name.clone().unwrap_or_default();
                    if object.data.get("status").is_some() || !written.insert(name.clone()) {
                        continue;
                    }
                    let (api, status) = (writer.clone(), large::floor_status(&ns));
                    tokio::spawn(async move {
                        let patch = Patch::Merge(json!({ "status": status }));
                        if let Err(error) = api
                            .patch_status(&name, &PatchParams::default(), &patch)
                            .await
                        {
                            eprintln!("floor writer during churn: {name}: {error}");
                        }
                    });
                }
            })
        };
        let watch = {
            let waiters = waiters.clone();
            tokio::spawn(async move {
                let mut ready = Some(watcher_ready);
                let mut stream = watcher(watched, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    let at = Instant::now();
                    let Some(object) = applied(event, &mut ready) else {
                        continue;
                    };
                    if object.data["status"]["enrichedAt"].is_string()
                        && let Some(tx) = object
                            .metadata
                            .name
                            .as_deref()
                            .and_then(|name| lock(&waiters).remove(name))
                    {
                        let _ = tx.send(at);
                    }
                }
            })
        };
        let deadline = Duration::from_secs(60);
        let _ = tokio::time::timeout(deadline, writer_synced).await;
        let _ = tokio::time::timeout(deadline, watcher_synced).await;
        Floor {
            api: Api::namespaced_with(client.clone(), &ns, &resource),
            ns,
            waiters,
            tasks: vec![write, watch],
        }
    }

    /// The `n`-th round trip: created, written by the writer, seen by the
    /// watcher.
    pub(super) async fn sample(&self, n: usize, pair: (usize, usize)) -> Result<Duration, String> {
        let name = format!("floor-{n}");
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(name.clone(), tx);
        let mut object = serde_json::to_value(large::incident(&self.ns, &name, pair))
            .map_err(|e| e.to_string())?;
        object["apiVersion"] = json!(format!("{GROUP}/v1alpha1"));
        let object: DynamicObject = serde_json::from_value(object).map_err(|e| e.to_string())?;
        let at = Instant::now();
        self.api
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| format!("floor during churn: creating {name}: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(seen)) => Ok(seen.saturating_duration_since(at)),
            // Never seen within the deadline: a sample of "never".
            _ => Ok(Duration::MAX),
        }
    }
}

/// The object an event shows applied; on the initial list's end, tells
/// `ready`.
fn applied<K>(
    event: Result<watcher::Event<K>, watcher::Error>,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Option<K> {
    match event {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => Some(o),
        Ok(watcher::Event::InitDone) => {
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            None
        }
        _ => None,
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
