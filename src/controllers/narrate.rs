//! Kubernetes Events about incidents (`kubectl describe` shows them),
//! published off the reconcile path.
//!
//! A reconcile queues its Events once the status that records them is
//! written, and moves on: in a burst of declarations the apiserver's
//! capacity goes to the statuses responders wait for, and the Events
//! (three or four per new incident) follow, four in flight. The queue
//! is bounded; an Event that does not fit is counted in
//! `klaxon_events_dropped_total` and logged, and the status timeline
//! still holds what it said.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::Metrics;

/// Events waiting to be published.
const QUEUE: usize = 4096;
/// Events published at once.
const IN_FLIGHT: usize = 4;

/// Queues Events for publishing. Cheap to clone.
#[derive(Clone)]
pub struct Narrator {
    queue: mpsc::Sender<(ObjectReference, Event)>,
    metrics: Metrics,
}

impl Narrator {
    /// Starts the publisher; it ends when every `Narrator` is dropped.
    pub fn start(recorder: Recorder, metrics: Metrics) -> Self {
        let (queue, mut queued) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let queued = futures::stream::poll_fn(move |cx| queued.poll_recv(cx));
        tokio::spawn(
            queued.for_each_concurrent(IN_FLIGHT, move |(object, event)| {
                let recorder = recorder.clone();
                async move {
                    if let Err(error) = recorder.publish(&event, &object).await {
                        warn!(%error, reason = %event.reason, "cannot publish an Event");
                    }
                }
            }),
        );
        Self { queue, metrics }
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
