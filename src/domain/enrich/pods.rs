//! Why pods fail: reasons from container waiting and terminated states and
//! from pod scheduling, aggregated per Deployment, worst pods first.

use std::{collections::BTreeMap, sync::Arc};

use jiff::Timestamp;

use crate::kinds::{ContainerStatus, Pod, shared};

use super::truncate;
use crate::api::incident::{PodState, PodsSummary, ReasonCount};

/// Reasons in the order a responder cares about them; the first one a pod
/// shows is its primary reason. Unknown reasons rank after these.
const RANKING: &[&str] = &[
    "OOMKilled",
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "Evicted",
    "Preempted",
    "TaintEvicted",
    "Unschedulable",
    "Error",
    "Failed",
    "Pending",
];

/// Waiting reasons that are part of a healthy start, not failures.
const BENIGN: &[&str] = &["ContainerCreating", "PodInitializing", "Completed"];

/// Longest termination message excerpt kept per pod.
const MESSAGE_EXCERPT: usize = 200;

fn rank(reason: &str) -> usize {
    RANKING
        .iter()
        .position(|known| *known == reason)
        .unwrap_or(RANKING.len())
}

/// The distinct failure reasons a pod shows, most important first,
/// including the last termination of containers running and ready again.
pub fn reasons(pod: &Pod) -> Vec<String> {
    reasons_of(pod, true)
}

/// The reasons a pod shows only as the last termination of containers
/// that are running and ready again: evidence that they failed, not that
/// they fail now.
pub fn recovered(pod: &Pod) -> Vec<String> {
    let now = reasons_of(pod, false);
    reasons_of(pod, true)
        .into_iter()
        .filter(|r| !now.contains(r))
        .collect()
}

/// A container that runs and passes its readiness probe.
fn running_ready(container: &ContainerStatus) -> bool {
    container.ready
        && container
            .state
            .as_ref()
            .is_some_and(|s| s.waiting.is_none() && s.terminated.is_none())
}

fn reasons_of(pod: &Pod, with_recovered: bool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    fn add_to(found: &mut Vec<String>, reason: &str) {
        if !reason.is_empty() && !BENIGN.contains(&reason) && !found.iter().any(|r| r == reason) {
            found.push(reason.to_string());
        }
    }
    let status = pod.status.as_ref();
    for container in containers(pod) {
        if let Some(state) = &container.state {
            if let Some(reason) = state.waiting.as_ref().and_then(|w| w.reason.as_deref()) {
                add_to(&mut found, reason);
            }
            if let Some(reason) = state.terminated.as_ref().and_then(|t| t.reason.as_deref()) {
                add_to(&mut found, reason);
            }
        }
        if let Some(reason) = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_deref())
            .filter(|_| with_recovered || !running_ready(container))
        {
            add_to(&mut found, reason);
        }
    }
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        add_to(&mut found, reason);
    }
    // A pod the scheduler preempts, or that is evicted, is first marked
    // a disruption target, with why.
    let disrupted = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .and_then(|c| c.reason.as_deref());
    match disrupted {
        Some("PreemptionByScheduler") => add_to(&mut found, "Preempted"),
        Some("EvictionByEvictionAPI" | "TerminationByKubelet") => add_to(&mut found, "Evicted"),
        Some("DeletionByTaintManager") => add_to(&mut found, "TaintEvicted"),
        _ => {}
    }
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => {
            let unschedulable = status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                });
            if unschedulable {
                add_to(&mut found, "Unschedulable");
            } else if found.is_empty() {
                add_to(&mut found, "Pending");
            }
        }
        Some("Failed") if found.is_empty() => add_to(&mut found, "Failed"),
        _ => {}
    }
    found.sort_by_key(|r| rank(r));
    found
}

