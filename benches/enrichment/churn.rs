//! `KLAXON_BENCH=churn make bench`: the large tier's cluster, kept busy.
//!
//! Seeds what the large tier seeds (200 namespaces, 2,000 Deployments,
//! 20,000 Pods, 50,000 Warning Events, PodMetrics), measures the floor
//! (one merge patch of a status per Incident, by a minimal writer, before
//! the operator starts), starts `klaxon run`, declares the large tier's 50
//! sequential and 500 burst Incidents (550 open), then drives churn for
//! `KLAXON_BENCH_CHURN_SECONDS` (600 by default), each kind of change paced
//! by its own ticker (missed ticks are caught up, so the rates do not
//! drift):
//! - 50 pod status updates/s (merge patches of pods/status: Ready toggled,
//!   a restart, a container restarted in place), on the healthy pods of
//!   linked and unlinked Deployments;
//! - 20 new Warning Events/s about pods of linked and unlinked Deployments,
//!   in turn;
//! - 5 pod replacements/s: a pod deleted and a replacement with a new name
//!   created under the same ReplicaSet (with its status and PodMetrics);
//! - a rollout of a linked Deployment every minute: a new ReplicaSet, the
//!   Deployment's template and revision annotation bumped, every pod
//!   replaced by one of the new ReplicaSet, the old one scaled to 0 (the
//!   control plane has no controllers: this benchmark is them);
//! - 2 incidents declared and 2 resolved per minute;
//! - every 30 s a pod of a linked Deployment starts crash looping (the live
//!   samples);
//! - every 5 s a round trip through the floor's minimal writer, beside the
//!   operator (see [`floor`]): the floor during churn.
//!
//! One namespace in ten is never touched: its incidents' facts do not
//! change, so the operator should not write their status at all. The live
//! samples' Deployment (`svc-08`, linked by the sequential incidents) is
//! left to them.
//!
//! Prints one table: the achieved rates (the run is invalid, and exits
//! non-zero, under 80% of any requested rate), the operator's CPU, RSS
//! every 10 s, live propagation, declared → enriched against the floor
//! during churn, the operator's requests per minute and its LISTs per
//! watched kind after the initial sync (audit log), status writes per
//! incident, the etcd compactions the window spanned (the harness's
//! apiserver compacts every 2 min here: a resumed watch whose
//! resourceVersion was compacted must relist), and the operator's reconciles per minute
//! (its `/metrics`). It exits non-zero when a target is missed.
//!
//! `KLAXON_BENCH_NAMESPACES=<n>` seeds fewer namespaces (500·n/200 burst
//! incidents), to try it out; the targets are for 200 and 600 s.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use http::Method;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::{
    Api, Client,
    api::{ListParams, ObjectList, PartialObjectMeta},
};
use serde_json::{Value, json};
use tokio::{sync::Semaphore, time::MissedTickBehavior};

use super::{Memory, enriched, show};
use crate::large::{
    self, FloorWrite, Observer, Samples, lock,
    seed::{self, DEPLOYMENTS_PER_NAMESPACE, Health, PODS_PER_DEPLOYMENT},
};
use crate::support::{self, Cluster, audit, operator::Operator};

#[path = "churn/floor.rs"]
mod floor;

const CHURN: Duration = Duration::from_secs(600);
/// Requested rates, per second.
const POD_UPDATES: f64 = 50.0;
const NEW_EVENTS: f64 = 20.0;
const REPLACEMENTS: f64 = 5.0;
const ROLLOUT_EVERY: Duration = Duration::from_secs(60);
/// Two declared and two resolved a minute.
const DECLARE_EVERY: Duration = Duration::from_secs(30);
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
const LIVE_EVERY: Duration = Duration::from_secs(30);
/// A round trip through the floor's minimal writer during churn.
const FLOOR_EVERY: Duration = Duration::from_secs(5);
const RSS_EVERY: Duration = Duration::from_secs(10);
const COUNTERS_EVERY: Duration = Duration::from_secs(60);
/// The apiserver's `--etcd-compaction-interval`, shorter than its default
/// of 5 min: the seeding and declarations before the window take about as
/// long, and the apiserver's first tick only records a revision to compact
/// at the next, so with the default a 10-minute window spans a single
/// compaction. Every compaction can force a resumed watch to relist.
const COMPACTION_INTERVAL: Duration = Duration::from_secs(120);
/// One namespace in this many (the last ones) is never touched.
const QUIET_EVERY: usize = 10;
/// Requests one kind of churn keeps in flight at most.
const IN_FLIGHT: usize = 48;
/// The Deployment the live samples crash-loop; churn leaves it alone.
const LIVE_DEPLOYMENT: usize = large::SEQUENTIAL_PAIR.0;
/// Incidents declared during churn name these two Deployments.
const DECLARED_PAIR: (usize, usize) = (6, 7);

/// Under this share of a requested rate, the run is invalid.
const MIN_RATE_SHARE: f64 = 0.8;
const TARGET_CPU_PERCENT: f64 = 10.0;
const TARGET_RSS_GROWTH: f64 = 0.10;
const TARGET_RSS_MIB: f64 = 128.0;
const TARGET_LIVE_P99: Duration = Duration::from_secs(1);
const TARGET_DECLARED_FLOOR_RATIO: f64 = 3.0;
const TARGET_QUIET_WRITES_PER_MINUTE: f64 = 0.0;
const TARGET_WRITES_PER_10S: f64 = 1.0;

