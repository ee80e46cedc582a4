//! A Deployment's state and what its last rollout changed, from the
//! Deployment and the ReplicaSets it owns.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use crate::kinds::REVISION_ANNOTATION;
use crate::{
    api::{incident::DeploymentState, limits::MAX_IMAGES},
    kinds::{Deployment, PodTemplateSpec, REVISION_HISTORY_ANNOTATION, ReplicaSet},
};

fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<i64> {
    annotations?.get(REVISION_ANNOTATION)?.trim().parse().ok()
}

pub fn images_of_template(template: Option<&PodTemplateSpec>) -> Vec<String> {
    let mut images: Vec<String> = template
        .and_then(|t| t.spec.as_ref())
        .map(|spec| {
            spec.init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    images.dedup();
    images.truncate(MAX_IMAGES as usize);
    images
}

fn condition(deployment: &Deployment, type_: &str) -> Option<String> {
    let condition = deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some(match &condition.reason {
        Some(reason) if !reason.is_empty() => format!("{} ({reason})", condition.status),
        _ => condition.status.clone(),
    })
}

/// The latest rollout: the current ReplicaSet and the one it replaced.
pub struct Rollout<'a> {
    pub current: &'a ReplicaSet,
    pub previous: Option<&'a ReplicaSet>,
    pub revision: Option<i64>,
}

impl Rollout<'_> {
    /// When the rollout started: the current ReplicaSet's creation, unless
    /// the Deployment controller reused an older ReplicaSet for it (a
    /// rollback, e.g. `kubectl rollout undo`). Then its creation is the
    /// first rollout of that template, and the cluster records no start:
    /// the closest is the Deployment's last progress once its Progressing
    /// condition names that ReplicaSet (until then, unknown). That is
    /// seconds after the rollback began, or when it last progressed.
    pub fn started_at<'d>(&'d self, deployment: &'d Deployment) -> Option<&'d Time> {
        if !self.reused() {
            return self.current.metadata.creation_timestamp.as_ref();
        }
        let name = self.current.metadata.name.as_deref()?;
        deployment
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
            .filter(|c| {
                c.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&format!("\"{name}\"")))
            })
            .and_then(|c| c.last_update_time.as_ref())
    }

    /// Whether the current ReplicaSet ran earlier revisions: a rollback.
    fn reused(&self) -> bool {
        self.current
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(REVISION_HISTORY_ANNOTATION))
    }
}

/// Finds the current ReplicaSet (the Deployment's revision, else the
/// newest) and the one before it.
pub fn rollout<'a>(deployment: &Deployment, replicasets: &[&'a ReplicaSet]) -> Option<Rollout<'a>> {
    let revision = revision_of(deployment.metadata.annotations.as_ref());
    let with_revision: Vec<(&ReplicaSet, i64)> = replicasets
        .iter()
        .filter_map(|rs| revision_of(rs.metadata.annotations.as_ref()).map(|r| (*rs, r)))
        .collect();
    let current = revision
        .and_then(|wanted| with_revision.iter().find(|(_, r)| *r == wanted))
        .or_else(|| with_revision.iter().max_by_key(|(_, r)| *r))
        .copied();
    match current {
        Some((current, current_revision)) => {
            let previous = with_revision
                .iter()
                .filter(|(_, r)| *r < current_revision)
                .max_by_key(|(_, r)| *r)
                .map(|(rs, _)| *rs);
            Some(Rollout {
                current,
                previous,
                revision: Some(current_revision),
            })
        }
        // No revision annotations at all: order by creation time.
        None => {
            let mut by_age: Vec<&ReplicaSet> = replicasets.to_vec();
            by_age.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let current = by_age.pop()?;
            Some(Rollout {
                current,
                previous: by_age.pop(),
                revision: None,
            })
        }
    }
}

/// Each revision of a Deployment's pod template its ReplicaSets keep, for
/// [`super::changes::rollouts`]: when pods began rolling to it (the
/// current one's [`Rollout::started_at`], which sees a rollback), else
/// the ReplicaSet's creation; none for an earlier rollback, whose start
/// the cluster no longer shows. Without revision annotations, creation
/// order numbers them.
pub fn revisions<'a>(
    deployment: &Deployment,
    replicasets: &[&'a ReplicaSet],
) -> Vec<super::changes::Revision<'a>> {
    let current = rollout(deployment, replicasets);
    let mut by_age: Vec<&'a ReplicaSet> = replicasets.to_vec();
    by_age.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    by_age
        .iter()
        .enumerate()
        .map(|(i, rs)| {
            let is_current = current
                .as_ref()
                .is_some_and(|r| std::ptr::eq(r.current, *rs));
            let reused = rs
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(REVISION_HISTORY_ANNOTATION));
            let at = match &current {
                Some(r) if is_current => r.started_at(deployment).cloned(),
                // A rollback no longer current: its start is not kept.
                _ if reused => None,
                _ => rs.metadata.creation_timestamp.clone(),
            };
            super::changes::Revision {
                number: revision_of(rs.metadata.annotations.as_ref())
                    .unwrap_or(i64::try_from(i).unwrap_or(i64::MAX) + 1),
                earlier: rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION_HISTORY_ANNOTATION))
                    .map(|h| h.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                    .unwrap_or_default(),
                at,
                template: rs.spec.as_ref().and_then(|s| s.template.as_ref()),
            }
        })
        .collect()
}

