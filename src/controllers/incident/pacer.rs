//! When each incident's status was last written, so routine changes are
//! written at most once per [`pace::ROUTINE_INTERVAL`] (see
//! [`crate::domain::incident::pace`]).

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

/// One entry per incident written within the interval; cleared on read
/// once it is older, and when the incident rests or is gone.
#[derive(Default)]
pub struct Pacer {
    written: Mutex<HashMap<ObjectRef<Incident>, Instant>>,
}

impl Pacer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<Incident>, Instant>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The incident's status was just written.
    pub fn wrote(&self, incident: &ObjectRef<Incident>) {
        self.lock().insert(incident.clone(), Instant::now());
    }

    /// The incident is not looked at until it changes.
    pub fn forget(&self, incident: &ObjectRef<Incident>) {
        self.lock().remove(incident);
    }

    /// How long a change of this pace must still wait; `None` when it
    /// may be written now.
    pub fn wait(&self, incident: &ObjectRef<Incident>, pace: Pace) -> Option<Duration> {
        if pace == Pace::Urgent {
            return None;
        }
        let mut written = self.lock();
        let since = written.get(incident)?.elapsed();
        if since >= ROUTINE_INTERVAL {
            written.remove(incident);
            return None;
        }
        Some(ROUTINE_INTERVAL - since)
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
        assert_eq!(pacer.wait(&incident, Pace::Routine), None);
    }
}
