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
/// conflict and a re-read, never correctness (every write is conditional).
const MAX_ENTRIES: usize = 512;

pub struct Written<K, S> {
    entries: Mutex<HashMap<K, Entry<S>>>,
}

struct Entry<S> {
    /// Versions older than our last write: the version our first write was
    /// based on, and every version our writes produced before the last.
    behind: Vec<String>,
    /// The version our last write produced.
    latest: String,
    status: S,
}

impl<K, S> Default for Written<K, S> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, S: Clone> Written<K, S> {
    /// The status we last wrote for `key`, when the cached object at
    /// `resource_version` predates that write. Any other version is either
    /// our last write or a later change by someone else, which carries our
    /// status along: the cache is current and the memo is dropped.
    pub fn newer_than_cache(&self, key: &K, resource_version: Option<&str>) -> Option<S> {
        let mut entries = self.lock();
        let entry = entries.get(key)?;
        match resource_version {
            Some(rv) if entry.behind.iter().any(|b| b == rv) => Some(entry.status.clone()),
            _ => {
                entries.remove(key);
                None
            }
        }
    }

    /// Records that `status` was written over the object at `based_on`,
    /// producing version `produced`.
    pub fn record(&self, key: K, based_on: Option<String>, produced: Option<String>, status: S) {
        let (Some(based_on), Some(produced)) = (based_on, produced) else {
            self.lock().remove(&key);
            return;
        };
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        let entry = entries.entry(key).or_insert_with(|| Entry {
            behind: Vec::new(),
            latest: based_on.clone(),
            status: status.clone(),
        });
        let previous = std::mem::replace(&mut entry.latest, produced);
        for rv in [based_on, previous] {
            if !entry.behind.contains(&rv) {
                entry.behind.push(rv);
            }
        }
        entry.status = status;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<S>>> {
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
        // Two writes in one reconcile: 1 -> 2 -> 3.
        written.record("a", Some("1".into()), Some("2".into()), 7);
        written.record("a", Some("2".into()), Some("3".into()), 8);
        assert_eq!(written.newer_than_cache(&"a", Some("1")), Some(8));
        // The watch delivered only the first write: still behind.
        assert_eq!(written.newer_than_cache(&"a", Some("2")), Some(8));
        // It delivered the last (or anything later): forget it.
        assert_eq!(written.newer_than_cache(&"a", Some("3")), None);
        assert_eq!(written.newer_than_cache(&"a", Some("1")), None);
    }
}
