//! Sharding (`--shards 4 --shard-leases`), under exactly the chart's RBAC:
//! two replicas share four shards of namespaces through Leases; one is
//! killed, and the other takes its shards over once their Leases expire.
//! Every incident is paged exactly once across the takeover, and the
//! apiserver's audit log shows that no incident's status was ever written
//! by both replicas: before the kill by its shard's holder only, after it
//! by the survivor only. Heartbeats that reach the replica that does not
//! own their namespace keep its owner quiet.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use klaxon::{
    api::{Incident, Phase},
    domain::shards::shard_of,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    alerts::{TOKEN, Watchdog, heartbeats, open, silences},
    support::{
        self, Cluster, audit, chart,
        fixtures::{self, apply, secret, wait_for},
        operator::{self, Operator},
        receiver::{Receiver, Request},
    },
};

const WAIT: Duration = Duration::from_secs(90);
const SHARDS: u32 = 4;
/// Short, so the takeover shows within a test's patience.
const LEASE: Duration = Duration::from_secs(5);
/// The time to take a Lease once it expired: the lease manager's forced
/// release waits up to 1 s, then a few requests on a busy machine.
const TAKE: Duration = Duration::from_secs(5);

/// The holder of each shard Lease, as the apiserver has it now.
async fn holders(leases: &Api<Lease>) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        let holder = leases
            .get_opt(&format!("klaxon-shard-{shard}"))
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty());
        out.push(holder);
    }
    out
}

async fn wait_holders(
    leases: &Api<Lease>,
    what: &str,
    want: impl Fn(&[Option<String>]) -> bool,
) -> Vec<Option<String>> {
    let found = support::eventually(WAIT, || async {
        let now = holders(leases).await;
        want(&now).then_some(now)
    })
    .await;
    match found {
        Some(found) => found,
        None => panic!(
            "{what}: the shard Leases are held by {:?}",
            holders(leases).await
        ),
    }
}

fn held_by(holders: &[Option<String>], who: &str) -> usize {
    holders.iter().filter(|h| h.as_deref() == Some(who)).count()
}

/// The sum of every sample of `name` on the operator at `port`.
fn sum(port: u16, name: &str) -> f64 {
    let prefix = format!("{name}{{");
    operator::http_get(port, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn pages(requests: &[Request], token: &str, trigger: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.path.ends_with(&format!("/{token}")) && r.body["trigger"] == trigger)
        .count()
}

/// Which replicas (by the identity in their User-Agent) wrote `resource`
/// of `ns/name`, before and after `at`.
fn writers(
    requests: &[audit::Request],
    resource: &str,
    ns: &str,
    name: &str,
    at: Timestamp,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut before, mut after) = (BTreeSet::new(), BTreeSet::new());
    for request in requests.iter().filter(|r| {
        r.is("patch", Some("klaxon.dev"), resource)
            && r.in_namespace(ns)
            && r.name.as_deref() == Some(name)
    }) {
        let replica = request
            .user_agent
            .rsplit_once('(')
            .map(|(_, id)| id.trim_end_matches(')').to_string())
            .unwrap_or_else(|| request.user_agent.clone());
        if request.time < at {
            before.insert(replica);
        } else {
            after.insert(replica);
        }
    }
    (before, after)
}

/// The chart with `SHARDS` shards on `LEASE`-long Leases and fast clocks,
/// and `values` besides.
fn install(cluster: &Cluster, system: &str, values: &[&str]) {
    let (shards, lease, clocks) = (
        format!("shards={SHARDS}"),
        format!("shardLeaseDuration={}s", LEASE.as_secs()),
        chart::fast_clocks(),
    );
    let mut all = vec!["--set", &shards, "--set", &lease, "--set-json", &clocks];
    all.extend_from_slice(values);
    chart::install(cluster, "klaxon", system, &all);
}

struct Team {
    ns: String,
    token: String,
    shard: u32,
}

