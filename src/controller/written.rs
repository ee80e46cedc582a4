//! What this operator wrote that its watch cache may not show yet.
//!
//! A reconcile triggered by something other than the Incident itself (a
//! pod, a metrics sample) can run before the watch delivers the status the
//! previous reconcile wrote. Computing from that stale status would report
//! the same transitions twice (duplicate Events, duplicate notifications)
//! and send a pointless patch. The object's `resourceVersion` says exactly
//! whether the cache is behind: if it is still the version the write was
//! based on, the written status is the current one.

use std::{collections::HashMap, hash::Hash, sync::Mutex};

/// Entries kept at most; beyond it the memo starts over, which only costs a
/// recomputation, never correctness.
const MAX_ENTRIES: usize = 4096;

pub struct Written<K, S> {
    entries: Mutex<HashMap<K, (String, S)>>,
}

impl<K, S> Default for Written<K, S> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, S: Clone> Written<K, S> {
    /// The status written for `key` when the cached object is still at
    /// `resource_version`, the version that write was based on.
    pub fn newer_than_cache(&self, key: &K, resource_version: Option<&str>) -> Option<S> {
        let mut entries = self.lock();
        match (entries.get(key), resource_version) {
            (Some((based_on, status)), Some(rv)) if based_on == rv => Some(status.clone()),
            (Some(_), _) => {
                // The cache has moved past our write.
                entries.remove(key);
                None
            }
            (None, _) => None,
        }
    }

    /// Records that `status` was written over the object at `based_on`.
    pub fn record(&self, key: K, based_on: Option<String>, status: S) {
        let Some(based_on) = based_on else { return };
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (based_on, status));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (String, S)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stands_in_for_the_cache_only_while_it_is_behind() {
        let written: Written<&str, u32> = Written::default();
        assert_eq!(written.newer_than_cache(&"a", Some("1")), None);
        written.record("a", Some("1".into()), 7);
        assert_eq!(written.newer_than_cache(&"a", Some("1")), Some(7));
        // The watch delivered our write (or anything later): forget it.
        assert_eq!(written.newer_than_cache(&"a", Some("2")), None);
        assert_eq!(written.newer_than_cache(&"a", Some("1")), None);
    }
}
