//! `KLAXON_BENCH=large make bench`: the large tier.
//!
//! A fresh control plane (apiserver and etcd only: no controllers, no
//! nodes) seeded with 200 namespaces, 2,000 Deployments (4,000
//! ReplicaSets), 20,000 Pods (one or two containers with resources, ten
//! labels, env vars; 5% failing), 50,000 Warning Events and PodMetrics for
//! every Pod, written directly, many requests in flight. Then, in one run:
//!
//! 1. the floor: the create → status write → watch notification round trip
//!    Klaxon makes, done by a minimal writer in this process with the
//!    cheapest write there is (one JSON merge patch of a status of the same
//!    size, the moment its watch sees the Incident), 200 times in a row
//!    (enough that its p99 is not just its slowest sample), then for a
//!    burst of the same size as step 3 at once, before the operator starts;
//!    the same again by server-side apply, shown for comparison;
//! 2. 50 Incidents declared one at a time (each naming two Deployments, each
//!    in a namespace with no open incident), declared → enriched;
//! 3. 500 declared at once (leaving 550 open), judged against the burst
//!    floor (p99 ≤ 1.5× its p99), with Klaxon's status writes and Event
//!    creates per incident from the audit log;
//! 4. live propagation: a pod of a linked Deployment starts crash looping;
//!    time until its incident's status shows it (20 times);
//! 5. memory: RSS after sync, peak, and after 30 s idle; bytes per cached
//!    object against an operator on an empty cluster, and the marginal
//!    bytes per object against one on the cluster at half its size;
//! 6. idle cost: CPU over those 30 s, and the operator's API requests
//!    (audit log);
//! 7. without Klaxon: a responder's kubectl script collecting the same facts
//!    for one incident.
//!
//! Latency is measured as in the quick tier: from just before the request
//! that makes the change to the first watch event showing its result.
//! Prints one table and exits non-zero when a target is missed.
//!
//! Left in the control plane's directory (printed on stderr) for a closer
//! look: `status-klaxon.json` and `status-floor.json` (what each writes,
//! to compare sizes), `watch-events.tsv` (when this benchmark's watch saw
//! each Incident change, to line up with `audit.log`), and the operator's
//! log under `target/tmp/operator/`.
//!
//! `KLAXON_BENCH_NAMESPACES=<n>` seeds fewer namespaces (with 500·n/200
//! Incidents in the burst, or `KLAXON_BENCH_BURST`), to try the tier out
//! quickly; the targets are for 200.

pub(crate) mod seed;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::join_all};
use klaxon::api::Incident;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use self::seed::{DEPLOYMENTS_PER_NAMESPACE, Objects, Seeded};
use super::{Memory, enriched, percentile, ready, show};
use crate::support::{self, Cluster, audit, operator::Operator};

pub(crate) const NAMESPACES: usize = 200;
/// Enough round trips that the floor's p99 is not its single slowest one.
const FLOOR_SAMPLES: usize = 200;
pub(crate) const SEQUENTIAL: usize = 50;
pub(crate) const BURST: usize = 500;
const LIVE_SAMPLES: usize = 20;
const IDLE: Duration = Duration::from_secs(30);
const KUBECTL_RUNS: usize = 5;

/// Sequential incidents name these two (healthy) Deployments; burst
/// incidents name pairs among the first eight.
pub(crate) const SEQUENTIAL_PAIR: (usize, usize) = (8, 9);

const TARGET_SEQUENTIAL_FLOOR_RATIO: f64 = 3.0;
const TARGET_SEQUENTIAL_P99: Duration = Duration::from_millis(250);
/// The burst is judged against the minimal writer's burst in the same run:
/// this machine's apiserver and etcd alone cannot answer 500 at once in 1 s.
const TARGET_BURST_FLOOR_RATIO: f64 = 1.5;
const TARGET_LIVE_P99: Duration = Duration::from_secs(1);
const TARGET_STEADY_RSS_MIB: f64 = 96.0;
const TARGET_IDLE_CPU_PERCENT: f64 = 2.0;
const TARGET_KUBECTL_RATIO: f64 = 20.0;

