//! Execute: carry out a plan. The status is written first, conditionally
//! on the resourceVersion it was planned from; only once it is written do
//! Events go out and deliveries start. Every delivery outcome is recorded
//! on the freshest incident (a conflict re-reads it and records again),
//! so a responder's write landing mid-delivery never causes a resend.

use jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::{Event, EventType},
};
use tracing::{debug, warn};

use super::{Error, FIELD_MANAGER, State};
use crate::{
    api::{self, Incident, IncidentStatus, Phase},
    domain::{
        enrich,
        incident::{
            Delivery, Report, conditions,
            outbox::{self, Outcome},
            second,
            timeline::Reports,
        },
        policy::EffectivePolicy,
    },
    integrations::notify::{DeliveryError, Notifier},
};

/// How often a write is tried again after conflicts before the reconcile
/// gives up and requeues (each conflict re-reads the incident).
pub const MAX_CONFLICTS: usize = 5;

/// How long one request to the apiserver may take before the reconcile
/// gives up on it (and retries later): a hung request must not hold an
/// incident, or its deliveries, indefinitely.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `request`, or a timeout error when the apiserver does not answer.
async fn bounded<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(kube::Error::Service(
            format!(
                "the apiserver did not answer within {}s",
                REQUEST_TIMEOUT.as_secs()
            )
            .into(),
        )),
    }
}

/// Why a write did not happen.
pub enum WriteError {
    /// The incident changed since it was read: plan again from the fresh one.
    Conflict,
    /// It is gone.
    Gone,
    Other(kube::Error),
}