pub async fn bench() -> bool {
    let env_number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
    };
    let namespaces_wanted = env_number("KLAXON_BENCH_NAMESPACES")
        .filter(|n| *n >= 2)
        .unwrap_or(large::NAMESPACES);
    let churn_for = env_number("KLAXON_BENCH_CHURN_SECONDS")
        .filter(|s| *s >= 30)
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(CHURN);
    let burst = (large::BURST * namespaces_wanted / large::NAMESPACES).max(10);
    let log = std::env::var("KLAXON_BENCH_LOG").unwrap_or_else(|_| "info".into());

    eprintln!("starting a fresh control plane (apiserver + etcd) ...");
    let compaction = format!(
        "--etcd-compaction-interval={}s",
        COMPACTION_INTERVAL.as_secs()
    );
    let cluster = Cluster::start_with_args("churn", support::Mode::Bare, &[&compaction]);
    cluster.install_crds();
    floor::install(&cluster);
    cluster.install_metrics_api();
    let client = cluster.client().await;
    let namespaces: Vec<String> = futures::stream::iter(0..namespaces_wanted)
        .map(|_| support::namespace(&client, "churn"))
        .buffered(32)
        .collect()
        .await;
    eprintln!("seeding {} namespaces ...", namespaces.len());
    let seeded = seed::seed(&client, &namespaces).await;
    eprintln!(
        "seeded {} requests in {:.1?} ({:.0}/s)",
        seeded.requests,
        seeded.elapsed,
        seeded.rate()
    );

    let observer = Arc::new(Observer::start(cluster.client().await).await);
    eprintln!("floor: round trips through a minimal writer (merge patch) ...");
    let (floor, burst_floor) =
        large::floor(&cluster, &client, &observer, burst, FloorWrite::Merge).await;

    let mut operator = Operator::start(
        &cluster.kubeconfig,
        "churn",
        &[("KLAXON_LOG", log.as_str())],
    );
    operator.wait_ready(Duration::from_secs(180));
    let synced_at = jiff::Timestamp::now();
    eprintln!("operator ready; log: {}", operator.log.display());

    eprintln!(
        "declaring {} incidents one at a time ...",
        large::SEQUENTIAL
    );
    let sequential = large::sequential(&client, &observer, &namespaces).await;
    eprintln!("declaring {burst} incidents at once ...");
    let burst_latencies = large::burst_declare(&client, &observer, &namespaces, burst).await;
    let open = Open::of(&namespaces, burst);
    eprintln!(
        "{} incidents open ({} in the {} namespaces churn leaves alone); burst p99 {} (floor {})",
        observer.open(),
        open.quiet.len(),
        open.quiet_namespaces,
        show(burst_latencies.p(99.0)),
        show(burst_floor.p(99.0))
    );

    let floor_during = floor::Floor::start(&cluster, &client).await;
    let churn =
        Arc::new(Churn::new(cluster.client().await, &namespaces, &open, floor_during).await);
    eprintln!(
        "churning for {churn_for:?}: {} deployments touched ({} linked), {} rolled out in turn ...",
        churn.churned.len(),
        churn.linked.len(),
        churn.rollable.len()
    );
    let controlplane = large::controlplane_pid(cluster.dir());
    let run = drive(&churn, &observer, &operator, controlplane, churn_for).await;

    let _ = operator.terminate(Duration::from_secs(20));
    let audit_log = cluster.dir().join("audit.log");
    audit::wait_until_quiet(&audit_log, Duration::from_secs(2), Duration::from_secs(60)).await;
    let requests: Vec<audit::Request> = large::operator_requests(cluster.dir())
        .into_iter()
        .filter(|r| r.time >= synced_at)
        .collect();
    if let Ok(observer) = Arc::try_unwrap(observer) {
        observer.stop(&cluster.dir().join("watch-events.tsv"));
    }
    eprintln!("control plane directory: {}", cluster.dir().display());
    report(&Report {
        namespaces: namespaces.len(),
        burst,
        floor,
        burst_floor,
        sequential,
        burst_latencies,
        open,
        run,
        requests,
    })
}

// ---------------------------------------------------------------------------
// What is open, and what churn touches

/// The incidents open when churn starts.
struct Open {
    /// `ns/name` of the incidents in the namespaces churn never touches.
    quiet: HashSet<String>,
    /// The others.
    rest: HashSet<String>,
    quiet_namespaces: usize,
    /// Namespaces churn touches: the first ones.
    active: usize,
    /// Which Deployments (namespace index, Deployment index) an incident
    /// names.
    linked: HashSet<(usize, usize)>,
    /// Burst incidents in active namespaces, to resolve in turn.
    resolvable: Vec<(String, String)>,
}

impl Open {
    /// What `large::sequential` and `large::burst_declare` declared.
    fn of(namespaces: &[String], burst: usize) -> Open {
        let n = namespaces.len();
        let quiet_namespaces = (n / QUIET_EVERY).max(1);
        let active = n - quiet_namespaces;
        let mut open = Open {
            quiet: HashSet::new(),
            rest: HashSet::new(),
            quiet_namespaces,
            active,
            linked: HashSet::new(),
            resolvable: Vec::new(),
        };
        let mut add = |ns: usize, name: String, pair: (usize, usize)| {
            open.linked.insert((ns, pair.0));
            open.linked.insert((ns, pair.1));
            let key = format!("{}/{name}", namespaces[ns]);
            if ns >= active {
                open.quiet.insert(key);
            } else {
                if name.starts_with("burst-") {
                    open.resolvable.push((namespaces[ns].clone(), name));
                }
                open.rest.insert(key);
            }
        };
        for k in 0..large::SEQUENTIAL {
            add(k % n, format!("seq-{k}"), large::SEQUENTIAL_PAIR);
        }
        // As `large::burst_declare` names them.
        let pairs = DEPLOYMENTS_PER_NAMESPACE / 2 - 1;
        for j in 0..burst {
            let pair = (j / n) % pairs;
            add(j % n, format!("burst-{j}"), (2 * pair, 2 * pair + 1));
        }
        // The last declared first: spread over the namespaces.
        open.resolvable.reverse();
        open
    }
}

/// One Deployment as churn left it.
struct Workload {
    ns: String,
    index: usize,
    deployment_uid: String,
    /// The current revision, its pod-template-hash and ReplicaSet uid.
    revision: u32,
    hash: String,
    rs_uid: String,
    /// The current pod of each slot.
    pods: Vec<String>,
    /// Pods created under the current ReplicaSet (names the next one).
    created: usize,
    /// Status updates made to each slot's pod, and its restarts.
    updates: Vec<u32>,
    restarts: Vec<i32>,
    /// A rollout is replacing its pods: the rest of churn leaves it alone.
    rolling: bool,
}

impl Workload {
    fn name(&self) -> String {
        seed::deployment_name(self.index)
    }

    fn version(&self) -> String {
        format!("v{}", self.revision)
    }
}

/// Slots of Deployment `index` whose pods were seeded healthy: churn
/// toggles and replaces only those, so the seeded failures stay.
fn healthy_slots(index: usize) -> Vec<usize> {
    (0..PODS_PER_DEPLOYMENT)
        .filter(|p| seed::health(index, *p) == Health::Running)
        .collect()
}

/// Every kind of churn, and what it keeps track of.
struct Churn {
    client: Client,
    workloads: Vec<Mutex<Workload>>,
    /// Indexes into `workloads`: the ones churn touches, split by whether
    /// an open incident names them, and the linked ones without seeded
    /// failures, which roll out in turn.
    churned: Vec<usize>,
    linked: Vec<usize>,
    unlinked: Vec<usize>,
    rollable: Vec<usize>,
    resolvable: Vec<(String, String)>,
    /// The namespaces churn touches.
    active: Vec<String>,
    /// Live samples: the namespaces whose `seq-<i>` incident links the
    /// live Deployment.
    live_namespaces: usize,
    /// The floor's minimal writer, beside the operator.
    floor: floor::Floor,
}

