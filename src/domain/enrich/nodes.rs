//! The nodes under an incident's pods that have a problem: what a
//! responder checks with `kubectl describe node` once pods fail together.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::truncate;
use crate::{
    api::{incident::NodeState, limits::MAX_NODES},
    kinds::Node,
};

/// Conditions that are a problem when True.
const PRESSURE: [&str; 4] = [
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

const MESSAGE_EXCERPT: usize = 300;

/// Why the kubelet of `name` cannot serve a pod's log, or `None` when it
/// may: a node the cluster does not know, or whose Ready condition is not
/// True, answers no `pods/log` read (it would fail after a timeout).
pub fn log_unreachable(name: &str, node: Option<&Node>) -> Option<String> {
    let Some(node) = node else {
        return Some(format!(
            "node {name} is not known to the cluster; its kubelet cannot serve logs"
        ));
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    match ready {
        Some("True") => None,
        Some("Unknown") | None => Some(format!(
            "node {name} has stopped reporting (Ready Unknown); its kubelet cannot serve logs"
        )),
        Some(_) => Some(format!(
            "node {name} is NotReady; its kubelet cannot serve logs"
        )),
    }
}

/// What is wrong with `node`, which runs `pods` affected pods; `None`
/// when nothing is.
pub fn problem(node: &Node, pods: i32) -> Option<NodeState> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut found: Vec<String> = Vec::new();
    let mut since: Option<Timestamp> = None;
    let mut message = None;
    let mut note = |at: Option<&Time>| {
        if let Some(at) = at {
            since = Some(since.map_or(at.0, |s| s.min(at.0)));
        }
    };
    for condition in conditions {
        let what = match (condition.type_.as_str(), condition.status.as_str()) {
            ("Ready", "False") => "NotReady",
            ("Ready", "Unknown") => "Unknown",
            (pressure, "True") if PRESSURE.contains(&pressure) => pressure,
            _ => continue,
        };
        if condition.type_ == "Ready" {
            message = condition
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(|m| truncate(m, MESSAGE_EXCERPT));
        }
        note(condition.last_transition_time.as_ref());
        found.push(what.to_string());
    }
    let spec = node.spec.clone().unwrap_or_default();
    let no_execute: Vec<String> = spec
        .taints
        .iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .map(|t| t.key.clone())
        .take(10)
        .collect();
    if found.is_empty() && !spec.unschedulable && no_execute.is_empty() {
        return None;
    }
    Some(NodeState {
        name: node.metadata.name.clone().unwrap_or_default(),
        conditions: found,
        unschedulable: spec.unschedulable,
        no_execute,
        since: since.map(Time),
        message,
        pods,
    })
}

/// What is wrong, in a few words: `NotReady, cordoned`.
pub fn trouble(node: &NodeState) -> String {
    let mut what: Vec<String> = node.conditions.clone();
    if node.unschedulable {
        what.push("cordoned".into());
    }
    if what.is_empty() && !node.no_execute.is_empty() {
        what.push("tainted NoExecute".into());
    }
    what.join(", ")
}

/// The nodes in trouble, most affected pods first, at most the status
/// bound.
pub fn rank(mut nodes: Vec<NodeState>) -> Vec<NodeState> {
    nodes.sort_by(|a, b| b.pods.cmp(&a.pods).then(a.name.cmp(&b.name)));
    nodes.truncate(MAX_NODES as usize);
    nodes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).expect("node")
    }

    #[test]
    fn only_a_ready_node_is_asked_for_logs() {
        let with = |status: &str| {
            node(json!({"metadata": {"name": "n"},
                "status": {"conditions": [{"type": "Ready", "status": status}]}}))
        };
        assert_eq!(log_unreachable("n", Some(&with("True"))), None);
        for (status, says) in [("False", "NotReady"), ("Unknown", "stopped reporting")] {
            let why = log_unreachable("n", Some(&with(status))).expect("unreachable");
            assert!(why.contains(says), "{why}");
        }
        let unknown = log_unreachable("gone", None).expect("unreachable");
        assert!(unknown.contains("not known"), "{unknown}");
    }

    #[test]
    fn a_healthy_node_is_no_problem_and_a_bad_one_says_why() {
        let healthy = node(json!({
            "metadata": {"name": "kwok-node-0"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-01T10:00:00Z"},
                {"type": "MemoryPressure", "status": "False"}]}
        }));
        assert_eq!(problem(&healthy, 3), None);
        let bad = node(json!({
            "metadata": {"name": "kwok-node-1"},
            "spec": {"unschedulable": true, "taints": [
                {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                    "message": "container runtime network not ready",
                    "lastTransitionTime": "2026-12-01T10:05:00Z"},
                {"type": "DiskPressure", "status": "True",
                    "lastTransitionTime": "2026-12-01T10:02:00Z"}]}
        }));
        let state = problem(&bad, 2).expect("a problem");
        assert_eq!(state.conditions, ["NotReady", "DiskPressure"]);
        assert!(state.unschedulable);
        assert_eq!(state.no_execute, ["node.kubernetes.io/not-ready"]);
        assert_eq!(
            state.since.as_ref().map(|t| t.0.to_string()).as_deref(),
            Some("2026-12-01T10:02:00Z")
        );
        assert_eq!(
            state.message.as_deref(),
            Some("container runtime network not ready")
        );
        assert_eq!(state.pods, 2);
        assert_eq!(trouble(&state), "NotReady, DiskPressure, cordoned");
        let cordoned = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        assert!(problem(&cordoned, 1).is_some_and(|s| s.conditions.is_empty()));
        let lost = node(json!({"metadata": {"name": "n"}, "status": {"conditions": [
            {"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(
            problem(&lost, 1).map(|s| s.conditions),
            Some(vec!["Unknown".to_string()])
        );
    }
}
