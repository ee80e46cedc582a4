//! Which changes wake an incident at once, and which wait for its next
//! write.
//!
//! A busy cluster sends an incident a trigger for every change of its
//! pods, events and usage. Most of them can only change what the status
//! writes routinely (see [`crate::domain::incident::pace`]): a pass made
//! for them plans a status that waits for the incident's write interval
//! anyway. So a trigger is classed where it arises:
//! - **urgent** ones reconcile at once: a pod that starts or stops failing
//!   (its failure reasons change), one that stops being ready (a possible
//!   new low in the impact record), a failing or ready pod going away, a
//!   Deployment or ReplicaSet change, an incident's own change, the first
//!   usage sample of a namespace;
//! - **routine** ones (a pod ready again, a restart of a pod running
//!   again, a new pod, a Warning event, a usage sample) reconcile at once
//!   when the incident may be written now, and otherwise once, when its
//!   interval has passed.
//!
//! No trigger is lost: a routine one deferred is always followed by one
//! pass at the end of the interval, which reads the caches as they are
//! then, so it carries every change deferred meanwhile. A new failure is
//! never held behind routine refreshes.

use std::{
    collections::{HashMap, HashSet, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::runtime::reflector::ObjectRef;

use super::pacer::Pacer;
use crate::{
    api::Incident, domain::enrich::pods::PodView, domain::incident::pace::Pace, metrics::Metrics,
};

/// The reason every new pod shows first (routine, as in pacing).
const PENDING: &str = "Pending";

pub struct Gate {
    pacer: Arc<Pacer>,
    /// Incidents with a deferred trigger outstanding: at most one each.
    deferred: Arc<Mutex<HashSet<ObjectRef<Incident>>>>,
    due: UnboundedSender<ObjectRef<Incident>>,
    /// What each pod linked to an incident last showed.
    pods: Mutex<HashMap<u64, PodMark>>,
    metrics: Metrics,
}

/// What about a pod makes its change urgent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct PodMark {
    /// A hash of the reasons it fails with now.
    failing: u64,
    fails: bool,
    ready: bool,
}

impl PodMark {
    fn of(pod: &PodView) -> PodMark {
        let mut hasher = DefaultHasher::new();
        let mut fails = false;
        for reason in pod
            .reasons
            .iter()
            .filter(|r| &***r != PENDING && !pod.recovered.contains(r))
        {
            reason.hash(&mut hasher);
            fails = true;
        }
        PodMark {
            failing: hasher.finish(),
            fails,
            ready: pod.ready,
        }
    }
}

fn key(namespace: &str, name: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    hasher.finish()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gate {
    /// The gate, and the stream of deferred triggers as they fall due.
    pub fn new(
        pacer: Arc<Pacer>,
        metrics: Metrics,
    ) -> (Arc<Gate>, UnboundedReceiver<ObjectRef<Incident>>) {
        let (due, falling_due) = unbounded();
        let gate = Gate {
            pacer,
            deferred: Arc::default(),
            due,
            pods: Mutex::default(),
            metrics,
        };
        (Arc::new(gate), falling_due)
    }

    /// The incident, when a trigger of this pace reconciles it now; a
    /// routine trigger otherwise waits for the incident's write interval
    /// (one deferred trigger per incident), and this returns `None`.
    pub fn admit(&self, incident: ObjectRef<Incident>, pace: Pace) -> Option<ObjectRef<Incident>> {
        let Some(wait) = self.pacer.wait(&incident, pace) else {
            return Some(incident);
        };
        if lock(&self.deferred).insert(incident.clone()) {
            self.metrics.triggers_deferred.inc();
            let (due, deferred) = (self.due.clone(), self.deferred.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                lock(&deferred).remove(&incident);
                let _ = due.unbounded_send(incident);
            });
        }
        None
    }

    /// How urgent a change of `pod` (gone when `gone`) is for the incidents
    /// it maps to; remembers what the pod showed.
    pub fn pod(&self, pod: &PodView, gone: bool) -> Pace {
        let key = key(&pod.namespace, &pod.name);
        let mut pods = lock(&self.pods);
        if gone {
            // A pod that was failing or ready takes a count with it.
            return match pods.remove(&key) {
                Some(was) if !was.fails && !was.ready => Pace::Routine,
                _ => Pace::Urgent,
            };
        }
        let now = PodMark::of(pod);
        match pods.insert(key, now) {
            Some(was) if was.failing == now.failing && (now.ready || !was.ready) => Pace::Routine,
            None if !now.fails => Pace::Routine,
            _ => Pace::Urgent,
        }
    }

    /// The pod maps to no incident: nothing to remember.
    pub fn forget_pod(&self, namespace: &str, name: &str) {
        lock(&self.pods).remove(&key(namespace, name));
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use futures::StreamExt;

    use super::*;

    fn pod(ready: bool, reasons: &[&str], recovered: &[&str]) -> PodView {
        PodView {
            namespace: "team".into(),
            name: "web-1".into(),
            ready,
            reasons: reasons.iter().map(|r| Arc::from(*r)).collect(),
            recovered: recovered.iter().map(|r| Arc::from(*r)).collect(),
            ..PodView::default()
        }
    }

    #[test]
    fn a_pod_failing_or_losing_readiness_is_urgent_the_rest_routine() {
        let (gate, _) = Gate::new(Arc::default(), Metrics::default());
        // First sight: routine unless failing.
        assert_eq!(gate.pod(&pod(true, &[], &[]), false), Pace::Routine);
        // A restart of a pod running again, a Pending reason: routine.
        assert_eq!(
            gate.pod(&pod(true, &["Error"], &["Error"]), false),
            Pace::Routine
        );
        assert_eq!(
            gate.pod(&pod(true, &["Pending"], &[]), false),
            Pace::Routine
        );
        // Losing readiness: urgent; getting it back: routine.
        assert_eq!(gate.pod(&pod(false, &[], &[]), false), Pace::Urgent);
        assert_eq!(gate.pod(&pod(true, &[], &[]), false), Pace::Routine);
        // Starting and stopping to fail: urgent both ways.
        assert_eq!(
            gate.pod(&pod(true, &["CrashLoopBackOff"], &[]), false),
            Pace::Urgent
        );
        assert_eq!(
            gate.pod(&pod(true, &["CrashLoopBackOff"], &[]), false),
            Pace::Routine
        );
        assert_eq!(gate.pod(&pod(true, &[], &[]), false), Pace::Urgent);
        // A ready pod going away takes a count with it.
        assert_eq!(gate.pod(&pod(true, &[], &[]), true), Pace::Urgent);
        // A new pod failing at once is news.
        assert_eq!(
            gate.pod(&pod(false, &["ImagePullBackOff"], &[]), false),
            Pace::Urgent
        );
        gate.forget_pod("team", "web-1");
        assert_eq!(gate.pod(&pod(false, &[], &[]), false), Pace::Routine);
        // A pod neither ready nor failing goes away quietly.
        assert_eq!(gate.pod(&pod(false, &[], &[]), true), Pace::Routine);
    }

    #[tokio::test(start_paused = true)]
    async fn a_routine_trigger_inside_the_interval_waits_once_for_its_end() {
        let pacer = Arc::new(Pacer::default());
        let metrics = Metrics::default();
        let (gate, mut due) = Gate::new(pacer.clone(), metrics.clone());
        let incident = ObjectRef::new("checkout-down").within("team");
        // Not written yet: at once.
        assert!(gate.admit(incident.clone(), Pace::Routine).is_some());
        pacer.wrote(&incident);
        // Urgent ones never wait.
        assert!(gate.admit(incident.clone(), Pace::Urgent).is_some());
        // Routine ones inside the interval: held, one for many.
        for _ in 0..5 {
            assert!(gate.admit(incident.clone(), Pace::Routine).is_none());
        }
        assert_eq!(metrics.triggers_deferred.get(), 1);
        let started = tokio::time::Instant::now();
        let fired = tokio::time::timeout(Duration::from_secs(60), due.next()).await;
        assert_eq!(fired.ok().flatten(), Some(incident.clone()));
        let waited = started.elapsed();
        assert!(
            waited <= crate::domain::incident::pace::ROUTINE_INTERVAL
                && waited >= crate::domain::incident::pace::ROUTINE_INTERVAL / 2,
            "{waited:?}"
        );
        // Only one was held: nothing else falls due.
        let more = tokio::time::timeout(Duration::from_secs(60), due.next()).await;
        assert!(more.is_err(), "a second deferred trigger: {more:?}");
    }
}