fn containers(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn restarts(pod: &Pod) -> i32 {
    containers(pod).map(|c| c.restart_count).sum()
}

/// The most telling message a pod carries: the last termination message,
/// else the current waiting or terminated message, else the pod's own.
fn message(pod: &Pod) -> Option<String> {
    let mut candidates = Vec::new();
    for container in containers(pod) {
        if let Some(t) = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
        {
            candidates.push(t.message.clone());
        }
    }
    for container in containers(pod) {
        if let Some(state) = &container.state {
            candidates.push(state.terminated.as_ref().and_then(|t| t.message.clone()));
            candidates.push(state.waiting.as_ref().and_then(|w| w.message.clone()));
        }
    }
    candidates.push(pod.status.as_ref().and_then(|s| s.message.clone()));
    candidates
        .into_iter()
        .flatten()
        .map(|m| m.trim().to_string())
        .find(|m| !m.is_empty())
        .map(|m| truncate(&m, MESSAGE_EXCERPT))
}

/// A Pod as the cache keeps it: what enrichment, usage and signals read of
/// it, worked out once when the Pod changes instead of on every reconcile,
/// in about a quarter of the Pod's size (Pods outnumber every other kind
/// the operator caches but Events).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    /// The controller that owns it: a ReplicaSet, StatefulSet or DaemonSet.
    pub owner: Option<Owner>,
    /// The node it was scheduled to.
    pub node: Option<Arc<str>>,
    pub phase: Option<Arc<str>>,
    pub ready: bool,
    /// When Ready last turned False, while it is False.
    pub not_ready_since: Option<Timestamp>,
    pub restarts: i32,
    /// Failure reasons, worst first.
    pub reasons: Box<[Arc<str>]>,
    /// Those of `reasons` shown only by containers running and ready again.
    pub recovered: Box<[Arc<str>]>,
    /// The first non-empty termination, waiting or pod message, cut.
    pub message: Option<Box<str>>,
    /// A container waits in CrashLoopBackOff.
    pub crash_looping: bool,
    /// The first failing container that has run (so it has written a
    /// log), with its restart count: whose log tells why.
    /// Boxed: most pods have none, and pods are the most cached kind.
    pub failing: Option<Box<(Box<str>, i32)>>,
    /// Each container's requests and limits.
    pub containers: Box<[super::usage::Requests]>,
}

/// A pod's controlling owner.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    pub kind: OwnerKind,
    pub name: Box<str>,
    /// The owner's UID as [`uid_key`] files it: pods are the most cached
    /// kind, and a UUID held as text costs four times as much.
    pub uid: u128,
}

/// The kinds of controller whose pods are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    ReplicaSet,
    StatefulSet,
    DaemonSet,
}

impl OwnerKind {
    const ALL: [OwnerKind; 3] = [
        OwnerKind::ReplicaSet,
        OwnerKind::StatefulSet,
        OwnerKind::DaemonSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::StatefulSet => "StatefulSet",
            OwnerKind::DaemonSet => "DaemonSet",
        }
    }

    pub fn parse(kind: &str) -> Option<OwnerKind> {
        OwnerKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// A UID in 16 bytes: a UUID (as the apiserver makes every UID) exactly,
/// anything else by two independent 64-bit hashes.
pub fn uid_key(uid: &str) -> u128 {
    let hex: String = uid.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && let Ok(value) = u128::from_str_radix(&hex, 16)
    {
        return value;
    }
    (1 << 127) | crate::kinds::fingerprint(uid)
}

impl Owner {
    pub fn is(&self, kind: &str, uid: Option<&str>) -> bool {
        self.kind.as_str() == kind && uid.map(uid_key) == Some(self.uid)
    }
}

impl PodView {
    pub fn of(pod: &Pod) -> PodView {
        let status = pod.status.as_ref();
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.controller == Some(true))
            .find_map(|o| {
                Some(Owner {
                    kind: OwnerKind::parse(&o.kind)?,
                    name: o.name.as_str().into(),
                    uid: uid_key(&o.uid),
                })
            });
        // Since it stopped being ready, or, never scheduled, since the
        // scheduler last gave up on it.
        let since = |type_: &str| {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.type_ == type_ && c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        };
        let not_ready_since = since("Ready").or_else(|| since("PodScheduled"));
        let crash_looping = status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff")
            });
        let failing = containers(pod)
            .find(|c| {
                let Some(state) = &c.state else {
                    return false;
                };
                let failing_wait = state
                    .waiting
                    .as_ref()
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| !BENIGN.contains(&r));
                let failed = state
                    .terminated
                    .as_ref()
                    .is_some_and(|t| t.reason.as_deref() != Some("Completed"));
                let completed = state.terminated.is_some() && !failed;
                // Running or exited now, or restarted before.
                let ran = c.restart_count > 0 || state.waiting.is_none();
                ran && !completed && (failing_wait || failed || !c.ready)
            })
            .map(|c| Box::new((c.name.as_str().into(), c.restart_count)));
        PodView {
            namespace: shared(pod.metadata.namespace.as_deref().unwrap_or_default()),
            name: pod.metadata.name.as_deref().unwrap_or_default().into(),
            owner,
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .filter(|n| !n.is_empty())
                .map(shared),
            phase: status.and_then(|s| s.phase.as_deref()).map(shared),
            ready: is_ready(pod),
            not_ready_since,
            restarts: restarts(pod),
            reasons: reasons(pod).iter().map(|r| shared(r)).collect(),
            recovered: recovered(pod).iter().map(|r| shared(r)).collect(),
            message: message(pod).map(String::into_boxed_str),
            crash_looping,
            failing,
            containers: pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .map(super::usage::Requests::of)
                .collect(),
        }
    }
}

