//! Watches that survive what the cluster throws at them.
//!
//! - **Unreadable objects.** Every watch reads through [`Guard`]: an
//!   object the types cannot read (written before
//!   a schema change, or with a value out of the types' range) is skipped
//!   and logged once, instead of failing the LIST for the whole kind. Its
//!   last readable version leaves the cache, and it is reported to
//!   [`Invalid`] listeners, which set a condition on it.
//! - **Connection loss.** Each watch retries on its own quick backoff
//!   (250 ms doubling to 1 s, jittered), so a blip costs seconds, not
//!   minutes; errors stop here, so the controller's shared trigger backoff
//!   never pauses the other watches.
//! - **Visibility.** Errors are counted per watch in `/metrics`, logged at
//!   warn once per failure streak (then every 30 s), and a watch failing
//!   for longer than a bound turns `/readyz` false.

use std::{
    collections::HashMap,
    future::ready,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt, TryStreamExt};
use kube::{
    Api, Resource,
    api::ObjectMeta,
    core::{PartialObjectMeta, error_boundary::InvalidObject},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        utils::ResetTimerBackoff,
        watcher::{self, Event, ExponentialBackoff},
    },
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use tracing::{debug, warn};

use super::store::{Cache, KeyFn};
use crate::{health::Health, metrics::Metrics};

/// How long the apiserver keeps a watch open before closing it (the
/// watcher then resumes it from where it was): every watch is re-issued
/// at least this often, so one on a dead connection cannot stay silent.
pub const WATCH_TIMEOUT_SECONDS: u32 = 60;

/// The client's read timeout: longer than a healthy, quiet watch can be
/// silent (it ends after [`WATCH_TIMEOUT_SECONDS`]), so only a dead
/// connection reaches it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// 250 ms, 500 ms, 1 s, 1 s, … each with up to +100% jitter; starts over
/// after 30 s without an error.
pub fn backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(1))
            .with_factor(2.0)
            .with_jitter()
            // A bounded number of tries would end the watch for good.
            .without_max_times()
            .into(),
        Duration::from_secs(30),
    )
}

/// An object as a watch reads it: the object, or, when the types cannot
/// read it, its metadata and why. As kube's `DeserializeGuard`, but read
/// once from the JSON: the guard buffers the whole object into a value
/// tree and copies it before reading the type, which under churn cost
/// more than the rest of a watch event's handling (the trimmed types skip
/// most of an object unread, a value tree cannot).
#[derive(Clone, Debug)]
pub struct Guard<K>(pub Result<K, InvalidObject>);

impl<'de, K> Deserialize<'de> for Guard<K>
where
    K: DeserializeOwned + Resource,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Watch events and lists are JSON: the raw text, copied once.
        // A watch event's object is read straight from the response
        // because the apiserver writes `type` before `object` (the order
        // of metav1.WatchEvent's fields), so serde need not buffer it.
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        match serde_json::from_str::<K>(raw.get()) {
            Ok(object) => Ok(Guard(Ok(object))),
            Err(error) => {
                let PartialObjectMeta { metadata, .. } =
                    serde_json::from_str::<PartialObjectMeta<K>>(raw.get())
                        .map_err(serde::de::Error::custom)?;
                Ok(Guard(Err(InvalidObject {
                    error: error.to_string(),
                    metadata,
                })))
            }
        }
    }
}

impl<K: Resource> Resource for Guard<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.as_ref().map_or_else(|bad| &bad.metadata, K::meta)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0
            .as_mut()
            .map_or_else(|bad| &mut bad.metadata, K::meta_mut)
    }
}

/// An object a watch could not read: who it is, and why.
#[derive(Clone, Debug)]
pub struct Unreadable {
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub error: String,
}

/// Where unreadable objects are reported.
pub type Invalid = futures::channel::mpsc::UnboundedSender<Unreadable>;

/// What every watch shares: health, metrics, the unreadable-object sink.
#[derive(Clone)]
pub struct Watches {
    pub health: Health,
    pub metrics: Metrics,
    pub invalid: Option<Invalid>,
    logged: Arc<Mutex<HashMap<String, String>>>,
}

impl Watches {
    pub fn new(health: Health, metrics: Metrics, invalid: Option<Invalid>) -> Self {
        Self {
            health,
            metrics,
            invalid,
            logged: Arc::default(),
        }
    }

