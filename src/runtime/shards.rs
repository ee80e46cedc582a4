//! `--shards N --shard-leases`: this replica's share of the shards, held
//! through Leases in the operator's namespace.
//!
//! - It renews a membership Lease `klaxon-replica-<identity>`, so others
//!   count it and leave it its share.
//! - It watches the Leases of the namespace (one watch, no polling) and,
//!   on every change, on its own attempts' news and when a Lease it saw is
//!   due to expire, decides ([`crate::domain::shards::decide`]) which
//!   shard Leases `klaxon-shard-<i>` to try, stop trying or give up.
//! - Each attempt or held shard is a task around a `kube-lease-manager`
//!   `LeaseManager`, which takes the Lease when it is free or expired and
//!   renews it.
//! - What it owns is published to [`Shards`] from the watch, not from the
//!   manager: a shard is owned while its Lease, as last seen, names this
//!   replica and was renewed less than `duration − grace` ago. A renewal
//!   that fails, or that never comes back, stops the work on that shard
//!   `grace` before another replica may take it.
//! - A shard given up, or every shard at shutdown, stops being owned
//!   first, then its Lease is released, so the next holder starts at once.
//! - Heartbeat alerts reach any replica: each writes the arrivals it
//!   received on its membership Lease ([`ARRIVALS_ANNOTATION`]) and reads
//!   the others', so a namespace's owner judges silence from them all.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::ready,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt, reflector, watcher},
};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    cluster::{shards::Shards, watch},
    domain::shards::{
        self as plan, Held, MEMBER_LEASE_PREFIX, Timing, member_lease_name, shard_lease_name,
        shard_of_lease,
    },
    metrics::Metrics,
};

/// How a replica shards.
#[derive(Clone, Debug)]
pub struct Config {
    pub count: u32,
    /// How long a Lease lasts without renewal.
    pub lease: Duration,
    /// Where the Leases live.
    pub namespace: String,
    /// This replica's name in the Leases.
    pub identity: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot hold the membership Lease {name} in namespace {namespace}")]
    Member {
        name: String,
        namespace: String,
        #[source]
        source: LeaseManagerError,
    },
}

/// How long a shard given up stays untouched before its Lease is
/// released: requests of the work just stopped land first.
const DRAIN: Duration = Duration::from_millis(300);

/// How long releasing one Lease may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the holder of shard 0 deletes membership Leases of replicas
/// long gone (every rollout leaves some).
const SWEEP: Duration = Duration::from_secs(60);

/// A membership Lease unrenewed for this many Lease durations is deleted.
const GONE_AFTER: i64 = 4;

/// The membership Lease annotation with the replica's heartbeat arrivals:
/// a JSON object of alertname to RFC 3339 time.
pub const ARRIVALS_ANNOTATION: &str = "klaxon.dev/heartbeats";

/// How often arrivals are written, when they changed: well within any
/// heartbeat's `missingFor`.
const PUBLISH_ARRIVALS: Duration = Duration::from_secs(1);

/// Alertnames published at most (heartbeat rules are a few per policy).
const MAX_ARRIVALS: usize = 256;

const ARRIVALS_FIELD_MANAGER: &str = "klaxon-heartbeats";

