//! What changed in a workload: each rollout within the lookback, as the
//! difference between the pod template it rolled to and the one before
//! (images, variables by name, CPU and memory, the ConfigMaps and Secrets
//! referenced), from the ReplicaSets or ControllerRevisions the cluster
//! keeps as rollout history.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::truncate;
use crate::{
    api::{
        incident::{Change, WorkloadKind},
        limits::MAX_CHANGE_TEXT,
    },
    kinds::{Container, EnvVar, PodSpec, PodTemplateSpec},
};

/// One revision of a workload's pod template.
pub struct Revision<'a> {
    pub number: i64,
    /// The numbers this template had before a rollback renumbered it (a
    /// ReplicaSet's `deployment.kubernetes.io/revision-history`).
    pub earlier: Vec<i64>,
    /// When pods began rolling to it.
    pub at: Option<Time>,
    pub template: Option<&'a PodTemplateSpec>,
}

/// The rollouts among `revisions` that began at or after `since`, each
/// against the revision before it; the first revision is the workload's
/// creation.
pub fn rollouts(
    kind: WorkloadKind,
    name: &str,
    mut revisions: Vec<Revision<'_>>,
    since: Timestamp,
) -> Vec<Change> {
    revisions.sort_by_key(|r| r.number);
    // Every number a template had, so the one before a revision is found
    // even when a rollback renumbered it since.
    let mut numbered: Vec<(i64, Option<&PodTemplateSpec>)> = revisions
        .iter()
        .flat_map(|r| {
            std::iter::once(r.number)
                .chain(r.earlier.iter().copied())
                .map(move |n| (n, r.template))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let mut changes = Vec::new();
    // The latest start among lower revisions: a rollback reuses an old
    // template, whose creation is then older than the rollout it undid,
    // and the cluster records no time for the rollback itself. Such a
    // revision is left out rather than dated wrong (a change is kept as
    // first seen); a Deployment's current one comes with its start.
    let mut latest: Option<Timestamp> = None;
    for revision in &revisions {
        let Some(at) = revision.at.as_ref().map(|t| t.0) else {
            continue;
        };
        if latest.is_some_and(|l| at < l) {
            continue;
        }
        latest = Some(at);
        if at < since {
            continue;
        }
        let before = numbered
            .iter()
            .rev()
            .find(|(n, _)| *n < revision.number)
            .copied();
        let number = revision.number;
        let mut text = match before {
            None if number > 1 => {
                format!("revision {number}: rolled out (the revision before it is no longer kept)")
            }
            None => format!("revision {number}: created"),
            Some((n, template)) => {
                let against = if n + 1 == number {
                    String::new()
                } else {
                    format!(" (against revision {n}, the last one kept before it)")
                };
                format!(
                    "revision {number}{against}: {}",
                    describe(&diff(template, revision.template))
                )
            }
        };
        if let Some(was) = revision.earlier.iter().max() {
            text.push_str(&format!("; a rollback to revision {was}'s template"));
        }
        changes.push(Change {
            time: Time(at),
            kind: kind.as_str().to_string(),
            name: name.to_string(),
            change: truncate(&text, MAX_CHANGE_TEXT as usize),
            revision: Some(number.to_string()),
            by: None,
            source: None,
            suspect: None,
        });
    }
    changes
}

/// The differences between two pod templates, each a short phrase.
pub fn diff(before: Option<&PodTemplateSpec>, after: Option<&PodTemplateSpec>) -> Vec<String> {
    let empty = PodSpec::default();
    let before = before.and_then(|t| t.spec.as_ref()).unwrap_or(&empty);
    let after = after.and_then(|t| t.spec.as_ref()).unwrap_or(&empty);
    let mut out = Vec::new();
    let containers = |spec: &'_ PodSpec| -> Vec<(String, Container)> {
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| (format!("{} (init)", c.name), c.clone()))
            .chain(spec.containers.iter().map(|c| (c.name.clone(), c.clone())))
            .collect()
    };
    let old: BTreeMap<String, Container> = containers(before).into_iter().collect();
    let new = containers(after);
    for (name, container) in &new {
        let Some(was) = old.get(name) else {
            out.push(format!("container {name} added"));
            continue;
        };
        if was.image != container.image {
            out.push(format!(
                "{name} image {} → {}",
                was.image.as_deref().unwrap_or("none"),
                container.image.as_deref().unwrap_or("none")
            ));
        }
        if let Some(env) = env_diff(&was.env, &container.env) {
            out.push(format!("{name} env {env}"));
        }
        out.extend(
            resource_diff(was, container)
                .into_iter()
                .map(|r| format!("{name} {r}")),
        );
    }
    for name in old.keys() {
        if !new.iter().any(|(n, _)| n == name) {
            out.push(format!("container {name} removed"));
        }
    }
    for (secret, kind) in [(false, "ConfigMap"), (true, "Secret")] {
        let (was, now) = (before.references(secret), after.references(secret));
        for name in now.difference(&was) {
            out.push(format!("{kind} {name} added"));
        }
        for name in was.difference(&now) {
            out.push(format!("{kind} {name} removed"));
        }
    }
    out
}