pub async fn bench() -> bool {
    let namespaces_wanted = std::env::var("KLAXON_BENCH_NAMESPACES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 2)
        .unwrap_or(NAMESPACES);
    let burst = std::env::var("KLAXON_BENCH_BURST")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or((BURST * namespaces_wanted / NAMESPACES).max(10));
    let log = std::env::var("KLAXON_BENCH_LOG").unwrap_or_else(|_| "info".into());
    let operator_env = [("KLAXON_LOG", log.as_str())];

    eprintln!("starting a fresh control plane (apiserver + etcd) ...");
    let cluster = Cluster::start_bare("large");
    cluster.install_crds();
    cluster.install_metrics_api();
    let client = cluster.client().await;

    // An operator on the empty cluster: the memory every object adds to.
    let empty = synced_memory(&cluster, "large-empty", &operator_env).await;
    eprintln!("operator on the empty cluster: {:.1} MiB", empty.steady_mib);

    // Seed half, measure an operator there, seed the rest.
    let namespaces: Vec<String> = futures::stream::iter(0..namespaces_wanted)
        .map(|_| support::namespace(&client, "big"))
        .buffered(32)
        .collect()
        .await;
    let half = namespaces.len() / 2;
    eprintln!("seeding {half} namespaces ...");
    let first = seed::seed(&client, &namespaces[..half]).await;
    let half_memory = synced_memory(&cluster, "large-half", &operator_env).await;
    // Namespaces exist for all, objects only in the first half.
    let half_objects = Objects::of(half, namespaces.len() - half);
    eprintln!(
        "operator on the half-size cluster ({} objects): {:.1} MiB",
        half_objects.total(),
        half_memory.steady_mib
    );
    eprintln!("seeding {} more namespaces ...", namespaces.len() - half);
    let second = seed::seed(&client, &namespaces[half..]).await;
    let seeded = Seeded {
        requests: first.requests + second.requests,
        elapsed: first.elapsed + second.elapsed,
    };
    eprintln!(
        "seeded {} requests in {:.1?} ({:.0}/s)",
        seeded.requests,
        seeded.elapsed,
        seeded.rate()
    );

    // One watch of every Incident, for every measurement below.
    let observer = Observer::start(cluster.client().await).await;

    eprintln!("floor: {FLOOR_SAMPLES} round trips through a minimal writer (merge patch) ...");
    let (floor, burst_floor) = floor(&cluster, &client, &observer, burst, FloorWrite::Merge).await;
    eprintln!("the same by server-side apply, for comparison ...");
    let (floor_apply, burst_floor_apply) =
        self::floor(&cluster, &client, &observer, burst, FloorWrite::Apply).await;
    eprintln!(
        "floor round trips (ms): {:?}",
        floor
            .latencies
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>()
    );
    // The floors' namespaces stay (a namespace cannot be deleted without
    // the controller-manager), empty.
    let objects = Objects::of(namespaces.len(), 2);

    let started = Instant::now();
    let mut operator = Operator::start(&cluster.kubeconfig, "large", &operator_env);
    operator.wait_ready(Duration::from_secs(180));
    let sync_time = started.elapsed();
    let synced_at = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let synced = Memory::of(operator.pid());
    eprintln!(
        "operator ready (caches synced) in {sync_time:.1?}, {:.1} MiB; log: {}",
        synced.steady_mib,
        operator.log.display()
    );

    // The sequential incidents run a team's queries, parsed and confined
    // to their namespace on the way, against a stand-in Prometheus; the
    // policy goes before the burst, so the rest of the run is as before.
    let queries = StandIn::start().await;
    queries.policy(&client).await;
    eprintln!("declaring {SEQUENTIAL} incidents one at a time (with 2 confined queries each) ...");
    let sequential = sequential_with(&client, &observer, &namespaces, queried).await;
    queries.remove(&client).await;
    let (asked, unconfined) = queries.counts();
    eprintln!("the stand-in Prometheus answered {asked} queries, {unconfined} unconfined");
    assert!(
        asked >= 2 * SEQUENTIAL,
        "the sequential incidents' queries did not run"
    );
    assert_eq!(unconfined, 0, "a query reached Prometheus unconfined");
    // Both statuses, side by side, for comparing what the floor writes.
    if let Ok(first) = Api::<Incident>::namespaced(client.clone(), &namespaces[0])
        .get("seq-0")
        .await
    {
        let dir = cluster.dir();
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let _ = std::fs::write(dir.join("status-klaxon.json"), pretty(&json!(first.status)));
        let _ = std::fs::write(
            dir.join("status-floor.json"),
            pretty(&floor_status("floor")),
        );
        eprintln!(
            "statuses written: {}/status-{{klaxon,floor}}.json",
            dir.display()
        );
    }
    eprintln!(
        "sequential declared -> enriched (ms): {:?}",
        sequential
            .latencies
            .iter()
            .map(|d| d.as_millis())
            .collect::<Vec<_>>()
    );
    eprintln!("declaring {burst} incidents at once ...");
    // Who used the two CPUs during the burst.
    let controlplane = controlplane_pid(cluster.dir());
    let pids = [
        controlplane.unwrap_or(0),
        operator.pid(),
        std::process::id(),
    ];
    let before = pids.map(cpu_seconds);
    let burst_started = Instant::now();
    let burst_from = jiff::Timestamp::now();
    let burst_latencies = burst_declare(&client, &observer, &namespaces, burst).await;
    let burst_wall = burst_started.elapsed();
    let burst_cpu = {
        let after = pids.map(cpu_seconds);
        [0, 1, 2].map(|i| after[i] - before[i])
    };
    // The burst's writes end where the live samples begin.
    let burst_window = (burst_from, jiff::Timestamp::now());
    eprintln!("live propagation: {LIVE_SAMPLES} pods start crash looping ...");
    let live = live(&client, &observer, &namespaces).await;

    eprintln!("idling {IDLE:?} with every incident open ...");
    let idle_from = jiff::Timestamp::now();
    let cpu_before = cpu_seconds(operator.pid());
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE).await;
    let cpu_after = cpu_seconds(operator.pid());
    let idle_elapsed = idle_started.elapsed();
    let idle_to = jiff::Timestamp::now();
    let steady = Memory::of(operator.pid());
    let idle_cpu = (cpu_after - cpu_before) / idle_elapsed.as_secs_f64() * 100.0;
    let reconciles = operator
        .metric(r#"klaxon_reconciliations_total{controller="incident"}"#)
        .unwrap_or(0.0);

    eprintln!("kubectl: collecting one incident's facts {KUBECTL_RUNS} times ...");
    let kubectl = kubectl_collection(&cluster, &namespaces[0]);

    let _ = operator.terminate(Duration::from_secs(20));
    let audit_log = cluster.dir().join("audit.log");
    audit::wait_until_quiet(&audit_log, Duration::from_secs(2), Duration::from_secs(60)).await;
    let requests: Vec<audit::Request> = operator_requests(cluster.dir())
        .into_iter()
        .filter(|r| r.time >= synced_at)
        .collect();

    let open = observer.open();
    observer.stop(&cluster.dir().join("watch-events.tsv"));
    report(Report {
        seeded,
        objects,
        half_objects,
        burst_size: burst,
        burst_cpu,
        burst_wall,
        open,
        sync_time,
        floor,
        burst_floor,
        floor_apply,
        burst_floor_apply,
        burst_window,
        sequential,
        burst: burst_latencies,
        live,
        empty,
        half: half_memory,
        synced,
        steady,
        idle_cpu,
        idle_window: (idle_from, idle_to),
        requests,
        reconciles,
        kubectl,
    })
}

/// The memory of an operator that just synced its caches, then stopped.
async fn synced_memory(cluster: &Cluster, name: &str, env: &[(&str, &str)]) -> Memory {
    let mut operator = Operator::start(&cluster.kubeconfig, name, env);
    operator.wait_ready(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let memory = Memory::of(operator.pid());
    let _ = operator.terminate(Duration::from_secs(20));
    memory
}

/// The operator's requests from every audit log in `dir`: the apiserver
/// rotates `audit.log` at 100 MB (to `audit-<time>.log`), which seeding
/// passes.
pub(crate) fn operator_requests(dir: &std::path::Path) -> Vec<audit::Request> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("audit") && name.ends_with(".log")
        })
        .collect();
    // Rotated files (`audit-<time>.log`) sort before the current one.
    files.sort();
    let mut by_id: HashMap<String, audit::Request> = HashMap::new();
    for file in &files {
        for request in audit::requests(file) {
            if request.user_agent.starts_with(audit::OPERATOR_AGENT) {
                // A watch is logged when it starts and when it ends.
                by_id.insert(request.audit_id.clone(), request);
            }
        }
    }
    let mut all: Vec<audit::Request> = by_id.into_values().collect();
    all.sort_by_key(|r| r.time);
    all
}

