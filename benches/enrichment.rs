//! `make bench`: enrichment at scale on the real control plane.
//!
//! Seeds 200 Deployments (2,000 Pods, 5,000 Warning Events, PodMetrics for
//! every Pod) across 20 namespaces, starts `klaxon run`, declares 100
//! Incidents at once, and prints:
//! - the time from each Incident's creation to its enriched status, as a
//!   watch sees it (p50, p99, max);
//! - the operator's peak and steady resident memory;
//! - the API requests the operator made, by verb and resource, from the
//!   apiserver's audit log (the operator sends `User-Agent: klaxon/<ver>`).
//!
//! It exits non-zero when a target is missed.
//!
//! That is the quick tier. `KLAXON_BENCH=large make bench` runs the large
//! one instead (10× the objects; the floor, a minimal writer's one merge
//! patch per Incident; sequential, and a burst judged against the burst
//! floor; live propagation, idle cost and a kubectl comparison): see
//! `enrichment/large.rs`. `KLAXON_BENCH=churn make bench` seeds the large
//! tier's cluster and keeps it busy for 10 minutes (pod status updates,
//! new Events, pod replacements, rollouts, incidents declared and
//! resolved), reporting the operator's CPU, memory, propagation, requests
//! and status writes under that churn: see `enrichment/churn.rs`.
//! `KLAXON_BENCH=kinds make bench` prints the heap bytes each cached kind
//! costs per object, without a cluster: see `enrichment/kinds.rs`.
//!
//! Under `cargo test` (no `--bench`) every tier only builds.

#[path = "../tests/integration/support/mod.rs"]
mod support;

#[path = "enrichment/large.rs"]
mod large;

#[path = "enrichment/churn.rs"]
mod churn;

#[path = "enrichment/kinds.rs"]
mod kinds;

/// Counts live heap bytes, for the kinds tier's bytes per object.
#[global_allocator]
static ALLOCATOR: kinds::Counting = kinds::Counting;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use klaxon::api::Incident;
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use support::{Cluster, fixtures, operator::Operator};

const NAMESPACES: usize = 20;
const DEPLOYMENTS_PER_NAMESPACE: usize = 10;
const PODS_PER_DEPLOYMENT: usize = 10;
const EVENTS_PER_DEPLOYMENT: usize = 25;
const INCIDENTS_PER_NAMESPACE: usize = 5;
/// How many requests the seeding keeps in flight.
const PARALLEL: usize = 64;

const TARGET_P99: Duration = Duration::from_secs(2);
const TARGET_STEADY_RSS_MIB: f64 = 100.0;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` only
    // checks that this builds and runs, without the minutes of load.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("enrichment benchmark: skipped (run `make bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = match std::env::var("KLAXON_BENCH").unwrap_or_default().as_str() {
        "" | "quick" => runtime.block_on(bench()),
        "large" => runtime.block_on(large::bench()),
        "churn" => runtime.block_on(churn::bench()),
        "kinds" => kinds::bench(),
        other => {
            eprintln!(
                "KLAXON_BENCH={other}: unknown tier; use quick (the default), large, churn or kinds"
            );
            false
        }
    };
    if !ok {
        std::process::exit(1);
    }
}