    /// Logs an unreadable object once per spec version, and reports it.
    fn unreadable(&self, kind: &'static str, metadata: ObjectMeta, error: String) {
        let id = format!(
            "{kind}/{}/{}",
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default()
        );
        // Per spec version: reporting it on the object's status changes
        // its resourceVersion, not its generation.
        let version = format!(
            "{}/{}",
            metadata.uid.as_deref().unwrap_or_default(),
            metadata.generation.unwrap_or_default()
        );
        {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            if logged.get(&id) == Some(&version) {
                return;
            }
            if logged.len() > 10_000 {
                logged.clear();
            }
            logged.insert(id.clone(), version);
        }
        let short = crate::domain::enrich::truncate(&error, 300);
        warn!(object = %id, error = %short, "skipping an object that cannot be read; fix or delete it");
        self.metrics.unreadable_objects.inc();
        if let Some(sink) = &self.invalid {
            let _ = sink.unbounded_send(Unreadable {
                kind,
                metadata,
                error: short,
            });
        }
    }
}

/// A kind one watch can follow for the whole cluster.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// The changed objects a cache's watch delivers, errors handled.
pub type Changes<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// One watch for the whole cluster feeding a reflector store: objects
/// trimmed before they are stored, `on_event` told of every change (for
/// indexes) before the store is, unreadable objects skipped, errors
/// retried quickly.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    on_event: impl Fn(&Event<K>) + Send + Sync + 'static,
    watches: &Watches,
) -> (Store<K>, Changes<K>)
where
    K: Watched,
{
    let (reader, writer) = reflector::store();
    let store = reader.clone();
    let lookup = move |meta: &ObjectMeta| {
        let reference = ObjectRef::<K>::new(meta.name.as_deref()?);
        let reference = match meta.namespace.as_deref() {
            Some(ns) => reference.within(ns),
            None => reference,
        };
        store.get(&reference).map(|old| K::clone(&old))
    };
    let kind = kind_of::<K>();
    let stream = events(api, config, trim, lookup, watches)
        .inspect_ok(move |event| on_event(event))
        .reflect(writer)
        .touched_objects();
    (reader, survive(stream, kind, watches.clone()))
}

/// One watch for the whole cluster feeding a keyed [`Cache`]: as
/// [`reflect`], for the kinds the cluster has many of; each object is
/// stored as what `convert` makes of it.
pub fn cache<K, V>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    convert: fn(&K) -> V,
    key: KeyFn<V>,
    watches: &Watches,
) -> (Cache<V>, Changes<K>)
where
    V: Send + Sync + 'static,
    K: Watched + Default,
{
    let cache = Cache::new(key);
    let (lookup, apply) = (cache.clone(), cache.clone());
    // The cache keeps what `convert` made; its object is made again from
    // the metadata the unreadable version still shows.
    let lookup = move |meta: &ObjectMeta| {
        lookup.get(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref()?,
        )?;
        let mut gone = K::default();
        *gone.meta_mut() = meta.clone();
        Some(gone)
    };
    let kind = kind_of::<K>();
    let stream = events(api, config, trim, lookup, watches)
        .inspect_ok(move |event| apply.apply(event, convert))
        .touched_objects();
    (cache, survive(stream, kind, watches.clone()))
}

/// The watch behind [`reflect`] and [`cache`]: readable objects, trimmed.
/// `cached` finds an object's cached version, to drop it when it turns
/// unreadable.
fn events<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    cached: impl Fn(&ObjectMeta) -> Option<K> + Send + 'static,
    watches: &Watches,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Watched,
{
    let guarded: Api<Guard<K>> = Api::all(api.into_client());
    let kind = kind_of::<K>();
    let unreadable = watches.clone();
    watcher::watcher(guarded, config.timeout(WATCH_TIMEOUT_SECONDS))
        .backoff(backoff())
        .filter_map(move |event| ready(readable(event, kind, &cached, &unreadable)))
        .modify(trim)
}

/// The static kind name, for logs and metrics labels.
fn kind_of<K: Resource<DynamicType = ()>>() -> &'static str {
    // Leaked once per kind: a handful of short strings for the process.
    static KINDS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let kind = K::kind(&());
    let mut kinds = KINDS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = kinds.iter().find(|k| **k == kind) {
        return known;
    }
    let leaked: &'static str = Box::leak(kind.into_owned().into_boxed_str());
    kinds.push(leaked);
    leaked
}