// ---------------------------------------------------------------------------
// Watching incidents

/// What a watch event showed, and when it arrived.
#[derive(Clone, Copy)]
pub(crate) struct Seen {
    at: Instant,
    status_bytes: usize,
}

type Check = Box<dyn Fn(&Incident) -> bool + Send>;

struct Waiter {
    check: Check,
    done: oneshot::Sender<Seen>,
}

/// One watch of every Incident; callers register what they wait for
/// (before making the change), and learn when the first watch event
/// showing it arrived.
pub(crate) struct Observer {
    waiters: Arc<Mutex<HashMap<String, Vec<Waiter>>>>,
    keys: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Every event: when it arrived (wall clock), the Incident and its
    /// resourceVersion, to line up with the audit log.
    trace: Arc<Mutex<Vec<(jiff::Timestamp, String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Observer {
    pub(crate) async fn start(client: Client) -> Observer {
        let waiters: Arc<Mutex<HashMap<String, Vec<Waiter>>>> = Arc::default();
        let keys: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let trace: Arc<Mutex<Vec<(jiff::Timestamp, String, String)>>> = Arc::default();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = {
            let (waiters, keys, trace) = (waiters.clone(), keys.clone(), trace.clone());
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut stream = watcher(Api::<Incident>::all(client), watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    let at = Instant::now();
                    let incident = match event {
                        Ok(watcher::Event::Apply(i) | watcher::Event::InitApply(i)) => i,
                        Ok(watcher::Event::InitDone) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                            continue;
                        }
                        Ok(watcher::Event::Delete(i)) => {
                            let k = key(
                                i.metadata.namespace.as_deref().unwrap_or_default(),
                                i.metadata.name.as_deref().unwrap_or_default(),
                            );
                            lock(&keys).remove(&k);
                            continue;
                        }
                        _ => continue,
                    };
                    let k = key(
                        incident.metadata.namespace.as_deref().unwrap_or_default(),
                        incident.metadata.name.as_deref().unwrap_or_default(),
                    );
                    lock(&keys).insert(k.clone());
                    lock(&trace).push((
                        jiff::Timestamp::now(),
                        k.clone(),
                        incident
                            .metadata
                            .resource_version
                            .clone()
                            .unwrap_or_default(),
                    ));
                    let mut waiters = lock(&waiters);
                    let Some(list) = waiters.get_mut(&k) else {
                        continue;
                    };
                    let mut i = 0;
                    while i < list.len() {
                        if (list[i].check)(&incident) {
                            let waiter = list.swap_remove(i);
                            let status_bytes = serde_json::to_vec(&incident.status)
                                .map(|v| v.len())
                                .unwrap_or(0);
                            let _ = waiter.done.send(Seen { at, status_bytes });
                        } else {
                            i += 1;
                        }
                    }
                    if list.is_empty() {
                        waiters.remove(&k);
                    }
                }
            })
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), ready_rx).await;
        Observer {
            waiters,
            keys,
            trace,
            task,
        }
    }

    /// Resolves at the first watch event after this call in which the
    /// Incident `ns/name` satisfies `check`.
    pub(crate) fn expect(
        &self,
        ns: &str,
        name: &str,
        check: impl Fn(&Incident) -> bool + Send + 'static,
    ) -> oneshot::Receiver<Seen> {
        let (done, rx) = oneshot::channel();
        lock(&self.waiters)
            .entry(key(ns, name))
            .or_default()
            .push(Waiter {
                check: Box::new(check),
                done,
            });
        rx
    }

    /// Incidents that exist now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.keys).len()
    }

    /// Stops watching; writes every event seen to `path` (tab-separated:
    /// arrival, namespace/name, resourceVersion).
    pub(crate) fn stop(self, path: &std::path::Path) {
        self.task.abort();
        let text: String = lock(&self.trace)
            .iter()
            .map(|(at, key, rv)| format!("{at}\t{key}\t{rv}\n"))
            .collect();
        let _ = std::fs::write(path, text);
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits for `seen`; the time since `at`, or `Duration::MAX` for never.
pub(crate) async fn latency(
    at: Instant,
    seen: oneshot::Receiver<Seen>,
    deadline: tokio::time::Instant,
) -> (Duration, usize) {
    match tokio::time::timeout_at(deadline, seen).await {
        Ok(Ok(seen)) => (seen.at.saturating_duration_since(at), seen.status_bytes),
        _ => (Duration::MAX, 0),
    }
}

pub(crate) fn incident(ns: &str, name: &str, deployments: (usize, usize)) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "klaxon.dev/v1alpha1", "kind": "Incident",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"title": format!("bench {name}"), "severity": "SEV2",
            "affected": {"deployments": [
                {"name": seed::deployment_name(deployments.0)},
                {"name": seed::deployment_name(deployments.1)}]}}
    }))
    .expect("incident")
}

/// Sorted latencies and the status sizes seen.
#[derive(Default)]
pub(crate) struct Samples {
    pub(crate) latencies: Vec<Duration>,
    status_bytes: Vec<usize>,
    /// For declarations: until the create request returned, and until the
    /// first status (Ready, perhaps before CPU and memory) was seen.
    created: Vec<Duration>,
    first: Vec<Duration>,
}

impl Samples {
    pub(crate) fn push(&mut self, (latency, bytes): (Duration, usize)) {
        self.latencies.push(latency);
        if bytes > 0 {
            self.status_bytes.push(bytes);
        }
    }

    pub(crate) fn finish(mut self) -> Samples {
        self.latencies.sort();
        self.status_bytes.sort();
        self.created.sort();
        self.first.sort();
        self
    }