/// This replica's Lease work, running until [`Sharding::release`].
pub struct Sharding {
    shards: Shards,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sharding {
    /// Takes the membership Lease and starts deciding; `shutdown` stops
    /// new attempts (held shards stay held until [`Sharding::release`]).
    pub async fn start(
        client: &Client,
        config: Config,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Sharding, ShardError> {
        let timing = Timing::of(config.lease);
        let name = member_lease_name(&config.identity);
        let member = manager(client, &name, &config, timing)
            .await
            .map_err(|source| ShardError::Member {
                name: name.clone(),
                namespace: config.namespace.clone(),
                source,
            })?;
        let shards = Shards::leased(config.count);
        info!(
            identity = %config.identity,
            shards = config.count,
            namespace = %config.namespace,
            lease = timing.duration,
            "sharding: holding shard Leases klaxon-shard-<i> in turn with the other replicas"
        );
        let stop = CancellationToken::new();
        let replica = Replica {
            client: client.clone(),
            config,
            timing,
            shards: shards.clone(),
            metrics,
        };
        let task = tokio::spawn(replica.run(member, shutdown, stop.clone()));
        Ok(Sharding { shards, stop, task })
    }

    pub fn shards(&self) -> Shards {
        self.shards.clone()
    }

    /// Stops owning every shard and releases every Lease, so the other
    /// replicas take over at once. Call once the controllers stopped.
    pub async fn release(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            warn!(%error, "the shard task ended abnormally");
        }
    }
}

async fn manager(
    client: &Client,
    name: &str,
    config: &Config,
    timing: Timing,
) -> Result<LeaseManager, LeaseManagerError> {
    let field_manager: String = format!("klaxon-lease-{}", config.identity)
        .chars()
        .take(128)
        .collect();
    LeaseManagerBuilder::new(client.clone(), name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(timing.duration)
        .with_grace(timing.renew_before())
        .with_field_manager(field_manager)
        .build()
        .await
}

/// What a shard's task reports.
#[derive(Debug)]
enum News {
    Acquired(u32),
    /// The task ended: the attempt was abandoned, the Lease lost or
    /// released.
    Ended(u32),
}

enum Slot {
    Trying(CancellationToken),
    Holding(CancellationToken),
    /// Told to stop; not owned; its task is ending.
    Ending,
}

#[derive(Clone)]
struct Replica {
    client: Client,
    config: Config,
    timing: Timing,
    shards: Shards,
    metrics: Metrics,
}

impl Replica {
    async fn run(self, member: LeaseManager, shutdown: CancellationToken, stop: CancellationToken) {
        let member = tokio::spawn(self.clone().membership(member, stop.clone()));
        let (reader, writer) = reflector::store::<Lease>();
        let wake = Arc::new(Notify::new());
        let leases = tokio::spawn(watch_leases(
            Api::namespaced(self.client.clone(), &self.config.namespace),
            writer,
            wake.clone(),
        ));
        let (news, mut heard) = mpsc::unbounded_channel();
        let mut slots: BTreeMap<u32, Slot> = BTreeMap::new();
        let mut swept = tokio::time::Instant::now();
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = reader.wait_until_ready() => {}
        }
        let own = member_lease_name(&self.config.identity);
        while !stop.is_cancelled() {
            let now = Timestamp::now();
            self.shards.heard(arrivals_elsewhere(&reader.state(), &own));
            let (shard_leases, members) = self.seen(&reader.state());
            if !shutdown.is_cancelled() {
                let ending = self.decide(&mut slots, &shard_leases, &members, &news, now);
                self.publish(&slots, &shard_leases);
                for cancel in ending {
                    cancel.cancel();
                }
            } else {
                self.publish(&slots, &shard_leases);
            }
            if self.shards.owns_shard(0) && swept.elapsed() >= SWEEP {
                swept = tokio::time::Instant::now();
                self.sweep(&reader.state(), now).await;
            }
            let next = self.next_wake(&shard_leases, &members, now);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep(next) => {}
                Some(news) = heard.recv() => match news {
                    News::Acquired(shard) => {
                        if let Some(slot) = slots.get_mut(&shard)
                            && let Slot::Trying(cancel) = slot
                        {
                            let cancel = cancel.clone();
                            *slot = Slot::Holding(cancel);
                            info!(shard, lease = %shard_lease_name(shard), "holding a shard");
                        }
                    }
                    News::Ended(shard) => {
                        if let Some(Slot::Holding(_)) = slots.remove(&shard) {
                            warn!(shard, "lost a shard's Lease; stopped working on it");
                        }
                    }
                },
            }
        }
        // Stop touching everything, then hand every Lease back.
        self.shards.publish(BTreeMap::new());
        self.metrics.shards_owned.set(0);
        for slot in std::mem::take(&mut slots).into_values() {
            if let Slot::Trying(cancel) | Slot::Holding(cancel) = slot {
                cancel.cancel();
            }
        }
        drop(news);
        let drained = tokio::time::timeout(RELEASE_TIMEOUT + DRAIN, async {
            while heard.recv().await.is_some() {}
        });
        if drained.await.is_err() {
            warn!("some shard Leases were not released in time; they expire on their own");
        }
        let _ = member.await;
        leases.abort();
        info!("released the shard Leases");
    }

