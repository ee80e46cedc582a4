//! Whether the operator can do its job: what `/readyz` reports.
//!
//! Ready means the caches have synced and no watch has been failing for
//! longer than a bound: an operator that cannot see the cluster says so,
//! instead of answering 200 while it is deaf.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// A watch with no error for this long is taken to be watching again. A
/// failing watch retries at least every 2 s, and an apiserver that drops
/// packets fails each try after the 5 s connect timeout, so a failing
/// watch never stays quiet this long.
const QUIET: Duration = Duration::from_secs(10);

/// Default: how long a watch may fail before the operator is not ready.
pub const DEFAULT_WATCH_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
struct Streak {
    since: Instant,
    last: Instant,
}

#[derive(Clone)]
pub struct Health {
    ready: Arc<AtomicBool>,
    failing: Arc<Mutex<HashMap<&'static str, Streak>>>,
    grace: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_GRACE)
    }
}

impl Health {
    pub fn new(grace: Duration) -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(false)),
            failing: Arc::default(),
            grace,
        }
    }

    /// Marks the caches synced (or, for a standby, the Lease reachable).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Synced, and no watch failing for longer than the grace period.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.blind_watches().is_empty()
    }

    /// Watches failing for longer than the grace period.
    pub fn blind_watches(&self) -> Vec<&'static str> {
        let now = Instant::now();
        let mut failing = self.lock();
        failing.retain(|_, streak| now.duration_since(streak.last) < QUIET);
        let mut blind: Vec<&'static str> = failing
            .iter()
            .filter(|(_, streak)| now.duration_since(streak.since) >= self.grace)
            .map(|(watch, _)| *watch)
            .collect();
        blind.sort_unstable();
        blind
    }

    pub fn watch_failed(&self, watch: &'static str) {
        let now = Instant::now();
        let mut failing = self.lock();
        let streak = failing.entry(watch).or_insert(Streak {
            since: now,
            last: now,
        });
        if now.duration_since(streak.last) >= QUIET {
            streak.since = now;
        }
        streak.last = now;
    }

    /// The watch delivered an object: it works.
    pub fn watch_ok(&self, watch: &'static str) {
        let mut failing = self.lock();
        if !failing.is_empty() {
            failing.remove(watch);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Streak>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_failing_past_the_grace_period_makes_the_operator_unready() {
        let health = Health::new(Duration::ZERO);
        health.set_ready(true);
        assert!(health.is_ready());
        health.watch_failed("Pod");
        assert_eq!(health.blind_watches(), ["Pod"]);
        assert!(!health.is_ready());
        health.watch_ok("Pod");
        assert!(health.is_ready());

        let patient = Health::new(Duration::from_secs(60));
        patient.set_ready(true);
        patient.watch_failed("Pod");
        assert!(patient.is_ready(), "within the grace period");
    }
}
