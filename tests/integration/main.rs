//! Integration tests against a real kube-apiserver and etcd (see
//! `support`). One binary, so the control plane starts once per run.

mod support;

mod api_schema;
mod bounded;
mod chart_rbac;
mod control_plane;
mod enrichment;
mod faults;
mod leader;
mod operator_run;
mod outbox;
mod plugin;
mod policies;
mod queries;
mod signals;
mod unreadable;
mod validation;
