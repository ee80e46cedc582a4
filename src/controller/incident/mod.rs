//! The Incident controller.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};

use super::Context;
use crate::{api::Incident, server::Health};

pub const CONTROLLER: &str = "incident";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
}

impl Error {
    /// The reason used for metrics, Events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
        }
    }
}

pub async fn run(context: Context, health: Health, shutdown: CancellationToken) {
    let incidents = Api::<Incident>::all(context.client.clone());
    let controller = Controller::new(incidents, watcher::Config::default().any_semantic());
    let store = controller.store();
    tokio::spawn(async move {
        if super::wait_until_ready(&store).await {
            health.set_ready(true);
        }
    });
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, Arc::new(context))
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(%error, "reconcile loop");
            }
        })
        .await;
}

#[instrument(skip_all, fields(namespace = incident.namespace(), name = incident.name_any()))]
async fn reconcile(incident: Arc<Incident>, context: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    debug!("reconciling");
    context.metrics.observe(CONTROLLER, started.elapsed());
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<Incident>, error: &Error, context: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    context.metrics.failed(CONTROLLER, error.reason());
    Action::requeue(Duration::from_secs(5))
}