/// A watcher event with its unreadable objects taken out. An object that
/// became unreadable leaves the store (its old version no longer tells
/// the truth).
fn readable<K>(
    event: Result<Event<Guard<K>>, watcher::Error>,
    kind: &'static str,
    cached: &impl Fn(&ObjectMeta) -> Option<K>,
    watches: &Watches,
) -> Option<Result<Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let skip = |bad: InvalidObject, deleted: bool| {
        let stale = if deleted { None } else { cached(&bad.metadata) };
        if !deleted {
            watches.unreadable(kind, bad.metadata, bad.error);
        }
        stale.map(|old| Ok(Event::Delete(old)))
    };
    match event {
        Err(error) => Some(Err(error)),
        Ok(Event::Init) => Some(Ok(Event::Init)),
        Ok(Event::InitDone) => Some(Ok(Event::InitDone)),
        Ok(Event::Apply(Guard(Ok(o)))) => Some(Ok(Event::Apply(o))),
        Ok(Event::InitApply(Guard(Ok(o)))) => Some(Ok(Event::InitApply(o))),
        Ok(Event::Delete(Guard(Ok(o)))) => Some(Ok(Event::Delete(o))),
        Ok(Event::Apply(Guard(Err(bad)))) => skip(bad, false),
        Ok(Event::InitApply(Guard(Err(bad)))) => {
            // During a (re)list the store is rebuilt from what is listed:
            // leaving it out is enough.
            watches.unreadable(kind, bad.metadata, bad.error);
            None
        }
        Ok(Event::Delete(Guard(Err(bad)))) => skip(bad, true),
    }
}

/// Ends errors here: counted, logged at warn once per streak (then every
/// 30 s), and tracked for readiness. The watcher has already paced its
/// retry on its own backoff.
pub fn survive<K, S>(stream: S, kind: &'static str, watches: Watches) -> Changes<K>
where
    K: Send + 'static,
    S: Stream<Item = Result<K, watcher::Error>> + Send + 'static,
{
    let mut last_warned: Option<Instant> = None;
    stream
        .filter_map(move |item| {
            let out = match item {
                Ok(object) => {
                    watches.health.watch_ok(kind);
                    Some(Ok(object))
                }
                Err(error) => {
                    watches.health.watch_failed(kind);
                    watches.metrics.watch_error(kind);
                    let quiet =
                        last_warned.is_some_and(|at| at.elapsed() < Duration::from_secs(30));
                    if quiet {
                        debug!(watch = kind, %error, "watch still failing; retrying");
                    } else {
                        warn!(watch = kind, %error, "watch failed; retrying");
                        last_warned = Some(Instant::now());
                    }
                    None
                }
            };
            ready(out)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Pod;

    #[test]
    fn a_guard_reads_an_object_once_or_keeps_its_metadata_and_why() {
        let list: Vec<Guard<Pod>> = serde_json::from_str(
            r#"[
                {"metadata": {"name": "ok", "namespace": "shop"},
                    "status": {"phase": "Running"}},
                {"metadata": {"name": "bad", "namespace": "shop", "resourceVersion": "7"},
                    "status": {"containerStatuses": "not a list"}}
            ]"#,
        )
        .expect("both read");
        let ok = list[0].0.as_ref().expect("readable");
        assert_eq!(ok.metadata.name.as_deref(), Some("ok"));
        assert_eq!(
            ok.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running")
        );
        let bad = list[1].0.as_ref().expect_err("unreadable");
        assert_eq!(bad.metadata.name.as_deref(), Some("bad"));
        assert_eq!(list[1].meta().resource_version.as_deref(), Some("7"));
        assert!(bad.error.contains("expected a sequence"), "{}", bad.error);
        // A watch event, as the apiserver writes it.
        let event: kube::core::WatchEvent<Guard<Pod>> = serde_json::from_str(
            r#"{"type":"MODIFIED","object":{"metadata":{"name":"ok","namespace":"shop"}}}"#,
        )
        .expect("a watch event");
        assert!(
            matches!(event, kube::core::WatchEvent::Modified(Guard(Ok(ref pod))) if pod.metadata.name.as_deref() == Some("ok"))
        );
        // Not even metadata: the whole read fails, as with kube's guard.
        assert!(serde_json::from_str::<Guard<Pod>>(r#"{"metadata": 3}"#).is_err());
    }
}
