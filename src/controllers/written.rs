//! What this operator wrote that its watch cache may not show yet: an
//! optimisation only.
//!
//! A reconcile triggered by something other than the Incident itself (a
//! pod, a metrics sample) can run before the watch delivers the status the
//! previous reconcile wrote. Planning from that stale status would only
//! cost a conflict (every status write carries the resourceVersion it was
//! planned from) and a re-read; planning from what was written saves both.
//! The object's `resourceVersion` says whether the cache is behind: if it
//! is still a version our writes replaced, the written object is newer. A
//! wrong or forgotten entry can cost a retry, never change an outcome.

use std::{collections::HashMap, hash::Hash, sync::Mutex};

/// Entries kept at most; beyond it the oldest write is forgotten, which
/// only costs a conflict and a re-read, never correctness (every write is
/// conditional).
const MAX_ENTRIES: usize = 512;

pub struct Written<K, S> {
    entries: Mutex<HashMap<K, Entry<S>>>,
    /// Counts the writes recorded, to find the oldest.
    writes: std::sync::atomic::AtomicU64,
}

struct Entry<S> {
    /// Versions older than our last write: the version our first write was
    /// based on, and every version our writes produced before the last.
    behind: Vec<String>,
    /// The version our last write produced.
    latest: String,
    /// The order our last write was recorded in.
    written: u64,
    status: S,
}

impl<K, S> Default for Written<K, S> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            writes: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone, S: Clone> Written<K, S> {
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

    /// The watch delivered `key` at `resource_version`: forget our write
    /// once the cache holds it (or anything later), so an incident that
    /// goes quiet leaves no copy behind.
    pub fn delivered(&self, key: &K, resource_version: Option<&str>) {
        let mut entries = self.lock();
        let caught_up = entries.get(key).is_some_and(|entry| {
            resource_version.is_none_or(|rv| !entry.behind.iter().any(|b| b == rv))
        });
        if caught_up {
            entries.remove(key);
        }
    }

    /// How many writes are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.written)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = entries.entry(key).or_insert_with(|| Entry {
            behind: Vec::new(),
            latest: based_on.clone(),
            written: 0,
            status: status.clone(),
        });
        let previous = std::mem::replace(&mut entry.latest, produced);
        for rv in [based_on, previous] {
            if !entry.behind.contains(&rv) {
                entry.behind.push(rv);
            }
        }
        entry.status = status;
        entry.written = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    #[test]
    fn the_watch_delivering_the_write_empties_the_memo() {
        let written: Written<&str, u32> = Written::default();
        written.record("a", Some("1".into()), Some("2".into()), 7);
        written.delivered(&"a", Some("1"));
        assert_eq!(written.len(), 1, "the cache is still behind");
        written.delivered(&"a", Some("2"));
        assert!(written.is_empty());
    }

    #[test]
    fn a_full_memo_forgets_its_oldest_write_only() {
        let written: Written<usize, u32> = Written::default();
        for key in 0..MAX_ENTRIES {
            written.record(key, Some("1".into()), Some("2".into()), 7);
        }
        written.record(MAX_ENTRIES, Some("1".into()), Some("2".into()), 8);
        assert_eq!(written.newer_than_cache(&0, Some("1")), None, "the oldest");
        assert_eq!(written.newer_than_cache(&1, Some("1")), Some(7));
        assert_eq!(written.newer_than_cache(&MAX_ENTRIES, Some("1")), Some(8));
    }
}
