//! Integration tests against a real cluster on loopback (see `support`):
//! kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK's
//! simulated nodes. One binary, so the cluster starts once per run.

mod support;

mod alerts;
mod api_schema;
mod bounded;
mod chart;
mod chart_rbac;
mod control_plane;
mod dashboards;
mod enrichment;
mod faults;
mod leader;
mod operator_run;
mod outbox;
mod pages;
mod plugin;
mod policies;
mod queries;
mod record;
mod rollouts;
mod sharding;
mod signals;
mod tenancy;
mod unreadable;
mod validation;
mod workloads;