    pub(crate) fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    pub(crate) fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or(Duration::MAX)
    }

    /// A table row: until the creates returned, and until the first status
    /// was seen, p50 / p99.
    fn created_and_first(&self, label: &str) {
        println!(
            "| {label}, p50 / p99 | {} / {}; {} / {} | | |",
            show(percentile(&self.created, 50.0)),
            show(percentile(&self.created, 99.0)),
            show(percentile(&self.first, 50.0)),
            show(percentile(&self.first, 99.0))
        );
    }

    fn median_bytes(&self) -> usize {
        self.status_bytes
            .get(self.status_bytes.len() / 2)
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// 1. The floor

/// How the floor's minimal writer writes its status.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum FloorWrite {
    /// A JSON merge patch of the status, unconditional: the cheapest write
    /// there is, and the floor every target is judged against.
    Merge,
    /// A server-side apply of the same status, conditional on the
    /// resourceVersion seen: shown beside the floor, for comparison.
    Apply,
}

/// `FLOOR_SAMPLES` Incidents created one at a time in a namespace of their
/// own, each given an enriched-looking status by a minimal writer that
/// watches them (one status write per Incident, made as `write` says);
/// then `burst` at once. The Incidents are deleted afterwards.
pub(crate) async fn floor(
    cluster: &Cluster,
    client: &Client,
    observer: &Observer,
    burst: usize,
    write: FloorWrite,
) -> (Samples, Samples) {
    let ns = support::namespace(client, "floor").await;
    let writer = {
        let api: Api<Incident> = Api::namespaced(cluster.client().await, &ns);
        let ns = ns.clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut written = std::collections::HashSet::new();
            let mut stream = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                let incident = match event {
                    Ok(watcher::Event::Apply(i) | watcher::Event::InitApply(i)) => i,
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    _ => continue,
                };
                let name = incident.metadata.name.clone().unwrap_or_default();
                if incident.status.is_some() || !written.insert(name.clone()) {
                    continue;
                }
                let (params, patch) = match write {
                    FloorWrite::Merge => (
                        PatchParams::default(),
                        Patch::Merge(json!({ "status": floor_status(&ns) })),
                    ),
                    FloorWrite::Apply => (
                        PatchParams::apply("klaxon-bench-floor").force(),
                        Patch::Apply(json!({
                            "apiVersion": "klaxon.dev/v1alpha1", "kind": "Incident",
                            "metadata": {"name": name, "namespace": ns,
                                "resourceVersion": incident.metadata.resource_version},
                            "status": floor_status(&ns),
                        })),
                    ),
                };
                let api = api.clone();
                tokio::spawn(async move {
                    if let Err(error) = api.patch_status(&name, &params, &patch).await {
                        eprintln!("floor writer: {name}: {error}");
                    }
                });
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(60), ready_rx).await;
        task
    };
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let mut samples = Samples::default();
    // One untimed round trip first: the writer's first request opens its
    // connection, and the apiserver's first status apply of this kind
    // builds its schema machinery, which the operator then finds ready.
    for i in 0..=FLOOR_SAMPLES {
        let name = format!("floor-{i}");
        let seen = observer.expect(&ns, &name, enriched);
        let at = Instant::now();
        api.create(
            &PostParams::default(),
            &incident(&ns, &name, SEQUENTIAL_PAIR),
        )
        .await
        .expect("create incident");
        let sample = latency(
            at,
            seen,
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await;
        if i > 0 {
            samples.push(sample);
        }
    }
    // The same writer answering a burst: what the apiserver and etcd alone
    // take for `burst` creates and status writes at once.
    let creates = (0..burst).map(|j| {
        let name = format!("floor-burst-{j}");
        let seen = observer.expect(&ns, &name, enriched);
        let (api, incident) = (api.clone(), incident(&ns, &name, SEQUENTIAL_PAIR));
        async move {
            let at = Instant::now();
            api.create(&PostParams::default(), &incident)
                .await
                .expect("create incident");
            (at, at.elapsed(), seen)
        }
    });
    let created = join_all(creates.collect::<Vec<_>>()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut bursts = Samples::default();
    for (created, result) in join_all(
        created
            .into_iter()
            .map(|(at, created, seen)| async move { (created, latency(at, seen, deadline).await) }),
    )
    .await
    {
        bursts.created.push(created);
        bursts.push(result);
    }
    writer.abort();
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    (samples.finish(), bursts.finish())
}

/// A status shaped and sized like the one Klaxon writes for a sequential
/// incident (two healthy Deployments of the seeded cluster): 20 pods, 24
/// distinct events, four conditions, a timeline of three entries.
pub(crate) fn floor_status(ns: &str) -> Value {
    let now = jiff::Timestamp::now();
    let now = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    let condition = |type_: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": now, "observedGeneration": 1})
    };
    let (a, b) = (
        seed::deployment_name(SEQUENTIAL_PAIR.0),
        seed::deployment_name(SEQUENTIAL_PAIR.1),
    );
    let images = |name: &str, version: &str, sidecar: bool| {
        let mut images = vec![format!("registry.example/shop/{name}:{version}")];
        if sidecar {
            images.push("registry.example/mesh/proxy:1.31.2".to_string());
        }
        images
    };
    let deployment = |index: usize| {
        let name = seed::deployment_name(index);
        let sidecar = seed::has_sidecar(index);
        let items: Vec<Value> = (0..seed::PODS_PER_DEPLOYMENT)
            .map(|p| {
                json!({"name": seed::pod_name(&name, p), "phase": "Running",
                    "ready": true, "restarts": 0})
            })
            .collect();
        json!({
            "name": name, "found": true, "replicas": 10, "readyReplicas": 10,
            "availableReplicas": 10, "updatedReplicas": 10,
            "available": "True (MinimumReplicasAvailable)",
            "progressing": "True (NewReplicaSetAvailable)",
            "images": images(&name, "v2", sidecar),
            "revision": "2", "rolloutAt": now,
            "previousImages": images(&name, "v1", sidecar),
            "pods": {"total": 10, "ready": 10, "restarts": 0, "items": items},
            "usage": {"cpu": "1940m", "memory": "1177Mi", "cpuRequestRatio": "1.29",
                "cpuLimitRatio": "0.28", "memoryRequestRatio": "0.61",
                "memoryLimitRatio": "0.31", "sampledAt": "2026-11-24T14:10:00Z"}
        })
    };
    let event = |reason: &str, object: String, message: String| {
        json!({"type": "Warning", "reason": reason, "object": object, "message": message,
            "count": 3, "firstSeen": now, "lastSeen": now})
    };
    let mut events: Vec<Value> = Vec::new();
    for name in [&a, &b] {
        for p in 0..seed::PODS_PER_DEPLOYMENT {
            events.push(event(
                "Unhealthy",
                format!("Pod/{}", seed::pod_name(name, p)),
                "Readiness probe failed: Get \"http://10.64.0.12:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into(),
            ));
        }
        events.push(event(
            "FailedCreate",
            format!("ReplicaSet/{name}-{}", seed::HASH),
            "Error creating: pods is forbidden: exceeded quota: compute, requested: limits.memory=256Mi, used: limits.memory=4Gi, limited: limits.memory=4Gi".into(),
        ));
        events.push(event(
            "ProgressDeadlineExceeded",
            format!("Deployment/{name}"),
            format!(
                "ReplicaSet \"{name}-{}\" has timed out progressing.",
                seed::HASH
            ),
        ));
    }
    let rollout = |name: &str, sidecar: bool| {
        json!({"time": now, "type": "Rollout", "message": format!(
            "{name} rolled out revision 2 5s before the incident was declared: {} → {}",
            images(name, "v1", sidecar).join(", "),
            images(name, "v2", sidecar).join(", "))})
    };
    json!({
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "Enriched", "The incident is valid and its enrichment is current."),
            condition("Enriched", "Live", "Enrichment follows the cluster."),
            condition("DeploymentsFound", "AllFound", "Every affected Deployment was found."),
            condition("MetricsAvailable", "MetricsAPIAvailable", "CPU and memory come from metrics.k8s.io."),
        ],
        "summary": format!("{a} 10/10 ready, {b} 10/10 ready; 188 warnings"),
        "observedPhase": "Triggered", "observedSeverity": "SEV2", "observedNotes": 0,
        "policy": {},
        "declaredAt": now, "enrichedAt": now,
        "deployments": [deployment(SEQUENTIAL_PAIR.0), deployment(SEQUENTIAL_PAIR.1)],
        "events": events,
        "timeline": [
            rollout(&a, seed::has_sidecar(SEQUENTIAL_PAIR.0)),
            rollout(&b, seed::has_sidecar(SEQUENTIAL_PAIR.1)),
            {"time": now, "type": "Declared", "message": format!("Declared SEV2 in {ns}")},
        ],
        "lastTransition": 1,
        "findings": [format!("Rollout/{a}/2"), format!("Rollout/{b}/2")]
    })
}

