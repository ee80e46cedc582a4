//! `klaxon run`: connect, check the CRDs are installed, serve health and
//! metrics, run the controllers until SIGTERM or SIGINT.

use std::net::SocketAddr;

use kube::{Client, CustomResourceExt};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    api::{self, ClusterResponsePolicy, Incident, ResponsePolicy},
    cluster::shards::Shards,
    controllers,
    health::Health,
    metrics::Metrics,
    runtime::server,
    runtime::telemetry::LogFormat,
};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "KLAXON_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
    pub listen_address: SocketAddr,
    /// Log format.
    #[arg(long, env = "KLAXON_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Log level or filter, in `tracing` syntax (e.g. `info,klaxon=debug`).
    #[arg(long, env = "KLAXON_LOG", default_value = "info")]
    pub log_level: String,
    /// The operator's own namespace, where ClusterResponsePolicy receivers
    /// keep their Secrets.
    #[arg(long, env = "KLAXON_NAMESPACE", default_value = "klaxon-system")]
    pub namespace: String,
    /// How often CPU and memory are sampled from metrics.k8s.io, e.g. 30s.
    #[arg(long, env = "KLAXON_METRICS_INTERVAL", default_value = "30s", value_parser = parse_interval)]
    pub metrics_interval: std::time::Duration,
    /// The wait before the first retry of a failed notification; it doubles
    /// per attempt (with jitter) up to --delivery-backoff-max.
    #[arg(long, env = "KLAXON_DELIVERY_BACKOFF", default_value = "5s", value_parser = parse_interval)]
    pub delivery_backoff: std::time::Duration,
    /// The longest wait between two attempts of one notification.
    #[arg(long, env = "KLAXON_DELIVERY_BACKOFF_MAX", default_value = "5m", value_parser = parse_interval)]
    pub delivery_backoff_max: std::time::Duration,
    /// Attempts per notification before it is marked Failed.
    #[arg(long, env = "KLAXON_DELIVERY_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub delivery_attempts: u32,
    /// Incidents reconciled at once. Bounds the operator's connections to
    /// the apiserver and its memory in a burst of declarations; kept above
    /// the 32 deliveries in flight, so slow receivers never hold every
    /// slot.
    #[arg(long, env = "KLAXON_CONCURRENT_RECONCILES", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrent_reconciles: u16,
    /// Routine status writes a second, all incidents together: counts,
    /// pod lists, usage and events are refreshed within this budget (and
    /// at most once per incident every 10 s); what a responder acts on is
    /// written at once, whatever the budget.
    #[arg(long, env = "KLAXON_ROUTINE_WRITES", default_value_t = crate::controllers::incident::pacer::DEFAULT_ROUTINE_WRITES, value_parser = parse_rate)]
    pub routine_writes: f64,
    /// How long a watch of the cluster may fail (the apiserver unreachable)
    /// before /readyz turns false.
    #[arg(long, env = "KLAXON_WATCH_FAILURE_GRACE", default_value = "10s", value_parser = parse_interval)]
    pub watch_failure_grace: std::time::Duration,
    /// Run only while holding the Lease `klaxon` in --namespace, so that
    /// replicas (or an old pod during a rollout) never work at once.
    #[arg(long, env = "KLAXON_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Where the Lease lives (default: --namespace). One namespace for
    /// every release (the chart uses kube-system) keeps one operator
    /// working per cluster.
    #[arg(long, env = "KLAXON_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Which Secrets receivers may name: `all`, or only those labelled
    /// `klaxon.dev/receiver: "true"` (`labelled`, read with a label
    /// selector so no other Secret ever reaches the operator).
    #[arg(long, env = "KLAXON_RECEIVER_SECRETS", value_enum, default_value_t)]
    pub receiver_secrets: crate::integrations::secrets::Access,
    /// Also serve Alertmanager's webhook, `POST /alertmanager`, on this
    /// address (e.g. 0.0.0.0:9093).
    #[arg(long, env = "KLAXON_ALERTS_ADDRESS")]
    pub alerts_address: Option<SocketAddr>,
    /// The Secret in --namespace whose key `token` Alertmanager's bearer
    /// token must match.
    #[arg(
        long,
        env = "KLAXON_ALERTS_TOKEN_SECRET",
        default_value = "klaxon-alerts"
    )]
    pub alerts_token_secret: String,
    /// Alertmanager requests accepted per second (with as many at once);
    /// past it the receiver answers 429 with Retry-After.
    #[arg(long, env = "KLAXON_ALERTS_RATE", default_value = "50")]
    pub alerts_rate: std::num::NonZeroU32,
    /// How long a leader's Lease lasts without renewal: the longest a
    /// standby waits after the leader died.
    #[arg(long, env = "KLAXON_LEADER_ELECTION_LEASE", default_value = "15s", value_parser = parse_interval)]
    pub leader_election_lease: std::time::Duration,
    /// Split the namespaces into this many shards (FNV-1a of the
    /// namespace's name, modulo N); each replica works on the shards whose
    /// Lease it holds. Above 1 it needs --shard-leases.
    #[arg(long, env = "KLAXON_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Hold shards through Leases `klaxon-shard-<i>` in --namespace,
    /// shared with the other replicas (each renews a membership Lease
    /// `klaxon-replica-<identity>` there too). Excludes --leader-election.
    #[arg(long, env = "KLAXON_SHARD_LEASES", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub shard_leases: bool,
    /// How long a shard Lease lasts without renewal: about the longest a
    /// dead replica's shards wait for another. Its holder stops working on
    /// a shard a third of this before the Lease could expire.
    #[arg(long, env = "KLAXON_SHARD_LEASE_DURATION", default_value = "15s", value_parser = parse_interval)]
    pub shard_lease_duration: std::time::Duration,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    match crate::api::duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than 0s".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A rate a second, from 0.1 to 10,000.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.1..=10_000.0).contains(&rate) => Ok(rate),
        Ok(_) => Err("must be from 0.1 to 10000 a second".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {0}")]
    Connect(#[source] kube::Error),
    #[error(
        "Klaxon's CRDs are not installed (missing {}): install them with `kubectl apply -f crds/` or `klaxon crds | kubectl apply -f -` (`make crds` regenerates crds/)",
        missing.join(", ")
    )]
    CrdsMissing { missing: Vec<String> },
    #[error("cannot discover the {group} API: {0}", group = api::API_VERSION)]
    Discovery(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("leader election failed (Lease {LEASE_NAME} in namespace {namespace}): {source}")]
    LeaderElection {
        namespace: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("lost the Lease {LEASE_NAME}; stopping so that only one instance works")]
    LostLeadership,
    #[error(
        "--shards {0} needs --shard-leases: replicas share the shards through Leases, there is no fixed assignment"
    )]
    ShardsNeedLeases(u32),
    #[error(
        "--shard-leases and --leader-election exclude each other: with shard Leases every replica works, each on its shards"
    )]
    ShardsAndLeader,
    #[error("sharding failed")]
    Sharding(#[source] super::shards::ShardError),
}

