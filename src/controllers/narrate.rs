//! Kubernetes Events about incidents (`kubectl describe` shows them),
//! published off the reconcile path.
//!
//! A reconcile queues its Events once the status that records them is
//! written, and moves on: in a burst of declarations the apiserver's
//! capacity goes to the statuses responders wait for. Each Event waits
//! (up to [`YIELD`]) while any status write is in flight, so Events
//! follow the statuses, four in flight, instead of competing with them;
//! only the timeline entries a watcher of `kubectl get events` needs
//! become Events at all (see `timeline::Kind::narrated`). The queue
//! is bounded; an Event that does not fit is counted in
//! `klaxon_events_dropped_total` and logged, and the status timeline
//! still holds what it said.
//!
//! Each Event is created as kube's `Recorder` would create it, but not
//! remembered: the Recorder keeps every Event it published for minutes
//! (to turn repeats into a series) and walks them all on each publish,
//! while these narrate distinct timeline entries that never repeat.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::Metrics;

/// Events waiting to be published.
const QUEUE: usize = 4096;
/// Events published at once.
const IN_FLIGHT: usize = 4;
/// The longest an Event waits for status writes to finish: under a steady
/// stream of writes, Events still go out.
const YIELD: Duration = Duration::from_secs(2);

/// Status writes in flight, which Events give way to.
#[derive(Default)]
struct Writes {
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Writes {
    /// Waits until no status write is in flight, or `YIELD` passed.
    async fn idle(&self) {
        let deadline = tokio::time::Instant::now() + YIELD;
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }
}

/// A status write in flight, until dropped.
pub struct Writing(Arc<Writes>);

impl Drop for Writing {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Queues Events for publishing. Cheap to clone.
#[derive(Clone)]
pub struct Narrator {
    queue: mpsc::Sender<(ObjectReference, Event)>,
    metrics: Metrics,
    writes: Arc<Writes>,
}

impl Narrator {
    /// Starts the publisher; it ends when every `Narrator` is dropped.
    pub fn start(client: Client, reporter: Reporter, metrics: Metrics) -> Self {
        let (queue, mut queued) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let queued = futures::stream::poll_fn(move |cx| queued.poll_recv(cx));
        let writes = Arc::new(Writes::default());
        let waits = writes.clone();
        tokio::spawn(
            queued.for_each_concurrent(IN_FLIGHT, move |(object, event)| {
                let event = to_k8s(&reporter, &object, event);
                let (client, writes) = (client.clone(), waits.clone());
                async move {
                    writes.idle().await;
                    let namespace = event.metadata.namespace.clone().unwrap_or_default();
                    let api: Api<K8sEvent> = Api::namespaced(client, &namespace);
                    if let Err(error) = api.create(&PostParams::default(), &event).await {
                        warn!(%error, reason = ?event.reason, "cannot publish an Event");
                    }
                }
            }),
        );
        Self {
            queue,
            metrics,
            writes,
        }
    }

    /// Marks a status write in flight until the guard is dropped: Events
    /// wait for it.
    pub fn writing(&self) -> Writing {
        self.writes.in_flight.fetch_add(1, Ordering::AcqRel);
        Writing(self.writes.clone())
    }

    /// Queues `event` about `object`; never waits.
    pub fn publish(&self, object: ObjectReference, event: Event) {
        static LAST_WARNED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        if self.queue.try_send((object, event)).is_ok() {
            return;
        }
        self.metrics.events_dropped.inc();
        let mut last = LAST_WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
            *last = Some(Instant::now());
            warn!(
                queued = QUEUE,
                "the Event queue is full; dropping Events (the status timeline keeps them)"
            );
        }
    }
}

/// The `events.k8s.io/v1` Event for `event` about `object`.
fn to_k8s(reporter: &Reporter, object: &ObjectReference, event: Event) -> K8sEvent {
    let now = jiff::Timestamp::now();
    K8sEvent {
        metadata: ObjectMeta {
            namespace: object.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                object.name.as_deref().unwrap_or(&reporter.controller),
                now.as_nanosecond()
            )),
            ..Default::default()
        },
        action: Some(event.action),
        reason: Some(event.reason),
        note: event.note,
        event_time: Some(MicroTime(now)),
        regarding: Some(object.clone()),
        related: event.secondary,
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn events_wait_for_status_writes_but_not_forever() {
        let writes = Arc::new(Writes::default());
        let started = tokio::time::Instant::now();
        writes.idle().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "nothing in flight");

        let narrator_writes = writes.clone();
        let writing = {
            writes.in_flight.fetch_add(1, Ordering::AcqRel);
            Writing(writes.clone())
        };
        let waiter = tokio::spawn(async move { narrator_writes.idle().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "an Event waits for the write");
        drop(writing);
        waiter.await.expect("waiter");
        assert_eq!(started.elapsed(), Duration::from_millis(300));

        let _stuck = {
            writes.in_flight.fetch_add(1, Ordering::AcqRel);
            Writing(writes.clone())
        };
        let started = tokio::time::Instant::now();
        writes.idle().await;
        assert_eq!(started.elapsed(), YIELD, "an Event waits at most YIELD");
    }
}
