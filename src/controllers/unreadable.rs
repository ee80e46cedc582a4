//! Objects the operator cannot read (see [`crate::cluster::watch`]) are
//! skipped by its caches. For Klaxon's own kinds, this reports the problem
//! where the owner looks: a `Ready=False` condition with reason
//! `Unreadable` and the decoding error, written with a JSON merge patch
//! (which needs no readable object), once per object version.

use futures::{StreamExt, channel::mpsc::UnboundedReceiver};
use jiff::Timestamp;
use kube::{
    Client,
    api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    api,
    cluster::{shards::Shards, watch::Unreadable},
};

pub const REASON: &str = "Unreadable";

pub async fn run(
    client: Client,
    mut unreadable: UnboundedReceiver<Unreadable>,
    shards: Shards,
    shutdown: CancellationToken,
) {
    loop {
        let object = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = unreadable.next() => match next {
                Some(object) => object,
                None => return,
            },
        };
        // Reported by the owner of its namespace; a cluster-scoped one by
        // the holder of shard 0.
        let owned = match object.metadata.namespace.as_deref() {
            Some(namespace) => shards.owns(namespace),
            None => shards.owns_shard(0),
        };
        if owned {
            report(&client, &object).await;
        }
    }
}

/// The condition's message: what is wrong and what to do.
pub fn message(error: &str) -> String {
    crate::domain::enrich::truncate(
        &format!(
            "Klaxon cannot read this object, so it is ignored until fixed: {error}. Correct the field named, or delete and re-create the object."
        ),
        1000,
    )
}

async fn report(client: &Client, object: &Unreadable) {
    let plural = match object.kind {
        "Incident" => "incidents",
        "ResponsePolicy" => "responsepolicies",
        "ClusterResponsePolicy" => "clusterresponsepolicies",
        // Other kinds belong to others; the log line names them.
        _ => return,
    };
    let Some(name) = object.metadata.name.as_deref() else {
        return;
    };
    let gvk = GroupVersionKind::gvk(api::GROUP, api::VERSION, object.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let objects: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default();
    let patch = serde_json::json!({
        "status": {
            "conditions": [{
                "type": crate::domain::conditions::READY,
                "status": "False",
                "reason": REASON,
                "message": message(&object.error),
                "lastTransitionTime": now.to_string(),
                "observedGeneration": object.metadata.generation,
            }]
        }
    });
    match objects
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => info!(kind = object.kind, %name, "reported an unreadable object on its status"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(error) => {
            warn!(kind = object.kind, %name, %error, "cannot report an unreadable object on its status")
        }
    }
}
