//! StatefulSets and DaemonSets: their state, and what their last rollout
//! changed, from the ControllerRevisions their controllers write (one per
//! pod template, numbered; a rollback renumbers the old one).

use std::collections::BTreeSet;

use crate::{
    api::{
        incident::{ClaimState, DaemonSetState, DeploymentState, StatefulSetState},
        limits::{MAX_CLAIMS, MAX_FAILING_NODES},
    },
    domain::enrich::{deployment::images_of_template, pods::PodView},
    kinds::{ControllerRevision, DaemonSet, PersistentVolumeClaim, StatefulSet},
};

/// The revision pods are rolled to and the one before it: `wanted` by
/// name when the controller names it (a StatefulSet's `updateRevision`),
/// else the highest number (a DaemonSet's current template always holds
/// it).
fn rollout<'a>(
    revisions: &[&'a ControllerRevision],
    wanted: Option<&str>,
) -> (
    Option<&'a ControllerRevision>,
    Option<&'a ControllerRevision>,
) {
    let current = wanted
        .and_then(|name| {
            revisions
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name))
        })
        .or_else(|| revisions.iter().max_by_key(|r| r.revision))
        .copied();
    let previous = current.and_then(|current| {
        revisions
            .iter()
            .filter(|r| r.revision < current.revision)
            .max_by_key(|r| r.revision)
            .copied()
    });
    (current, previous)
}

/// Each revision of a StatefulSet's or DaemonSet's pod template, for
/// [`super::changes::rollouts`]. A rollback renumbers an old revision,
/// whose creation is then not when the rollback began; the cluster
/// records nothing closer.
pub fn history<'a>(revisions: &[&'a ControllerRevision]) -> Vec<super::changes::Revision<'a>> {
    revisions
        .iter()
        .map(|r| super::changes::Revision {
            number: r.revision,
            earlier: Vec::new(),
            at: r.metadata.creation_timestamp.clone(),
            template: r.template(),
        })
        .collect()
}

/// The fields every kind shares, from a workload's template and its
/// revisions; replicas and pods are the caller's.
fn common(
    name: &str,
    template: &crate::kinds::PodTemplateSpec,
    revisions: &[&ControllerRevision],
    wanted: Option<&str>,
) -> DeploymentState {
    let (current, previous) = rollout(revisions, wanted);
    DeploymentState {
        name: name.to_string(),
        found: true,
        images: images_of_template(Some(template)),
        revision: current.map(|r| r.revision.to_string()),
        // A rollback reuses an old revision, whose creation is then not
        // when this rollout began; the cluster records nothing closer.
        rollout_at: current.and_then(|r| r.metadata.creation_timestamp.clone()),
        previous_images: previous
            .map(|r| images_of_template(r.template()))
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// A StatefulSet's state. `claim` looks a claim up by name.
pub fn statefulset(
    name: &str,
    set: &StatefulSet,
    revisions: &[&ControllerRevision],
    claim: impl Fn(&str) -> Option<std::sync::Arc<PersistentVolumeClaim>>,
) -> StatefulSetState {
    let spec = set.spec.as_ref();
    let status = set.status.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let update_revision = status.and_then(|s| s.update_revision.clone());
    let mut workload = common(
        name,
        spec.map(|s| &s.template).unwrap_or(&Default::default()),
        revisions,
        update_revision.as_deref(),
    );
    workload.replicas = Some(replicas);
    workload.ready_replicas = Some(status.and_then(|s| s.ready_replicas).unwrap_or(0));
    workload.available_replicas = Some(status.and_then(|s| s.available_replicas).unwrap_or(0));
    workload.updated_replicas = Some(status.and_then(|s| s.updated_replicas).unwrap_or(0));
    // Claims are `<template>-<set>-<ordinal>`; those not created yet are
    // not listed (their pods say why they wait).
    let mut claims = Vec::new();
    let templates = spec
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.metadata.name.as_deref());
    'templates: for template in templates {
        for ordinal in 0..replicas.max(0) {
            let claim_name = format!("{template}-{name}-{ordinal}");
            let Some(found) = claim(&claim_name) else {
                continue;
            };
            let phase = found.status.as_ref().and_then(|s| s.phase.clone());
            if phase.as_deref() == Some("Bound") {
                continue;
            }
            if claims.len() == MAX_CLAIMS as usize {
                break 'templates;
            }
            claims.push(ClaimState {
                name: claim_name,
                phase: Some(phase.unwrap_or_else(|| "Pending".into())),
                storage_class: found
                    .spec
                    .as_ref()
                    .and_then(|s| s.storage_class_name.clone()),
            });
        }
    }
    StatefulSetState {
        workload,
        current_revision: status.and_then(|s| s.current_revision.clone()),
        update_revision,
        partition: spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .filter(|p| *p > 0),
        claims,
    }
}

