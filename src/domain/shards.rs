//! Sharding by namespace (`--shards N --shard-leases`): which shard a
//! namespace is in, how many shards a replica may hold, and which shard
//! Leases it tries or gives up. Pure: the Leases as last seen and the
//! clock are passed in.
//!
//! Each replica renews a membership Lease `klaxon-replica-<identity>`; the
//! live replicas share the shards, at most ⌈N / live⌉ each. A replica tries
//! free or expired shard Leases up to that cap, and gives up the excess
//! when a replica joins. A replica whose shard Lease expired is not
//! counted as live, so survivors take a dead replica's shards as soon as
//! its Leases expire, whenever its membership Lease does.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

/// Shard Leases are `klaxon-shard-<i>`.
pub const SHARD_LEASE_PREFIX: &str = "klaxon-shard-";
/// Membership Leases are `klaxon-replica-<identity>`.
pub const MEMBER_LEASE_PREFIX: &str = "klaxon-replica-";

/// The shard `namespace` belongs to, of `shards`.
pub fn shard_of(namespace: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    u32::try_from(super::fnv1a(namespace.bytes()) % u64::from(shards)).unwrap_or(0)
}

pub fn shard_lease_name(shard: u32) -> String {
    format!("{SHARD_LEASE_PREFIX}{shard}")
}

/// The shard a Lease of `name` stands for, when it is a shard Lease.
pub fn shard_of_lease(name: &str) -> Option<u32> {
    let number = name.strip_prefix(SHARD_LEASE_PREFIX)?;
    // `01` is not shard 1: only the names shard_lease_name makes.
    (!number.starts_with('0') || number == "0")
        .then(|| number.parse().ok())
        .flatten()
}

/// The membership Lease of `identity`: a valid object name (lowercase
/// letters, digits, `-` and `.`, at most 253 characters). An identity that
/// had to change gets a hash suffix, so two identities never share one.
pub fn member_lease_name(identity: &str) -> String {
    let clean: String = identity
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    let clean = clean.trim_matches(|c| c == '-' || c == '.');
    let budget = 253 - MEMBER_LEASE_PREFIX.len() - 17;
    if clean == identity && clean.len() <= budget + 17 {
        return format!("{MEMBER_LEASE_PREFIX}{clean}");
    }
    let short: String = clean.chars().take(budget).collect();
    let short = short.trim_end_matches(['-', '.']);
    format!(
        "{MEMBER_LEASE_PREFIX}{short}-{:016x}",
        super::fnv1a(identity.bytes())
    )
}

/// How a shard Lease is timed, from its duration in seconds (at least 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease lasts without renewal.
    pub duration: u64,
    /// How long before the Lease expires its holder stops touching the
    /// shard: the clock skew tolerated between replicas.
    pub grace: u64,
    /// How long after a renewal the holder renews again.
    pub renew_after: u64,
}

impl Timing {
    pub fn of(duration: std::time::Duration) -> Timing {
        let duration = duration.as_secs().max(3);
        Timing {
            duration,
            grace: (duration / 3).max(1),
            // Well before the stop: a renewal that is slow for a moment
            // does not make the holder stop.
            renew_after: (duration / 3).max(1),
        }
    }

    /// The `grace` kube-lease-manager takes: how long before expiry the
    /// holder renews.
    pub fn renew_before(&self) -> u64 {
        self.duration - self.renew_after
    }
}

/// A held Lease as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub holder: String,
    pub renewed: Timestamp,
    /// Seconds.
    pub duration: u64,
}

impl Held {
    /// When another replica may take it.
    pub fn expires(&self) -> Timestamp {
        self.renewed
            .saturating_add(SignedDuration::from_secs(
                i64::try_from(self.duration).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MAX)
    }

    pub fn valid_at(&self, now: Timestamp) -> bool {
        now < self.expires()
    }

    /// Until when its holder may touch the shard: `grace` before expiry.
    pub fn usable_until(&self, grace: u64) -> Timestamp {
        self.expires()
            .saturating_sub(SignedDuration::from_secs(
                i64::try_from(grace).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MIN)
    }
}

/// The most shards one of `live` replicas holds.
pub fn cap(shards: u32, live: usize) -> usize {
    let shards = usize::try_from(shards).unwrap_or(usize::MAX);
    shards.div_ceil(live.max(1))
}

/// What one replica sees of the Leases.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub shards: u32,
    pub me: &'a str,
    /// Each shard's Lease by shard number: `None` when missing or free.
    pub leases: &'a [Option<Held>],
    /// The membership Leases that have a holder.
    pub members: &'a [Held],
    /// Shards whose Lease this replica holds.
    pub holding: &'a BTreeSet<u32>,
    /// Shards whose Lease this replica is trying to take.
    pub trying: &'a BTreeSet<u32>,
}

/// What to do next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Shard Leases to try.
    pub acquire: Vec<u32>,
    /// Attempts to stop: another replica holds those Leases.
    pub abandon: Vec<u32>,
    /// Held shards to give up, so that a replica that joined gets its share.
    pub shed: Vec<u32>,
}

