//! The outbox: the notification ledger kept in the status. Every entry is
//! recorded before anything is sent (by [`super::routing`]); each attempt
//! is recorded before it is made and confirmed after, so a crash resends
//! under the same key, never under a new one, and never forgets one. The
//! ledger stays bounded without dropping a Pending entry.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    second,
    timeline::{Kind, Reports},
};
use crate::{
    api::{
        IncidentStatus,
        incident::{DeliveryState, NotificationHistory},
        limits::{MAX_NOTIFICATIONS, MAX_NOTIFICATIONS_STORED},
        policy::Trigger,
    },
    domain::enrich::truncate,
};

/// Retry schedule: `base · 2^(attempt-1)`, capped, with jitter, until
/// `max_attempts` attempts were made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait after attempt number `attempt` (1-based) of the delivery
    /// `key`: between half and all of the exponential delay, so receivers
    /// coming back are not hit by every retry at once. The jitter derives
    /// from the key, so planning twice gives the same schedule.
    pub fn delay(&self, attempt: u32, key: &str) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let full = exp.min(self.cap);
        let half = full / 2;
        half + full.mul_f64(unit_fraction(key, attempt) * 0.5)
    }
}

/// A number in [0, 1) from `key` and `attempt` (FNV-1a).
fn unit_fraction(key: &str, attempt: u32) -> f64 {
    let hash = crate::domain::fnv1a(key.bytes().chain(attempt.to_le_bytes()));
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// One delivery to make now; its attempt is already in the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub key: String,
    pub receiver: String,
    pub trigger: Trigger,
    pub transition: Option<String>,
}

/// Keeps the ledger bounded: past [`MAX_NOTIFICATIONS`] entries, the
/// oldest finished ones are counted in `notificationHistory` and dropped.
/// Pending entries stay; past the schema's hard bound the newest entries
/// are refused instead (a Pending entry is never dropped to make room).
/// Returns how many were refused.
pub fn compact(status: &mut IncidentStatus) -> usize {
    let target = MAX_NOTIFICATIONS as usize;
    while status.notifications.len() > target {
        let Some(oldest) = status
            .notifications
            .iter()
            .position(|n| n.state != DeliveryState::Pending)
        else {
            break;
        };
        let gone = status.notifications.remove(oldest);
        let history = status
            .notification_history
            .get_or_insert_with(NotificationHistory::default);
        match gone.state {
            DeliveryState::Failed => history.failed = history.failed.saturating_add(1),
            _ => history.delivered = history.delivered.saturating_add(1),
        }
    }
    let bound = MAX_NOTIFICATIONS_STORED as usize;
    let refused = status.notifications.len().saturating_sub(bound);
    status.notifications.truncate(bound);
    refused
}

/// Notes why the last attempts failed, on entries still Pending.
pub fn note_errors(status: &mut IncidentStatus, errors: &[(String, String)]) {
    for (key, error) in errors {
        if let Some(n) = status
            .notifications
            .iter_mut()
            .find(|n| n.idempotency_key.as_ref() == Some(key) && n.state == DeliveryState::Pending)
        {
            n.message = Some(truncate(error, 300));
        }
    }
}

/// Marks the Pending entries that are due as attempted (before they are
/// sent) and returns them.
pub fn begin(status: &mut IncidentStatus, now: Timestamp, backoff: &Backoff) -> Vec<Delivery> {
    let at = second(now);
    let mut due = Vec::new();
    for n in &mut status.notifications {
        let ready = n.next_attempt_at.as_ref().is_none_or(|t| t.0 <= at.0);
        if n.state != DeliveryState::Pending || !ready {
            continue;
        }
        let Some(trigger) = Trigger::of(&n.trigger) else {
            continue;
        };
        let key = n.idempotency_key.clone().unwrap_or_default();
        n.attempts = n.attempts.saturating_add(1);
        n.last_attempt_at = Some(at.clone());
        let wait = backoff.delay(u32::try_from(n.attempts).unwrap_or(u32::MAX), &key);
        // From the exact instant, rounded up: the wait is never shorter
        // than the backoff's (the status holds whole seconds).
        n.next_attempt_at = SignedDuration::try_from(wait)
            .ok()
            .and_then(|w| now.checked_add(w).ok())
            .map(ceil_second);
        due.push(Delivery {
            key,
            receiver: n.receiver.clone(),
            trigger,
            transition: n.transition.clone(),
        });
    }
    due
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    Failed(String),
}

/// Records an attempt's outcome on the entry with `key`, when it still
/// awaits one. A failure short of the last attempt changes nothing here:
/// its reason goes out with the next attempt's record. True when the
/// status changed.
pub fn record(
    status: &mut IncidentStatus,
    key: &str,
    outcome: &Outcome,
    now: Timestamp,
    max_attempts: u32,
    reports: &mut Reports,
) -> bool {
    let now = second(now);
    let Some(n) = status
        .notifications
        .iter_mut()
        .find(|n| n.idempotency_key.as_deref() == Some(key))
    else {
        return false;
    };
    if n.state != DeliveryState::Pending {
        return false;
    }
    let what = match &n.transition {
        Some(transition) => format!("{}, {transition}", n.trigger),
        None => n.trigger.clone(),
    };
    let (entry, message) = match outcome {
        Outcome::Delivered => {
            n.state = DeliveryState::Delivered;
            n.next_attempt_at = None;
            n.message = None;
            (
                Kind::Notification.about(&n.receiver),
                format!("Notified {} ({what})", n.receiver),
            )
        }
        Outcome::Failed(error) => {
            if u32::try_from(n.attempts).unwrap_or(u32::MAX) < max_attempts {
                return false;
            }
            let error = truncate(error, 300);
            n.state = DeliveryState::Failed;
            n.next_attempt_at = None;
            n.message = Some(error.clone());
            (
                Kind::NotificationFailed.about(&n.receiver),
                format!(
                    "Gave up notifying {} ({what}) after {} attempts: {error}",
                    n.receiver, n.attempts
                ),
            )
        }
    };
    reports.add(&mut status.timeline, now, entry, message);
    true
}