// ---------------------------------------------------------------------------
// 2-4. Klaxon under load

/// One Incident at a time, each in a namespace with no open incident.
pub(crate) async fn sequential(
    client: &Client,
    observer: &Observer,
    namespaces: &[String],
) -> Samples {
    sequential_with(client, observer, namespaces, enriched).await
}

/// Enriched, with a value for each of the stand-in's two queries (one per
/// linked Deployment).
fn queried(incident: &Incident) -> bool {
    enriched(incident)
        && incident
            .status
            .as_ref()
            .is_some_and(|s| s.metrics.len() == 2 && s.metrics.iter().all(|m| m.value.is_some()))
}

/// A stand-in for Prometheus's query API on loopback: it answers each
/// query with one sample, as `/api/v1/query` does, and counts those that
/// arrive without a namespace matcher.
struct StandIn {
    url: String,
    asked: Arc<std::sync::atomic::AtomicUsize>,
    unconfined: Arc<std::sync::atomic::AtomicUsize>,
}

const QUERY_POLICY: &str = "bench-queries";

impl StandIn {
    async fn start() -> StandIn {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let asked = Arc::new(AtomicUsize::new(0));
        let unconfined = Arc::new(AtomicUsize::new(0));
        let (a, u) = (asked.clone(), unconfined.clone());
        let app = axum::Router::new().route(
            "/api/v1/query",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (a, u) = (a.clone(), u.clone());
                async move {
                    let query = url::form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "query")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    a.fetch_add(1, Ordering::Relaxed);
                    if !query.contains("namespace=\"") {
                        u.fetch_add(1, Ordering::Relaxed);
                    }
                    json!({"status": "success", "data": {"resultType": "vector",
                        "result": [{"metric": {}, "value": [1_700_000_000, "0.25"]}]}})
                    .to_string()
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url,
            asked,
            unconfined,
        }
    }

    /// A baseline for every namespace: one latency query per linked
    /// Deployment, written without a namespace matcher.
    async fn policy(&self, client: &Client) {
        let api: Api<klaxon::api::ClusterResponsePolicy> = Api::all(client.clone());
        let policy: klaxon::api::ClusterResponsePolicy = serde_json::from_value(json!({
            "apiVersion": "klaxon.dev/v1alpha1", "kind": "ClusterResponsePolicy",
            "metadata": {"name": QUERY_POLICY},
            "spec": {"enrichment": {"prometheus": {"url": self.url, "queries": [{"name": "p99",
                "query": "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{deployment=\"$deployment\"}[5m])))"}]}}}
        }))
        .expect("policy");
        api.create(&PostParams::default(), &policy)
            .await
            .expect("create the query policy");
    }

    async fn remove(&self, client: &Client) {
        let api: Api<klaxon::api::ClusterResponsePolicy> = Api::all(client.clone());
        let _ = api.delete(QUERY_POLICY, &DeleteParams::default()).await;
    }

    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (
            self.asked.load(Ordering::Relaxed),
            self.unconfined.load(Ordering::Relaxed),
        )
    }
}