async fn bench() -> bool {
    eprintln!("starting a fresh control plane ...");
    let cluster = Cluster::start_bare("bench");
    cluster.install_crds();
    cluster.install_metrics_api();
    let client = cluster.client().await;

    let seeding = Instant::now();
    let namespaces = seed(&client).await;
    eprintln!(
        "seeded {} namespaces, {} deployments, {} pods, {} events in {:.1?}",
        NAMESPACES,
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE,
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT,
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * EVENTS_PER_DEPLOYMENT,
        seeding.elapsed()
    );

    let started = Instant::now();
    let log = std::env::var("KLAXON_BENCH_LOG").unwrap_or_else(|_| "info".into());
    let mut operator = Operator::start(
        &cluster.kubeconfig,
        "bench",
        &[
            ("KLAXON_LOG", log.as_str()),
            ("KLAXON_METRICS_INTERVAL", "10s"),
        ],
    );
    operator.wait_ready(Duration::from_secs(120));
    let sync_time = started.elapsed();
    // Every request the operator receives an answer to after this instant
    // came after its caches synced.
    let synced_at = jiff::Timestamp::now();
    eprintln!(
        "operator ready (caches synced) in {sync_time:.1?}; log: {}",
        operator.log.display()
    );

    let latencies = declare_and_watch(&client, &namespaces).await;

    // Steady state: enrichment done, a few metrics polls.
    let idle = Duration::from_secs(25);
    eprintln!("idling {idle:?} for the steady state ...");
    tokio::time::sleep(idle).await;
    let memory = Memory::of(operator.pid());
    let work = Work {
        reconciles: operator
            .metric(r#"klaxon_reconciliations_total{controller="incident"}"#)
            .unwrap_or(0.0),
        objects_read: operator.metric("klaxon_objects_read_total").unwrap_or(0.0),
    };
    let _ = operator.terminate(Duration::from_secs(20));

    let requests = operator_requests(&cluster.dir().join("audit.log"), synced_at).await;
    report(sync_time, &latencies, &memory, &work, &requests)
}

/// Creates the namespaces and everything in them; returns the namespaces.
async fn seed(client: &Client) -> Vec<String> {
    let mut namespaces = Vec::new();
    for _ in 0..NAMESPACES {
        namespaces.push(support::namespace(client, "bench").await);
    }
    let deployments: Vec<(String, usize)> = namespaces
        .iter()
        .flat_map(|ns| (0..DEPLOYMENTS_PER_NAMESPACE).map(move |i| (ns.clone(), i)))
        .collect();
    stream::iter(deployments)
        .map(|(ns, i)| {
            let client = client.clone();
            async move { seed_deployment(&client, &ns, i).await }
        })
        .buffer_unordered(PARALLEL / 8)
        .collect::<Vec<()>>()
        .await;
    namespaces
}

/// One Deployment with an old and a new ReplicaSet, its pods (some crash
/// looping), PodMetrics, and Warning events.
async fn seed_deployment(client: &Client, ns: &str, index: usize) {
    let name = format!("svc-{index:02}");
    let broken = index.is_multiple_of(3);
    let ready = if broken { 7 } else { 10 };
    let deployment = fixtures::deployment(
        client,
        ns,
        &name,
        &[
            ("app", &name),
            ("tier", if index.is_multiple_of(2) { "a" } else { "b" }),
        ],
        (PODS_PER_DEPLOYMENT as i32, ready),
        "2",
        &format!("registry.example/{name}:v2"),
    )
    .await;
    fixtures::replicaset(
        client,
        &deployment,
        "6b9f8d7c5",
        "1",
        &format!("registry.example/{name}:v1"),
    )
    .await;
    let rs = fixtures::replicaset(
        client,
        &deployment,
        "7c8d9e6f4",
        "2",
        &format!("registry.example/{name}:v2"),
    )
    .await;
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    stream::iter(0..PODS_PER_DEPLOYMENT)
        .map(|p| {
            let (client, rs, rs_name) = (client.clone(), rs.clone(), rs_name.clone());
            async move {
                let status = if broken && p < 3 {
                    fixtures::crash_loop(5 + p as i32, "Error", "panic: connection refused")
                } else {
                    fixtures::running()
                };
                let suffix = format!("p{p:02}");
                fixtures::pod(&client, &rs, &suffix, status).await;
                let pod = format!("{rs_name}-{suffix}");
                fixtures::pod_metrics(&client, ns, &pod, "120m", "150Mi").await;
                for e in 0..EVENTS_PER_DEPLOYMENT / PODS_PER_DEPLOYMENT {
                    fixtures::warning(
                        &client,
                        ns,
                        "Pod",
                        &pod,
                        "BackOff",
                        &format!("Back-off restarting failed container app ({e})"),
                        1 + e as i32,
                    )
                    .await;
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    // The rest of the events are about the Deployment itself.
    let rest =
        EVENTS_PER_DEPLOYMENT - (EVENTS_PER_DEPLOYMENT / PODS_PER_DEPLOYMENT) * PODS_PER_DEPLOYMENT;
    for e in 0..rest {
        fixtures::warning(
            client,
            ns,
            "Deployment",
            &name,
            "ProgressDeadlineExceeded",
            &format!("rollout stalled ({e})"),
            1,
        )
        .await;
    }
}

/// Declares every Incident at once and returns, per Incident, the time from
/// just before its create request to the first watch event showing it
/// enriched.
async fn declare_and_watch(client: &Client, namespaces: &[String]) -> Latencies {
    let api: Api<Incident> = Api::all(client.clone());
    let total = namespaces.len() * INCIDENTS_PER_NAMESPACE;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Ok(Some(incident)) = stream.try_next().await {
            let stage = if enriched(&incident) {
                Stage::Enriched
            } else if ready(&incident) {
                Stage::FirstStatus
            } else {
                continue;
            };
            {
                let key = format!(
                    "{}/{}",
                    incident.metadata.namespace.clone().unwrap_or_default(),
                    incident.metadata.name.clone().unwrap_or_default()
                );
                if tx.send((key, stage, Instant::now())).is_err() {
                    break;
                }
            }
        }
    });

    let mut declared: HashMap<String, Instant> = HashMap::new();
    let creates = namespaces.iter().flat_map(|ns| {
        (0..INCIDENTS_PER_NAMESPACE).map(move |i| {
            let api: Api<Incident> = Api::namespaced(client.clone(), ns);
            let name = format!("inc-{i}");
            // Two Deployments each: the 200 Deployments are all covered.
            let incident: Incident = serde_json::from_value(json!({
                "apiVersion": "klaxon.dev/v1alpha1", "kind": "Incident",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"title": format!("bench {i}"), "severity": "SEV2",
                    "affected": {"deployments": [
                        {"name": format!("svc-{:02}", 2 * i)},
                        {"name": format!("svc-{:02}", 2 * i + 1)}]}}
            }))
            .expect("incident");
            async move {
                let at = Instant::now();
                api.create(&PostParams::default(), &incident)
                    .await
                    .expect("create incident");
                (format!("{ns}/{name}"), at)
            }
        })
    });
    eprintln!("declaring {total} incidents at once ...");
    for (key, at) in futures::future::join_all(creates).await {
        declared.insert(key, at);
    }

    let mut first: HashMap<String, Instant> = HashMap::new();
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < total {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((key, stage, at))) => {
                first.entry(key.clone()).or_insert(at);
                if stage == Stage::Enriched {
                    seen.entry(key).or_insert(at);
                }
            }
            _ => break,
        }
    }
    watch.abort();
    let since_declared = |seen: &HashMap<String, Instant>| {
        let mut latencies: Vec<Duration> = declared
            .iter()
            .map(|(key, at)| match seen.get(key) {
                Some(done) => done.saturating_duration_since(*at),
                None => Duration::MAX,
            })
            .collect();
        latencies.sort();
        latencies
    };
    Latencies {
        first_status: since_declared(&first),
        enriched: since_declared(&seen),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    FirstStatus,
    Enriched,
}

/// Sorted, one per Incident; `Duration::MAX` for never.
struct Latencies {
    first_status: Vec<Duration>,
    enriched: Vec<Duration>,
}

/// The first status: linked, Ready, possibly before CPU/memory arrived.
fn ready(incident: &Incident) -> bool {
    incident.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Enriched: every named Deployment found with its pods and their CPU and
/// memory usage, and Ready.
fn enriched(incident: &Incident) -> bool {
    let Some(status) = incident.status.as_ref() else {
        return false;
    };
    status.enriched_at.is_some()
        && status.deployments.len() == 2
        && status
            .deployments
            .iter()
            .all(|d| d.found && d.pods.as_ref().is_some_and(|p| p.total > 0) && d.usage.is_some())
        && ready(incident)
}

struct Memory {
    peak_mib: f64,
    steady_mib: f64,
    /// Open sockets.
    sockets: usize,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .unwrap_or(f64::NAN)
        };
        // Open connections (to the apiserver, mostly): each holds buffers.
        let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
            })
            .count();
        Memory {
            peak_mib: field("VmHWM:"),
            steady_mib: field("VmRSS:"),
            sockets,
        }
    }
}