/// Teams until every shard has two, each with a Deployment and an
/// incident about it.
async fn teams(cluster: &Cluster, client: &kube::Client, receiver: &Receiver) -> Vec<Team> {
    let mut teams: Vec<Team> = Vec::new();
    let per_shard = |teams: &[Team], shard| teams.iter().filter(|t| t.shard == shard).count();
    for _ in 0..64 {
        if (0..SHARDS).all(|s| per_shard(&teams, s) >= 2) {
            break;
        }
        let (ns, token) =
            fixtures::routed_team(cluster, client, receiver, "shard", "", |_| String::new()).await;
        let shard = shard_of(&ns, SHARDS);
        fixtures::deployment(client, &ns, "api", &[], (2, 1), "1", "api:v1").await;
        teams.push(Team { ns, token, shard });
    }
    assert!(
        (0..SHARDS).all(|s| per_shard(&teams, s) >= 2),
        "64 namespaces did not cover {SHARDS} shards"
    );
    for team in &teams {
        apply(
            cluster,
            &format!(
                "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: outage, namespace: {}}}\nspec: {{title: API down, severity: SEV2, affected: {{deployments: [{{name: api}}]}}}}\n",
                team.ns
            ),
        );
    }
    teams
}

#[tokio::test]
async fn two_replicas_share_the_shards_and_one_takes_over_when_the_other_dies() {
    let cluster = Cluster::start_bare("sharding");
    cluster.install_crds();
    let client = cluster.client().await;
    let system = support::namespace(&client, "klaxon-system").await;
    install(&cluster, &system, &[]);
    // POD_NAME is <release>-<name>: the replicas' identities.
    let (a, b) = ("klaxon-shard-a", "klaxon-shard-b");
    let mut first = chart::start_operator(&cluster, &client, "klaxon", &system, "shard-a").await;
    let mut second = chart::start_operator(&cluster, &client, "klaxon", &system, "shard-b").await;
    first.wait_ready(WAIT);
    second.wait_ready(WAIT);

    // Two shards each, whoever started first.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &system);
    let balanced = wait_holders(&leases, "two shards each", |h| {
        held_by(h, a) == 2 && held_by(h, b) == 2
    })
    .await;
    // Each says so once it sees its Leases renewed.
    let owned = |replica: &Operator| replica.metric("klaxon_shards_owned");
    assert!(
        support::poll_until(WAIT, || (owned(&first) == Some(2.0)
            && owned(&second) == Some(2.0))
        .then_some(()))
        .is_some(),
        "klaxon_shards_owned: {:?} and {:?}",
        owned(&first),
        owned(&second)
    );

    let receiver = Receiver::start().await;
    let teams = teams(&cluster, &client, &receiver).await;
    for team in &teams {
        wait_for(&client, &team.ns, "outage", WAIT, "enrichment", |i| {
            i.status.as_ref().is_some_and(|s| {
                s.deployments
                    .iter()
                    .any(|d| d.name == "api" && d.found && d.ready_replicas == Some(1))
            })
        })
        .await;
        fixtures::wait_policy_ready(&client, &team.ns, "team", WAIT).await;
    }
    receiver
        .wait_for(WAIT, "every incident's Declared page", |r| {
            teams.iter().all(|t| pages(r, &t.token, "Declared") == 1)
        })
        .await;
    // The gauges: each replica counts its own shards' incidents only.
    let open = |replica: &Operator| sum(replica.port, "klaxon_incidents_open");
    let counted = support::eventually(WAIT, || async {
        let both = open(&first) + open(&second);
        (both == teams.len() as f64).then_some(both)
    })
    .await;
    assert_eq!(
        counted,
        Some(teams.len() as f64),
        "open incidents over both replicas: {} + {}",
        open(&first),
        open(&second)
    );
    assert!(open(&first) > 0.0 && open(&second) > 0.0);

    // A node failure: SIGKILL, no release.
    let killed_at = Timestamp::now();
    let started = Instant::now();
    first.kill();
    let taken = wait_holders(&leases, "the survivor holds every shard", |h| {
        held_by(h, b) == SHARDS as usize
    })
    .await;
    let takeover = started.elapsed();
    assert!(
        support::poll_until(WAIT, || (owned(&second) == Some(4.0)).then_some(())).is_some(),
        "the survivor's klaxon_shards_owned: {:?}",
        owned(&second)
    );
    assert!(
        takeover <= LEASE + TAKE,
        "the dead replica's shards took {takeover:?} to be taken over (Lease {LEASE:?}): {taken:?}"
    );

    // The survivor works on every incident, the taken-over ones too: an
    // acknowledgement pages once, and nothing is paged again.
    for team in &teams {
        let incidents: Api<Incident> = Api::namespaced(client.clone(), &team.ns);
        incidents
            .patch(
                "outage",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"phase": "Acknowledged"}})),
            )
            .await
            .expect("acknowledge");
    }
    for team in &teams {
        wait_for(
            &client,
            &team.ns,
            "outage",
            WAIT,
            "the acknowledgement",
            |i| i.status.as_ref().and_then(|s| s.observed_phase) == Some(Phase::Acknowledged),
        )
        .await;
    }
    receiver
        .wait_for(WAIT, "every incident's PhaseChanged page", |r| {
            teams
                .iter()
                .all(|t| pages(r, &t.token, "PhaseChanged") >= 1)
        })
        .await;
    for team in &teams {
        let incidents: Api<Incident> = Api::namespaced(client.clone(), &team.ns);
        fixtures::more_passes(second.port, &incidents, "outage", 2.0).await;
    }
    let requests = receiver.requests();
    let requests = &requests;
    let twice: Vec<String> = teams
        .iter()
        .flat_map(|t| {
            ["Declared", "PhaseChanged"]
                .into_iter()
                .map(move |trigger| (t, trigger, pages(requests, &t.token, trigger)))
        })
        .filter(|(_, _, n)| *n != 1)
        .map(|(t, trigger, n)| format!("{} (shard {}): {trigger} paged {n} times", t.ns, t.shard))
        .collect();
    assert!(twice.is_empty(), "{}", twice.join("\n"));

    // A clean stop hands the shards back at once.
    assert!(
        second.terminate(WAIT).is_some(),
        "the survivor did not stop"
    );
    assert_eq!(
        holders(&leases).await,
        vec![None; SHARDS as usize],
        "a clean stop releases every shard Lease"
    );

    // The audit log: who wrote what, when.
    let audit_log = cluster.dir().join("audit.log");
    audit::wait_until_quiet(&audit_log, Duration::from_secs(1), Duration::from_secs(20)).await;
    let requests = audit::operator_requests(&audit_log);
    let denied: Vec<String> = requests
        .iter()
        .filter(|r| r.code == Some(403))
        .map(audit::Request::describe)
        .collect();
    assert!(
        denied.is_empty(),
        "refused requests:\n{}",
        denied.join("\n")
    );
    let agents: BTreeSet<&str> = requests.iter().map(|r| r.user_agent.as_str()).collect();
    assert!(
        agents.iter().any(|u| u.ends_with(&format!("({a})")))
            && agents.iter().any(|u| u.ends_with(&format!("({b})"))),
        "each replica names itself in its User-Agent: {agents:?}"
    );
    let mut problems = Vec::new();
    let mut by_shard: BTreeMap<u32, usize> = BTreeMap::new();
    for team in &teams {
        let owner = balanced[team.shard as usize].clone().unwrap_or_default();
        let (before, after) = writers(&requests, "incidents/status", &team.ns, "outage", killed_at);
        if before != BTreeSet::from([owner.clone()]) {
            problems.push(format!(
                "{} (shard {}, held by {owner}): status written before the kill by {before:?}",
                team.ns, team.shard
            ));
        }
        if after != BTreeSet::from([b.to_string()]) {
            problems.push(format!(
                "{} (shard {}): status written after the kill by {after:?}, not by {b} alone",
                team.ns, team.shard
            ));
        }
        let (policy_before, _) = writers(
            &requests,
            "responsepolicies/status",
            &team.ns,
            "team",
            killed_at,
        );
        if policy_before != BTreeSet::from([owner.clone()]) {
            problems.push(format!(
                "{}: policy status written before the kill by {policy_before:?}, not {owner}",
                team.ns
            ));
        }
        *by_shard.entry(team.shard).or_default() += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "sharding: {} incidents over shards {by_shard:?}, held {balanced:?}; takeover after SIGKILL in {takeover:.1?} (Lease {LEASE:?})",
        teams.len()
    );
}