/// As [`sequential`], each incident done once `done` holds.
async fn sequential_with(
    client: &Client,
    observer: &Observer,
    namespaces: &[String],
    done: fn(&Incident) -> bool,
) -> Samples {
    let mut samples = Samples::default();
    for k in 0..SEQUENTIAL {
        let ns = &namespaces[k % namespaces.len()];
        let name = format!("seq-{k}");
        let api: Api<Incident> = Api::namespaced(client.clone(), ns);
        let first = observer.expect(ns, &name, ready);
        let seen = observer.expect(ns, &name, done);
        let at = Instant::now();
        api.create(
            &PostParams::default(),
            &incident(ns, &name, SEQUENTIAL_PAIR),
        )
        .await
        .expect("create incident");
        samples.created.push(at.elapsed());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        samples.first.push(latency(at, first, deadline).await.0);
        samples.push(latency(at, seen, deadline).await);
    }
    samples.finish()
}

/// `count` Incidents created at once, spread over every namespace.
pub(crate) async fn burst_declare(
    client: &Client,
    observer: &Observer,
    namespaces: &[String],
    count: usize,
) -> Samples {
    let pairs = DEPLOYMENTS_PER_NAMESPACE / 2 - 1;
    let creates = (0..count).map(|j| {
        let ns = namespaces[j % namespaces.len()].clone();
        let name = format!("burst-{j}");
        let pair = (j / namespaces.len()) % pairs;
        let first = observer.expect(&ns, &name, ready);
        let seen = observer.expect(&ns, &name, enriched);
        let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
        let incident = incident(&ns, &name, (2 * pair, 2 * pair + 1));
        async move {
            let at = Instant::now();
            api.create(&PostParams::default(), &incident)
                .await
                .expect("create incident");
            (at, at.elapsed(), first, seen)
        }
    });
    let created = join_all(creates.collect::<Vec<_>>()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut samples = Samples::default();
    for (created, first, result) in join_all(created.into_iter().map(
        |(at, created, first, seen)| async move {
            let first = latency(at, first, deadline).await.0;
            (created, first, latency(at, seen, deadline).await)
        },
    ))
    .await
    {
        samples.created.push(created);
        samples.first.push(first);
        samples.push(result);
    }
    samples.finish()
}

/// A healthy pod of a Deployment a sequential incident links starts crash
/// looping; the time until that incident's status counts it.
async fn live(client: &Client, observer: &Observer, namespaces: &[String]) -> Samples {
    let index = SEQUENTIAL_PAIR.0;
    let deployment = seed::deployment_name(index);
    let mut samples = Samples::default();
    for k in 0..LIVE_SAMPLES.min(SEQUENTIAL) {
        let ns = &namespaces[k % namespaces.len()];
        // The k-th crash loop in this Deployment.
        let expected = (k / namespaces.len()) as i32 + 1;
        let pod = seed::pod_name(&deployment, k / namespaces.len());
        let name = format!("seq-{k}");
        let watched = deployment.clone();
        let seen = observer.expect(ns, &name, move |incident| {
            crash_loops(incident, &watched) >= expected
        });
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
        let status = seed::pod_status(
            &deployment,
            index,
            k / namespaces.len(),
            seed::Health::CrashLoop,
        );
        let at = Instant::now();
        api.patch_status(
            &pod,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("patch pod status");
        samples.push(
            latency(
                at,
                seen,
                tokio::time::Instant::now() + Duration::from_secs(30),
            )
            .await,
        );
    }
    samples.finish()
}

/// How many pods of `deployment` the incident shows crash looping.
pub(crate) fn crash_loops(incident: &Incident, deployment: &str) -> i32 {
    incident
        .status
        .as_ref()
        .and_then(|s| s.deployments.iter().find(|d| d.name == deployment))
        .and_then(|d| d.pods.as_ref())
        .and_then(|p| p.reasons.iter().find(|r| r.reason == "CrashLoopBackOff"))
        .map(|r| r.count)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// 5-7. Cost, and the alternative

/// The control plane serving `dir` (apiserver and etcd, one process).
pub(crate) fn controlplane_pid(dir: &std::path::Path) -> Option<u32> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline);
                cmdline.contains("klaxon-controlplane") && cmdline.contains(dir.as_str())
            })
        })
}

/// The process's user + system CPU time so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz
}

struct Kubectl {
    /// Sorted, one per run.
    runs: Vec<Duration>,
    calls: usize,
}

/// What a responder's script does for one incident without Klaxon: the
/// Deployments, their ReplicaSets and Pods, the Warning events about each
/// of those objects, and the pods' CPU and memory, one kubectl at a time.
fn kubectl_collection(cluster: &Cluster, ns: &str) -> Kubectl {
    let cache = cluster.dir().join("kubectl-cache");
    let cache = cache.to_string_lossy().into_owned();
    let (a, b) = (
        seed::deployment_name(SEQUENTIAL_PAIR.0),
        seed::deployment_name(SEQUENTIAL_PAIR.1),
    );
    let selector = format!("app in ({a},{b})");
    let run = |args: &[&str]| -> Value {
        let mut all = vec!["--cache-dir", cache.as_str(), "-n", ns];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = support::kubectl(&cluster.kubeconfig, &all, None);
        support::assert_success(&out, "kubectl");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    };
    let mut runs = Vec::new();
    let mut calls = 0;
    for _ in 0..KUBECTL_RUNS {
        let started = Instant::now();
        let mut n = 0;
        let deployments = run(&["get", "deploy", &a, &b]);
        let replicasets = run(&["get", "rs", "-l", &selector]);
        let pods = run(&["get", "pods", "-l", &selector]);
        n += 3;
        let mut objects = names(&deployments);
        objects.extend(names(&replicasets));
        objects.extend(names(&pods));
        for object in &objects {
            let field = format!("involvedObject.name={object},type=Warning");
            run(&["get", "events", "--field-selector", &field]);
            n += 1;
        }
        run(&["get", "pods.metrics.k8s.io", "-l", &selector]);
        n += 1;
        runs.push(started.elapsed());
        calls = n;
    }
    runs.sort();
    Kubectl { runs, calls }
}

// ---------------------------------------------------------------------------
// The table