impl Churn {
    async fn new(client: Client, namespaces: &[String], open: &Open, floor: floor::Floor) -> Churn {
        // The uids the seeding left (the pods' and ReplicaSets' owners).
        let deployments = uids(
            Api::<Deployment>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await,
        );
        let replicasets = uids(
            Api::<ReplicaSet>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await,
        );
        let mut churn = Churn {
            client,
            workloads: Vec::new(),
            churned: Vec::new(),
            linked: Vec::new(),
            unlinked: Vec::new(),
            rollable: Vec::new(),
            resolvable: open.resolvable.clone(),
            active: namespaces[..open.active].to_vec(),
            live_namespaces: large::SEQUENTIAL.min(open.active),
            floor,
        };
        for (n, ns) in namespaces.iter().enumerate().take(open.active) {
            for index in 0..DEPLOYMENTS_PER_NAMESPACE {
                if index == LIVE_DEPLOYMENT {
                    continue;
                }
                let name = seed::deployment_name(index);
                let rs = format!("{name}-{}", seed::HASH);
                let (Some(deployment_uid), Some(rs_uid)) = (
                    deployments.get(&(ns.clone(), name.clone())),
                    replicasets.get(&(ns.clone(), rs)),
                ) else {
                    eprintln!("churn: {ns}/{name} or its ReplicaSet not found; left out");
                    continue;
                };
                let w = churn.workloads.len();
                churn.workloads.push(Mutex::new(Workload {
                    ns: ns.clone(),
                    index,
                    deployment_uid: deployment_uid.clone(),
                    revision: 2,
                    hash: seed::HASH.to_string(),
                    rs_uid: rs_uid.clone(),
                    pods: (0..PODS_PER_DEPLOYMENT)
                        .map(|p| seed::pod_name(&name, p))
                        .collect(),
                    created: PODS_PER_DEPLOYMENT,
                    updates: vec![0; PODS_PER_DEPLOYMENT],
                    restarts: vec![0; PODS_PER_DEPLOYMENT],
                    rolling: false,
                }));
                churn.churned.push(w);
                if open.linked.contains(&(n, index)) {
                    churn.linked.push(w);
                    if healthy_slots(index).len() == PODS_PER_DEPLOYMENT {
                        churn.rollable.push(w);
                    }
                } else {
                    churn.unlinked.push(w);
                }
            }
        }
        churn
    }

    /// The `n`-th pick from `among`, skipping Deployments being rolled out.
    fn pick(&self, among: &[usize], n: usize) -> Option<std::sync::MutexGuard<'_, Workload>> {
        (0..among.len()).find_map(|k| {
            let w = lock(&self.workloads[among[(n + k) % among.len()]]);
            (!w.rolling).then_some(w)
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<String, String> {
        seed::request(&self.client, method.clone(), path, content_type, body)
            .await
            .map_err(|e| {
                let e = e.to_string();
                // The message, without the Status it was parsed from.
                let e = e.split(" (Status {").next().unwrap_or_default();
                format!("{method} {path}: {e}")
            })
    }

    async fn merge(&self, path: &str, body: &Value) -> Result<String, String> {
        self.request(
            Method::PATCH,
            path,
            "application/merge-patch+json",
            Some(body),
        )
        .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<String, String> {
        self.request(Method::POST, path, "application/json", Some(body))
            .await
    }

    /// Deletes at once (there is no kubelet to finish a graceful delete).
    async fn delete(&self, path: &str) -> Result<String, String> {
        self.request(
            Method::DELETE,
            &format!("{path}?gracePeriodSeconds=0"),
            "application/json",
            None,
        )
        .await
    }

    // -- the kinds of churn ------------------------------------------------

    /// The `n`-th pod status update.
    async fn update_pod(&self, n: usize) -> Result<(), String> {
        let (path, status) = {
            let Some(mut w) = self.pick(&self.churned, n) else {
                return Err("every deployment is rolling out".into());
            };
            let slots = healthy_slots(w.index);
            let slot = slots[(n / self.churned.len()) % slots.len()];
            let variant = w.updates[slot] % 4;
            w.updates[slot] += 1;
            if variant == 2 {
                w.restarts[slot] += 1;
            }
            let name = w.pods[slot].clone();
            let base = seed::pod_status_of(&name, w.index, slot, Health::Running, &w.version());
            (
                format!("/api/v1/namespaces/{}/pods/{name}/status", w.ns),
                churned_status(base, variant, w.restarts[slot]),
            )
        };
        self.merge(&path, &json!({ "status": status })).await?;
        Ok(())
    }

    /// The `n`-th new Warning Event: about a pod of a linked Deployment,
    /// then of an unlinked one.
    async fn new_event(&self, n: usize) -> Result<(), String> {
        let among = if n.is_multiple_of(2) || self.unlinked.is_empty() {
            &self.linked
        } else {
            &self.unlinked
        };
        let (ns, pod) = {
            let w = lock(&self.workloads[among[(n / 2) % among.len()]]);
            let slot = (n / 2 / among.len()) % PODS_PER_DEPLOYMENT;
            (w.ns.clone(), w.pods[slot].clone())
        };
        let (reason, message) = if n % 4 < 2 {
            (
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
            )
        } else {
            (
                "BackOff",
                format!("Back-off restarting failed container app in pod {pod}_{ns}"),
            )
        };
        let stamp = second_stamp();
        let node = format!("node-{:03}", n % 120);
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.{:016x}", 0x18a0_0000_0000_0000u64 + n as u64),
                "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "apiVersion": "v1",
                "fieldPath": "spec.containers{app}"},
            "type": "Warning", "reason": reason, "message": message, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet", "reportingInstance": node
        });
        self.post(&format!("/api/v1/namespaces/{ns}/events"), &event)
            .await?;
        Ok(())
    }

    /// The `n`-th pod replacement: a healthy pod deleted, and one with a new
    /// name created under the same ReplicaSet.
    async fn replace_pod(&self, n: usize) -> Result<(), String> {
        let (ns, old, new, slot, index, hash, rs_uid, version) = {
            let Some(mut w) = self.pick(&self.churned, n.wrapping_mul(7919)) else {
                return Err("every deployment is rolling out".into());
            };
            let slots = healthy_slots(w.index);
            let slot = slots[(n / self.churned.len()) % slots.len()];
            let new = seed::pod_name_in(&w.name(), &w.hash, w.created);
            w.created += 1;
            let old = std::mem::replace(&mut w.pods[slot], new.clone());
            w.updates[slot] = 0;
            w.restarts[slot] = 0;
            (
                w.ns.clone(),
                old,
                new,
                slot,
                w.index,
                w.hash.clone(),
                w.rs_uid.clone(),
                w.version(),
            )
        };
        let owner = seed::Owner {
            index,
            hash: &hash,
            rs_uid: &rs_uid,
            version: &version,
        };
        self.replace(&ns, &owner, &old, &new, slot).await
    }