impl View<'_> {
    fn lease(&self, shard: u32) -> Option<&Held> {
        self.leases
            .get(usize::try_from(shard).ok()?)
            .and_then(Option::as_ref)
    }

    /// The replicas sharing the shards: those with a valid membership or
    /// shard Lease, and this one, less any whose shard Lease expired
    /// (dead, or cut off: either way its shards are up for taking).
    pub fn live(&self, now: Timestamp) -> BTreeSet<&str> {
        let leases = self.leases.iter().flatten();
        let lapsed: BTreeSet<&str> = leases
            .clone()
            .filter(|l| !l.valid_at(now))
            .map(|l| l.holder.as_str())
            .collect();
        let mut live: BTreeSet<&str> = self
            .members
            .iter()
            .chain(leases)
            .filter(|l| l.valid_at(now))
            .map(|l| l.holder.as_str())
            .filter(|holder| !lapsed.contains(holder))
            .collect();
        live.insert(self.me);
        live
    }

    /// The shards in this replica's order of preference: from a start its
    /// identity picks, so that replicas starting together reach for
    /// different Leases first.
    fn preference(&self) -> impl Iterator<Item = u32> + '_ {
        let n = self.shards.max(1);
        let start = shard_of(self.me, n);
        (0..n).map(move |k| (start + k) % n)
    }

    /// Free, expired, or this replica's own from an earlier run.
    fn takeable(&self, shard: u32, now: Timestamp) -> bool {
        match self.lease(shard) {
            None => true,
            Some(held) => held.holder == self.me || !held.valid_at(now),
        }
    }
}