struct Report {
    seeded: Seeded,
    objects: Objects,
    half_objects: Objects,
    burst_size: usize,
    /// CPU seconds of the control plane, the operator and this benchmark
    /// during the burst, and its wall time.
    burst_cpu: [f64; 3],
    burst_wall: Duration,
    open: usize,
    sync_time: Duration,
    floor: Samples,
    /// The minimal writer answering a burst of the same size.
    burst_floor: Samples,
    /// The same two, the writer making a server-side apply instead.
    floor_apply: Samples,
    burst_floor_apply: Samples,
    /// From the burst's first create to the first live sample.
    burst_window: (jiff::Timestamp, jiff::Timestamp),
    sequential: Samples,
    burst: Samples,
    live: Samples,
    empty: Memory,
    half: Memory,
    synced: Memory,
    steady: Memory,
    idle_cpu: f64,
    idle_window: (jiff::Timestamp, jiff::Timestamp),
    requests: Vec<audit::Request>,
    reconciles: f64,
    kubectl: Kubectl,
}

pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `resource[/subresource][.group]`, as the tables print it.
pub(crate) fn resource_label(q: &audit::Request) -> String {
    let mut resource = q
        .resource
        .clone()
        .unwrap_or_else(|| "(non-resource)".into());
    if let Some(sub) = &q.subresource {
        resource = format!("{resource}/{sub}");
    }
    if let Some(group) = &q.api_group {
        resource = format!("{resource}.{group}");
    }
    resource
}

/// A write of an Incident's status (a patch or an update).
pub(crate) fn is_status_write(q: &audit::Request) -> bool {
    matches!(q.verb.as_str(), "patch" | "update")
        && q.api_group.as_deref() == Some("klaxon.dev")
        && q.resource.as_deref() == Some("incidents")
        && q.subresource.as_deref() == Some("status")
}