/// The Lease replicas compete for.
pub const LEASE_NAME: &str = "klaxon";

/// Flags that contradict each other, refused before anything starts.
fn check_flags(args: &RunArgs) -> Result<(), RunError> {
    if args.shards > 1 && !args.shard_leases {
        return Err(RunError::ShardsNeedLeases(args.shards));
    }
    if args.shard_leases && args.leader_election {
        return Err(RunError::ShardsAndLeader);
    }
    Ok(())
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    check_flags(&args)?;
    let identity = identity();
    let client = connect(&identity).await?;
    check_crds(&client).await?;

    let listener = server::bind(args.listen_address)
        .await
        .map_err(|source| RunError::Bind {
            addr: args.listen_address,
            source,
        })?;
    info!(address = %args.listen_address, "serving /healthz, /readyz and /metrics");

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let health = Health::new(args.watch_failure_grace);
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let server = tokio::spawn(server::serve(
        listener,
        health.clone(),
        registry,
        shutdown.clone(),
    ));

    let intake = std::sync::Arc::new(std::sync::OnceLock::new());
    let alerts_server = match args.alerts_address {
        Some(addr) => {
            let listener = server::bind(addr)
                .await
                .map_err(|source| RunError::Bind { addr, source })?;
            info!(address = %addr, "serving Alertmanager's webhook on POST /alertmanager");
            Some(tokio::spawn(server::serve_alerts(
                listener,
                health.clone(),
                intake.clone(),
                metrics.clone(),
                args.alerts_rate,
                shutdown.clone(),
            )))
        }
        None => None,
    };

    let sharding = if args.shard_leases {
        let config = super::shards::Config {
            count: args.shards,
            lease: args.shard_lease_duration,
            namespace: args.namespace.clone(),
            identity: identity.clone(),
        };
        Some(
            super::shards::Sharding::start(&client, config, metrics.clone(), shutdown.clone())
                .await
                .map_err(RunError::Sharding)?,
        )
    } else {
        None
    };
    let leadership = if args.leader_election {
        match lead(&client, &identity, &args, &health, &shutdown).await? {
            Some(leadership) => Some(leadership),
            // Asked to stop while standing by.
            None => {
                shutdown.cancel();
                let _ = server.await;
                info!("stopped");
                return Ok(());
            }
        }
    } else {
        None
    };

    let context = controllers::Context {
        client,
        metrics,
        namespace: args.namespace,
        metrics_interval: args.metrics_interval,
        concurrent_reconciles: args.concurrent_reconciles,
        routine_writes: args.routine_writes,
        delivery: crate::domain::incident::Backoff {
            base: args.delivery_backoff,
            cap: args.delivery_backoff_max.max(args.delivery_backoff),
            max_attempts: args.delivery_attempts,
        },
        secrets: args.receiver_secrets,
        intake,
        alerts_token_secret: args.alerts_token_secret,
        alerts_enabled: args.alerts_address.is_some(),
        shards: sharding
            .as_ref()
            .map_or_else(Shards::all, super::shards::Sharding::shards),
    };
    controllers::run(context, health, shutdown.clone()).await;
    // Controllers end on shutdown; make sure the server does too.
    shutdown.cancel();
    if let Some(sharding) = sharding {
        // The controllers stopped: hand the shards over at once.
        sharding.release().await;
    }
    let lost = match leadership {
        // Releases the Lease, so a standby takes over at once.
        Some(leadership) => leadership.release().await,
        None => false,
    };
    match server.await {
        Ok(result) => result.map_err(RunError::Serve)?,
        Err(join) => warn!(error = %join, "the HTTP server task ended abnormally"),
    }
    if let Some(alerts_server) = alerts_server {
        match alerts_server.await {
            Ok(result) => result.map_err(RunError::Serve)?,
            Err(join) => warn!(error = %join, "the alerts server task ended abnormally"),
        }
    }
    if lost {
        return Err(RunError::LostLeadership);
    }
    info!("stopped");
    Ok(())
}

