//! Klaxon: team-owned incident response as a Kubernetes operator.
//!
//! Layers, each importing only those above it in this list:
//! - [`api`]: the `klaxon.dev/v1alpha1` kinds, and [`crd`] generated from them;
//! - [`kinds`]: what Klaxon reads of Kubernetes' own kinds (slim types);
//! - [`domain`]: pure logic, no client: policy merging, enrichment from
//!   observed objects, signals, and the incident plan;
//! - [`metrics`], [`health`]: what the operator reports about itself;
//! - [`cluster`]: watches, trimmed caches, indexes, PodMetrics sampling;
//! - [`integrations`]: outbound HTTP: receivers and Prometheus;
//! - [`controllers`]: observe → plan → execute for each kind;
//! - [`runtime`]: `klaxon run`: client, leader election, shard Leases, HTTP
//!   endpoints, logs;
//! - [`cli`]: what `kubectl incident` prints.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controllers;
pub mod crd;
pub mod domain;
pub mod health;
pub mod integrations;
pub mod kinds;
pub mod metrics;
pub mod runtime;

/// The User-Agent of every request the operator makes, so apiserver audit
/// logs and receivers tell its requests apart.
pub const USER_AGENT: &str = concat!("klaxon/", env!("CARGO_PKG_VERSION"));
