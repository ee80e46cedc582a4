//! Signals: conditions under which Klaxon declares an incident itself, and
//! when an incident it declared may resolve itself. Pure functions over
//! cached objects; every "since when" comes from the cluster (condition
//! transition times), so nothing depends on the operator's memory.
//!
//! - `DeploymentUnavailable`: the Deployment's `Available` condition is
//!   `False`, since its `lastTransitionTime`.
//! - `StatefulSetUnavailable`, `DaemonSetUnavailable`: fewer pods ready
//!   than wanted, since the earliest of its pods stopped being ready (or,
//!   never scheduled, since the scheduler gave up on it).
//! - `CrashLooping`: a pod of the workload waits in `CrashLoopBackOff`,
//!   since the earliest `Ready=False` transition among such pods.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::{
    api::{
        IncidentStatus,
        incident::WorkloadKind,
        policy::{Signal, SignalType},
    },
    domain::{enrich::pods::PodView, policy::selects},
    kinds::{DaemonSet, Deployment, StatefulSet},
};

/// Labels on an incident Klaxon declared from a signal.
pub const SIGNAL_LABEL: &str = "klaxon.dev/signal";
/// The Deployment's name, on an incident declared for a Deployment.
pub const DEPLOYMENT_LABEL: &str = "klaxon.dev/deployment";
/// The workload, on an incident declared for a StatefulSet or DaemonSet.
pub const STATEFULSET_LABEL: &str = "klaxon.dev/statefulset";
pub const DAEMONSET_LABEL: &str = "klaxon.dev/daemonset";
/// Why it was declared, for the timeline.
pub const MESSAGE_ANNOTATION: &str = "klaxon.dev/signal-message";

/// The label naming an incident's workload of `kind`.
pub fn workload_label(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => DEPLOYMENT_LABEL,
        WorkloadKind::StatefulSet => STATEFULSET_LABEL,
        WorkloadKind::DaemonSet => DAEMONSET_LABEL,
    }
}

/// A signal whose condition held long enough.
#[derive(Clone, Debug, PartialEq)]
pub struct Firing {
    pub kind: WorkloadKind,
    /// The workload's name.
    pub workload: String,
    pub signal: SignalType,
    pub severity: String,
    pub since: Timestamp,
    pub message: String,
}

impl Firing {
    /// A name that is the same for one outage on every evaluation, so
    /// declaring twice (or from two replicas) creates one incident, and that
    /// a person reads at a glance: the outage's start in UTC, to the second
    /// (`web-unavailable-20261125-061402`). Seconds, not minutes: an outage
    /// that starts in the minute an earlier one of the same workload
    /// started must not find its name taken.
    pub fn incident_name(&self) -> String {
        let start = self.since.strftime("%Y%m%d-%H%M%S");
        let suffix = format!("-{}-{start}", slug(self.signal));
        let room = 253usize.saturating_sub(suffix.len());
        let mut base: String = self.workload.chars().take(room).collect();
        while base.ends_with(['-', '.']) {
            base.pop();
        }
        format!("{base}{suffix}")
    }

    pub fn title(&self) -> String {
        let who = self.kind.key(&self.workload);
        match self.signal {
            SignalType::CrashLooping => format!("{who} pods are crash-looping"),
            _ => format!("{who} is unavailable"),
        }
    }
}

fn slug(signal: SignalType) -> &'static str {
    match signal {
        SignalType::CrashLooping => "crashlooping",
        _ => "unavailable",
    }
}

pub fn signal_type(name: &str) -> Option<SignalType> {
    match name {
        "DeploymentUnavailable" => Some(SignalType::DeploymentUnavailable),
        "StatefulSetUnavailable" => Some(SignalType::StatefulSetUnavailable),
        "DaemonSetUnavailable" => Some(SignalType::DaemonSetUnavailable),
        "CrashLooping" => Some(SignalType::CrashLooping),
        _ => None,
    }
}

/// The kind an Unavailable signal watches; `None` for those that watch
/// every kind.
fn watches(signal: SignalType) -> Option<WorkloadKind> {
    match signal {
        SignalType::DeploymentUnavailable => Some(WorkloadKind::Deployment),
        SignalType::StatefulSetUnavailable => Some(WorkloadKind::StatefulSet),
        SignalType::DaemonSetUnavailable => Some(WorkloadKind::DaemonSet),
        SignalType::CrashLooping => None,
    }
}