/// Counts, reasons and the `max_items` worst pods of one workload.
pub fn summarize(pods: &[&PodView], max_items: usize) -> PodsSummary {
    // Per reason: the pods showing it, and those only as recovered.
    let mut counts: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    let mut items: Vec<(PodState, usize)> = Vec::with_capacity(pods.len());
    let mut ready = 0;
    let mut total_restarts = 0;
    for pod in pods {
        for reason in &pod.reasons {
            let count = counts.entry(reason.to_string()).or_default();
            count.0 += 1;
            count.1 += i32::from(pod.recovered.contains(reason));
        }
        ready += i32::from(pod.ready);
        total_restarts += pod.restarts;
        let primary_rank = pod.reasons.first().map(|r| rank(r)).unwrap_or(usize::MAX);
        items.push((
            PodState {
                name: pod.name.to_string(),
                phase: pod.phase.as_deref().map(String::from),
                ready: pod.ready,
                restarts: pod.restarts,
                reason: pod.reasons.first().map(|r| r.to_string()),
                message: pod.message.as_deref().map(String::from),
                log: None,
            },
            primary_rank,
        ));
    }
    items.sort_by(|(a, a_rank), (b, b_rank)| {
        a.ready
            .cmp(&b.ready)
            .then(a_rank.cmp(b_rank))
            .then(b.restarts.cmp(&a.restarts))
            .then(a.name.cmp(&b.name))
    });
    let mut reason_counts: Vec<ReasonCount> = counts
        .into_iter()
        .map(|(reason, (count, recovered))| ReasonCount {
            reason,
            count,
            recovered: (recovered > 0).then_some(recovered),
        })
        .collect();
    reason_counts.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(rank(&a.reason).cmp(&rank(&b.reason)))
            .then(a.reason.cmp(&b.reason))
    });
    reason_counts.truncate(crate::api::limits::MAX_REASONS as usize);
    PodsSummary {
        total: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        ready,
        restarts: total_restarts,
        reasons: reason_counts,
        items: items
            .into_iter()
            .take(max_items)
            .map(|(item, _)| item)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::enrich::testing::*;

    #[test]
    fn crash_loop_with_oom_counts_both_reasons_oom_first() {
        let pod = pod_waiting("a", "CrashLoopBackOff", 7, Some(("OOMKilled", "")));
        assert_eq!(reasons(&pod), ["OOMKilled", "CrashLoopBackOff"]);
    }

    #[test]
    fn uids_are_filed_exactly_when_they_are_uuids() {
        let uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(uid_key(uuid), 0x0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0);
        assert_ne!(
            uid_key(uuid),
            uid_key("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1")
        );
        // Anything else is hashed, apart from every UUID and each other.
        for text in ["uid-1", "", "+f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"] {
            assert!(uid_key(text) >> 127 == 1, "{text}");
        }
        assert_ne!(uid_key("uid-1"), uid_key("uid-2"));
        let owner = Owner {
            kind: OwnerKind::ReplicaSet,
            name: "web-1".into(),
            uid: uid_key(uuid),
        };
        assert!(owner.is("ReplicaSet", Some(uuid)));
        assert!(!owner.is("StatefulSet", Some(uuid)));
        assert!(!owner.is("ReplicaSet", None));
    }

    #[test]
    fn benign_waiting_is_not_a_failure() {
        let pod = pod_waiting("a", "ContainerCreating", 0, None);
        assert!(reasons(&pod).is_empty());
    }

    #[test]
    fn evicted_and_preempted_pods_say_so() {
        let pod = |reason: Option<&str>, disruption: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "shop"},
                "status": {"phase": if reason.is_some() { "Failed" } else { "Running" },
                    "reason": reason,
                    "message": "The node was low on resource: memory.",
                    "conditions": [{"type": "DisruptionTarget", "status": "True",
                        "reason": disruption}]}
            }))
            .expect("pod")
        };
        // The kubelet's eviction: the pod's reason, and its disruption.
        assert_eq!(
            reasons(&pod(Some("Evicted"), "TerminationByKubelet")),
            ["Evicted"]
        );
        assert_eq!(reasons(&pod(None, "PreemptionByScheduler")), ["Preempted"]);
        assert_eq!(
            reasons(&pod(None, "DeletionByTaintManager")),
            ["TaintEvicted"]
        );
        assert_eq!(reasons(&pod(None, "EvictionByEvictionAPI")), ["Evicted"]);
    }

    #[test]
    fn unschedulable_pending_pod() {
        let pod = pod_unschedulable("a");
        assert_eq!(reasons(&pod), ["Unschedulable"]);
    }

    #[test]
    fn a_view_keeps_what_is_read_worked_out() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "checkout-1", "namespace": "shop", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-abc",
                    "uid": "rs-1", "controller": true}]},
            "spec": {"nodeName": "node-1",
                "containers": [{"name": "app", "resources": {"requests": {"cpu": "250m"}}}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False",
                    "lastTransitionTime": "2026-11-24T14:00:00Z"}],
                "containerStatuses": [{"name": "app", "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "message": "killed"}}}]}
        }))
        .expect("pod");
        let view = PodView::of(&pod);
        assert_eq!((&*view.namespace, &*view.name), ("shop", "checkout-1"));
        let owner = view.owner.as_ref().expect("owner");
        assert!(owner.is("ReplicaSet", Some("rs-1")) && &*owner.name == "checkout-abc");
        assert_eq!(view.node.as_deref(), Some("node-1"));
        assert!(view.crash_looping && !view.ready);
        assert_eq!(view.failing.as_deref(), Some(&("app".into(), 4)));
        assert_eq!(view.restarts, 4);
        assert_eq!(
            view.not_ready_since.map(|t| t.to_string()).as_deref(),
            Some("2026-11-24T14:00:00Z")
        );
        assert_eq!(
            &*view.reasons,
            ["OOMKilled".into(), "CrashLoopBackOff".into()]
        );
        assert_eq!(view.message.as_deref(), Some("killed"));
        assert_eq!(view.containers[0].values, [Some(0.25), None, None, None]);
    }

    #[test]
    fn summary_counts_orders_worst_first_and_caps_items() {
        let pods = [
            pod_running("healthy", 0),
            pod_waiting(
                "crash-1",
                "CrashLoopBackOff",
                4,
                Some(("Error", "panic: boom")),
            ),
            pod_waiting("crash-2", "CrashLoopBackOff", 9, Some(("Error", ""))),
            pod_waiting("oom", "CrashLoopBackOff", 2, Some(("OOMKilled", ""))),
            pod_waiting("pull", "ImagePullBackOff", 0, None),
        ];
        let views: Vec<PodView> = pods.iter().map(PodView::of).collect();
        let refs: Vec<&PodView> = views.iter().collect();
        let summary = summarize(&refs, 3);
        assert_eq!(summary.total, 5);
        assert_eq!(summary.ready, 1);
        assert_eq!(summary.restarts, 15);
        let reasons: Vec<(&str, i32)> = summary
            .reasons
            .iter()
            .map(|r| (r.reason.as_str(), r.count))
            .collect();
        assert_eq!(
            reasons,
            [
                ("CrashLoopBackOff", 3),
                ("Error", 2),
                ("OOMKilled", 1),
                ("ImagePullBackOff", 1)
            ]
        );
        let names: Vec<&str> = summary.items.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["oom", "crash-2", "crash-1"]);
        assert_eq!(summary.items[2].message.as_deref(), Some("panic: boom"));
    }

    #[test]
    fn a_past_termination_of_a_container_ready_again_is_recovered() {
        let pod = |ready: bool, state: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "checkout-1", "namespace": "shop"},
                "status": {"phase": "Running",
                    "containerStatuses": [{"name": "app", "restartCount": 1, "ready": ready,
                        "state": state,
                        "lastState": {"terminated": {"reason": "OOMKilled"}}}]}
            }))
            .expect("pod")
        };
        let running = serde_json::json!({"running": {"startedAt": "2026-11-24T14:00:00Z"}});
        let again = PodView::of(&pod(true, running.clone()));
        assert_eq!(
            (&*again.reasons, &*again.recovered),
            (&["OOMKilled".into()][..], &["OOMKilled".into()][..])
        );
        // Running but not ready, or waiting again: it fails now.
        for failing in [
            pod(false, running),
            pod(
                false,
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            ),
        ] {
            let view = PodView::of(&failing);
            assert!(view.reasons.contains(&"OOMKilled".into()));
            assert!(view.recovered.is_empty(), "{view:?}");
        }

        let views = [again, PodView::of(&pod(false, serde_json::json!({})))];
        let summary = summarize(&views.iter().collect::<Vec<_>>(), 3);
        assert_eq!(
            summary.reasons,
            [ReasonCount {
                reason: "OOMKilled".into(),
                count: 2,
                recovered: Some(1),
            }]
        );
        assert_eq!(summary.reasons[0].failing(), 1);
    }
}