    /// Pod `old` deleted (and its PodMetrics), pod `new` of `owner` created
    /// running, with status and PodMetrics.
    async fn replace(
        &self,
        ns: &str,
        owner: &seed::Owner<'_>,
        old: &str,
        new: &str,
        slot: usize,
    ) -> Result<(), String> {
        let pods = format!("/api/v1/namespaces/{ns}/pods");
        let metrics = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
        self.delete(&format!("{pods}/{old}")).await?;
        // A pod replaced twice before its PodMetrics came has none.
        let _ = self.delete(&format!("{metrics}/{old}")).await;
        self.post(&pods, &seed::pod(ns, owner, new, slot)).await?;
        let status = seed::pod_status_of(new, owner.index, slot, Health::Running, owner.version);
        self.merge(
            &format!("{pods}/{new}/status"),
            &json!({ "status": status }),
        )
        .await?;
        self.post(&metrics, &seed::pod_metrics(ns, owner, new, slot))
            .await?;
        Ok(())
    }

    /// The `n`-th rollout: the next linked Deployment moves to a new
    /// revision, all its pods replaced.
    async fn roll_out(&self, n: usize) -> Result<(), String> {
        let Some(&w) = self.rollable.get(n % self.rollable.len().max(1)) else {
            return Err("no linked deployment to roll out".into());
        };
        let (ns, index, deployment_uid, old_hash, revision, pods) = {
            let mut w = lock(&self.workloads[w]);
            if w.rolling {
                return Err("still rolling out".into());
            }
            w.rolling = true;
            (
                w.ns.clone(),
                w.index,
                w.deployment_uid.clone(),
                w.hash.clone(),
                w.revision + 1,
                w.pods.clone(),
            )
        };
        let result = self
            .roll(w, &ns, index, &deployment_uid, &old_hash, revision, &pods)
            .await;
        lock(&self.workloads[w]).rolling = false;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn roll(
        &self,
        w: usize,
        ns: &str,
        index: usize,
        deployment_uid: &str,
        old_hash: &str,
        revision: u32,
        old_pods: &[String],
    ) -> Result<(), String> {
        let name = seed::deployment_name(index);
        let version = format!("v{revision}");
        // A pod-template-hash of its own per namespace, Deployment and
        // revision.
        let hash = format!(
            "{:09x}",
            hash_of(ns)
                .wrapping_add(index as u64 * 1_000_003)
                .wrapping_add(u64::from(revision) * 7_919)
                % 0xf_ffff_ffff
        );
        let apps = format!("/apis/apps/v1/namespaces/{ns}");
        let created = self
            .post(
                &format!("{apps}/replicasets"),
                &seed::replicaset(
                    ns,
                    index,
                    deployment_uid,
                    &seed::Revision {
                        hash: &hash,
                        number: revision,
                        version: &version,
                    },
                    PODS_PER_DEPLOYMENT,
                ),
            )
            .await?;
        let rs_uid = field(&created, &["metadata", "uid"])
            .ok_or_else(|| format!("the new ReplicaSet of {ns}/{name} has no uid"))?;
        let patched = self
            .merge(
                &format!("{apps}/deployments/{name}"),
                &json!({
                    "metadata": {"annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
                    "spec": {"template": {"spec": seed::pod_spec(&name, index, &version, None)}}
                }),
            )
            .await?;
        let generation = serde_json::from_str::<Value>(&patched)
            .ok()
            .and_then(|d| d["metadata"]["generation"].as_i64())
            .unwrap_or(1);
        {
            let mut workload = lock(&self.workloads[w]);
            workload.revision = revision;
            workload.hash = hash.clone();
            workload.rs_uid = rs_uid.clone();
            workload.created = 0;
        }
        let owner = seed::Owner {
            index,
            hash: &hash,
            rs_uid: &rs_uid,
            version: &version,
        };
        for (slot, old) in old_pods.iter().enumerate() {
            let new = seed::pod_name_in(&name, &hash, slot);
            self.replace(ns, &owner, old, &new, slot).await?;
            let mut workload = lock(&self.workloads[w]);
            workload.pods[slot] = new;
            workload.created = slot + 1;
            workload.updates[slot] = 0;
            workload.restarts[slot] = 0;
        }
        self.merge(
            &format!("{apps}/replicasets/{name}-{old_hash}"),
            &json!({"spec": {"replicas": 0}}),
        )
        .await?;
        self.merge(
            &format!("{apps}/deployments/{name}/status"),
            &json!({ "status": seed::deployment_status(&name, 0, &hash, generation) }),
        )
        .await?;
        Ok(())
    }

    /// The `n`-th incident declared during churn; its declared → enriched
    /// latency.
    async fn declare(&self, observer: &Observer, n: usize) -> Result<Duration, String> {
        let ns = &self.active[(n * 7) % self.active.len()];
        let name = format!("churn-{n}");
        let seen = observer.expect(ns, &name, enriched);
        let api: Api<klaxon::api::Incident> = Api::namespaced(self.client.clone(), ns);
        let at = Instant::now();
        api.create(
            &kube::api::PostParams::default(),
            &large::incident(ns, &name, DECLARED_PAIR),
        )
        .await
        .map_err(|e| format!("declaring {ns}/{name}: {e}"))?;
        // Never enriched within the deadline: a sample of "never".
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        Ok(large::latency(at, seen, deadline).await.0)
    }

    /// The `n`-th resolution, of a burst incident.
    async fn resolve(&self, n: usize) -> Result<(), String> {
        let Some((ns, name)) = self.resolvable.get(n) else {
            return Err("no open incident left to resolve".into());
        };
        self.merge(
            &format!("/apis/klaxon.dev/v1alpha1/namespaces/{ns}/incidents/{name}"),
            &json!({"spec": {"phase": "Resolved"}}),
        )
        .await?;
        Ok(())
    }

    /// The `n`-th live sample: a healthy pod of the live Deployment starts
    /// crash looping; the time until its incident shows it.
    async fn live(&self, observer: &Observer, n: usize) -> Result<Duration, String> {
        let i = n % self.live_namespaces.max(1);
        let slot = n / self.live_namespaces.max(1);
        if slot >= PODS_PER_DEPLOYMENT {
            return Err("every pod of the live deployment crash loops already".into());
        }
        let ns = &self.active[i];
        let deployment = seed::deployment_name(LIVE_DEPLOYMENT);
        let expected = slot as i32 + 1;
        let watched = deployment.clone();
        let seen = observer.expect(ns, &format!("seq-{i}"), move |incident| {
            large::crash_loops(incident, &watched) >= expected
        });
        let pod = seed::pod_name(&deployment, slot);
        let status = seed::pod_status(&deployment, LIVE_DEPLOYMENT, slot, Health::CrashLoop);
        let at = Instant::now();
        self.merge(
            &format!("/api/v1/namespaces/{ns}/pods/{pod}/status"),
            &json!({ "status": status }),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        Ok(large::latency(at, seen, deadline).await.0)
    }
}

/// The uid of every listed object, by namespace and name.
fn uids<K: Clone>(
    list: Result<ObjectList<PartialObjectMeta<K>>, kube::Error>,
) -> HashMap<(String, String), String> {
    let items = match list {
        Ok(list) => list.items,
        Err(error) => {
            eprintln!("churn: listing the seeded objects: {error}");
            Vec::new()
        }
    };
    items
        .into_iter()
        .filter_map(|o| {
            let m = o.metadata;
            Some(((m.namespace?, m.name?), m.uid?))
        })
        .collect()
}

fn hash_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A string field of a JSON response.
fn field(text: &str, path: &[&str]) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    path.iter()
        .try_fold(&value, |v, key| v.get(key))?
        .as_str()
        .map(str::to_string)
}

fn second_stamp() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A healthy pod's status, changed as the `variant`-th update (of four, in
/// turn) changes it: 0, the readiness probe fails; 1, ready again; 2, the
/// app container restarted (exit 1); 3, the container restarted in place,
/// ready (a new start time, nothing an incident reports).
fn churned_status(mut status: Value, variant: u32, restarts: i32) -> Value {
    let now = second_stamp();
    if let Some(app) = status["containerStatuses"]
        .as_array_mut()
        .and_then(|c| c.first_mut())
    {
        app["restartCount"] = json!(restarts);
        match variant {
            0 => app["ready"] = json!(false),
            2 => {
                app["state"] = json!({"running": {"startedAt": now}});
                app["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": "2026-11-24T13:01:00Z", "finishedAt": now}});
            }
            3 => app["state"] = json!({"running": {"startedAt": now}}),
            _ => {}
        }
    }
    if variant == 0
        && let Some(conditions) = status["conditions"].as_array_mut()
    {
        for c in conditions
            .iter_mut()
            .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
        {
            c["status"] = json!("False");
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!("containers with unready status: [app]");
            c["lastTransitionTime"] = json!(now);
        }
    }
    status
}

