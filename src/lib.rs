//! Klaxon: team-owned incident response as a Kubernetes operator.
//!
//! - [`api`]: the `klaxon.dev/v1alpha1` kinds;
//! - [`crd`]: the CRDs generated from them;
//! - [`operator`]: `klaxon run`;
//! - [`controller`]: the controllers;
//! - [`server`], [`metrics`], [`telemetry`]: health, metrics and logs.

pub mod api;
pub mod cache;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod enrich;
pub mod metrics;
pub mod notify;
pub mod operator;
pub mod podmetrics;
pub mod policy;
pub mod prometheus;
pub mod server;
pub mod signals;
pub mod telemetry;
