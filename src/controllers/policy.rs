//! Status of ResponsePolicies and ClusterResponsePolicies: whether each is
//! in effect (`Ready`), why not, and how many open incidents it governs.
//!
//! Policy statuses depend on other objects (the baselines over a team
//! policy, the namespace labels, the incidents), so one loop recomputes
//! them all from the watch caches whenever any of those changed, batching
//! bursts, and writes only the statuses that differ.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::Store,
};

use crate::{api::policy::Receiver, integrations::secrets::Secrets};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{
    api::{self, ClusterResponsePolicy, Incident, Phase, PolicyStatus, ResponsePolicy},
    cluster::{cache::Caches, shards::Shards},
    domain::{policy, readiness},
};

/// How long a burst of changes may gather before statuses are recomputed.
const BATCH: Duration = Duration::from_millis(250);

/// How often every policy status is recomputed even without a change.
const RESYNC: Duration = Duration::from_secs(60);

/// How often, while some policy's receiver Secret is missing, statuses
/// are recomputed (Secrets are not watched): a Secret created to fix it
/// shows within seconds.
const RECHECK: Duration = Duration::from_secs(5);

pub async fn run(
    client: Client,
    caches: Caches,
    secrets: Secrets,
    operator_namespace: String,
    wake: Arc<Notify>,
    shards: Shards,
    shutdown: CancellationToken,
) {
    // A shard gained gets its policies' statuses at once.
    {
        let (wake, shutdown) = (wake.clone(), shutdown.clone());
        let mut changes = Box::pin(shards.changes());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = changes.next() => match changed {
                        Some(_) => wake.notify_one(),
                        None => return,
                    },
                }
            }
        });
    }
    // Deleted incidents trigger no reconcile; the periodic pass catches
    // what no change announced.
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut missing_any = false;
    loop {
        let recheck = async {
            if missing_any {
                tokio::time::sleep(RECHECK).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = resync.tick() => {}
            _ = recheck => {}
        }
        missing_any = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(BATCH) => {}
        }
        let now = Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default());
        let open = open_incidents(&caches.incidents);

        for rp in caches.policies.state() {
            let namespace = rp.namespace().unwrap_or_default();
            // Each team policy's status by the owner of its namespace.
            if !shards.owns(&namespace) {
                continue;
            }
            let missing = missing_secrets(&secrets, &rp.spec.receivers, &namespace).await;
            missing_any |= !missing.is_empty();
            let egress = caches.effective_policy(&namespace, "").egress;
            let denied = egress_denied(&secrets, &rp.spec, &namespace, &egress).await;
            let status = response_policy_status(&rp, &caches, &open, missing, denied, &now);
            if rp.status.as_ref() != Some(&status) {
                let api = Api::namespaced(client.clone(), &rp.namespace().unwrap_or_default());
                write(&api, rp.as_ref(), status).await;
            }
        }
        // Baselines' statuses by the holder of shard 0.
        let baselines = if shards.owns_shard(0) {
            caches.cluster_policies.state()
        } else {
            Vec::new()
        };
        for crp in baselines {
            let missing =
                missing_secrets(&secrets, &crp.spec.policy.receivers, &operator_namespace).await;
            missing_any |= !missing.is_empty();
            // Its own URLs against its own list (and the metadata default).
            let mut egress = crate::domain::egress::Egress::default();
            if let Some(allowed) = &crp.spec.policy.egress {
                egress.add(format!("ClusterResponsePolicy {}", crp.name_any()), allowed);
            }
            let denied =
                egress_denied(&secrets, &crp.spec.policy, &operator_namespace, &egress).await;
            let status = cluster_policy_status(&crp, &caches, &open, missing, denied, &now);
            if crp.status.as_ref() != Some(&status) {
                write(&Api::all(client.clone()), crp.as_ref(), status).await;
            }
        }
    }
}

/// Receivers whose URL Secret (or its key) cannot be had, each named with
/// why, e.g. `team-webhook: Secret shop/hooks has no key team`.
async fn missing_secrets(
    secrets: &Secrets,
    receivers: &[Receiver],
    namespace: &str,
) -> Vec<String> {
    let mut missing = Vec::new();
    for receiver in receivers {
        let Some(reference) = receiver.secret_ref() else {
            continue;
        };
        if let Err(error) = secrets
            .check(namespace, &reference.name, &reference.key)
            .await
        {
            missing.push(format!("{}: {error}", receiver.name));
        }
    }
    missing
}