/// `at`, rounded up to a whole second.
fn ceil_second(at: Timestamp) -> Time {
    let floor = second(at);
    if floor.0 == at {
        floor
    } else {
        floor
            .0
            .checked_add(SignedDuration::from_secs(1))
            .map(Time)
            .unwrap_or(floor)
    }
}

/// The next retry of a Pending entry.
pub fn next_attempt(status: &IncidentStatus) -> Option<Timestamp> {
    status
        .notifications
        .iter()
        .filter(|n| n.state == DeliveryState::Pending)
        .filter_map(|n| n.next_attempt_at.as_ref().map(|t| t.0))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, incident, payments_policy, route_one};

    #[test]
    fn backoff_grows_with_jitter_stops_at_the_cap_and_is_repeatable() {
        let backoff = Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            max_attempts: 5,
        };
        for i in 0..100 {
            let key = format!("k{i}");
            let first = backoff.delay(1, &key);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff.delay(3, &key);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            assert!(backoff.delay(30, &key) <= Duration::from_secs(10));
            assert_eq!(backoff.delay(3, &key), third);
        }
        assert_ne!(backoff.delay(3, "a"), backoff.delay(3, "b"));
    }

    #[test]
    fn a_retry_never_comes_sooner_than_the_backoff_allows() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let backoff = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(2),
            max_attempts: 100,
        };
        for millis in [1, 499, 500, 999] {
            let mut status = IncidentStatus::default();
            route_one(
                &inc,
                &payments_policy(),
                Trigger::Declared,
                "x",
                &mut status,
            );
            let now = at("2026-11-24T14:10:06Z")
                .checked_add(SignedDuration::from_millis(millis))
                .expect("time");
            begin(&mut status, now, &backoff);
            let key = status.notifications[0]
                .idempotency_key
                .clone()
                .unwrap_or_default();
            let next = status.notifications[0]
                .next_attempt_at
                .as_ref()
                .expect("next attempt")
                .0;
            let waited = Duration::try_from(next.duration_since(now)).expect("after now");
            assert!(waited >= backoff.delay(1, &key), "{millis} ms: {waited:?}");
            assert!(waited < backoff.delay(1, &key) + Duration::from_secs(1));
        }
    }

    #[test]
    fn a_full_ledger_summarises_finished_entries_and_keeps_every_pending_one() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let mut status = IncidentStatus::default();
        let n = MAX_NOTIFICATIONS as usize;
        for _ in 0..n {
            route_one(&inc, &policy, Trigger::Resolved, "x", &mut status);
        }
        // The first 10 finished, the rest still pending.
        for entry in status.notifications.iter_mut().take(10) {
            entry.state = DeliveryState::Delivered;
        }
        status.notifications[3].state = DeliveryState::Failed;
        for _ in 0..15 {
            route_one(&inc, &policy, Trigger::Resolved, "x", &mut status);
        }
        assert_eq!(
            status.notification_history,
            Some(NotificationHistory {
                delivered: 9,
                failed: 1
            })
        );
        let pending = status
            .notifications
            .iter()
            .filter(|e| e.state == DeliveryState::Pending)
            .count();
        assert_eq!(pending, n - 10 + 15, "no Pending entry is dropped");
        assert!(status.notifications.len() <= MAX_NOTIFICATIONS_STORED as usize);
    }

    #[test]
    fn attempts_are_recorded_before_sending_and_give_up_at_the_budget() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let mut status = IncidentStatus::default();
        route_one(
            &inc,
            &payments_policy(),
            Trigger::Declared,
            "Declared SEV1",
            &mut status,
        );
        let backoff = Backoff {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(60),
            max_attempts: 2,
        };
        let now = at("2026-11-24T14:10:06Z");
        let due = begin(&mut status, now, &backoff);
        assert_eq!(due.len(), 1);
        assert_eq!(status.notifications[0].attempts, 1);
        // Not due again before its backoff passed.
        assert!(begin(&mut status, now, &backoff).is_empty());
        let mut reports = Reports::default();
        let failed = Outcome::Failed("the receiver answered HTTP 500".into());
        assert!(!record(
            &mut status,
            &due[0].key,
            &failed,
            now,
            2,
            &mut reports
        ));
        assert_eq!(status.notifications[0].state, DeliveryState::Pending);
        let later = at("2026-11-24T14:11:00Z");
        assert_eq!(begin(&mut status, later, &backoff).len(), 1);
        assert!(record(
            &mut status,
            &due[0].key,
            &failed,
            later,
            2,
            &mut reports
        ));
        assert_eq!(status.notifications[0].state, DeliveryState::Failed);
        assert_eq!(
            status.notifications[0].message.as_deref(),
            Some("the receiver answered HTTP 500")
        );
        let reports = reports.into_inner();
        assert!(
            reports
                .iter()
                .any(|r| r.reason == "NotificationFailed" && r.warning)
        );
        // An outcome for a settled entry changes nothing.
        let mut more = Reports::default();
        assert!(!record(
            &mut status,
            &due[0].key,
            &Outcome::Delivered,
            later,
            2,
            &mut more
        ));
    }
}
