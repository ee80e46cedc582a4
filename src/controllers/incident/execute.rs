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
    api::{Incident, IncidentStatus, Phase},
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

/// Writes `status` over `base` on the condition that the incident is
/// still at `base`'s resourceVersion. Returns the incident as written.
///
/// The write is a JSON merge patch of what changed (removed fields as
/// `null`): the cheapest status write the apiserver offers, and the one
/// the benchmarks' floor makes. A server-side apply of the whole status
/// costs the apiserver a structured merge of every field on each write;
/// the precondition already guarantees the patch applies to exactly the
/// status it was computed from.
pub async fn write_status(
    state: &State,
    base: &Incident,
    status: &IncidentStatus,
) -> Result<Incident, WriteError> {
    let namespace = base.namespace().unwrap_or_default();
    let api: Api<Incident> = Api::namespaced(state.context.client.clone(), &namespace);
    let as_value = |status: Option<&IncidentStatus>| {
        status
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(|| serde_json::json!({}))
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": base.metadata.resource_version},
        "status": merge_diff(&as_value(base.status.as_ref()), &as_value(Some(status))),
    });
    let writing = state.narrator.writing();
    let result = bounded(api.patch_status(
        &base.name_any(),
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    ))
    .await;
    drop(writing);
    match result {
        Ok(written) => {
            state
                .pacer
                .wrote(&kube::runtime::reflector::ObjectRef::from_obj(base));
            state.written.record(
                kube::runtime::reflector::ObjectRef::from_obj(base),
                base.metadata.resource_version.clone(),
                written.metadata.resource_version.clone(),
                written.clone(),
            );
            if tracing::enabled!(tracing::Level::DEBUG) {
                debug!(
                    changed = ?changed_fields(base.status.as_ref(), status),
                    urgent = %urgent_diff(base.status.as_ref(), status),
                    "status updated"
                );
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

/// One Event per new narrated timeline entry, on the Incident, queued for
/// publishing.
pub fn report(state: &State, incident: &Incident, reports: Vec<Report>) {
    let object = incident.object_ref(&());
    for report in reports.into_iter().filter(|r| r.narrated) {
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

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed
/// and new members, and `null` for each removed one.
fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        patch.insert(key.clone(), merge_diff(before, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
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

/// What of the write was urgent (see [`pace`]), for the debug log: the
/// merge patch between the two statuses' facts, `{}` for a routine write.
///
/// [`pace`]: crate::domain::incident::pace
fn urgent_diff(old: Option<&IncidentStatus>, new: &IncidentStatus) -> serde_json::Value {
    use crate::domain::incident::pace::facts;
    let Some(old) = old else {
        return serde_json::json!("new");
    };
    match (
        serde_json::to_value(facts(old)),
        serde_json::to_value(facts(new)),
    ) {
        (Ok(old), Ok(new)) => merge_diff(&old, &new),
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::merge_diff;

    /// RFC 7386's MergePatch, as the apiserver applies it.
    fn apply(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(patch) => {
                let mut out = match target {
                    Value::Object(target) => target.clone(),
                    _ => serde_json::Map::new(),
                };
                for (key, value) in patch {
                    if value.is_null() {
                        out.remove(key);
                    } else {
                        let merged = apply(out.get(key).unwrap_or(&Value::Null), value);
                        out.insert(key.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            _ => patch.clone(),
        }
    }

    #[test]
    fn only_what_changed_is_sent() {
        let old = json!({"summary": "a", "overdue": true, "deployments": [{"name": "x"}],
                         "brief": {"deadline": "in 5m", "summary": "a"}});
        let new = json!({"summary": "a", "deployments": [{"name": "x"}, {"name": "y"}],
                         "brief": {"summary": "b"}});
        assert_eq!(
            merge_diff(&old, &new),
            json!({"overdue": null, "deployments": [{"name": "x"}, {"name": "y"}],
                   "brief": {"deadline": null, "summary": "b"}})
        );
    }

    /// Statuses as serialized: objects without nulls (absent fields are
    /// skipped), arrays, strings and numbers.
    fn status_like() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_new_status(
            old in prop::collection::btree_map("[a-d]", status_like(), 0..4),
            new in prop::collection::btree_map("[a-d]", status_like(), 0..4),
        ) {
            let old = Value::Object(old.into_iter().collect());
            let new = Value::Object(new.into_iter().collect());
            prop_assert_eq!(apply(&old, &merge_diff(&old, &new)), new);
        }
    }
}