/// Writes `status` over `base` by server-side apply, on the condition that
/// the incident is still at `base`'s resourceVersion. Returns the incident
/// as written.
pub async fn write_status(
    state: &State,
    base: &Incident,
    status: &IncidentStatus,
) -> Result<Incident, WriteError> {
    let namespace = base.namespace().unwrap_or_default();
    let api: Api<Incident> = Api::namespaced(state.context.client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": api::API_VERSION,
        "kind": "Incident",
        "metadata": {
            "name": base.name_any(),
            "namespace": namespace,
            "resourceVersion": base.metadata.resource_version,
        },
        "status": status,
    });
    let result = bounded(api.patch_status(
        &base.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await;
    match result {
        Ok(written) => {
            state.written.record(
                kube::runtime::reflector::ObjectRef::from_obj(base),
                base.metadata.resource_version.clone(),
                written.metadata.resource_version.clone(),
                written.clone(),
            );
            if tracing::enabled!(tracing::Level::DEBUG) {
                debug!(changed = ?changed_fields(base.status.as_ref(), status), "status updated");
            }
            Ok(written)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            state.context.metrics.status_conflicts.inc();
            Err(WriteError::Conflict)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Err(WriteError::Gone),
        Err(error) => Err(WriteError::Other(error)),
    }
}

/// The incident as the API server has it now; `None` when it is gone.
pub async fn fresh(state: &State, incident: &Incident) -> Result<Option<Incident>, Error> {
    let api: Api<Incident> = Api::namespaced(
        state.context.client.clone(),
        &incident.namespace().unwrap_or_default(),
    );
    bounded(api.get_opt(&incident.name_any()))
        .await
        .map_err(Error::Read)
}

/// One Event per new timeline entry, on the Incident, queued for publishing.
pub fn report(state: &State, incident: &Incident, reports: Vec<Report>) {
    let object = incident.object_ref(&());
    for report in reports {
        let event = Event {
            type_: if report.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: report.reason.clone(),
            note: Some(enrich::truncate(&report.message, 1000)),
            action: report.action,
            secondary: None,
        };
        state.narrator.publish(object.clone(), event);
    }
}

/// One delivery attempt made.
pub struct Attempt {
    pub key: String,
    /// The receiver's kind, for metrics.
    pub kind: &'static str,
    pub outcome: Outcome,
}

/// Sends the due deliveries, at most the notifier's limit at once across
/// the operator; returns each attempt's outcome.
pub async fn deliver(
    state: &State,
    policy: &EffectivePolicy,
    incident: &Incident,
    deliveries: &[Delivery],
) -> Vec<Attempt> {
    let sends = deliveries.iter().map(|delivery| async move {
        let receiver = policy.receiver(&delivery.receiver);
        let (kind, result) = match receiver {
            Some(receiver) => (
                Notifier::kind(receiver),
                state
                    .notifier
                    .send(
                        receiver,
                        incident,
                        delivery,
                        policy
                            .ladder
                            .iter()
                            .position(|l| l.name == incident.spec.severity),
                    )
                    .await,
            ),
            None => (
                "unknown",
                Err(DeliveryError::UnknownReceiver {
                    receiver: delivery.receiver.clone(),
                }),
            ),
        };
        let outcome = match result {
            Ok(()) => {
                state.context.metrics.notification(kind, "delivered");
                Outcome::Delivered
            }
            Err(error) => {
                state.context.metrics.notification(kind, "failed");
                warn!(receiver = %delivery.receiver, trigger = ?delivery.trigger, %error, "notification not delivered");
                Outcome::Failed(error.to_string())
            }
        };
        Attempt {
            key: delivery.key.clone(),
            kind,
            outcome,
        }
    });
    futures::future::join_all(sends).await
}

/// Records `outcomes` on the incident, starting from `current` (the
/// version the attempts were written in) and re-reading it on conflict.
/// Failures short of the last attempt are kept in memory and written with
/// the next attempt. Returns the incident as it now stands.
pub async fn settle(
    state: &State,
    mut current: Incident,
    attempts: Vec<Attempt>,
) -> Result<Incident, Error> {
    let max_attempts = state.context.delivery.max_attempts;
    for attempt in &attempts {
        state.note_delivery(&current, &attempt.key, &attempt.outcome);
    }
    for _ in 0..MAX_CONFLICTS {
        let mut status = current.status.clone().unwrap_or_default();
        let mut reports = Reports::default();
        let now = Timestamp::now();
        let mut gave_up = Vec::new();
        for attempt in &attempts {
            if outbox::record(
                &mut status,
                &attempt.key,
                &attempt.outcome,
                now,
                max_attempts,
                &mut reports,
            ) && matches!(attempt.outcome, Outcome::Failed(_))
            {
                gave_up.push(attempt.kind);
            }
        }
        let reports = reports.into_inner();
        if reports.is_empty() {
            return Ok(current);
        }
        conditions::refresh_delivery(&mut status, current.metadata.generation, &second(now));
        match write_status(state, &current, &status).await {
            Ok(written) => {
                for kind in gave_up {
                    state.context.metrics.notification(kind, "gave_up");
                }
                report(state, &written, reports);
                return Ok(written);
            }
            Err(WriteError::Conflict) => match fresh(state, &current).await? {
                Some(incident) => current = incident,
                None => return Ok(current),
            },
            Err(WriteError::Gone) => return Ok(current),
            Err(WriteError::Other(error)) => return Err(Error::WriteStatus(error)),
        }
    }
    Err(Error::Conflicts)
}

/// Resolves an incident Klaxon declared (the only spec it writes), on
/// the condition that it is still the version that was planned from.
pub async fn resolve(state: &State, incident: &Incident) -> Result<(), Error> {
    let api: Api<Incident> = Api::namespaced(
        state.context.client.clone(),
        &incident.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": incident.metadata.resource_version},
        "spec": {"phase": Phase::Resolved},
    });
    match bounded(api.patch(
        &incident.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    ))
    .await
    {
        Ok(_) => {
            tracing::info!("auto-resolved: the workload stayed healthy");
            Ok(())
        }
        // Changed meanwhile: the next reconcile decides again.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(error) => Err(Error::Resolve(error)),
    }
}

/// The top-level status fields that differ, for the debug log.
fn changed_fields(old: Option<&IncidentStatus>, new: &IncidentStatus) -> Vec<String> {
    let as_map = |status: Option<&IncidentStatus>| match status.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(Some(new)));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect()
}