/// Which Leases to try, stop trying, and give up, as of `now`.
pub fn decide(view: &View<'_>, now: Timestamp) -> Decision {
    let cap = cap(view.shards, view.live(now).len());
    let abandon: Vec<u32> = view
        .trying
        .iter()
        .copied()
        .filter(|&s| !view.takeable(s, now))
        .collect();
    let trying = view.trying.len() - abandon.len();
    let mut decision = Decision {
        abandon,
        ..Default::default()
    };
    if view.holding.len() > cap {
        // Keep the most preferred; give up from the other end.
        let mut held: Vec<u32> = view
            .preference()
            .filter(|s| view.holding.contains(s))
            .collect();
        decision.shed = held.split_off(cap);
        return decision;
    }
    let room = cap.saturating_sub(view.holding.len() + trying);
    decision.acquire = view
        .preference()
        .filter(|s| !view.holding.contains(s) && !view.trying.contains(s))
        .filter(|&s| view.takeable(s, now))
        .take(room)
        .collect();
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("time")
    }

    fn held(holder: &str, renewed: i64) -> Held {
        Held {
            holder: holder.into(),
            renewed: at(renewed),
            duration: 5,
        }
    }

    fn set(shards: &[u32]) -> BTreeSet<u32> {
        shards.iter().copied().collect()
    }

    /// What `me` decides at `now`, holding and trying those shards.
    fn decided(
        me: &str,
        leases: &[Option<Held>],
        members: &[Held],
        holding: &[u32],
        trying: &[u32],
        now: i64,
    ) -> Decision {
        let (holding, trying) = (set(holding), set(trying));
        let view = View {
            shards: u32::try_from(leases.len()).expect("few"),
            me,
            leases,
            members,
            holding: &holding,
            trying: &trying,
        };
        let mut decision = decide(&view, at(now));
        decision.acquire.sort_unstable();
        decision
    }

    #[test]
    fn a_namespace_always_lands_in_the_same_shard() {
        assert_eq!(shard_of("payments", 1), 0);
        assert_eq!(shard_of("payments", 0), 0, "no shards is one shard");
        // FNV-1a("payments") = 0xe17ac5686623db26.
        assert_eq!(shard_of("payments", 4), 2);
        let spread: BTreeSet<u32> = (0..64).map(|i| shard_of(&format!("team-{i}"), 4)).collect();
        assert_eq!(spread, set(&[0, 1, 2, 3]), "every shard gets namespaces");
    }

    #[test]
    fn lease_names_round_trip_and_members_get_valid_names() {
        assert_eq!(shard_lease_name(3), "klaxon-shard-3");
        assert_eq!(shard_of_lease("klaxon-shard-3"), Some(3));
        assert_eq!(shard_of_lease("klaxon-shard-0"), Some(0));
        assert_eq!(shard_of_lease("klaxon-shard-03"), None);
        assert_eq!(shard_of_lease("klaxon-replica-a"), None);
        assert_eq!(shard_of_lease("klaxon"), None);
        assert_eq!(
            member_lease_name("klaxon-7d9f-abcde"),
            "klaxon-replica-klaxon-7d9f-abcde"
        );
        let odd = member_lease_name("Laptop_Of.Alice-4242");
        assert!(
            odd.starts_with("klaxon-replica-laptop-of.alice-4242-"),
            "{odd}"
        );
        assert_ne!(odd, member_lease_name("laptop-of.alice-4242"));
        let long = member_lease_name(&"x".repeat(400));
        assert!(long.len() <= 253, "{}", long.len());
    }

    #[test]
    fn the_cap_shares_the_shards_among_live_replicas_rounding_up() {
        assert_eq!(cap(4, 1), 4);
        assert_eq!(cap(4, 2), 2);
        assert_eq!(cap(4, 3), 2);
        assert_eq!(cap(4, 5), 1);
        assert_eq!(cap(5, 2), 3);
        assert_eq!(cap(4, 0), 4, "this replica always counts");
    }

    #[test]
    fn a_lease_is_usable_until_grace_before_it_expires() {
        let lease = held("a", 0);
        assert_eq!(lease.expires(), at(5));
        assert!(lease.valid_at(at(4)));
        assert!(!lease.valid_at(at(5)));
        assert_eq!(lease.usable_until(1), at(4));
        let timing = Timing::of(std::time::Duration::from_secs(15));
        assert_eq!((timing.grace, timing.renew_after), (5, 5));
        assert_eq!(timing.renew_before(), 10);
        assert!(timing.renew_after < timing.duration - timing.grace);
        let short = Timing::of(std::time::Duration::from_secs(1));
        assert_eq!((short.duration, short.grace, short.renew_after), (3, 1, 1));
    }

    #[test]
    fn alone_a_replica_tries_every_free_shard() {
        let decision = decided("a", &[None, None, None, None], &[], &[], &[], 0);
        assert_eq!(decision.acquire, [0, 1, 2, 3]);
    }

    #[test]
    fn with_a_second_live_replica_each_tries_only_its_share() {
        // b is a member and holds shard 1.
        let leases = [None, Some(held("b", 0)), None, None];
        let members = [held("a", 0), held("b", 0)];
        let decision = decided("a", &leases, &members, &[], &[], 1);
        assert_eq!(decision.acquire.len(), 2, "{decision:?}");
        assert!(!decision.acquire.contains(&1), "b holds it");
    }

    #[test]
    fn attempts_count_against_the_cap_and_lost_races_are_abandoned() {
        // a tries 0 and 2; b took 2 meanwhile.
        let leases = [None, Some(held("b", 0)), Some(held("b", 0)), None];
        let decision = decided("a", &leases, &[held("b", 0)], &[], &[0, 2], 1);
        assert_eq!(decision.abandon, [2]);
        assert_eq!(decision.acquire, [3], "room for one beside 0");
        assert!(decision.shed.is_empty());
    }

    #[test]
    fn a_replica_over_its_cap_gives_up_the_excess_when_another_joins() {
        let leases = [
            Some(held("a", 0)),
            Some(held("a", 0)),
            Some(held("a", 0)),
            Some(held("a", 0)),
        ];
        let members = [held("a", 0), held("b", 0)];
        let decision = decided("a", &leases, &members, &[0, 1, 2, 3], &[], 1);
        assert_eq!(decision.shed.len(), 2, "{decision:?}");
        assert!(decision.acquire.is_empty());
        // b, with two free shards and a at its cap, takes them.
        let leases = [Some(held("a", 0)), None, Some(held("a", 0)), None];
        assert_eq!(decided("b", &leases, &members, &[], &[], 1).acquire, [1, 3]);
    }

    #[test]
    fn a_shard_being_given_up_is_not_tried_again() {
        // a gave up 1 (still its own on the Lease): it counts as tried.
        let leases = [Some(held("a", 0)), Some(held("a", 0))];
        let members = [held("a", 0), held("b", 0)];
        let decision = decided("a", &leases, &members, &[0], &[1], 1);
        assert_eq!(decision, Decision::default());
    }

    #[test]
    fn a_dead_replicas_shards_are_taken_once_its_leases_expire() {
        // b renewed its shards at 0 and died; its membership at 3.
        let leases = [
            Some(held("a", 4)),
            Some(held("b", 0)),
            Some(held("a", 4)),
            Some(held("b", 0)),
        ];
        let members = [held("a", 4), held("b", 3)];
        let (holding, trying) = (set(&[0, 2]), set(&[]));
        let view = View {
            shards: 4,
            me: "a",
            leases: &leases,
            members: &members,
            holding: &holding,
            trying: &trying,
        };
        assert_eq!(view.live(at(4)).len(), 2);
        assert!(
            decided("a", &leases, &members, &[0, 2], &[], 4)
                .acquire
                .is_empty()
        );
        // At 5 b's shard Leases expire, its membership only at 8: b no
        // longer counts, the cap is 4, and a takes both.
        assert_eq!(view.live(at(5)).len(), 1);
        assert_eq!(
            decided("a", &leases, &members, &[0, 2], &[], 5).acquire,
            [1, 3]
        );
    }

    #[test]
    fn a_lease_held_under_this_identity_from_before_a_restart_is_taken_back() {
        let leases = [Some(held("a", 0)), Some(held("b", 0))];
        let decision = decided("a", &leases, &[held("b", 0)], &[], &[], 1);
        assert_eq!(decision.acquire, [0]);
    }
}