// ---------------------------------------------------------------------------
// Driving it

/// One change of churn, measured (a latency) or not.
type Work =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<Duration>, String>> + Send + 'static>>;

/// Makes the `n`-th change of one kind.
type Change = fn(Arc<Churn>, Arc<Observer>, usize) -> Work;

/// How one kind of churn went.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    /// Measured ones: their latencies.
    latencies: Mutex<Vec<Duration>>,
}

impl Tally {
    fn record<T>(&self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                lock(&self.first_error).get_or_insert(error);
                None
            }
        }
    }

    fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    fn samples(&self) -> Samples {
        let mut samples = Samples::default();
        for d in lock(&self.latencies).iter() {
            samples.push((*d, 0));
        }
        samples.finish()
    }
}

/// Runs `op(0)`, `op(1)`, ... one per tick of `every` from `start` until
/// `until`, each as its own task (at most `IN_FLIGHT` at once), and waits
/// for the last. A tick missed (the runtime busy, every slot in flight) is
/// caught up at once, so the rate holds over the window; none is started
/// after it.
async fn pace<F, Fut>(
    start: tokio::time::Instant,
    every: Duration,
    until: tokio::time::Instant,
    tally: Arc<Tally>,
    mut op: F,
) where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Option<Duration>, String>> + Send + 'static,
{
    let mut ticker = tokio::time::interval_at(start, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut n = 0;
    loop {
        if ticker.tick().await >= until {
            break;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        // Ticks missed while every slot was busy are caught up, but not
        // past the window: a change the cluster could not take in time is
        // not made, and the achieved rate shows it.
        if tokio::time::Instant::now() >= until {
            break;
        }
        let work = op(n);
        n += 1;
        let tally = tally.clone();
        tokio::spawn(async move {
            if let Some(Some(latency)) = tally.record(work.await) {
                lock(&tally.latencies).push(latency);
            }
            // The tally first: once every slot is back, no task holds it.
            drop(tally);
            drop(slot);
        });
    }
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
}

/// What the churn window measured.
struct Run {
    /// From the first tick until the last request was answered.
    window: (jiff::Timestamp, jiff::Timestamp),
    seconds: f64,
    /// How long the tickers ran.
    nominal: Duration,
    pod_updates: Arc<Tally>,
    events: Arc<Tally>,
    replacements: Arc<Tally>,
    rollouts: Arc<Tally>,
    declared: Arc<Tally>,
    resolved: Arc<Tally>,
    live: Arc<Tally>,
    /// Round trips through the floor's minimal writer.
    floor: Arc<Tally>,
    /// The operator's CPU seconds over the window; the control plane's and
    /// this benchmark's, for context.
    cpu: [f64; 3],
    /// Seconds into the window, VmRSS in MiB.
    rss: Vec<(f64, f64)>,
    peak_mib: f64,
    /// Seconds into the window, the operator's counters.
    counters: Vec<(f64, BTreeMap<String, f64>)>,
    load: (String, String),
    /// etcd compactions during the window, when its metrics could be read.
    compactions: Option<f64>,
}

async fn drive(
    churn: &Arc<Churn>,
    observer: &Arc<Observer>,
    operator: &Operator,
    controlplane: Option<u32>,
    churn_for: Duration,
) -> Run {
    let pids = [
        operator.pid(),
        controlplane.unwrap_or(0),
        std::process::id(),
    ];
    let load_before = loadavg();
    let compactions_before = etcd_compactions(controlplane);
    let cpu_before = pids.map(large::cpu_seconds);
    let from = jiff::Timestamp::now();
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let until = start + churn_for;
    let tallies: [Arc<Tally>; 8] = Default::default();
    let [
        pod_updates,
        events,
        replacements,
        rollouts,
        declared,
        resolved,
        live,
        floor,
    ] = &tallies;
    let per_second = |rate: f64| Duration::from_secs_f64(1.0 / rate);
    // One closure per kind of churn: the `n`-th change, as a task of its own.
    let each = |f: Change| {
        let (churn, observer) = (churn.clone(), observer.clone());
        move |n| f(churn.clone(), observer.clone(), n)
    };
    // Kind by kind: its first tick (seconds in), its period, its tally and
    // its change. Rollouts, declarations, resolutions and live samples are
    // staggered a few seconds apart.
    let go = |first: u64, every: Duration, tally: &Arc<Tally>, f: Change| {
        pace(
            start + Duration::from_secs(first),
            every,
            until,
            tally.clone(),
            each(f),
        )
    };
    let drivers = async {
        tokio::join!(
            go(0, per_second(POD_UPDATES), pod_updates, |c, _, n| {
                Box::pin(async move { c.update_pod(n).await.map(|()| None) })
            }),
            go(0, per_second(NEW_EVENTS), events, |c, _, n| {
                Box::pin(async move { c.new_event(n).await.map(|()| None) })
            }),
            go(0, per_second(REPLACEMENTS), replacements, |c, _, n| {
                Box::pin(async move { c.replace_pod(n).await.map(|()| None) })
            }),
            go(5, ROLLOUT_EVERY, rollouts, |c, _, n| {
                Box::pin(async move { c.roll_out(n).await.map(|()| None) })
            }),
            go(10, DECLARE_EVERY, declared, |c, o, n| {
                Box::pin(async move { c.declare(&o, n).await.map(Some) })
            }),
            go(25, RESOLVE_EVERY, resolved, |c, _, n| {
                Box::pin(async move { c.resolve(n).await.map(|()| None) })
            }),
            go(15, LIVE_EVERY, live, |c, o, n| {
                Box::pin(async move { c.live(&o, n).await.map(Some) })
            }),
            go(3, FLOOR_EVERY, floor, |c, _, n| {
                Box::pin(async move { c.floor.sample(n, DECLARED_PAIR).await.map(Some) })
            }),
        )
    };

    // RSS every 10 s and the operator's counters every minute, while the
    // drivers run.
    let pid = operator.pid();
    let port = operator.port;
    let sampling = async {
        let mut rss = Vec::new();
        let mut counters = Vec::new();
        let mut ticker = tokio::time::interval_at(start, RSS_EVERY);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_counters = start;
        loop {
            let at = ticker.tick().await;
            let into = at.duration_since(start).as_secs_f64();
            if at > until {
                break;
            }
            rss.push((into, Memory::of(pid).steady_mib));
            if at >= next_counters {
                next_counters += COUNTERS_EVERY;
                let scraped = tokio::task::spawn_blocking(move || counters_of(port))
                    .await
                    .unwrap_or_default();
                counters.push((into, scraped));
            }
            if at == until {
                break;
            }
        }
        (rss, counters)
    };
    let (_, (rss, counters)) = tokio::join!(drivers, sampling);
    let seconds = started.elapsed().as_secs_f64();
    let to = jiff::Timestamp::now();
    let cpu_after = pids.map(large::cpu_seconds);
    let compactions = etcd_compactions(controlplane)
        .zip(compactions_before)
        .map(|(after, before)| after - before);
    let peak_mib = Memory::of(pid).peak_mib;
    let final_counters = tokio::task::spawn_blocking(move || counters_of(port))
        .await
        .unwrap_or_default();
    let mut counters = counters;
    if counters.last().is_none_or(|(t, _)| *t < seconds - 5.0) {
        counters.push((seconds, final_counters));
    }
    Run {
        window: (from, to),
        seconds,
        nominal: churn_for,
        pod_updates: pod_updates.clone(),
        events: events.clone(),
        replacements: replacements.clone(),
        rollouts: rollouts.clone(),
        declared: declared.clone(),
        resolved: resolved.clone(),
        live: live.clone(),
        floor: floor.clone(),
        cpu: [0, 1, 2].map(|i| cpu_after[i] - cpu_before[i]),
        rss,
        peak_mib,
        counters,
        load: (load_before, loadavg()),
        compactions,
    }
}

/// The operator's reconcile, conflict and dropped-Event counters, by their
/// full sample name.
fn counters_of(port: u16) -> BTreeMap<String, f64> {
    let Some(response) = support::operator::http_get(port, "/metrics") else {
        return BTreeMap::new();
    };
    response
        .body
        .lines()
        .filter(|line| {
            [
                "klaxon_reconciliations_total",
                "klaxon_status_conflicts_total",
                "klaxon_events_dropped_total",
                "klaxon_watch_errors_total",
            ]
            .iter()
            .any(|name| line.starts_with(name))
        })
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The compactions etcd has finished so far, from its `/metrics` (served
/// on its client port, which the control plane process `pid` listens on
/// beside the apiserver's; etcd logs errors only).
fn etcd_compactions(pid: Option<u32>) -> Option<f64> {
    const SAMPLE: &str = "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count";
    let pid = pid?;
    let sockets: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let listening: Vec<u16> = tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !sockets.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect();
    listening.into_iter().find_map(|port| {
        support::operator::http_get(port, "/metrics")?
            .body
            .lines()
            .find_map(|line| line.strip_prefix(SAMPLE)?.trim().parse().ok())
    })
}

struct Report {
    namespaces: usize,
    burst: usize,
    floor: Samples,
    burst_floor: Samples,
    sequential: Samples,
    burst_latencies: Samples,
    open: Open,
    run: Run,
    requests: Vec<audit::Request>,
}

fn report(r: &Report) -> bool {
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    let run = &r.run;
    // Rates over the window the tickers ran; the rest until the last
    // request they started was answered.
    let nominal = run.nominal.as_secs_f64().max(1e-9);
    let secs = run.seconds.max(1e-9);
    let minutes = secs / 60.0;
    let in_window = |q: &audit::Request| q.time >= run.window.0 && q.time <= run.window.1;
    let key = |q: &audit::Request| {
        format!(
            "{}/{}",
            q.namespace.as_deref().unwrap_or_default(),
            q.name.as_deref().unwrap_or_default()
        )
    };
    let ratio = |a: Duration, b: Duration| {
        if a == Duration::MAX || b == Duration::MAX || b.is_zero() {
            f64::INFINITY
        } else {
            a.as_secs_f64() / b.as_secs_f64()
        }
    };

    // 1. Rates.
    let mut valid = true;
    let mut rate_rows = Vec::new();
    for (what, tally, per_second) in [
        ("pod status updates", &run.pod_updates, POD_UPDATES),
        ("new Warning Events", &run.events, NEW_EVENTS),
        ("pod replacements", &run.replacements, REPLACEMENTS),
        (
            "rollouts of a linked Deployment",
            &run.rollouts,
            1.0 / ROLLOUT_EVERY.as_secs_f64(),
        ),
        (
            "incidents declared",
            &run.declared,
            1.0 / DECLARE_EVERY.as_secs_f64(),
        ),
        (
            "incidents resolved",
            &run.resolved,
            1.0 / RESOLVE_EVERY.as_secs_f64(),
        ),
    ] {
        let requested = (per_second * nominal).floor().max(1.0);
        let share = tally.done() as f64 / requested;
        let ok = share >= MIN_RATE_SHARE;
        valid &= ok;
        let rate = if per_second >= 1.0 {
            format!(
                "{:.1}/s of {per_second:.0}/s",
                tally.done() as f64 / nominal
            )
        } else {
            format!(
                "{:.1}/min of {:.0}/min",
                tally.done() as f64 / nominal * 60.0,
                per_second * 60.0
            )
        };
        rate_rows.push(format!(
            "| churn: {what} | {rate} ({} done, {} failed{}) | ≥ {:.0}% | {} |",
            large::thousands(tally.done()),
            large::thousands(tally.failed()),
            lock(&tally.first_error)
                .as_deref()
                .map(|e| format!("; first: {}", e.replace('|', "/")))
                .unwrap_or_default(),
            MIN_RATE_SHARE * 100.0,
            if ok { "ok" } else { "INVALID" }
        ));
    }

    // 2-3. CPU and memory.
    let cpu = |i: usize| run.cpu[i] / secs * 100.0;
    let cpu_ok = cpu(0) <= TARGET_CPU_PERCENT;
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let first_minute = mean(
        run.rss
            .iter()
            .filter(|(t, _)| *t < 60.0)
            .map(|(_, m)| *m)
            .collect(),
    );
    // The samples end with the tickers' window.
    let last = run.rss.last().map(|(t, _)| *t).unwrap_or(0.0);
    let last_minute = mean(
        run.rss
            .iter()
            .filter(|(t, _)| *t > last - 60.0)
            .map(|(_, m)| *m)
            .collect(),
    );
    let growth = last_minute / first_minute - 1.0;
    let growth_ok = growth <= TARGET_RSS_GROWTH;
    let rss_max = run.rss.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    let rss_ok = rss_max <= TARGET_RSS_MIB;

    // 4-5. Latencies.
    let live = run.live.samples();
    let live_ok = !live.latencies.is_empty() && live.p(99.0) <= TARGET_LIVE_P99;
    let declared = run.declared.samples();
    // Judged against the floor's writer during churn, beside the operator
    // on the same busy apiserver.
    let floor_during = run.floor.samples();
    let declared_ratio = ratio(declared.p(99.0), floor_during.p(99.0));
    let declared_ok =
        !declared.latencies.is_empty() && declared_ratio <= TARGET_DECLARED_FLOOR_RATIO;

    // 6. Requests.
    let is_poll = |q: &audit::Request| q.api_group.as_deref() == Some("metrics.k8s.io");
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for q in r.requests.iter().filter(|q| !is_poll(q)) {
        let entry = per_kind.entry(large::resource_label(q)).or_default();
        match q.verb.as_str() {
            "list" => entry.0 += 1,
            "watch" => entry.1 += 1,
            _ => {}
        }
    }
    per_kind.retain(|_, (lists, watches)| *lists + *watches > 0);
    let relists: usize = per_kind.values().map(|(lists, _)| lists).sum();
    let lists_ok = relists == 0;
    let mut by_resource: BTreeMap<(String, String), usize> = BTreeMap::new();
    for q in r.requests.iter().filter(|q| in_window(q)) {
        *by_resource
            .entry((q.verb.clone(), large::resource_label(q)))
            .or_default() += 1;
    }

    // 7. Status writes.
    let writes: Vec<&audit::Request> = r
        .requests
        .iter()
        .filter(|q| in_window(q) && large::is_status_write(q))
        .collect();
    let quiet_writes = writes
        .iter()
        .filter(|q| r.open.quiet.contains(&key(q)))
        .count();
    let quiet_per_minute = quiet_writes as f64 / r.open.quiet.len().max(1) as f64 / minutes;
    let quiet_ok = !r.open.quiet.is_empty() && quiet_per_minute <= TARGET_QUIET_WRITES_PER_MINUTE;
    let mut buckets: HashMap<(String, u64), usize> = HashMap::new();
    let mut rest_writes = 0;
    for q in writes.iter().filter(|q| r.open.rest.contains(&key(q))) {
        rest_writes += 1;
        let into = q.time.duration_since(run.window.0).as_secs_f64().max(0.0);
        *buckets.entry((key(q), (into / 10.0) as u64)).or_default() += 1;
    }
    let tens = (secs / 10.0).max(1.0);
    let rest_per_10s = rest_writes as f64 / r.open.rest.len().max(1) as f64 / tens;
    let rest_ok = rest_per_10s <= TARGET_WRITES_PER_10S;
    let max_in_10s = buckets.values().copied().max().unwrap_or(0);
    let over_one = buckets.values().filter(|n| **n > 1).count() as f64
        / (r.open.rest.len().max(1) as f64 * tens.ceil())
        * 100.0;
    let event_creates = r
        .requests
        .iter()
        .filter(|q| in_window(q) && large::is_event_create(q))
        .count();

    let short = run.seconds < 2.0 * COMPACTION_INTERVAL.as_secs_f64();

    println!();
    println!(
        "Klaxon enrichment benchmark, churn tier: {} namespaces ({} never touched), {} deployments, {} pods, {} warning events seeded; {} incidents open; {:.0} s of churn; load average {} before, {} after",
        r.namespaces,
        r.open.quiet_namespaces,
        large::thousands(r.namespaces * DEPLOYMENTS_PER_NAMESPACE),
        large::thousands(r.namespaces * DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT),
        large::thousands(r.namespaces * DEPLOYMENTS_PER_NAMESPACE * seed::EVENTS_PER_DEPLOYMENT),
        r.open.quiet.len() + r.open.rest.len(),
        run.seconds,
        run.load.0,
        run.load.1
    );
    println!();
    println!("| measure | value | target | |");
    println!("|---|---|---|---|");
    for row in &rate_rows {
        println!("{row}");
    }
    println!(
        "| floor: create → one status merge patch → watch, before the operator started, p50 / p99 ({} round trips) | {} / {} | | |",
        r.floor.latencies.len(),
        show(r.floor.p(50.0)),
        show(r.floor.p(99.0))
    );
    println!(
        "| before churn: {} declared one at a time, p50 / p99 | {} / {} | | |",
        r.sequential.latencies.len(),
        show(r.sequential.p(50.0)),
        show(r.sequential.p(99.0))
    );
    println!(
        "| before churn: {} declared at once, p99; the burst floor's p99 | {}; {} ({:.1}×) | | |",
        r.burst,
        show(r.burst_latencies.p(99.0)),
        show(r.burst_floor.p(99.0)),
        ratio(r.burst_latencies.p(99.0), r.burst_floor.p(99.0))
    );
    println!(
        "| operator CPU over the window (control plane / this benchmark) | {:.1}% of a core ({:.0}% / {:.0}%) | ≤ {TARGET_CPU_PERCENT:.0}% | {} |",
        cpu(0),
        cpu(1),
        cpu(2),
        mark(cpu_ok)
    );
    println!(
        "| RSS, every 10 s: first minute / last minute (mean) | {first_minute:.1} / {last_minute:.1} MiB ({:+.1}%) | growth ≤ {:.0}% | {} |",
        growth * 100.0,
        TARGET_RSS_GROWTH * 100.0,
        mark(growth_ok)
    );
    println!(
        "| RSS, peak of the 10 s samples (VmHWM since start: {:.1} MiB) | {rss_max:.1} MiB | ≤ {TARGET_RSS_MIB:.0} MiB | {} |",
        run.peak_mib,
        mark(rss_ok)
    );
    println!(
        "| live: a linked pod starts crash looping → its incident shows it, p50 / p99 ({} samples, {} not shown within 30 s) | {} / {} | p99 ≤ {} | {} |",
        live.latencies.len(),
        live.latencies
            .iter()
            .filter(|d| **d == Duration::MAX)
            .count(),
        show(live.p(50.0)),
        show(live.p(99.0)),
        show(TARGET_LIVE_P99),
        mark(live_ok)
    );
    println!(
        "| declared during churn → enriched, p50 / p99 ({} incidents, {} not within 60 s) | {} / {} | | |",
        declared.latencies.len(),
        declared
            .latencies
            .iter()
            .filter(|d| **d == Duration::MAX)
            .count(),
        show(declared.p(50.0)),
        show(declared.p(99.0))
    );
    println!(
        "| floor during churn: the same round trip beside the operator, p50 / p99 ({} round trips, {} not within 60 s) | {} / {} | | |",
        floor_during.latencies.len(),
        floor_during
            .latencies
            .iter()
            .filter(|d| **d == Duration::MAX)
            .count(),
        show(floor_during.p(50.0)),
        show(floor_during.p(99.0))
    );
    println!(
        "| declared → enriched p99 / floor p99 during churn | {declared_ratio:.1}× | ≤ {TARGET_DECLARED_FLOOR_RATIO:.0}× | {} |",
        mark(declared_ok)
    );
    println!(
        "| LISTs of watched kinds after the initial sync (etcd compactions in the window: {}{}) | {relists} | 0 | {} |",
        run.compactions
            .map(|n| format!("{n:.0}"))
            .unwrap_or_else(|| "unknown".into()),
        if short {
            format!(
                "; the window is shorter than two compaction intervals of {} s",
                COMPACTION_INTERVAL.as_secs()
            )
        } else {
            String::new()
        },
        mark(lists_ok)
    );
    println!(
        "| status writes to the {} incidents whose facts did not change, per incident per minute | {quiet_per_minute:.2} ({quiet_writes} writes) | 0 | {} |",
        r.open.quiet.len(),
        mark(quiet_ok)
    );
    println!(
        "| status writes to the other {} incidents open before churn, per incident per 10 s (most in one 10 s: {max_in_10s}; incident-10 s windows with more than one: {over_one:.1}%) | {rest_per_10s:.2} ({} writes) | ≤ {TARGET_WRITES_PER_10S:.0} | {} |",
        r.open.rest.len(),
        large::thousands(rest_writes),
        mark(rest_ok)
    );
    println!(
        "| all status writes / Event creates by the operator, per minute | {:.0} / {:.0} | | |",
        writes.len() as f64 / minutes,
        event_creates as f64 / minutes
    );
    println!();

    println!(
        "Per minute of churn: the operator's counters (`/metrics`) and its writes (audit log):"
    );
    println!();
    let names: Vec<String> = run
        .counters
        .iter()
        .flat_map(|(_, c)| c.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    print!("| minute |");
    for name in &names {
        print!(
            " {} |",
            name.trim_end_matches("_total").replace("_total{", "{")
        );
    }
    println!(" status writes | Event creates |");
    println!("|---|{}---|---|", "---|".repeat(names.len()));
    for pair in run.counters.windows(2) {
        let ((t0, a), (t1, b)) = (&pair[0], &pair[1]);
        let span = |q: &audit::Request| {
            let into = q.time.duration_since(run.window.0).as_secs_f64();
            into >= *t0 && into < *t1
        };
        print!("| {:.0}–{:.0} s |", t0, t1);
        for name in &names {
            let delta = b.get(name).copied().unwrap_or(0.0) - a.get(name).copied().unwrap_or(0.0);
            print!(" {delta:.0} |");
        }
        println!(
            " {} | {} |",
            writes.iter().filter(|q| span(q)).count(),
            r.requests
                .iter()
                .filter(|q| large::is_event_create(q) && span(q))
                .count()
        );
    }
    println!();

    println!(
        "RSS every 10 s (MiB): {}",
        run.rss
            .iter()
            .map(|(_, m)| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!(
        "LISTs and WATCHes per watched kind after the initial sync (audit log; metrics.k8s.io is polled by design):"
    );
    println!();
    println!("| kind | LIST | WATCH |");
    println!("|---|---|---|");
    for (kind, (lists, watches)) in &per_kind {
        println!("| {kind} | {lists} | {watches} |");
    }
    println!();
    println!("Operator API requests during churn, per minute (audit log, User-Agent klaxon/*):");
    println!();
    println!("| verb | resource | per minute | total |");
    println!("|---|---|---|---|");
    for ((verb, resource), n) in &by_resource {
        println!(
            "| {verb} | {resource} | {:.1} | {} |",
            *n as f64 / minutes,
            large::thousands(*n)
        );
    }
    println!();
    if !valid {
        println!(
            "INVALID RUN: a churn rate fell under {:.0}% of the requested rate.",
            MIN_RATE_SHARE * 100.0
        );
    }
    valid
        && cpu_ok
        && growth_ok
        && rss_ok
        && live_ok
        && declared_ok
        && lists_ok
        && quiet_ok
        && rest_ok
}
