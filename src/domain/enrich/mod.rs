//! Enrichment: what responders would otherwise collect by hand, computed
//! from cached cluster objects by pure functions (no I/O here).
//!
//! - [`deployment`]: replicas, conditions, images and the last rollout;
//! - [`revisions`]: StatefulSets and DaemonSets, from their
//!   ControllerRevisions;
//! - [`pods`]: failure reasons, restarts, the worst pods;
//! - [`events`]: deduplicated Warning events;
//! - [`nodes`]: the nodes under the pods that have a problem;
//! - [`usage`]: CPU and memory from PodMetrics.

pub mod changes;
pub mod deployment;
pub mod events;
pub mod nodes;
pub mod pods;
pub mod redact;
pub mod revisions;
pub mod usage;

use crate::api::{IncidentStatus, incident::DeploymentState};

/// At most `max` bytes of `text`, cut at a character boundary, with an
/// ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Deployments the summary names one by one; beyond this it counts them.
pub const SUMMARY_NAMED: usize = 3;

/// Longest `status.summary`.
pub const SUMMARY_MAX: usize = 200;

/// One line for humans and the printer column, e.g.
/// `checkout 1/3 ready; 2 CrashLoopBackOff, 1 OOMKilled; 14 warnings`.
/// Deployments are named bare, other kinds as `statefulset/ledger-db`.
pub fn summary(status: &IncidentStatus, warnings: i64) -> String {
    let workloads: Vec<(String, &DeploymentState)> = status
        .workloads()
        .map(|(kind, d)| (kind.key(&d.name), d))
        .collect();
    let mut parts = Vec::new();
    if workloads.len() > SUMMARY_NAMED {
        // Too many to name: `50 deployments, 0/100 ready` (and how many
        // are missing), then the reasons as for a few.
        let found: Vec<&DeploymentState> = workloads
            .iter()
            .map(|(_, d)| *d)
            .filter(|d| d.found)
            .collect();
        let ready: i32 = found.iter().map(|d| d.ready_replicas.unwrap_or(0)).sum();
        let desired: i32 = found.iter().map(|d| d.replicas.unwrap_or(0)).sum();
        let noun = if status.deployments.len() == workloads.len() {
            "deployments"
        } else {
            "workloads"
        };
        let mut line = format!("{} {noun}, {ready}/{desired} ready", workloads.len());
        let missing = workloads.len() - found.len();
        if missing > 0 {
            line.push_str(&format!(", {missing} not found"));
        }
        parts.push(line);
    }
    let states: Vec<String> = workloads
        .iter()
        .map(|(name, d)| {
            if d.found {
                format!(
                    "{name} {}/{} ready",
                    d.ready_replicas.unwrap_or(0),
                    d.replicas.unwrap_or(0)
                )
            } else {
                format!("{name} not found")
            }
        })
        .collect();
    if !states.is_empty() && workloads.len() <= SUMMARY_NAMED {
        parts.push(states.join(", "));
    }
    let mut reasons: Vec<(String, i32)> = Vec::new();
    for reason in workloads
        .iter()
        .filter_map(|(_, d)| d.pods.as_ref())
        .flat_map(|p| &p.reasons)
    {
        match reasons.iter_mut().find(|(r, _)| *r == reason.reason) {
            Some((_, count)) => *count += reason.count,
            None => reasons.push((reason.reason.clone(), reason.count)),
        }
    }
    if !reasons.is_empty() {
        reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.push(reasons.join(", "));
    }
    let unbound: usize = status.stateful_sets.iter().map(|s| s.claims.len()).sum();
    if unbound > 0 {
        parts.push(format!(
            "{unbound} unbound claim{}",
            if unbound == 1 { "" } else { "s" }
        ));
    }
    match status.nodes.as_slice() {
        [] => {}
        [node] => parts.push(format!("node {} {}", node.name, nodes::trouble(node))),
        many => parts.push(format!("{} nodes in trouble", many.len())),
    }
    if warnings > 0 {
        parts.push(format!(
            "{warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        return "no affected workloads".to_string();
    }
    truncate(&parts.join("; "), SUMMARY_MAX)
}

#[cfg(test)]
pub mod testing {
    //! Cluster objects for unit tests, written as the API would return them.

    use serde_json::json;

    use super::usage::PodSample;
    use crate::kinds::{Deployment, Event, Pod, ReplicaSet};

    fn from<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("valid test object")
    }

    pub fn pod_running(name: &str, restarts: i32) -> Pod {
        from(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "image": "app", "imageID": "", "ready": true,
                    "restartCount": restarts, "state": {"running": {}}}]
            }
        }))
    }

    /// A pod waiting with `reason`; `last` is the last termination
    /// (reason, message).
    pub fn pod_waiting(name: &str, reason: &str, restarts: i32, last: Option<(&str, &str)>) -> Pod {
        let last_state = match last {
            Some((reason, message)) => {
                json!({"terminated": {"exitCode": 1, "reason": reason, "message": message}})
            }
            None => json!({}),
        };
        from(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "app", "image": "app", "imageID": "", "ready": false,
                    "restartCount": restarts, "state": {"waiting": {"reason": reason}},
                    "lastState": last_state}]
            }
        }))
    }

    pub fn pod_unschedulable(name: &str) -> Pod {
        from(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
            }
        }))
    }

    pub fn pod_with_resources(
        name: &str,
        cpu_req: &str,
        cpu_lim: &str,
        mem_req: &str,
        mem_lim: &str,
    ) -> Pod {
        from(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "app", "resources": {
                "requests": {"cpu": cpu_req, "memory": mem_req},
                "limits": {"cpu": cpu_lim, "memory": mem_lim}}}]}
        }))
    }

    pub fn sample(container: &str, cpu: f64, memory: f64) -> PodSample {
        PodSample {
            containers: [(container.into(), cpu, memory)].into(),
            timestamp: None,
        }
    }

    pub fn deployment(
        name: &str,
        replicas: i32,
        ready: i32,
        revision: Option<&str>,
        image: &str,
    ) -> Deployment {
        let annotations = revision
            .map(|r| json!({"deployment.kubernetes.io/revision": r}))
            .unwrap_or(json!({}));
        from(json!({
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}
            },
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": replicas}
        }))
    }

    pub fn replicaset(name: &str, revision: &str, image: &str, created: &str) -> ReplicaSet {
        from(json!({
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
                "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"spec": {"containers": [{"name": "app", "image": image}]}}
            }
        }))
    }

    pub fn warning(
        kind: &str,
        name: &str,
        reason: &str,
        message: &str,
        count: i32,
        last: &str,
    ) -> Event {
        from(json!({
            "metadata": {"name": format!("{name}.{reason}.{last}"), "namespace": "shop"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "shop"},
            "type": "Warning", "reason": reason, "message": message, "count": count,
            "firstTimestamp": last, "lastTimestamp": last
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::incident::{PodsSummary, ReasonCount, StatefulSetState};

    fn of(deployments: &[DeploymentState]) -> IncidentStatus {
        IncidentStatus {
            deployments: deployments.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn summary_line_reads_like_a_responder_would_say_it() {
        let checkout = DeploymentState {
            name: "checkout".into(),
            found: true,
            replicas: Some(3),
            ready_replicas: Some(1),
            pods: Some(PodsSummary {
                reasons: vec![
                    ReasonCount {
                        reason: "CrashLoopBackOff".into(),
                        count: 2,
                        recovered: None,
                    },
                    ReasonCount {
                        reason: "OOMKilled".into(),
                        count: 1,
                        recovered: None,
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            summary(&of(std::slice::from_ref(&checkout)), 14),
            "checkout 1/3 ready; 2 CrashLoopBackOff, 1 OOMKilled; 14 warnings"
        );
        let missing = deployment::not_found("ledger");
        assert_eq!(
            summary(&of(&[checkout.clone(), missing]), 1)
                .split("; ")
                .next(),
            Some("checkout 1/3 ready, ledger not found")
        );
        assert_eq!(summary(&of(&[]), 0), "no affected workloads");
        let mut mixed = of(&[checkout]);
        mixed.stateful_sets = vec![StatefulSetState {
            workload: DeploymentState {
                name: "ledger-db".into(),
                found: true,
                replicas: Some(3),
                ready_replicas: Some(2),
                ..Default::default()
            },
            claims: vec![Default::default()],
            ..Default::default()
        }];
        assert_eq!(
            summary(&mixed, 0),
            "checkout 1/3 ready, statefulset/ledger-db 2/3 ready; 2 CrashLoopBackOff, 1 OOMKilled; 1 unbound claim"
        );
    }

    #[test]
    fn many_deployments_are_counted_not_named() {
        let failing = |i: usize| DeploymentState {
            name: format!("web-{i}"),
            found: true,
            replicas: Some(2),
            ready_replicas: Some(0),
            pods: Some(PodsSummary {
                reasons: vec![
                    ReasonCount {
                        reason: "CrashLoopBackOff".into(),
                        count: 1,
                        recovered: None,
                    },
                    ReasonCount {
                        reason: "OOMKilled".into(),
                        count: 1,
                        recovered: None,
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let many: Vec<DeploymentState> = (0..50).map(failing).collect();
        assert_eq!(
            summary(&of(&many), 0),
            "50 deployments, 0/100 ready; 50 CrashLoopBackOff, 50 OOMKilled"
        );
        let mut some_missing = many[..4].to_vec();
        some_missing.push(deployment::not_found("ledger"));
        assert_eq!(
            summary(&of(&some_missing), 2),
            "5 deployments, 0/8 ready, 1 not found; 4 CrashLoopBackOff, 4 OOMKilled; 2 warnings"
        );
    }

    #[test]
    fn truncate_respects_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 6);
        assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
    }
}