/// Held leadership: a task that keeps renewing the Lease and stops the
/// operator if it is lost.
struct Leadership {
    watcher: tokio::task::JoinHandle<bool>,
}

impl Leadership {
    /// Releases the Lease; true when it had been lost before.
    async fn release(self) -> bool {
        self.watcher.await.unwrap_or(false)
    }
}

/// A call to `LeaseManager::changed` that lasted this long without an
/// error means the API answered: any earlier error streak is over.
const HEALTHY_CALL: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits until this instance holds the Lease, standing by meanwhile (ready
/// while it can reach the Lease, not ready while it cannot). `None` when
/// asked to stop first.
async fn lead(
    client: &Client,
    identity: &str,
    args: &RunArgs,
    health: &Health,
    shutdown: &CancellationToken,
) -> Result<Option<Leadership>, RunError> {
    let lease = args.leader_election_lease.as_secs().max(3);
    let grace = (lease / 3).max(1);
    let namespace = args
        .leader_election_namespace
        .as_deref()
        .unwrap_or(&args.namespace);
    let failed = |source| RunError::LeaderElection {
        namespace: namespace.to_string(),
        source,
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(lease)
        .with_grace(grace)
        .with_field_manager(format!("klaxon-lease-{identity}"))
        .build()
        .await
        .map_err(failed)?;
    health.set_ready(true);
    info!(%identity, lease = LEASE_NAME, %namespace, "standing by until this instance holds the Lease");
    loop {
        let started = std::time::Instant::now();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            changed = manager.changed() => match changed {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => {
                    // Standing by blind: not ready, so it shows.
                    health.set_ready(false);
                    tracing::error!(%error, "cannot reach the Lease; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
            },
        }
        if started.elapsed() >= HEALTHY_CALL {
            health.set_ready(true);
        }
    }
    info!(%identity, "holding the Lease; starting the controllers");
    health.set_ready(false);
    let shutdown = shutdown.clone();
    // Past this long without renewing, another instance may hold the Lease.
    let renew_budget = std::time::Duration::from_secs(lease - grace);
    let watcher = tokio::spawn(async move {
        let mut failing_since: Option<std::time::Instant> = None;
        let lost = loop {
            let started = std::time::Instant::now();
            tokio::select! {
                _ = shutdown.cancelled() => break false,
                changed = manager.changed() => match changed {
                    Ok(true) => failing_since = None,
                    Ok(false) => {
                        tracing::error!("another instance holds the Lease now; stopping");
                        shutdown.cancel();
                        break true;
                    }
                    Err(error) => {
                        if started.elapsed() >= HEALTHY_CALL {
                            failing_since = None;
                        }
                        let since = *failing_since.get_or_insert(started);
                        if since.elapsed() >= renew_budget {
                            tracing::error!(%error, "could not renew the Lease in time; stopping");
                            shutdown.cancel();
                            break true;
                        }
                        warn!(%error, "cannot renew the Lease; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                },
            }
        };
        if !lost && let Err(error) = manager.release().await {
            warn!(%error, "cannot release the Lease; a standby takes over when it expires");
        }
        lost
    });
    Ok(Some(Leadership { watcher }))
}

/// This replica's name in Leases and requests: the pod's name, else the
/// host's with the process id.
pub fn identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "klaxon".into());
            format!("{host}-{}", std::process::id())
        })
}

/// `klaxon/<version> (<identity>)`: the operator's requests apart from
/// everyone else's, and each replica's apart from the others'. Characters
/// a header cannot carry become `_`.
pub fn user_agent(identity: &str) -> String {
    let identity: String = identity
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{} ({identity})", crate::USER_AGENT)
}

/// A client from in-cluster config or KUBECONFIG that names itself
/// [`user_agent`], so apiserver audit logs and metrics tell the operator's
/// requests apart from everyone else's under the same account, and one
/// replica's from another's.
async fn connect(identity: &str) -> Result<Client, RunError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| RunError::Connect(kube::Error::InferConfig(e)))?;
    // A request to an apiserver that is gone fails fast, so watches retry
    // (and readiness tells) within seconds.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    // No answer for this long on a connection means it is dead (watches
    // are closed by the server every minute, see cluster::watch), so a
    // connection that silently drops packets fails instead of hanging.
    config.read_timeout = Some(crate::cluster::watch::READ_TIMEOUT);
    let agent = http::HeaderValue::from_str(&user_agent(identity))
        .unwrap_or_else(|_| http::HeaderValue::from_static(crate::USER_AGENT));
    config.headers.push((http::header::USER_AGENT, agent));
    client_of(config).map_err(RunError::Connect)
}