/// One workload as signals see it.
pub struct Subject<'a> {
    pub kind: WorkloadKind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// How many pods are ready of how many wanted.
    pub ready: i32,
    pub wanted: i32,
    /// A Deployment's `Available=False` transition; `None` otherwise.
    available_false_since: Option<Timestamp>,
    pub pods: &'a [&'a PodView],
}

impl<'a> Subject<'a> {
    pub fn deployment(deployment: &Deployment, pods: &'a [&'a PodView]) -> Subject<'a> {
        let status = deployment.status.as_ref();
        let available_false_since = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .filter(|c| c.status == "False")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        Subject {
            kind: WorkloadKind::Deployment,
            name: deployment.metadata.name.clone().unwrap_or_default(),
            labels: deployment.metadata.labels.clone().unwrap_or_default(),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            wanted: deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1),
            available_false_since,
            pods,
        }
    }

    pub fn statefulset(set: &StatefulSet, pods: &'a [&'a PodView]) -> Subject<'a> {
        Subject {
            kind: WorkloadKind::StatefulSet,
            name: set.metadata.name.clone().unwrap_or_default(),
            labels: set.metadata.labels.clone().unwrap_or_default(),
            ready: set
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            wanted: set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            available_false_since: None,
            pods,
        }
    }

    pub fn daemonset(set: &DaemonSet, pods: &'a [&'a PodView]) -> Subject<'a> {
        let status = set.status.clone().unwrap_or_default();
        Subject {
            kind: WorkloadKind::DaemonSet,
            name: set.metadata.name.clone().unwrap_or_default(),
            labels: set.metadata.labels.clone().unwrap_or_default(),
            ready: status.number_ready,
            wanted: status.desired_number_scheduled,
            available_false_since: None,
            pods,
        }
    }

    /// Since when it has been unavailable, if it is.
    fn unavailable_since(&self) -> Option<Timestamp> {
        match self.kind {
            WorkloadKind::Deployment => self.available_false_since,
            _ if self.ready >= self.wanted => None,
            _ => self
                .pods
                .iter()
                .filter(|p| !p.ready)
                .filter_map(|p| p.not_ready_since)
                .min(),
        }
    }
}

fn crash_looping_since(pods: &[&PodView]) -> Option<(Timestamp, usize)> {
    let looping: Vec<&&PodView> = pods.iter().filter(|p| p.crash_looping).collect();
    let since = looping.iter().filter_map(|p| p.not_ready_since).min()?;
    Some((since, looping.len()))
}

/// Whether `signal` fires for `subject` at `now`.
pub fn evaluate(signal: &Signal, subject: &Subject, now: Timestamp) -> Option<Firing> {
    if watches(signal.type_).is_some_and(|kind| kind != subject.kind) {
        return None;
    }
    if !selects(signal.selector.as_ref(), &subject.labels) {
        return None;
    }
    let hold = SignedDuration::try_from(signal.for_.parse().ok()?).ok()?;
    let name = &subject.name;
    let (since, message) = match signal.type_ {
        SignalType::CrashLooping => {
            let (since, count) = crash_looping_since(subject.pods)?;
            (
                since,
                format!("{name}: {count} pod(s) in CrashLoopBackOff since {since}"),
            )
        }
        _ => {
            let since = subject.unavailable_since()?;
            let what = match subject.kind {
                WorkloadKind::Deployment => format!("{name} Available=False"),
                kind => format!("{} unavailable", kind.key(name)),
            };
            (
                since,
                format!(
                    "{what} since {since} ({}/{} ready)",
                    subject.ready, subject.wanted
                ),
            )
        }
    };
    let held = now.duration_since(since);
    (held >= hold).then(|| Firing {
        kind: subject.kind,
        workload: name.clone(),
        signal: signal.type_,
        severity: signal.severity.clone(),
        since,
        message: format!("{message}, longer than {}", signal.for_),
    })
}