/// Requests by the operator after `since`, counted as (verb, resource).
/// Waits until the audit log stops growing (it is written in batches).
async fn operator_requests(
    audit: &Path,
    since: jiff::Timestamp,
) -> BTreeMap<(String, String), usize> {
    let mut last_len = 0;
    for _ in 0..50 {
        let len = std::fs::metadata(audit).map(|m| m.len()).unwrap_or(0);
        if len == last_len && len > 0 {
            break;
        }
        last_len = len;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let agent = event["userAgent"].as_str().unwrap_or_default();
        if !agent.starts_with(klaxon::USER_AGENT) {
            continue;
        }
        let received = event["requestReceivedTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if received.is_none_or(|t| t < since) {
            continue;
        }
        // A watch logs ResponseStarted and later ResponseComplete.
        let id = event["auditID"].as_str().unwrap_or_default().to_string();
        if !seen.insert(id) {
            continue;
        }
        let verb = event["verb"].as_str().unwrap_or("?").to_string();
        let mut resource = event["objectRef"]["resource"]
            .as_str()
            .unwrap_or("(non-resource)")
            .to_string();
        if let Some(sub) = event["objectRef"]["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        if let Some(group) = event["objectRef"]["apiGroup"].as_str() {
            resource = format!("{resource}.{group}");
        }
        *counts.entry((verb, resource)).or_insert(0) += 1;
    }
    counts
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::MAX;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn show(d: Duration) -> String {
    if d == Duration::MAX {
        "never".into()
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What the reconciles did, from the operator's own counters.
struct Work {
    reconciles: f64,
    objects_read: f64,
}

/// Cached objects one reconcile walked before reconciles read through
/// indexes: every ReplicaSet, Pod and Warning Event of the cluster.
fn objects_walked_before() -> usize {
    let deployments = NAMESPACES * DEPLOYMENTS_PER_NAMESPACE;
    deployments + deployments * PODS_PER_DEPLOYMENT + deployments * EVENTS_PER_DEPLOYMENT
}

fn report(
    sync_time: Duration,
    latencies: &Latencies,
    memory: &Memory,
    work: &Work,
    requests: &BTreeMap<(String, String), usize>,
) -> bool {
    let first = &latencies.first_status;
    let latencies = &latencies.enriched;
    let p50 = percentile(latencies, 50.0);
    let p99 = percentile(latencies, 99.0);
    let max = latencies.last().copied().unwrap_or(Duration::MAX);
    // metrics.k8s.io has no watch: polling it is a LIST by design.
    let is_poll = |resource: &str| resource.ends_with(".metrics.k8s.io");
    let cache_lists: usize = requests
        .iter()
        .filter(|((verb, resource), _)| verb == "list" && !is_poll(resource))
        .map(|(_, n)| n)
        .sum();
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    let p99_ok = p99 < TARGET_P99;
    let rss_ok = memory.steady_mib < TARGET_STEADY_RSS_MIB;
    let lists_ok = cache_lists == 0;

    println!();
    println!(
        "Klaxon enrichment benchmark: {} deployments, {} pods, {} warning events, {} namespaces, {} incidents",
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE,
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT,
        NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * EVENTS_PER_DEPLOYMENT,
        NAMESPACES,
        latencies.len()
    );
    println!();
    println!("| measure | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| operator start to caches synced | {} | | |",
        show(sync_time)
    );
    println!(
        "| declared -> first status (linked, pods, events), p50 / p99 | {} / {} | | |",
        show(percentile(first, 50.0)),
        show(percentile(first, 99.0))
    );
    println!(
        "| declared -> enriched (with CPU/memory), p50 | {} | | |",
        show(p50)
    );
    println!(
        "| declared -> enriched, p99 | {} | < {} | {} |",
        show(p99),
        show(TARGET_P99),
        mark(p99_ok)
    );
    println!("| declared -> enriched, max | {} | | |", show(max));
    println!("| peak RSS | {:.1} MiB | | |", memory.peak_mib);
    println!(
        "| steady RSS | {:.1} MiB | < {TARGET_STEADY_RSS_MIB} MiB | {} |",
        memory.steady_mib,
        mark(rss_ok)
    );
    println!(
        "| LISTs after sync (watch-cached kinds) | {cache_lists} | 0 | {} |",
        mark(lists_ok)
    );
    println!(
        "| cached objects read per reconcile | {:.0} (was {} when reconciles walked the stores) | | |",
        work.objects_read / work.reconciles.max(1.0),
        objects_walked_before()
    );
    println!();
    println!("Operator API requests after its caches synced (audit log, User-Agent klaxon/*):");
    println!();
    println!("| verb | resource | requests |");
    println!("|---|---|---|");
    for ((verb, resource), n) in requests {
        println!("| {verb} | {resource} | {n} |");
    }
    println!();
    p99_ok && rss_ok && lists_ok
}