/// A Kubernetes Event created (core or events.k8s.io).
pub(crate) fn is_event_create(q: &audit::Request) -> bool {
    q.verb == "create" && q.resource.as_deref() == Some("events")
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn report(r: Report) -> bool {
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    let o = &r.objects;
    let pods = o.pods;
    let failing = o.deployments / DEPLOYMENTS_PER_NAMESPACE * seed::FAILING_PER_NAMESPACE;

    let ratio = |a: Duration, b: Duration| {
        if a == Duration::MAX || b == Duration::MAX || b.is_zero() {
            f64::INFINITY
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        }
    };
    let floor_p99 = r.floor.p(99.0);
    let seq_p99 = r.sequential.p(99.0);
    let seq_floor_ratio = ratio(seq_p99, floor_p99);
    let seq_ratio_ok = seq_floor_ratio <= TARGET_SEQUENTIAL_FLOOR_RATIO;
    let seq_p99_ok = seq_p99 <= TARGET_SEQUENTIAL_P99;
    let burst_floor_ratio = ratio(r.burst.p(99.0), r.burst_floor.p(99.0));
    let burst_ok = burst_floor_ratio <= TARGET_BURST_FLOOR_RATIO;
    // Klaxon's writes for the burst's incidents, from the audit log.
    let in_burst = |q: &&audit::Request| q.time >= r.burst_window.0 && q.time < r.burst_window.1;
    let burst_status_writes = r
        .requests
        .iter()
        .filter(in_burst)
        .filter(|q| {
            is_status_write(q) && q.name.as_deref().is_some_and(|n| n.starts_with("burst-"))
        })
        .count();
    let burst_event_creates = r
        .requests
        .iter()
        .filter(in_burst)
        .filter(|q| is_event_create(q))
        .count();
    let per_burst_incident = |n: usize| n as f64 / r.burst_size.max(1) as f64;
    let live_ok = r.live.p(99.0) <= TARGET_LIVE_P99;
    let rss_ok = r.steady.steady_mib <= TARGET_STEADY_RSS_MIB;
    let cpu_ok = r.idle_cpu <= TARGET_IDLE_CPU_PERCENT;

    let mib = 1024.0 * 1024.0;
    let per_object = (r.synced.steady_mib - r.empty.steady_mib) * mib / o.total() as f64;
    let marginal = (r.synced.steady_mib - r.half.steady_mib) * mib
        / (o.total() as f64 - r.half_objects.total() as f64);

    // metrics.k8s.io has no watch: polling it is a LIST by design.
    let is_poll = |q: &audit::Request| q.api_group.as_deref() == Some("metrics.k8s.io");
    let cache_lists = r
        .requests
        .iter()
        .filter(|q| q.verb == "list" && !is_poll(q))
        .count();
    let lists_ok = cache_lists == 0;
    let mut by_verb: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_resource: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut idle_by_verb: BTreeMap<&str, usize> = BTreeMap::new();
    for q in &r.requests {
        *by_verb.entry(q.verb.as_str()).or_default() += 1;
        *by_resource
            .entry((q.verb.clone(), resource_label(q)))
            .or_default() += 1;
        if q.time >= r.idle_window.0 && q.time <= r.idle_window.1 {
            *idle_by_verb.entry(q.verb.as_str()).or_default() += 1;
        }
    }
    let verbs = |counts: &BTreeMap<&str, usize>| {
        if counts.is_empty() {
            return "none".to_string();
        }
        counts
            .iter()
            .map(|(verb, n)| format!("{verb} {}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    };

    let kubectl_median = r
        .kubectl
        .runs
        .get(r.kubectl.runs.len() / 2)
        .copied()
        .unwrap_or(Duration::MAX);
    let klaxon_time = r.sequential.p(50.0);
    let kubectl_ratio = ratio(kubectl_median, klaxon_time);
    let kubectl_ok = kubectl_ratio >= TARGET_KUBECTL_RATIO;

    println!();
    println!(
        "Klaxon enrichment benchmark, large tier: {} namespaces, {} deployments, {} replicasets, {} pods ({} failing), {} warning events, {} PodMetrics; {} incidents open at the end",
        thousands(o.namespaces),
        thousands(o.deployments),
        thousands(o.replicasets),
        thousands(pods),
        thousands(failing),
        thousands(o.events),
        thousands(pods),
        thousands(r.open),
    );
    println!();
    println!("| measure | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| seeding | {} requests in {:.0} s ({:.0}/s, up to {} in flight) | | |",
        thousands(r.seeded.requests),
        r.seeded.elapsed.as_secs_f64(),
        r.seeded.rate(),
        seed::PARALLEL
    );
    println!(
        "| operator start to caches synced | {} | | |",
        show(r.sync_time)
    );
    println!(
        "| 1. floor: create → one status merge patch → watch, p50 / p99 ({} round trips, status {}) | {} / {} | | |",
        r.floor.latencies.len(),
        kib(r.floor.median_bytes()),
        show(r.floor.p(50.0)),
        show(floor_p99)
    );
    println!(
        "| 1. for comparison, the floor by server-side apply: p50 / p99; burst p50 / p99 | {} / {}; {} / {} | | |",
        show(r.floor_apply.p(50.0)),
        show(r.floor_apply.p(99.0)),
        show(r.burst_floor_apply.p(50.0)),
        show(r.burst_floor_apply.p(99.0))
    );
    println!(
        "| 2. sequential: declared → enriched, p50 / p99 / max ({}, status {}) | {} / {} / {} | | |",
        r.sequential.latencies.len(),
        kib(r.sequential.median_bytes()),
        show(r.sequential.p(50.0)),
        show(seq_p99),
        show(r.sequential.max())
    );
    r.sequential.created_and_first(
        "2. sequential: create returned / first status (Ready, maybe before CPU and memory)",
    );
    println!(
        "| 2. sequential p99 / floor p99 (p50 / floor p50: {:.1}×) | {:.1}× | ≤ {TARGET_SEQUENTIAL_FLOOR_RATIO:.0}× | {} |",
        ratio(r.sequential.p(50.0), r.floor.p(50.0)),
        seq_floor_ratio,
        mark(seq_ratio_ok)
    );
    println!(
        "| 2. sequential p99 | {} | ≤ {} | {} |",
        show(seq_p99),
        show(TARGET_SEQUENTIAL_P99),
        mark(seq_p99_ok)
    );
    println!(
        "| 3. burst: {} declared at once, p50 / p99 / max | {} / {} / {} | | |",
        r.burst_size,
        show(r.burst.p(50.0)),
        show(r.burst.p(99.0)),
        show(r.burst.max()),
    );
    println!(
        "| 3. burst floor: the minimal writer (merge patch), {} at once, p50 / p99 (create returned p99 {}) | {} / {} | | |",
        r.burst_floor.latencies.len(),
        show(percentile(&r.burst_floor.created, 99.0)),
        show(r.burst_floor.p(50.0)),
        show(r.burst_floor.p(99.0))
    );
    println!(
        "| 3. burst p99 / burst floor p99 | {burst_floor_ratio:.1}× | ≤ {TARGET_BURST_FLOOR_RATIO}× | {} |",
        mark(burst_ok)
    );
    println!(
        "| 3. burst: Klaxon's status writes / Event creates per incident (audit log; the floor makes 1 / 0) | {:.2} / {:.2} ({} / {}) | | |",
        per_burst_incident(burst_status_writes),
        per_burst_incident(burst_event_creates),
        thousands(burst_status_writes),
        thousands(burst_event_creates)
    );
    r.burst
        .created_and_first("3. burst: create returned / first status");
    println!(
        "| 3. burst: CPU used over its {:.1} s: control plane / operator / benchmark | {:.1} / {:.1} / {:.1} s | | |",
        r.burst_wall.as_secs_f64(),
        r.burst_cpu[0],
        r.burst_cpu[1],
        r.burst_cpu[2]
    );
    println!(
        "| 4. live: pod starts crash looping → incident shows it, p50 / p99 ({} pods) | {} / {} | p99 ≤ {} | {} |",
        r.live.latencies.len(),
        show(r.live.p(50.0)),
        show(r.live.p(99.0)),
        show(TARGET_LIVE_P99),
        mark(live_ok)
    );
    println!(
        "| 5. RSS: empty cluster / half size / after sync | {:.1} / {:.1} / {:.1} MiB | | |",
        r.empty.steady_mib, r.half.steady_mib, r.synced.steady_mib
    );
    println!(
        "| 5. RSS: peak / after {} s idle, {} incidents open ({} sockets open) | {:.1} / {:.1} MiB | steady ≤ {TARGET_STEADY_RSS_MIB:.0} MiB | {} |",
        IDLE.as_secs(),
        thousands(r.open),
        r.steady.sockets,
        r.steady.peak_mib,
        r.steady.steady_mib,
        mark(rss_ok)
    );
    println!(
        "| 5. bytes per cached object: (after sync − empty) / {} objects; marginal, full vs half size | {:.0} B; {:.0} B | | |",
        thousands(o.total()),
        per_object,
        marginal
    );
    println!(
        "| 6. idle CPU over {} s, {} incidents open | {:.2}% of a core | ≤ {TARGET_IDLE_CPU_PERCENT:.0}% | {} |",
        IDLE.as_secs(),
        thousands(r.open),
        r.idle_cpu,
        mark(cpu_ok)
    );
    println!(
        "| 6. API requests after sync, by verb ({} reconciles) | {} | | |",
        thousands(r.reconciles as usize),
        verbs(&by_verb)
    );
    println!(
        "| 6. API requests during the idle {} s | {} | | |",
        IDLE.as_secs(),
        verbs(&idle_by_verb)
    );
    println!(
        "| 6. LISTs after sync (watch-cached kinds) | {cache_lists} | 0 | {} |",
        mark(lists_ok)
    );
    println!(
        "| 7. kubectl script for one incident ({} calls), median of {} | {} | | |",
        r.kubectl.calls,
        r.kubectl.runs.len(),
        show(kubectl_median)
    );
    println!(
        "| 7. kubectl median / Klaxon sequential p50 | {:.1}× | ≥ {TARGET_KUBECTL_RATIO:.0}× | {} |",
        kubectl_ratio,
        mark(kubectl_ok)
    );
    println!();
    println!("Operator API requests after its caches synced (audit log, User-Agent klaxon/*):");
    println!();
    println!("| verb | resource | requests |");
    println!("|---|---|---|");
    for ((verb, resource), n) in &by_resource {
        println!("| {verb} | {resource} | {} |", thousands(*n));
    }
    println!();
    seq_ratio_ok && seq_p99_ok && burst_ok && live_ok && rss_ok && cpu_ok && lists_ok && kubectl_ok
}
