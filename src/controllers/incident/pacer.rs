//! When each incident's status was last written, so routine changes are
//! written at most once per [`pace::ROUTINE_INTERVAL`] (see
//! [`crate::domain::incident::pace`]), and all incidents' routine writes
//! together at most `--routine-writes` a second.
//!
//! The shared budget keeps the operator's load on the apiserver, and its
//! own CPU, flat when many incidents churn at once: with 10 routine
//! writes a second, 50 busy incidents are each refreshed every 10 s, and
//! 500 every 50 s or so. Urgent writes never wait for either.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::runtime::reflector::ObjectRef;

use crate::{
    api::Incident,
    domain::incident::pace::{Pace, ROUTINE_INTERVAL},
};

/// Routine writes a second, all incidents together, unless configured.
pub const DEFAULT_ROUTINE_WRITES: f64 = 10.0;

/// One entry per incident written within the interval or holding a slot
/// of the budget; cleared once used, and when the incident rests or is
/// gone.
pub struct Pacer {
    state: Mutex<State>,
    /// The budget's spacing: one routine write per this.
    every: Duration,
}

#[derive(Default)]
struct State {
    incidents: HashMap<ObjectRef<Incident>, Entry>,
    /// The budget's next free slot.
    next: Option<Instant>,
}

enum Entry {
    Written(Instant),
    /// A slot of the budget, reserved for the incident's next routine
    /// write.
    Slot(Instant),
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new(DEFAULT_ROUTINE_WRITES)
    }
}

impl Pacer {
    /// A pacer allowing `per_second` routine writes a second in all.
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            state: Mutex::default(),
            every: Duration::from_secs_f64(1.0 / per_second.max(0.01)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The incident's status was just written.
    pub fn wrote(&self, incident: &ObjectRef<Incident>) {
        self.lock()
            .incidents
            .insert(incident.clone(), Entry::Written(Instant::now()));
    }

    /// The incident is not looked at until it changes.
    pub fn forget(&self, incident: &ObjectRef<Incident>) {
        self.lock().incidents.remove(incident);
    }

    /// How long a change of this pace must still wait; `None` when it
    /// may be written now. A routine change past the incident's interval
    /// takes the budget's next slot, kept for it until used.
    pub fn wait(&self, incident: &ObjectRef<Incident>, pace: Pace) -> Option<Duration> {
        if pace == Pace::Urgent {
            return None;
        }
        let now = Instant::now();
        let mut state = self.lock();
        match state.incidents.get(incident) {
            Some(Entry::Written(at)) if now.duration_since(*at) < ROUTINE_INTERVAL => {
                return Some(ROUTINE_INTERVAL - now.duration_since(*at));
            }
            Some(Entry::Slot(slot)) if *slot > now => return Some(*slot - now),
            Some(Entry::Slot(_)) => {
                state.incidents.remove(incident);
                return None;
            }
            _ => {}
        }
        let slot = state.next.map_or(now, |next| next.max(now));
        state.next = Some(slot + self.every);
        if slot <= now {
            state.incidents.remove(incident);
            None
        } else {
            state.incidents.insert(incident.clone(), Entry::Slot(slot));
            Some(slot - now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_changes_wait_for_the_interval_urgent_ones_never() {
        let pacer = Pacer::default();
        let incident = ObjectRef::new("a").within("team");
        assert_eq!(pacer.wait(&incident, Pace::Routine), None);
        pacer.wrote(&incident);
        assert_eq!(pacer.wait(&incident, Pace::Urgent), None);
        let wait = pacer.wait(&incident, Pace::Routine);
        assert!(wait.is_some_and(|w| w <= ROUTINE_INTERVAL && w > ROUTINE_INTERVAL / 2));
        pacer.forget(&incident);
        assert!(
            pacer
                .wait(&incident, Pace::Routine)
                .is_some_and(|w| w < ROUTINE_INTERVAL)
        );
    }

    #[test]
    fn routine_writes_of_all_incidents_share_the_budget() {
        // Two a second: the first goes now, the next in 0.5 s, then 1 s.
        let pacer = Pacer::new(2.0);
        let [a, b, c] = ["a", "b", "c"].map(|name| ObjectRef::new(name).within("team"));
        assert_eq!(pacer.wait(&a, Pace::Routine), None);
        let second = pacer.wait(&b, Pace::Routine).expect("b waits its slot");
        let third = pacer.wait(&c, Pace::Routine).expect("c waits its slot");
        assert!(second > Duration::from_millis(400) && second <= Duration::from_millis(500));
        assert!(third > Duration::from_millis(900) && third <= Duration::from_secs(1));
        // Asking again keeps the slot: it does not take another.
        let again = pacer.wait(&b, Pace::Routine).expect("b still waits");
        assert!(again <= second && again > Duration::from_millis(400));
        // Urgent writes never wait for the budget.
        assert_eq!(pacer.wait(&c, Pace::Urgent), None);
    }
}
