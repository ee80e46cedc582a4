//! Which namespaces this replica works on: the [`Shards`] handle every
//! controller asks before it writes for a namespace.
//!
//! Unsharded (the default), every namespace is owned. Sharded, the
//! replica's Lease work (`runtime::shards`) publishes the shards it holds,
//! each with the instant it must stop touching it (a grace period before
//! its Lease may expire); `owns` compares with the clock itself, so a
//! renewal that never comes stops the work on time even if nothing else
//! runs.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use futures::Stream;
use jiff::Timestamp;
use tokio::sync::watch;

use crate::domain::shards::shard_of;

/// What is owned: everything, or some shards, each until an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    All,
    Until(BTreeMap<u32, Timestamp>),
}

impl Owned {
    fn owns(&self, shard: u32, now: Timestamp) -> bool {
        match self {
            Owned::All => true,
            Owned::Until(held) => held.get(&shard).is_some_and(|until| now < *until),
        }
    }

    fn set(&self, now: Timestamp) -> BTreeSet<u32> {
        match self {
            Owned::All => BTreeSet::new(),
            Owned::Until(held) => held
                .iter()
                .filter(|(_, until)| now < **until)
                .map(|(shard, _)| *shard)
                .collect(),
        }
    }
}

/// Cheap to clone; every clone sees the same ownership.
#[derive(Clone)]
pub struct Shards {
    count: u32,
    owned: Arc<watch::Sender<Owned>>,
    arrivals: Arc<Mutex<Arrivals>>,
}

/// When each heartbeat alert last arrived: at this replica, and at the
/// others as their membership Leases say. Alertmanager reaches any
/// replica, and a heartbeat's silence is judged by its namespace's owner,
/// so arrivals are shared through the Leases.
#[derive(Debug, Default)]
struct Arrivals {
    own: BTreeMap<String, Timestamp>,
    /// Whether `own` changed since it was last taken for publishing.
    unpublished: bool,
    others: BTreeMap<String, Timestamp>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("count", &self.count)
            .field("owned", &*self.owned.borrow())
            .finish()
    }
}

impl Default for Shards {
    fn default() -> Self {
        Self::all()
    }
}

impl Shards {
    /// One shard, always owned: today's single operator.
    pub fn all() -> Shards {
        Shards {
            count: 1,
            owned: Arc::new(watch::Sender::new(Owned::All)),
            arrivals: Arc::default(),
        }
    }

