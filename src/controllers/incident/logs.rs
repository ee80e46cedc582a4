//! Log evidence: the last lines a failing container wrote, read through
//! `pods/log` (with `previous`, `tailLines` and `limitBytes`) once per
//! container restart, never per reconcile. Reads run in the background, a
//! few at a time; when one ends, the incidents that asked are woken, and
//! their next pass finds the excerpt here. Secrets are redacted before
//! anything is kept.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::LogParams, runtime::reflector::ObjectRef};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::{
    api::{
        Incident,
        incident::LogExcerpt,
        limits::{MAX_LOG_BYTES, MAX_LOG_LINES},
    },
    domain::{
        enrich::{redact, truncate},
        incident::{pace::Pace, second},
    },
    metrics::{LogLabels, Metrics},
};

/// Reads in flight at once, across every incident.
const IN_FLIGHT: usize = 4;
/// The longest one read may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A failed read is tried again after this, for the same instance,
/// doubling with each failure in a row up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_secs(60);
const RETRY_MAX: Duration = Duration::from_secs(15 * 60);
/// Containers remembered; the oldest are forgotten first.
const REMEMBERED: usize = 4096;

/// One instance of a container: its pod, its name, and its restart count.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub restarts: i32,
}

impl Target {
    /// After a restart, the instance that crashed tells why; before one,
    /// only the running instance has written anything.
    pub fn previous(&self) -> bool {
        self.restarts > 0
    }

    /// The `pods/log` request: the last lines, at most the bytes a status
    /// keeps.
    pub fn params(&self) -> LogParams {
        LogParams {
            container: Some(self.container.clone()),
            previous: self.previous(),
            tail_lines: Some(i64::from(MAX_LOG_LINES)),
            limit_bytes: Some(i64::from(MAX_LOG_BYTES)),
            ..Default::default()
        }
    }
}

/// A container, by namespace, pod and name.
type Container = (String, String, String);

/// What is known of one container's log.
#[derive(Default)]
struct Slot {
    /// The latest read, of whichever instance (or why it failed).
    latest: Option<LogExcerpt>,
    /// A read in flight, of that instance; these incidents are woken
    /// when it ends.
    reading: Option<(i32, Vec<ObjectRef<Incident>>)>,
    /// After a failed read of `latest`'s instance, not before this.
    retry_at: Option<Instant>,
    /// Reads failed in a row.
    failures: u32,
}

/// How long after the `failures`-th failure in a row the next read waits.
fn backoff(failures: u32) -> Duration {
    RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(RETRY_MAX)
}

#[derive(Default)]
struct Memo {
    slots: HashMap<Container, Slot>,
    order: VecDeque<Container>,
}

impl Memo {
    fn slot(&mut self, container: Container) -> &mut Slot {
        if !self.slots.contains_key(&container) {
            self.order.push_back(container.clone());
            while self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.slots.remove(&old);
                }
            }
        }
        self.slots.entry(container).or_default()
    }
}

pub struct Logs {
    client: Client,
    memo: Mutex<Memo>,
    permits: Arc<Semaphore>,
    wake: UnboundedSender<(ObjectRef<Incident>, Pace)>,
    metrics: Metrics,
}