/// How long a pooled apiserver connection may sit idle before it is
/// closed. The default (90 s) kept every connection a burst of reconciles
/// opened, each with its TLS and read buffers (tens of KB), long after
/// the burst; steady work needs a handful, reused well within this.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// kube's default client stack (TLS, timeouts, retries of 429/503/504,
/// authentication, extra headers) over a connection pool that lets idle
/// connections go after [`POOL_IDLE_TIMEOUT`].
fn client_of(config: kube::Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;
    let mut connector = hyper_timeout::TimeoutConnector::new(config.rustls_https_connector()?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let pool = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| {
            tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry())
        }))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
}

/// Fails with one clear error when any of Klaxon's kinds is not served.
/// Uses discovery, which every authenticated client may read, so the
/// operator needs no access to CustomResourceDefinitions themselves.
async fn check_crds(client: &Client) -> Result<(), RunError> {
    let wanted = [
        Incident::crd_name(),
        ResponsePolicy::crd_name(),
        ClusterResponsePolicy::crd_name(),
    ];
    let served: Vec<String> = match client.list_api_group_resources(api::API_VERSION).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        // A group nobody serves answers a plain-text 404, not a Status.
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(other) => return Err(RunError::Discovery(other)),
    };
    let missing: Vec<String> = wanted
        .iter()
        .filter(|crd| {
            let plural = crd.split('.').next().unwrap_or_default();
            !served.iter().any(|name| name == plural)
        })
        .map(|crd| crd.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RunError::CrdsMissing { missing })
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        Cli::try_parse_from(std::iter::once("klaxon").chain(args.iter().copied()))
            .expect("parses")
            .run
    }

    #[test]
    fn shards_default_to_one_and_shard_leases_is_a_plain_flag() {
        let default = parse(&[]);
        assert_eq!((default.shards, default.shard_leases), (1, false));
        let sharded = parse(&[
            "--shards",
            "4",
            "--shard-leases",
            "--shard-lease-duration=5s",
        ]);
        assert_eq!((sharded.shards, sharded.shard_leases), (4, true));
        assert_eq!(
            sharded.shard_lease_duration,
            std::time::Duration::from_secs(5)
        );
        assert!(!parse(&["--shard-leases=false"]).shard_leases);
        assert!(Cli::try_parse_from(["klaxon", "--shards", "0"]).is_err());
    }

    #[test]
    fn shards_without_leases_or_beside_leader_election_are_refused() {
        assert!(check_flags(&parse(&[])).is_ok());
        assert!(check_flags(&parse(&["--shards=4", "--shard-leases"])).is_ok());
        assert!(
            check_flags(&parse(&["--shard-leases"])).is_ok(),
            "one shard, leased"
        );
        let error = check_flags(&parse(&["--shards=4"])).expect_err("no leases");
        assert!(
            error
                .to_string()
                .starts_with("--shards 4 needs --shard-leases"),
            "{error}"
        );
        let both = ["--shards=4", "--shard-leases", "--leader-election=true"];
        assert!(matches!(
            check_flags(&parse(&both)),
            Err(RunError::ShardsAndLeader)
        ));
    }

    #[test]
    fn the_routine_write_budget_is_a_positive_rate() {
        assert_eq!(parse(&[]).routine_writes, 10.0);
        assert_eq!(parse(&["--routine-writes=2.5"]).routine_writes, 2.5);
        for bad in ["0", "-1", "fast", "20000"] {
            let args = ["klaxon", "--routine-writes", bad];
            assert!(Cli::try_parse_from(args).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_user_agent_names_the_replica_in_a_header_safe_way() {
        let version = crate::USER_AGENT;
        assert_eq!(
            user_agent("klaxon-7d9f-abcde"),
            format!("{version} (klaxon-7d9f-abcde)")
        );
        assert_eq!(
            user_agent("my host (1)\n"),
            format!("{version} (my_host__1__)")
        );
        assert!(http::HeaderValue::from_str(&user_agent("ü\u{7f}")).is_ok());
    }
}