/// The Prometheus URL and receiver URLs of `spec` that `egress` refuses
/// before any connection, each naming its field and host. Receiver URLs
/// are read from their Secrets (`secret_namespace`); one that cannot be
/// read is reported as missing, not here.
async fn egress_denied(
    secrets: &Secrets,
    spec: &api::policy::ResponsePolicySpec,
    secret_namespace: &str,
    egress: &crate::domain::egress::Egress,
) -> Vec<String> {
    let mut denied = Vec::new();
    let mut check = |field: String, url: &str| {
        if let Ok(url) = reqwest::Url::parse(url.trim())
            && let Err(why) = egress.check(&url)
        {
            denied.push(format!("{field}: {why}"));
        }
    };
    if let Some(prometheus) = spec.enrichment.as_ref().and_then(|e| e.prometheus.as_ref()) {
        check("spec.enrichment.prometheus.url".into(), &prometheus.url);
    }
    for receiver in &spec.receivers {
        let field = format!("spec.receivers[{}]", receiver.name);
        if let Some(pagerduty) = &receiver.pagerduty {
            let url = pagerduty
                .url
                .as_deref()
                .unwrap_or(api::policy::PAGERDUTY_EVENTS_URL);
            check(field, url);
        } else if let Some(reference) = receiver.secret_ref()
            && let Ok(bytes) = secrets
                .value(secret_namespace, &reference.name, &reference.key)
                .await
        {
            check(field, &String::from_utf8_lossy(&bytes));
        }
    }
    denied
}

/// Open (not Resolved) incidents per namespace.
fn open_incidents(incidents: &Store<Incident>) -> BTreeMap<String, i32> {
    let mut open = BTreeMap::new();
    for incident in incidents.state() {
        if incident.spec.phase != Phase::Resolved
            && let Some(ns) = incident.namespace()
        {
            *open.entry(ns).or_insert(0) += 1;
        }
    }
    open
}

fn response_policy_status(
    rp: &ResponsePolicy,
    caches: &Caches,
    open: &BTreeMap<String, i32>,
    missing: Vec<String>,
    egress_denied: Vec<String>,
    now: &Time,
) -> PolicyStatus {
    let namespace = rp.namespace().unwrap_or_default();
    let siblings = Caches::lookup(&caches.policies, &caches.policies_by_namespace, &namespace);
    let (primary, _) = policy::primary(siblings.iter().map(|p| p.as_ref()));
    let labels = caches.namespace_labels(&namespace);
    let cluster_policies = caches.cluster_policies.state();
    let baselines = policy::baselines_for(cluster_policies.iter().map(|p| p.as_ref()), &labels);
    let ladder = policy::baseline_ladder(&baselines);
    let effective = caches.effective_policy(&namespace, "");
    let facts = readiness::TeamFacts {
        governed_by: primary
            .filter(|p| p.metadata.uid != rp.metadata.uid)
            .map(|p| p.name_any()),
        violations: policy::violations(ladder.as_deref(), &rp.spec),
        baselines: baselines
            .iter()
            .filter_map(|b| b.metadata.name.clone())
            .collect(),
        invalid_rules: crate::domain::alerts::rule_problems(
            &rp.spec.alerts,
            rp.spec.heartbeat.as_ref(),
            Some(&effective.ladder_names()),
        ),
        missing_secrets: missing,
        egress_denied,
        namespace: namespace.clone(),
    };
    readiness::status(
        &rp.status.clone().unwrap_or_default(),
        rp.metadata.generation,
        &readiness::team(&facts),
        open.get(&namespace).copied().unwrap_or(0),
        now,
    )
}

fn cluster_policy_status(
    crp: &ClusterResponsePolicy,
    caches: &Caches,
    open: &BTreeMap<String, i32>,
    missing: Vec<String>,
    egress_denied: Vec<String>,
    now: &Time,
) -> PolicyStatus {
    let selected: Vec<String> = caches
        .namespaces
        .state()
        .iter()
        .filter(|ns| {
            policy::selects(
                crp.spec.namespace_selector.as_ref(),
                &ns.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .map(|ns| ns.name_any())
        .collect();
    // A baseline's own ladder bounds every namespace it governs.
    let ladder: Vec<&str> = crp
        .spec
        .policy
        .severities
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    let facts = readiness::BaselineFacts {
        invalid_selector: crp
            .spec
            .namespace_selector
            .clone()
            .map(kube::core::Selector::try_from)
            .and_then(Result::err)
            .map(|e| e.to_string()),
        invalid_rules: crate::domain::alerts::rule_problems(
            &crp.spec.policy.alerts,
            crp.spec.policy.heartbeat.as_ref(),
            (!ladder.is_empty()).then_some(ladder.as_slice()),
        ),
        missing_secrets: missing,
        egress_denied,
        selected: selected.len(),
    };
    let governed = selected
        .iter()
        .map(|ns| open.get(ns).copied().unwrap_or(0))
        .sum();
    readiness::status(
        &crp.status.clone().unwrap_or_default(),
        crp.metadata.generation,
        &readiness::baseline(&facts),
        governed,
        now,
    )
}

async fn write<K>(api: &Api<K>, object: &K, status: PolicyStatus)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = object.name_any();
    let patch = serde_json::json!({
        "apiVersion": api::API_VERSION,
        "kind": K::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &name,
            &PatchParams::apply(super::incident::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => debug!(kind = %K::kind(&()), %name, "policy status updated"),
        // Deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(error) => warn!(kind = %K::kind(&()), %name, %error, "cannot write policy status"),
    }
}