    /// The shard Leases by shard, and the membership Leases held.
    fn seen(&self, leases: &[Arc<Lease>]) -> (Vec<Option<Held>>, Vec<Held>) {
        let count = usize::try_from(self.config.count).unwrap_or(0);
        let mut shards = vec![None; count];
        let mut members = Vec::new();
        for lease in leases {
            let name = lease.name_any();
            if let Some(shard) = shard_of_lease(&name) {
                if let Some(slot) = usize::try_from(shard).ok().and_then(|s| shards.get_mut(s)) {
                    *slot = held(lease);
                }
            } else if name.starts_with(MEMBER_LEASE_PREFIX)
                && let Some(held) = held(lease)
            {
                members.push(held);
            }
        }
        (shards, members)
    }

    /// Applies a decision to the slots; the tokens of the attempts and
    /// shards to stop, to cancel once the ownership that excludes them is
    /// published.
    fn decide(
        &self,
        slots: &mut BTreeMap<u32, Slot>,
        leases: &[Option<Held>],
        members: &[Held],
        news: &mpsc::UnboundedSender<News>,
        now: Timestamp,
    ) -> Vec<CancellationToken> {
        let holding: BTreeSet<u32> = slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Holding(_)))
            .map(|(shard, _)| *shard)
            .collect();
        // A shard being given up counts as an attempt: not tried again,
        // and not room for another while its Lease is still out.
        let trying: BTreeSet<u32> = slots
            .iter()
            .filter(|(_, s)| !matches!(s, Slot::Holding(_)))
            .map(|(shard, _)| *shard)
            .collect();
        let view = plan::View {
            shards: self.config.count,
            me: &self.config.identity,
            leases,
            members,
            holding: &holding,
            trying: &trying,
        };
        let decision = plan::decide(&view, now);
        let mut ending = Vec::new();
        for shard in decision.abandon.iter().chain(&decision.shed) {
            if let Some(slot) = slots.get_mut(shard)
                && let Slot::Trying(cancel) | Slot::Holding(cancel) =
                    std::mem::replace(slot, Slot::Ending)
            {
                ending.push(cancel);
            }
        }
        if !decision.shed.is_empty() {
            info!(shards = ?decision.shed, live = view.live(now).len(), "giving up shards to a replica that joined");
        }
        for shard in decision.acquire {
            let cancel = CancellationToken::new();
            slots.insert(shard, Slot::Trying(cancel.clone()));
            debug!(shard, "trying a shard's Lease");
            tokio::spawn(self.clone().hold(shard, cancel, news.clone()));
        }
        ending
    }

    /// Publishes the shards held whose Lease, as last seen, is this
    /// replica's and fresh.
    fn publish(&self, slots: &BTreeMap<u32, Slot>, leases: &[Option<Held>]) {
        let owned = slots
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Holding(_)))
            .filter_map(|(shard, _)| {
                let held = leases.get(usize::try_from(*shard).ok()?)?.as_ref()?;
                (held.holder == self.config.identity)
                    .then(|| (*shard, held.usable_until(self.timing.grace)))
            })
            .collect::<BTreeMap<u32, Timestamp>>();
        let count = i64::try_from(owned.len()).unwrap_or(i64::MAX);
        self.shards.publish(owned);
        self.metrics.shards_owned.set(count);
    }

    /// When something may change without a watch event: a Lease of ours
    /// reaching its stop, another's expiring.
    fn next_wake(&self, leases: &[Option<Held>], members: &[Held], now: Timestamp) -> Duration {
        let mut next = Duration::from_secs(self.timing.renew_after);
        let mine = |h: &&Held| h.holder == self.config.identity;
        let instants = leases
            .iter()
            .flatten()
            .filter(mine)
            .map(|h| h.usable_until(self.timing.grace))
            .chain(
                members
                    .iter()
                    .chain(leases.iter().flatten())
                    .map(Held::expires),
            );
        for at in instants {
            if let Ok(left) = Duration::try_from(at.duration_since(now))
                && !left.is_zero()
            {
                next = next.min(left + Duration::from_millis(20));
            }
        }
        next
    }

    /// One shard: take its Lease, keep renewing it, and release it when
    /// told to stop.
    async fn hold(self, shard: u32, cancel: CancellationToken, news: mpsc::UnboundedSender<News>) {
        let name = shard_lease_name(shard);
        let mut manager: Option<LeaseManager> = None;
        let mut acquired = false;
        let mut failing = false;
        loop {
            let current = match manager.as_ref() {
                Some(current) => current,
                None => match self::manager(&self.client, &name, &self.config, self.timing).await {
                    Ok(built) => manager.insert(built),
                    Err(error) => {
                        warn!(%error, lease = %name, "cannot reach a shard's Lease; retrying");
                        if pause(&cancel, Duration::from_secs(1)).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = current.changed() => match changed {
                    Ok(true) => {
                        failing = false;
                        if !acquired {
                            acquired = true;
                            let _ = news.send(News::Acquired(shard));
                        }
                    }
                    Ok(false) if acquired => break,
                    Ok(false) => {}
                    // Deleted by someone: made again.
                    Err(LeaseManagerError::NonexistentLease(_)) => manager = None,
                    Err(error) => {
                        if retry(&mut failing, &error, &name, &cancel).await {
                            break;
                        }
                    }
                },
            }
        }
        if let Some(manager) = manager {
            if acquired && cancel.is_cancelled() {
                tokio::time::sleep(DRAIN).await;
            }
            release(&manager, &name).await;
        }
        let _ = news.send(News::Ended(shard));
    }

    /// Keeps the membership Lease renewed until `stop`, then releases it.
    async fn membership(self, mut member: LeaseManager, stop: CancellationToken) {
        let name = member_lease_name(&self.config.identity);
        let mut failing = false;
        let mut publish = tokio::time::interval(PUBLISH_ARRIVALS);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = publish.tick() => self.publish_arrivals(&name).await,
                changed = member.changed() => match changed {
                    Ok(_) => failing = false,
                    Err(LeaseManagerError::NonexistentLease(_)) => {
                        // Swept while this replica was cut off: made again.
                        match manager(&self.client, &name, &self.config, self.timing).await {
                            Ok(again) => member = again,
                            Err(error) => {
                                warn!(%error, lease = %name, "cannot make the membership Lease again; retrying");
                                if pause(&stop, Duration::from_secs(1)).await {
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => {
                        if retry(&mut failing, &error, &name, &stop).await {
                            break;
                        }
                    }
                },
            }
        }
        release(&member, &name).await;
    }

    /// Writes this replica's heartbeat arrivals on its membership Lease,
    /// when they changed, for the owners of the heartbeats' namespaces.
    async fn publish_arrivals(&self, name: &str) {
        let Some(arrivals) = self.shards.arrivals_to_publish() else {
            return;
        };
        let value: BTreeMap<&str, String> = arrivals
            .iter()
            .take(MAX_ARRIVALS)
            .map(|(alertname, at)| (alertname.as_str(), at.to_string()))
            .collect();
        let Ok(value) = serde_json::to_string(&value) else {
            return;
        };
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {ARRIVALS_ANNOTATION: value}}});
        let params = PatchParams {
            field_manager: Some(ARRIVALS_FIELD_MANAGER.into()),
            ..Default::default()
        };
        if let Err(error) = api.patch(name, &params, &Patch::Merge(&patch)).await {
            // Offered again on the next tick (a Lease swept meanwhile is
            // made again by the renewal).
            debug!(%error, lease = %name, "cannot publish heartbeat arrivals; retrying");
            self.shards.unpublished();
        }
    }

    /// Deletes membership Leases nobody renewed for a while, each only if
    /// it is still the version seen.
    async fn sweep(&self, leases: &[Arc<Lease>], now: Timestamp) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let gone_after = jiff::SignedDuration::from_secs(
            GONE_AFTER * i64::try_from(self.timing.duration).unwrap_or(i64::MAX / GONE_AFTER),
        );
        for lease in leases {
            let name = lease.name_any();
            if !name.starts_with(MEMBER_LEASE_PREFIX) {
                continue;
            }
            let spec = lease.spec.as_ref();
            let last = spec
                .and_then(|s| s.renew_time.as_ref().map(|t| t.0))
                .or_else(|| lease.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let stale = last.is_some_and(|at| at.saturating_add(gone_after).is_ok_and(|t| t < now));
            if !stale || held(lease).is_some_and(|h| h.valid_at(now)) {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.resource_version(),
                    uid: lease.uid(),
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    info!(lease = %name, "deleted the membership Lease of a replica long gone")
                }
                // Renewed or deleted meanwhile.
                Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {}
                Err(error) => {
                    debug!(%error, lease = %name, "cannot delete a stale membership Lease")
                }
            }
        }
    }
}