impl Logs {
    pub fn new(
        client: Client,
        wake: UnboundedSender<(ObjectRef<Incident>, Pace)>,
        metrics: Metrics,
    ) -> Arc<Logs> {
        Arc::new(Logs {
            client,
            memo: Mutex::default(),
            permits: Arc::new(Semaphore::new(IN_FLIGHT)),
            wake,
            metrics,
        })
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest excerpt read of `target`'s container, of whichever
    /// instance. Unless it is of `target`'s instance (or that instance's
    /// read failed a moment ago), that instance is read in the
    /// background, one read per container at a time, waking `incident`
    /// when done.
    pub fn excerpt(
        self: &Arc<Self>,
        target: &Target,
        incident: &ObjectRef<Incident>,
    ) -> Option<LogExcerpt> {
        let container = (
            target.namespace.clone(),
            target.pod.clone(),
            target.container.clone(),
        );
        let mut memo = self.memo();
        let slot = memo.slot(container);
        let latest = slot.latest.clone();
        let current = latest
            .as_ref()
            .is_some_and(|l| l.restart_count == target.restarts);
        let failed_lately = current
            && latest.as_ref().is_some_and(|l| l.error.is_some())
            && slot.retry_at.is_some_and(|at| Instant::now() < at);
        let settled =
            current && (latest.as_ref().is_some_and(|l| l.error.is_none()) || failed_lately);
        if settled {
            return latest;
        }
        match &mut slot.reading {
            Some((_, waiting)) => {
                if !waiting.contains(incident) {
                    waiting.push(incident.clone());
                }
            }
            None => {
                slot.reading = Some((target.restarts, vec![incident.clone()]));
                let (logs, target) = (self.clone(), target.clone());
                tokio::spawn(async move { logs.read(target).await });
            }
        }
        latest
    }

    async fn read(self: Arc<Self>, target: Target) {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &target.namespace);
        let params = target.params();
        let outcome = tokio::time::timeout(TIMEOUT, api.logs(&target.pod, &params)).await;
        let now = second(jiff::Timestamp::now());
        let mut excerpt = LogExcerpt {
            container: target.container.clone(),
            previous: target.previous(),
            restart_count: target.restarts,
            fetched_at: Some(now),
            ..Default::default()
        };
        let failed = match outcome {
            Ok(Ok(text)) => {
                let (lines, truncated) = excerpt_of(&text);
                excerpt.lines = lines;
                excerpt.truncated = truncated;
                self.metrics
                    .log_reads
                    .get_or_create(&LogLabels { outcome: "read" })
                    .inc();
                debug!(namespace = %target.namespace, pod = %target.pod, container = %target.container,
                    restarts = target.restarts, "read the container's log");
                false
            }
            // The pod went away meanwhile (replaced by a rollout, say): no
            // failure of anyone's, nothing new to keep.
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                debug!(namespace = %target.namespace, pod = %target.pod, "the pod is gone; its log is no longer read");
                self.metrics
                    .log_reads
                    .get_or_create(&LogLabels { outcome: "gone" })
                    .inc();
                let mut memo = self.memo();
                let slot = memo.slot((
                    target.namespace.clone(),
                    target.pod.clone(),
                    target.container.clone(),
                ));
                let waiting = slot.reading.take().map(|(_, w)| w).unwrap_or_default();
                // Not read again for this instance.
                slot.retry_at = Some(Instant::now() + RETRY_MAX);
                if slot.latest.is_none() {
                    slot.latest = Some(LogExcerpt {
                        error: Some("the pod is gone".into()),
                        ..excerpt
                    });
                }
                drop(memo);
                for incident in waiting {
                    let _ = self.wake.unbounded_send((incident, Pace::Routine));
                }
                return;
            }
            failed => {
                let why = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {}s", TIMEOUT.as_secs()),
                };
                // The apiserver's or the kubelet's words; no log text.
                let why = truncate(&redact::line(&why), 300);
                warn!(namespace = %target.namespace, pod = %target.pod, container = %target.container,
                    error = %why, "cannot read the container's log");
                self.metrics
                    .log_reads
                    .get_or_create(&LogLabels { outcome: "failed" })
                    .inc();
                excerpt.error = Some(why);
                true
            }
        };
        let waiting = {
            let mut memo = self.memo();
            let slot = memo.slot((
                target.namespace.clone(),
                target.pod.clone(),
                target.container.clone(),
            ));
            if failed && let Some(latest) = &slot.latest {
                if latest.error.is_none() {
                    // A failed read keeps the lines of the last good one.
                    excerpt.lines = latest.lines.clone();
                    excerpt.truncated = latest.truncated;
                } else if latest.error == excerpt.error
                    && latest.restart_count == excerpt.restart_count
                {
                    // The same failure again changes nothing a status
                    // would show, so it writes nothing.
                    excerpt.fetched_at = latest.fetched_at.clone();
                }
            }
            slot.failures = if failed { slot.failures + 1 } else { 0 };
            slot.retry_at = failed.then(|| Instant::now() + backoff(slot.failures));
            slot.latest = Some(excerpt);
            slot.reading.take().map(|(_, w)| w).unwrap_or_default()
        };
        for incident in waiting {
            let _ = self.wake.unbounded_send((incident, Pace::Routine));
        }
    }
}

/// The lines of a log, redacted, the last [`MAX_LOG_LINES`] of them, and
/// whether the container wrote more than that (or than the bytes read).
pub fn excerpt_of(text: &str) -> (Vec<String>, bool) {
    let mut lines: Vec<&str> = text.lines().collect();
    let mut truncated = text.len() >= MAX_LOG_BYTES as usize;
    let keep = MAX_LOG_LINES as usize;
    if lines.len() > keep {
        lines.drain(..lines.len() - keep);
        truncated = true;
    }
    // A line the byte limit cut in two is not evidence of anything.
    if text.len() >= MAX_LOG_BYTES as usize && !text.ends_with('\n') && lines.len() > 1 {
        lines.pop();
    }
    (redact::lines(lines), truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(restarts: i32) -> Target {
        Target {
            namespace: "shop".into(),
            pod: "checkout-1".into(),
            container: "app".into(),
            restarts,
        }
    }

    #[test]
    fn after_a_restart_the_crashed_instance_is_read_else_the_running_one() {
        let restarted = target(3).params();
        assert!(restarted.previous);
        assert_eq!(restarted.container.as_deref(), Some("app"));
        assert_eq!(restarted.tail_lines, Some(20));
        assert_eq!(restarted.limit_bytes, Some(2048));
        assert!(!target(0).params().previous);
    }

    #[test]
    fn failed_reads_back_off_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(4), Duration::from_secs(480));
        assert_eq!(backoff(5), RETRY_MAX);
        assert_eq!(backoff(40), RETRY_MAX);
    }

    #[test]
    fn an_excerpt_is_the_last_lines_redacted() {
        let text: String = (1..=25)
            .map(|i| format!("line {i}\n"))
            .chain(["db password=hunter2 rejected\n".to_string()])
            .collect();
        let (lines, truncated) = excerpt_of(&text);
        assert!(truncated);
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "line 7");
        assert_eq!(lines[19], "db password=[redacted] rejected");
        let (short, cut) = excerpt_of("starting\npanic: boom\n");
        assert_eq!(
            (short.as_slice(), cut),
            (
                &["starting".to_string(), "panic: boom".to_string()][..],
                false
            )
        );
        // At the byte limit, the last line is likely cut: dropped.
        let long = format!("{}\n{}", "a".repeat(1000), "b".repeat(1048));
        let (lines, truncated) = excerpt_of(&long);
        assert!(truncated);
        assert_eq!(lines.len(), 1);
    }
}