/// The state of a Deployment that was found. Pods and usage are filled in
/// by the caller.
pub fn state(name: &str, deployment: &Deployment, replicasets: &[&ReplicaSet]) -> DeploymentState {
    let status = deployment.status.as_ref();
    let rollout = rollout(deployment, replicasets);
    DeploymentState {
        name: name.to_string(),
        found: true,
        replicas: Some(
            deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1),
        ),
        ready_replicas: Some(status.and_then(|s| s.ready_replicas).unwrap_or(0)),
        available_replicas: Some(status.and_then(|s| s.available_replicas).unwrap_or(0)),
        updated_replicas: Some(status.and_then(|s| s.updated_replicas).unwrap_or(0)),
        available: condition(deployment, "Available"),
        progressing: condition(deployment, "Progressing"),
        images: images_of_template(deployment.spec.as_ref().map(|s| &s.template)),
        revision: revision_of(deployment.metadata.annotations.as_ref())
            .or(rollout.as_ref().and_then(|r| r.revision))
            .map(|r| r.to_string()),
        rollout_at: rollout
            .as_ref()
            .and_then(|r| r.started_at(deployment).cloned()),
        previous_images: rollout
            .as_ref()
            .and_then(|r| r.previous)
            .map(|rs| images_of_template(rs.spec.as_ref().and_then(|s| s.template.as_ref())))
            .unwrap_or_default(),
        pods: None,
        usage: None,
    }
}

pub fn not_found(name: &str) -> DeploymentState {
    DeploymentState {
        name: name.to_string(),
        found: false,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enrich::testing::*;

    #[test]
    fn finds_rollout_and_previous_images_by_revision() {
        let deployment = deployment("checkout", 3, 1, Some("2"), "shop/checkout:v42");
        let old = replicaset(
            "checkout-aaa",
            "1",
            "shop/checkout:v41",
            "2026-11-24T13:00:00Z",
        );
        let new = replicaset(
            "checkout-bbb",
            "2",
            "shop/checkout:v42",
            "2026-11-24T14:01:00Z",
        );
        let state = state("checkout", &deployment, &[&new, &old]);
        assert_eq!(state.revision.as_deref(), Some("2"));
        assert_eq!(state.images, ["shop/checkout:v42"]);
        assert_eq!(state.previous_images, ["shop/checkout:v41"]);
        assert_eq!(
            state.rollout_at.map(|t| t.0.to_string()).as_deref(),
            Some("2026-11-24T14:01:00Z")
        );
        assert_eq!(state.replicas, Some(3));
        assert_eq!(state.ready_replicas, Some(1));
    }

    #[test]
    fn first_revision_has_no_previous_images() {
        let deployment = deployment("api", 2, 2, Some("1"), "api:v1");
        let only = replicaset("api-aaa", "1", "api:v1", "2026-11-24T13:00:00Z");
        let state = state("api", &deployment, &[&only]);
        assert!(state.previous_images.is_empty());
        assert!(state.rollout_at.is_some());
    }

    #[test]
    fn a_rollback_started_when_the_deployment_last_progressed() {
        // `kubectl rollout undo` from revision 2: the controller reuses
        // revision 1's ReplicaSet as revision 3, created long ago.
        let mut deployment = deployment("checkout", 3, 3, Some("3"), "shop/checkout:v41");
        let progressed = "2026-11-24T15:30:00Z";
        if let Some(status) = deployment.status.as_mut() {
            status.conditions = Some(vec![crate::kinds::DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("NewReplicaSetAvailable".into()),
                last_transition_time: Some(Time("2026-11-24T13:00:00Z".parse().expect("time"))),
                last_update_time: Some(Time(progressed.parse().expect("time"))),
                message: Some(r#"ReplicaSet "checkout-aaa" has successfully progressed."#.into()),
            }]);
        }
        let mut reused = replicaset(
            "checkout-aaa",
            "3",
            "shop/checkout:v41",
            "2026-11-24T13:00:00Z",
        );
        if let Some(annotations) = reused.metadata.annotations.as_mut() {
            annotations.insert(REVISION_HISTORY_ANNOTATION.into(), "1".into());
        }
        let bad = replicaset(
            "checkout-bbb",
            "2",
            "shop/checkout:v42",
            "2026-11-24T14:01:00Z",
        );
        let state = state("checkout", &deployment, &[&reused, &bad]);
        assert_eq!(state.revision.as_deref(), Some("3"));
        let mut stale = deployment.clone();
        if let Some(c) = stale
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.first_mut())
        {
            c.message = Some(r#"ReplicaSet "checkout-bbb" is progressing."#.into());
        }
        assert_eq!(
            super::state("checkout", &stale, &[&reused, &bad]).rollout_at,
            None,
            "the condition still speaks of the rollout before"
        );
        assert_eq!(state.previous_images, ["shop/checkout:v42"]);
        assert_eq!(
            state.rollout_at.map(|t| t.0.to_string()).as_deref(),
            Some(progressed),
            "not the reused ReplicaSet's creation"
        );
    }
}