/// The phrases as one line.
pub fn describe(differences: &[String]) -> String {
    if differences.is_empty() {
        // A restart (`kubectl rollout restart` stamps an annotation) or a
        // label, probe or other field not followed here.
        "pod template changed (no image, variable, resource or reference)".to_string()
    } else {
        differences.join("; ")
    }
}

/// `A added, B removed, C changed`, by name only: a value is never shown,
/// only whether it (or what it references) changed.
fn env_diff(before: &[EnvVar], after: &[EnvVar]) -> Option<String> {
    let names = |env: &[EnvVar]| env.iter().map(|e| e.name.clone()).collect::<BTreeSet<_>>();
    let (was, now) = (names(before), names(after));
    let find = |env: &'_ [EnvVar], name: &str| env.iter().find(|e| e.name == name).cloned();
    let mut parts = Vec::new();
    let added: Vec<&String> = now.difference(&was).collect();
    if !added.is_empty() {
        parts.push(format!("{} added", join(&added)));
    }
    let removed: Vec<&String> = was.difference(&now).collect();
    if !removed.is_empty() {
        parts.push(format!("{} removed", join(&removed)));
    }
    let changed: Vec<&String> = now
        .intersection(&was)
        .filter(|name| find(before, name) != find(after, name))
        .collect();
    if !changed.is_empty() {
        parts.push(format!("{} changed", join(&changed)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn join(names: &[&String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// `memory limit 256Mi → 128Mi`, for each CPU and memory request and limit
/// that differs.
fn resource_diff(before: &Container, after: &Container) -> Vec<String> {
    let get = |c: &Container, limits: bool, resource: &str| {
        c.resources
            .as_ref()
            .and_then(|r| if limits { &r.limits } else { &r.requests }.as_ref())
            .and_then(|r| r.get(resource))
            .map(|q| q.0.clone())
    };
    let mut out = Vec::new();
    for resource in ["cpu", "memory"] {
        for (limits, what) in [(false, "request"), (true, "limit")] {
            let (was, now) = (get(before, limits, resource), get(after, limits, resource));
            if was != now {
                out.push(format!(
                    "{resource} {what} {} → {}",
                    was.as_deref().unwrap_or("none"),
                    now.as_deref().unwrap_or("none")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(value: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({ "spec": value })).expect("template")
    }

    fn at(text: &str) -> Option<Time> {
        Some(Time(text.parse().expect("time")))
    }

    #[test]
    fn a_rollout_names_what_its_template_changed_and_never_a_value() {
        let before = template(serde_json::json!({
            "containers": [{"name": "app", "image": "shop/web:v1",
                "env": [{"name": "LEVEL", "value": "info"}, {"name": "OLD", "value": "1"},
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
                "resources": {"limits": {"memory": "256Mi"}}}],
            "volumes": [{"name": "flags", "configMap": {"name": "web-flags"}}]
        }));
        let after = template(serde_json::json!({
            "containers": [{"name": "app", "image": "shop/web:v2",
                "env": [{"name": "LEVEL", "value": "debug-secret-value"},
                        {"name": "FEATURE_CARDS", "value": "on"},
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-v2", "key": "pw"}}}],
                "envFrom": [{"configMapRef": {"name": "web-env"}}],
                "resources": {"limits": {"memory": "128Mi", "cpu": "1"}}}],
            "volumes": [{"name": "flags", "projected": {"sources": [{"configMap": {"name": "web-flags-v2"}}]}}]
        }));
        let text = describe(&diff(Some(&before), Some(&after)));
        assert_eq!(
            text,
            "app image shop/web:v1 → shop/web:v2; \
             app env FEATURE_CARDS added, OLD removed, DB_PASSWORD LEVEL changed; \
             app cpu limit none → 1; app memory limit 256Mi → 128Mi; \
             ConfigMap web-env added; ConfigMap web-flags-v2 added; ConfigMap web-flags removed; \
             Secret db-v2 added; Secret db removed"
        );
        assert!(!text.contains("debug-secret-value") && !text.contains("info"));
    }

    #[test]
    fn a_rollback_is_diffed_against_what_it_undid_and_dated_after_it() {
        let image =
            |i: &str| template(serde_json::json!({"containers": [{"name": "app", "image": i}]}));
        let (v1, v2, v3) = (image("v1"), image("v2"), image("v3"));
        let since: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        // A Deployment rolled v2 back from v3: its ReplicaSet of v2 took
        // revision 4 and remembers it was 2.
        let deployment = vec![
            Revision {
                number: 1,
                earlier: vec![],
                at: at("2026-12-01T10:05:00Z"),
                template: Some(&v1),
            },
            Revision {
                number: 4,
                earlier: vec![2],
                at: at("2026-12-01T10:40:00Z"),
                template: Some(&v2),
            },
            Revision {
                number: 3,
                earlier: vec![],
                at: at("2026-12-01T10:30:00Z"),
                template: Some(&v3),
            },
        ];
        let texts: Vec<String> = rollouts(WorkloadKind::Deployment, "web", deployment, since)
            .into_iter()
            .map(|c| c.change)
            .collect();
        assert_eq!(
            texts,
            [
                "revision 1: created",
                "revision 3: app image v2 → v3",
                "revision 4: app image v3 → v2; a rollback to revision 2's template"
            ]
        );
        // A StatefulSet's: the renumbered revision keeps its old creation.
        let set = vec![
            Revision {
                number: 3,
                earlier: vec![],
                at: at("2026-12-01T10:30:00Z"),
                template: Some(&v3),
            },
            Revision {
                number: 4,
                earlier: vec![],
                at: at("2026-12-01T10:20:00Z"),
                template: Some(&v2),
            },
        ];
        // Its rollback has no time the cluster keeps: left out, not
        // dated wrong.
        let texts: Vec<String> = rollouts(WorkloadKind::StatefulSet, "ledger", set, since)
            .into_iter()
            .map(|c| c.change)
            .collect();
        assert_eq!(
            texts,
            ["revision 3: rolled out (the revision before it is no longer kept)"]
        );
    }

    #[test]
    fn containers_added_and_removed_and_a_restart() {
        let one = template(serde_json::json!({"containers": [{"name": "app", "image": "a"}]}));
        let two = template(serde_json::json!({
            "initContainers": [{"name": "migrate", "image": "m"}],
            "containers": [{"name": "proxy", "image": "p"}]
        }));
        assert_eq!(
            diff(Some(&one), Some(&two)),
            [
                "container migrate (init) added",
                "container proxy added",
                "container app removed"
            ]
        );
        assert_eq!(
            describe(&diff(Some(&one), Some(&one))),
            "pod template changed (no image, variable, resource or reference)"
        );
    }

    #[test]
    fn rollouts_within_the_lookback_each_against_the_one_before() {
        let v1 = template(serde_json::json!({"containers": [{"name": "app", "image": "v1"}]}));
        let v2 = template(serde_json::json!({"containers": [{"name": "app", "image": "v2"}]}));
        let v3 = template(serde_json::json!({"containers": [{"name": "app", "image": "v3"}]}));
        let revisions = vec![
            Revision {
                earlier: vec![],
                number: 3,
                at: at("2026-12-01T10:50:00Z"),
                template: Some(&v3),
            },
            Revision {
                earlier: vec![],
                number: 1,
                at: at("2026-12-01T08:00:00Z"),
                template: Some(&v1),
            },
            Revision {
                earlier: vec![],
                number: 2,
                at: at("2026-12-01T10:20:00Z"),
                template: Some(&v2),
            },
        ];
        let since: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
        let changes = rollouts(WorkloadKind::StatefulSet, "ledger", revisions, since);
        let texts: Vec<&str> = changes.iter().map(|c| c.change.as_str()).collect();
        assert_eq!(
            texts,
            [
                "revision 2: app image v1 → v2",
                "revision 3: app image v2 → v3"
            ]
        );
        assert!(
            changes
                .iter()
                .all(|c| c.kind == "StatefulSet" && c.name == "ledger")
        );
        // A workload created within the lookback.
        let created = rollouts(
            WorkloadKind::Deployment,
            "web",
            vec![Revision {
                earlier: vec![],
                number: 1,
                at: at("2026-12-01T10:30:00Z"),
                template: Some(&v1),
            }],
            since,
        );
        assert_eq!(created[0].change, "revision 1: created");
    }
}