    /// `count` shards, none owned until [`Shards::publish`] says so.
    pub fn leased(count: u32) -> Shards {
        Shards {
            count: count.max(1),
            owned: Arc::new(watch::Sender::new(Owned::Until(BTreeMap::new()))),
            arrivals: Arc::default(),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this replica holds Leases for shards (false: it owns all).
    pub fn is_leased(&self) -> bool {
        !matches!(*self.owned.borrow(), Owned::All)
    }

    pub fn shard_of(&self, namespace: &str) -> u32 {
        shard_of(namespace, self.count)
    }

    /// Whether this replica may write for `namespace` now.
    pub fn owns(&self, namespace: &str) -> bool {
        self.owns_shard(self.shard_of(namespace))
    }

    pub fn owns_shard(&self, shard: u32) -> bool {
        self.owned.borrow().owns(shard, Timestamp::now())
    }

    /// The shards owned now (empty when unsharded).
    pub fn owned(&self) -> BTreeSet<u32> {
        self.owned.borrow().set(Timestamp::now())
    }

    /// Sets the shards held, each with when to stop touching it.
    pub fn publish(&self, held: BTreeMap<u32, Timestamp>) {
        self.owned.send_if_modified(|owned| {
            let next = Owned::Until(held);
            let changed = *owned != next;
            *owned = next;
            changed
        });
    }

    /// Each time ownership changes, the shards gained or lost since the
    /// last item. Never ends while unsharded: nothing changes.
    pub fn changes(&self) -> impl Stream<Item = BTreeSet<u32>> + Send + 'static {
        let receiver = self.owned.subscribe();
        let seen = receiver.borrow().set(Timestamp::now());
        futures::stream::unfold((receiver, seen), |(mut receiver, seen)| async move {
            loop {
                receiver.changed().await.ok()?;
                let now = receiver.borrow_and_update().set(Timestamp::now());
                let changed: BTreeSet<u32> = now.symmetric_difference(&seen).copied().collect();
                if !changed.is_empty() {
                    return Some((changed, (receiver, now)));
                }
            }
        })
    }

    /// Records that heartbeat `alertname` arrived at this replica.
    pub fn arrived(&self, alertname: &str, at: Timestamp) {
        let mut arrivals = self.arrivals();
        let latest = arrivals.own.entry(alertname.to_string()).or_insert(at);
        if *latest < at {
            *latest = at;
        }
        arrivals.unpublished = true;
    }

    /// When heartbeat `alertname` last arrived at any replica this one
    /// knows of.
    pub fn last_arrival(&self, alertname: &str) -> Option<Timestamp> {
        let arrivals = self.arrivals();
        let own = arrivals.own.get(alertname);
        own.max(arrivals.others.get(alertname)).copied()
    }

    /// This replica's arrivals, when they changed since last taken: for
    /// the others to read.
    pub fn arrivals_to_publish(&self) -> Option<BTreeMap<String, Timestamp>> {
        let mut arrivals = self.arrivals();
        std::mem::take(&mut arrivals.unpublished).then(|| arrivals.own.clone())
    }

    /// Taken arrivals that could not be published: offered again.
    pub fn unpublished(&self) {
        self.arrivals().unpublished = true;
    }

    /// The arrivals the other replicas published, latest per alertname.
    pub fn heard(&self, others: BTreeMap<String, Timestamp>) {
        self.arrivals().others = others;
    }

    fn arrivals(&self) -> std::sync::MutexGuard<'_, Arrivals> {
        self.arrivals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once `namespace` is no longer owned: when its shard's
    /// Lease is lost or given up, or its renewal is overdue.
    pub async fn lost(&self, namespace: &str) {
        let shard = self.shard_of(namespace);
        let mut receiver = self.owned.subscribe();
        loop {
            let until = match &*receiver.borrow_and_update() {
                Owned::All => None,
                Owned::Until(held) => match held.get(&shard) {
                    Some(until) if Timestamp::now() < *until => Some(*until),
                    _ => return,
                },
            };
            let overdue = async {
                match until {
                    Some(until) => {
                        let left = until.duration_since(Timestamp::now());
                        tokio::time::sleep(std::time::Duration::try_from(left).unwrap_or_default())
                            .await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = overdue => {}
                changed = receiver.changed() => {
                    if changed.is_err() {
                        // The sender lives in `self`: unreachable.
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn later(seconds: i64) -> Timestamp {
        Timestamp::now() + jiff::SignedDuration::from_secs(seconds)
    }

    #[test]
    fn unsharded_owns_every_namespace() {
        let shards = Shards::all();
        assert!(shards.owns("payments") && shards.owns("search"));
        assert!(!shards.is_leased());
    }

    #[test]
    fn sharded_owns_what_was_published_until_its_instant() {
        let shards = Shards::leased(4);
        let ns = "payments";
        assert!(!shards.owns(ns), "nothing held yet");
        let shard = shards.shard_of(ns);
        shards.publish(BTreeMap::from([(shard, later(60))]));
        assert!(shards.owns(ns));
        shards.publish(BTreeMap::from([(shard, later(-1))]));
        assert!(!shards.owns(ns), "past its instant, even unpublished");
        assert!(shards.owned().is_empty());
    }

    #[tokio::test]
    async fn changes_name_the_shards_gained_and_lost() {
        let shards = Shards::leased(4);
        let mut changes = Box::pin(shards.changes());
        shards.publish(BTreeMap::from([(1, later(60)), (2, later(60))]));
        assert_eq!(changes.next().await, Some(BTreeSet::from([1, 2])));
        shards.publish(BTreeMap::from([(2, later(60)), (3, later(60))]));
        assert_eq!(changes.next().await, Some(BTreeSet::from([1, 3])));
    }

    #[tokio::test]
    async fn lost_resolves_when_the_shard_goes_or_its_time_runs_out() {
        let shards = Shards::leased(4);
        let ns = "payments";
        let shard = shards.shard_of(ns);
        shards.publish(BTreeMap::from([(shard, later(60))]));
        let waiting = tokio::spawn({
            let shards = shards.clone();
            async move { shards.lost("payments").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        shards.publish(BTreeMap::new());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("resolved when given up")
            .expect("task");
        let until = Timestamp::now() + jiff::SignedDuration::from_millis(200);
        shards.publish(BTreeMap::from([(shard, until)]));
        tokio::time::timeout(std::time::Duration::from_secs(5), shards.lost(ns))
            .await
            .expect("resolved when its time ran out");
    }

    #[test]
    fn heartbeat_arrivals_are_the_latest_here_or_elsewhere() {
        let base = Timestamp::now();
        let later = |seconds: i64| base + jiff::SignedDuration::from_secs(seconds);
        let shards = Shards::leased(2);
        assert_eq!(shards.last_arrival("Watchdog"), None);
        assert_eq!(shards.arrivals_to_publish(), None, "nothing arrived");
        shards.arrived("Watchdog", later(10));
        shards.arrived("Watchdog", later(5));
        assert_eq!(shards.last_arrival("Watchdog"), Some(later(10)));
        let published = shards.arrivals_to_publish();
        assert_eq!(
            published,
            Some(BTreeMap::from([("Watchdog".into(), later(10))]))
        );
        assert_eq!(shards.arrivals_to_publish(), None, "published once");
        shards.unpublished();
        assert!(shards.arrivals_to_publish().is_some(), "offered again");

        shards.heard(BTreeMap::from([("Watchdog".into(), later(20))]));
        assert_eq!(shards.last_arrival("Watchdog"), Some(later(20)));
        shards.heard(BTreeMap::from([("Other".into(), later(1))]));
        assert_eq!(shards.last_arrival("Watchdog"), Some(later(10)));
        assert_eq!(shards.last_arrival("Other"), Some(later(1)));
    }
}