/// A DaemonSet's state; `pods` are its own.
pub fn daemonset(
    name: &str,
    set: &DaemonSet,
    revisions: &[&ControllerRevision],
    pods: &[&PodView],
) -> DaemonSetState {
    let status = set.status.clone().unwrap_or_default();
    let mut workload = common(
        name,
        set.spec
            .as_ref()
            .map(|s| &s.template)
            .unwrap_or(&Default::default()),
        revisions,
        None,
    );
    workload.replicas = Some(status.desired_number_scheduled);
    workload.ready_replicas = Some(status.number_ready);
    workload.available_replicas = Some(status.number_available.unwrap_or(0));
    workload.updated_replicas = Some(status.updated_number_scheduled.unwrap_or(0));
    let failing: BTreeSet<&str> = pods
        .iter()
        .filter(|p| !p.ready || (p.recovered.len() < p.reasons.len()))
        .filter_map(|p| p.node.as_deref())
        .collect();
    DaemonSetState {
        workload,
        desired_number_scheduled: Some(status.desired_number_scheduled),
        number_misscheduled: Some(status.number_misscheduled),
        failing_nodes: failing
            .into_iter()
            .take(MAX_FAILING_NODES as usize)
            .map(String::from)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::kinds::Pod;

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("valid test object")
    }

    fn revision(name: &str, number: i64, image: &str, created: &str) -> ControllerRevision {
        from(json!({
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "revision": number,
            "data": {"spec": {"template": {"$patch": "replace",
                "metadata": {"labels": {"app": "ledger"}},
                "spec": {"containers": [{"name": "db", "image": image}]}}}}
        }))
    }

    #[test]
    fn a_statefulset_rolled_to_a_new_revision_shows_what_it_replaced() {
        let set: StatefulSet = from(json!({
            "metadata": {"name": "ledger-db", "namespace": "shop"},
            "spec": {"replicas": 3, "serviceName": "ledger-db",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                "template": {"spec": {"containers": [{"name": "db", "image": "ledger:v2"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"storageClassName": "fast"}}]},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                "updatedReplicas": 1, "currentRevision": "ledger-db-aaa",
                "updateRevision": "ledger-db-bbb"}
        }));
        let old = revision("ledger-db-aaa", 1, "ledger:v1", "2026-12-01T10:00:00Z");
        let new = revision("ledger-db-bbb", 2, "ledger:v2", "2026-12-01T11:00:00Z");
        let pending: PersistentVolumeClaim = from(json!({
            "metadata": {"name": "data-ledger-db-2", "namespace": "shop"},
            "spec": {"storageClassName": "fast"},
            "status": {"phase": "Pending"}
        }));
        let bound: PersistentVolumeClaim = from(json!({
            "metadata": {"name": "data-ledger-db-0", "namespace": "shop"},
            "spec": {"storageClassName": "fast"},
            "status": {"phase": "Bound"}
        }));
        let claims = [Arc::new(pending), Arc::new(bound)];
        let state = statefulset("ledger-db", &set, &[&new, &old], |name| {
            claims
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .cloned()
        });
        let w = &state.workload;
        assert_eq!((w.replicas, w.ready_replicas), (Some(3), Some(2)));
        assert_eq!(w.revision.as_deref(), Some("2"));
        assert_eq!(w.images, ["ledger:v2"]);
        assert_eq!(w.previous_images, ["ledger:v1"]);
        assert_eq!(
            w.rollout_at.as_ref().map(|t| t.0.to_string()).as_deref(),
            Some("2026-12-01T11:00:00Z")
        );
        assert_eq!(
            (
                state.current_revision.as_deref(),
                state.update_revision.as_deref()
            ),
            (Some("ledger-db-aaa"), Some("ledger-db-bbb"))
        );
        assert_eq!(state.partition, Some(1));
        assert_eq!(
            state.claims,
            [ClaimState {
                name: "data-ledger-db-2".into(),
                phase: Some("Pending".into()),
                storage_class: Some("fast".into()),
            }]
        );
    }

    #[test]
    fn a_daemonset_names_the_nodes_whose_pods_fail() {
        let set: DaemonSet = from(json!({
            "metadata": {"name": "node-agent", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:v3"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberMisscheduled": 1, "numberReady": 1, "numberAvailable": 1,
                "numberUnavailable": 2, "updatedNumberScheduled": 3}
        }));
        let pod = |name: &str, node: &str, ready: bool| -> PodView {
            let state = if ready {
                json!({"running": {}})
            } else {
                json!({"waiting": {"reason": "CrashLoopBackOff"}})
            };
            PodView::of(&from::<Pod>(json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"nodeName": node, "containers": [{"name": "agent"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "containerStatuses": [{"name": "agent", "ready": ready, "restartCount": 2,
                        "state": state}]}
            })))
        };
        let pods = [
            pod("a", "kwok-node-2", false),
            pod("b", "kwok-node-0", false),
            pod("c", "kwok-node-1", true),
        ];
        let refs: Vec<&PodView> = pods.iter().collect();
        let state = daemonset("node-agent", &set, &[], &refs);
        assert_eq!(state.failing_nodes, ["kwok-node-0", "kwok-node-2"]);
        assert_eq!(
            (state.desired_number_scheduled, state.number_misscheduled),
            (Some(3), Some(1))
        );
        assert_eq!(
            (state.workload.replicas, state.workload.ready_replicas),
            (Some(3), Some(1))
        );
        assert_eq!(state.workload.revision, None, "no revisions cached yet");
    }
}
