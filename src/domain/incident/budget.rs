//! The size budget: whatever the cluster throws at it, the serialized
//! status stays under a bound well below etcd's object limit.

use super::timeline::TIMELINE_HEAD;
use crate::api::IncidentStatus;

/// The serialized status stays under this many bytes.
pub const MAX_STATUS_BYTES: usize = 60 * 1024;

/// The bytes `value` serializes to, counted as they are written, not
/// kept.
fn size<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Changes kept whatever the size (the most recent, and the suspect).
const KEPT_CHANGES: usize = 5;

/// Log excerpts kept whatever the size.
const KEPT_EXCERPTS: usize = 3;

/// Sheds one item of the least useful detail: events beyond the first
/// few, then log excerpts beyond the first few (live, then recorded), then
/// the longest pod lists, then the oldest changes (never the suspect),
/// then the middle of the timeline, then
/// the rest. Never the notification ledger (the outbox) or findings.
/// Returns the bytes it shed (an estimate), or `None` when nothing is left.
fn shed(status: &mut IncidentStatus) -> Option<usize> {
    if status.events.len() > 5 {
        return status.events.pop().map(|e| size(&e) + 1);
    }
    // Log excerpts but the first few (the worst pods of the first
    // workloads), from the last.
    let excerpts: Vec<&mut Option<crate::api::incident::LogExcerpt>> = status
        .workloads_mut()
        .filter_map(|d| d.pods.as_mut())
        .flat_map(|p| p.items.iter_mut().map(|i| &mut i.log))
        .filter(|log| log.is_some())
        .collect();
    if excerpts.len() > KEPT_EXCERPTS
        && let Some(last) = excerpts.into_iter().next_back()
    {
        return last.take().map(|log| size(&log));
    }
    if status.logs.len() > KEPT_EXCERPTS {
        return status.logs.pop().map(|log| size(&log) + 1);
    }
    if let Some(pods) = status
        .workloads_mut()
        .filter_map(|d| d.pods.as_mut())
        .filter(|p| p.items.len() > 1)
        .max_by_key(|p| p.items.len())
    {
        return pods.items.pop().map(|p| size(&p) + 1);
    }
    if status.changes.len() > KEPT_CHANGES
        && let Some(oldest) = status.changes.iter().rposition(|c| c.suspect != Some(true))
    {
        return Some(size(&status.changes.remove(oldest)) + 1);
    }
    if status.timeline.len() > TIMELINE_HEAD + 5 {
        return Some(size(&status.timeline.remove(TIMELINE_HEAD)) + 1);
    }
    if let Some(event) = status.events.pop() {
        return Some(size(&event) + 1);
    }
    if status.daemon_sets.len() + status.stateful_sets.len() + status.deployments.len() > 1 {
        if let Some(d) = status.daemon_sets.pop() {
            return Some(size(&d) + 1);
        }
        if let Some(s) = status.stateful_sets.pop() {
            return Some(size(&s) + 1);
        }
        return status.deployments.pop().map(|d| size(&d) + 1);
    }
    None
}

/// Sheds detail until the serialized status fits. Sizes are tracked as
/// items go (serializing the whole status once per item would cost the
/// square of its size), then checked exactly.
pub fn fit(status: &mut IncidentStatus, max_bytes: usize) {
    let mut estimate = size(status);
    loop {
        while estimate > max_bytes {
            match shed(status) {
                Some(bytes) => estimate = estimate.saturating_sub(bytes),
                None => return,
            }
        }
        estimate = size(status);
        if estimate <= max_bytes {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::event_storm;

    #[test]
    fn sheds_events_first_and_ends_under_the_bound() {
        let mut status = IncidentStatus {
            events: event_storm(100),
            ..Default::default()
        };
        fit(&mut status, 8 * 1024);
        assert!(size(&status) <= 8 * 1024);
        assert!(status.events.len() > 20, "sheds no more than it must");
    }
}
