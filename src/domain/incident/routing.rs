//! The notification ledger, an outbox kept in the status: every notifiable
//! transition gets its own entry per matching route, numbered, with its
//! own idempotency key. Entries are recorded before anything is sent;
//! each attempt is recorded before it is made and confirmed after, so a
//! crash resends under the same key, never under a new one, and never
//! forgets one.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{lifecycle::Change, second, timeline::Reports};
use crate::{
    api::{
        Incident, IncidentStatus,
        incident::{DeliveryState, NotificationHistory, NotificationState},
        limits::{MAX_NOTIFICATIONS, MAX_NOTIFICATIONS_STORED},
        policy::Trigger,
    },
    domain::{enrich::truncate, policy::EffectivePolicy},
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
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
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

/// The idempotency key of one notification: the incident, the
/// transition's number, the trigger, the receiver.
pub fn key(uid: &str, transition: i32, trigger: Trigger, receiver: &str) -> String {
    format!("{uid}.{transition}.{trigger:?}.{receiver}")
}

/// Numbers `changes` and records one Pending entry per (matching route's
/// receiver, change, trigger).
pub fn route(
    incident: &Incident,
    policy: &EffectivePolicy,
    changes: &[Change],
    status: &mut IncidentStatus,
    reports: &mut Reports,
    now: &Time,
) {
    let Some(uid) = incident.metadata.uid.as_deref().filter(|u| !u.is_empty()) else {
        return;
    };
    let severity = &incident.spec.severity;
    for change in changes {
        let number = status.last_transition.unwrap_or(0).saturating_add(1);
        status.last_transition = Some(number);
        for &trigger in &change.triggers {
            let mut receivers: Vec<&String> = policy
                .routes
                .iter()
                .filter(|r| r.matches(severity, trigger))
                .flat_map(|r| r.receivers.iter())
                .collect();
            if trigger == Trigger::Escalated {
                receivers.extend(policy.escalation.iter());
            }
            let mut seen = Vec::new();
            for receiver in receivers {
                if seen.contains(&receiver) {
                    continue;
                }
                seen.push(receiver);
                status.notifications.push(NotificationState {
                    receiver: receiver.clone(),
                    trigger: format!("{trigger:?}"),
                    transition: Some(change.text.clone()),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    last_attempt_at: None,
                    next_attempt_at: None,
                    idempotency_key: Some(key(uid, number, trigger, receiver)),
                    message: None,
                });
            }
        }
    }
    let refused = compact(status);
    if refused > 0 {
        reports.add(
            &mut status.timeline,
            now.clone(),
            "NotificationRefused",
            format!(
                "{refused} notification(s) not recorded: {} are still pending; fix the failing receivers",
                status.notifications.len()
            ),
        );
    }
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
        let Some(trigger) = trigger_of(&n.trigger) else {
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
    let (type_, message) = match outcome {
        Outcome::Delivered => {
            n.state = DeliveryState::Delivered;
            n.next_attempt_at = None;
            n.message = None;
            ("Notification", format!("Notified {} ({what})", n.receiver))
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
                "NotificationFailed",
                format!(
                    "Gave up notifying {} ({what}) after {} attempts: {error}",
                    n.receiver, n.attempts
                ),
            )
        }
    };
    reports.add(&mut status.timeline, now, type_, message);
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

pub fn trigger_of(name: &str) -> Option<Trigger> {
    [
        Trigger::Declared,
        Trigger::SeverityChanged,
        Trigger::PhaseChanged,
        Trigger::Escalated,
        Trigger::Resolved,
    ]
    .into_iter()
    .find(|t| format!("{t:?}") == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::incident::testing::{at, incident, payments_policy};

    /// Routes one change, discarding its reports.
    fn route_one(
        inc: &Incident,
        policy: &EffectivePolicy,
        trigger: Trigger,
        text: &str,
        status: &mut IncidentStatus,
    ) {
        let now = Time(at("2026-11-24T14:10:00Z"));
        route(
            inc,
            policy,
            &[change(trigger, text)],
            status,
            &mut Reports::default(),
            &now,
        );
    }

    fn change(trigger: Trigger, text: &str) -> Change {
        Change {
            triggers: vec![trigger],
            text: text.into(),
        }
    }

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
    fn every_change_gets_its_own_numbered_entry_and_key() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let mut status = IncidentStatus::default();
        route_one(
            &inc,
            &policy,
            Trigger::Declared,
            "Declared SEV1",
            &mut status,
        );
        // The same kind of change twice is two notifications.
        for _ in 0..2 {
            route_one(&inc, &policy, Trigger::Resolved, "x", &mut status);
        }
        let keys: Vec<&str> = status
            .notifications
            .iter()
            .filter_map(|n| n.idempotency_key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "u1.1.Declared.org/hook",
                "u1.2.Resolved.org/hook",
                "u1.3.Resolved.org/hook"
            ]
        );
        assert_eq!(status.last_transition, Some(3));
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

    #[test]
    fn past_the_hard_bound_new_entries_are_refused_and_said_so() {
        let mut inc = incident(crate::api::Phase::Triggered, "SEV1");
        inc.metadata.uid = Some("u1".into());
        let policy = payments_policy();
        let mut status = IncidentStatus::default();
        let now = Time(at("2026-11-24T14:10:00Z"));
        let mut quiet = Reports::default();
        for _ in 0..MAX_NOTIFICATIONS_STORED {
            route(
                &inc,
                &policy,
                &[change(Trigger::Resolved, "x")],
                &mut status,
                &mut quiet,
                &now,
            );
        }
        assert!(quiet.into_inner().is_empty());
        let first: Vec<_> = status.notifications.clone();
        let mut reports = Reports::default();
        route(
            &inc,
            &policy,
            &[change(Trigger::Resolved, "x")],
            &mut status,
            &mut reports,
            &now,
        );
        assert_eq!(status.notifications, first, "every Pending entry kept");
        let reports = reports.into_inner();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].reason, "NotificationRefused");
        assert!(reports[0].warning);
    }
}