/// Whether the workloads of an incident declared for `signal` are healthy
/// again: every linked one found and available (a Deployment's
/// `Available` condition True, another kind with every pod it wants
/// ready), and (for crash loops) without crash-looping pods.
pub fn healthy(signal: SignalType, status: &IncidentStatus) -> bool {
    let mut workloads = status.workloads().peekable();
    workloads.peek().is_some()
        && workloads.all(|(kind, d)| {
            let available = d.found
                && match kind {
                    // "True (MinimumReplicasAvailable)": the status and its reason.
                    WorkloadKind::Deployment => d
                        .available
                        .as_deref()
                        .is_some_and(|a| a.split(' ').next() == Some("True")),
                    _ => d.ready_replicas.unwrap_or(0) >= d.replicas.unwrap_or(0),
                };
            let looping = d.pods.as_ref().is_some_and(|p| {
                p.reasons
                    .iter()
                    .any(|r| r.reason == "CrashLoopBackOff" && r.failing() > 0)
            });
            match signal {
                SignalType::CrashLooping => available && !looping,
                _ => available,
            }
        })
}

/// The state `healthy` reads, for tests elsewhere.
#[cfg(test)]
pub fn status_of(deployments: &[crate::api::incident::DeploymentState]) -> IncidentStatus {
    IncidentStatus {
        deployments: deployments.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::incident::DeploymentState, kinds::Pod};
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn signal(type_: SignalType, for_: &str) -> Signal {
        Signal {
            type_,
            for_: for_.into(),
            severity: "SEV2".into(),
            selector: None,
        }
    }

    fn deployment(available: &str, since: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "checkout", "labels": {"tier": "payments"}},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 1, "conditions": [
                {"type": "Available", "status": available, "lastTransitionTime": since}]}
        }))
        .expect("deployment")
    }

    fn pod(waiting: &str, ready_false_since: &str) -> PodView {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "checkout-1"},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ready_false_since}],
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false,
                    "restartCount": 4, "state": {"waiting": {"reason": waiting}}}]
            }
        }))
        .expect("pod");
        PodView::of(&pod)
    }

    #[test]
    fn unavailable_fires_once_it_held_long_enough() {
        let d = deployment("False", "2026-11-24T14:00:00Z");
        let d = Subject::deployment(&d, &[]);
        let s = signal(SignalType::DeploymentUnavailable, "2m");
        assert_eq!(evaluate(&s, &d, at("2026-11-24T14:01:59Z")), None);
        let firing = evaluate(&s, &d, at("2026-11-24T14:02:00Z")).expect("fires");
        assert_eq!(
            firing.incident_name(),
            "checkout-unavailable-20261124-140000"
        );
        assert_eq!(firing.title(), "checkout is unavailable");
        assert!(firing.message.contains("1/3 ready"), "{}", firing.message);
        let fine = deployment("True", "2026-11-24T14:00:00Z");
        let fine = Subject::deployment(&fine, &[]);
        assert_eq!(evaluate(&s, &fine, at("2026-11-24T15:00:00Z")), None);
        let other_kind = signal(SignalType::StatefulSetUnavailable, "2m");
        assert_eq!(evaluate(&other_kind, &d, at("2026-11-24T15:00:00Z")), None);
    }

    #[test]
    fn crash_loops_count_from_the_pods_readiness_loss_and_selectors_apply() {
        let d = deployment("True", "2026-11-24T13:00:00Z");
        let looping = pod("CrashLoopBackOff", "2026-11-24T14:00:00Z");
        let pulling = pod("ImagePullBackOff", "2026-11-24T13:00:00Z");
        let mut s = signal(SignalType::CrashLooping, "5m");
        let both = [&looping, &pulling];
        let firing = evaluate(
            &s,
            &Subject::deployment(&d, &both),
            at("2026-11-24T14:05:00Z"),
        );
        assert_eq!(firing.map(|f| f.since), Some(at("2026-11-24T14:00:00Z")));
        assert_eq!(
            evaluate(
                &s,
                &Subject::deployment(&d, &[&pulling]),
                at("2026-11-24T15:00:00Z")
            ),
            None
        );
        s.selector =
            Some(serde_json::from_value(json!({"matchLabels": {"tier": "search"}})).unwrap());
        assert_eq!(
            evaluate(
                &s,
                &Subject::deployment(&d, &[&looping]),
                at("2026-11-24T15:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn health_returns_when_available_and_not_crash_looping() {
        let mut d = DeploymentState {
            name: "checkout".into(),
            found: true,
            available: Some("True (MinimumReplicasAvailable)".into()),
            ..Default::default()
        };
        assert!(healthy(
            SignalType::DeploymentUnavailable,
            &status_of(std::slice::from_ref(&d))
        ));
        d.pods = Some(crate::api::incident::PodsSummary {
            reasons: vec![crate::api::incident::ReasonCount {
                reason: "CrashLoopBackOff".into(),
                count: 1,
                recovered: None,
            }],
            ..Default::default()
        });
        assert!(!healthy(
            SignalType::CrashLooping,
            &status_of(std::slice::from_ref(&d))
        ));
        assert!(!healthy(SignalType::DeploymentUnavailable, &status_of(&[])));
    }

    #[test]
    fn a_statefulset_or_daemonset_is_unavailable_since_its_first_pod_stopped_being_ready() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "ledger-db", "labels": {"tier": "payments"}},
            "spec": {"replicas": 3},
            "status": {"replicas": 3, "readyReplicas": 1}
        }))
        .expect("statefulset");
        let late = pod("CrashLoopBackOff", "2026-11-24T14:03:00Z");
        let early = pod("ImagePullBackOff", "2026-11-24T14:01:00Z");
        let pods = [&late, &early];
        let subject = Subject::statefulset(&set, &pods);
        let s = signal(SignalType::StatefulSetUnavailable, "2m");
        assert_eq!(evaluate(&s, &subject, at("2026-11-24T14:02:59Z")), None);
        let firing = evaluate(&s, &subject, at("2026-11-24T14:03:00Z")).expect("fires");
        assert_eq!(firing.since, at("2026-11-24T14:01:00Z"));
        assert_eq!(firing.title(), "statefulset/ledger-db is unavailable");
        assert!(firing.message.contains("1/3 ready"), "{}", firing.message);
        assert_eq!(
            firing.incident_name(),
            "ledger-db-unavailable-20261124-140100"
        );
        // The Deployment signal does not watch StatefulSets; crash loops
        // are watched in every kind.
        let deployment_signal = signal(SignalType::DeploymentUnavailable, "2m");
        assert_eq!(
            evaluate(&deployment_signal, &subject, at("2026-11-24T15:00:00Z")),
            None
        );
        let crash = signal(SignalType::CrashLooping, "1m");
        assert!(evaluate(&crash, &subject, at("2026-11-24T15:00:00Z")).is_some());

        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "node-agent"},
            "status": {"desiredNumberScheduled": 3, "numberReady": 3}
        }))
        .expect("daemonset");
        let s = signal(SignalType::DaemonSetUnavailable, "1m");
        let ready = Subject::daemonset(&ds, &[]);
        assert_eq!(evaluate(&s, &ready, at("2026-11-24T15:00:00Z")), None);
        let mut failing = ds.clone();
        if let Some(status) = failing.status.as_mut() {
            status.number_ready = 2;
        }
        let one = [&early];
        let firing = evaluate(
            &s,
            &Subject::daemonset(&failing, &one),
            at("2026-11-24T15:00:00Z"),
        );
        assert_eq!(firing.map(|f| f.kind), Some(WorkloadKind::DaemonSet));
    }

    #[test]
    fn other_kinds_are_healthy_when_every_pod_they_want_is_ready() {
        let state = |ready: i32| DeploymentState {
            name: "ledger-db".into(),
            found: true,
            replicas: Some(3),
            ready_replicas: Some(ready),
            ..Default::default()
        };
        let mut status = IncidentStatus {
            stateful_sets: vec![crate::api::incident::StatefulSetState {
                workload: state(2),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(!healthy(SignalType::StatefulSetUnavailable, &status));
        status.stateful_sets[0].workload = state(3);
        assert!(healthy(SignalType::StatefulSetUnavailable, &status));
        status.daemon_sets = vec![crate::api::incident::DaemonSetState {
            workload: DeploymentState {
                found: false,
                ..state(3)
            },
            ..Default::default()
        }];
        assert!(
            !healthy(SignalType::StatefulSetUnavailable, &status),
            "a DaemonSet not found"
        );
    }
}