/// Logs a failed renewal (once per streak) and waits a little before the
/// next; true when `cancel` came first. The work on a shard stops by
/// itself when its renewal is overdue.
async fn retry(
    failing: &mut bool,
    error: &LeaseManagerError,
    name: &str,
    cancel: &CancellationToken,
) -> bool {
    if !*failing {
        warn!(%error, lease = %name, "cannot renew a Lease; retrying");
    }
    *failing = true;
    pause(cancel, Duration::from_millis(500)).await
}

/// Releases a Lease, so that another replica takes it at once.
async fn release(manager: &LeaseManager, name: &str) {
    match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            warn!(%error, lease = %name, "cannot release a Lease; it expires on its own")
        }
        Err(_) => warn!(lease = %name, "releasing a Lease timed out; it expires on its own"),
    }
}

/// Waits `delay`; true when `cancel` came first.
async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

/// The latest heartbeat arrivals the other replicas' membership Leases
/// publish (the Lease named `own` is this replica's).
fn arrivals_elsewhere(leases: &[Arc<Lease>], own: &str) -> BTreeMap<String, Timestamp> {
    let mut latest: BTreeMap<String, Timestamp> = BTreeMap::new();
    for lease in leases {
        let name = lease.name_any();
        if !name.starts_with(MEMBER_LEASE_PREFIX) || name == own {
            continue;
        }
        let Some(published) = lease.annotations().get(ARRIVALS_ANNOTATION) else {
            continue;
        };
        // Another version's or a hand-edited value: read what parses.
        let Ok(published) = serde_json::from_str::<BTreeMap<String, String>>(published) else {
            continue;
        };
        for (alertname, at) in published {
            if let Ok(at) = at.parse::<Timestamp>() {
                let entry = latest.entry(alertname).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
    }
    latest
}

/// A Lease's holder and renewal, when it has a holder.
fn held(lease: &Lease) -> Option<Held> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    Some(Held {
        holder,
        renewed: spec.renew_time.as_ref()?.0,
        duration: u64::try_from(spec.lease_duration_seconds?).ok()?,
    })
}

/// Watches the namespace's Leases into `writer`, waking the decision on
/// every change.
async fn watch_leases(api: Api<Lease>, writer: reflector::store::Writer<Lease>, wake: Arc<Notify>) {
    let config = watcher::Config::default().timeout(watch::WATCH_TIMEOUT_SECONDS);
    let mut failing = false;
    watcher::watcher(api, config)
        .backoff(watch::backoff())
        .reflect(writer)
        .for_each(|event| {
            match event {
                Ok(_) => {
                    failing = false;
                    wake.notify_one();
                }
                Err(error) => {
                    if !failing {
                        warn!(%error, "cannot watch the shard Leases; retrying (held shards stop when their renewal is not seen in time)");
                    }
                    failing = true;
                }
            }
            ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, arrivals: Option<&str>) -> Arc<Lease> {
        let mut lease = Lease::default();
        lease.metadata.name = Some(name.into());
        if let Some(arrivals) = arrivals {
            lease.metadata.annotations = Some(BTreeMap::from([(
                ARRIVALS_ANNOTATION.to_string(),
                arrivals.to_string(),
            )]));
        }
        Arc::new(lease)
    }

    #[test]
    fn arrivals_elsewhere_are_the_latest_of_the_other_members() {
        let leases = [
            lease(
                "klaxon-replica-a",
                Some(r#"{"Watchdog":"2026-12-03T10:00:09Z"}"#),
            ),
            lease(
                "klaxon-replica-b",
                Some(r#"{"Watchdog":"2026-12-03T10:00:05Z","Other":"2026-12-03T10:00:01Z"}"#),
            ),
            lease(
                "klaxon-replica-c",
                Some(r#"{"Watchdog":"2026-12-03T10:00:07Z"}"#),
            ),
            lease("klaxon-replica-d", Some("not json")),
            lease("klaxon-replica-e", Some(r#"{"Watchdog":"yesterday"}"#)),
            lease("klaxon-replica-f", None),
            // Not a membership Lease.
            lease(
                "klaxon-shard-0",
                Some(r#"{"Watchdog":"2026-12-03T11:00:00Z"}"#),
            ),
        ];
        let heard = arrivals_elsewhere(&leases, "klaxon-replica-a");
        let at = |t: &str| t.parse::<Timestamp>().expect("time");
        assert_eq!(
            heard,
            BTreeMap::from([
                ("Other".to_string(), at("2026-12-03T10:00:01Z")),
                ("Watchdog".to_string(), at("2026-12-03T10:00:07Z")),
            ])
        );
    }
}
