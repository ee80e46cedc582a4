//! Pure logic: no Kubernetes client, no I/O, a clock passed in. Most unit
//! tests live here.

pub mod alerts;
pub mod conditions;
pub mod enrich;
pub mod incident;
pub mod policy;
pub mod readiness;
pub mod signals;