/// Heartbeats under sharding: Alertmanager reaches one replica (a Service
/// picks any), the heartbeat's namespace belongs to the other. The owner
/// judges the silence from the arrivals the receiving replica publishes on
/// its membership Lease: quiet while the Watchdog fires, an incident once
/// it stops. Real Prometheus and Alertmanager, the chart's RBAC.
#[tokio::test]
async fn a_heartbeat_that_reaches_another_replica_keeps_its_owner_quiet() {
    let cluster = Cluster::start_bare("shard-heartbeat");
    cluster.install_crds();
    let client = cluster.client().await;
    let system = support::namespace(&client, "klaxon-system").await;
    secret(&client, &system, "klaxon-alerts", &[("token", TOKEN)]).await;
    let (port_a, port_b) = (operator::free_port(), operator::free_port());
    install(
        &cluster,
        &system,
        &[
            "--set",
            "alerts.enabled=true",
            "--set",
            &format!("alerts.port={port_a}"),
        ],
    );
    let (a, b) = ("klaxon-beat-a", "klaxon-beat-b");
    let mut first = chart::start_operator(&cluster, &client, "klaxon", &system, "beat-a").await;
    let (from, to) = (format!(":{port_a}"), format!(":{port_b}"));
    let mut second =
        chart::start_operator_with(&cluster, &client, "klaxon", &system, "beat-b", |arg| {
            if arg.starts_with("--alerts-address=") {
                arg.replace(&from, &to)
            } else {
                arg.to_string()
            }
        })
        .await;
    first.wait_ready(WAIT);
    second.wait_ready(WAIT);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &system);
    let balanced = wait_holders(&leases, "two shards each", |h| {
        held_by(h, a) == 2 && held_by(h, b) == 2
    })
    .await;

    let ns = support::namespace(&client, "monitoring").await;
    apply(
        &cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: team, namespace: {ns}}}\nspec:\n  heartbeat: {{alertname: Watchdog, missingFor: 6s, severity: SEV2}}\n"
        ),
    );
    let owner = balanced[shard_of(&ns, SHARDS) as usize]
        .clone()
        .expect("every shard held");
    let (owning, receiving, port) = if owner == a {
        (&first, &second, port_b)
    } else {
        (&second, &first, port_a)
    };
    let watchdog = Watchdog::start(&ns, port);

    assert!(
        support::poll_until(WAIT, || (heartbeats(receiving) >= 2.0).then_some(())).is_some(),
        "the Watchdog never reached the other replica"
    );
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let silences = || silences(&incidents);
    // The silence since the owner's start may have been declared before
    // the first heartbeat; it resolves once the owner hears of one.
    let before = support::eventually(WAIT, || async {
        let all = silences().await;
        (open(&all) == 0).then_some(all.len())
    })
    .await
    .expect("the owner saw the heartbeat another replica received");
    // Past missingFor more than once, heartbeats keep arriving elsewhere.
    let seen = heartbeats(receiving);
    assert!(
        support::poll_until(WAIT, || (heartbeats(receiving) >= seen + 5.0).then_some(())).is_some(),
        "the Watchdog stopped arriving"
    );
    let all = silences().await;
    assert_eq!(
        (all.len(), open(&all)),
        (before, 0),
        "declared while the heartbeat arrived at the other replica"
    );
    assert_eq!(heartbeats(owning), 0.0, "no heartbeat reached the owner");
    let published = leases
        .get(&klaxon::domain::shards::member_lease_name(if owner == a {
            b
        } else {
            a
        }))
        .await
        .expect("the receiving replica's membership Lease");
    assert!(
        published
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("klaxon.dev/heartbeats"))
            .is_some_and(|v| v.contains("Watchdog")),
        "arrivals on the membership Lease: {:?}",
        published.metadata.annotations
    );

    // The Watchdog stops: its namespace's owner declares the silence.
    watchdog.alive(false);
    support::eventually(WAIT, || async {
        silences()
            .await
            .into_iter()
            .find(|i| i.spec.phase != Phase::Resolved)
    })
    .await
    .expect("an incident for the silent heartbeat");
    let audit_log = cluster.dir().join("audit.log");
    audit::wait_until_quiet(&audit_log, Duration::from_secs(1), Duration::from_secs(20)).await;
    let declared_by: BTreeSet<String> = audit::operator_requests(&audit_log)
        .iter()
        .filter(|r| r.is("create", Some("klaxon.dev"), "incidents") && r.in_namespace(&ns))
        .map(|r| r.user_agent.clone())
        .collect();
    assert!(
        !declared_by.is_empty()
            && declared_by
                .iter()
                .all(|u| u.ends_with(&format!("({owner})"))),
        "the silence was declared by {declared_by:?}, not the owner {owner} alone"
    );
}
