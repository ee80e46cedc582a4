//! Outbound HTTP to systems outside the cluster: notification receivers
//! and Prometheus. No redirects, timeouts on every request, and a bound on
//! requests in flight.

pub mod egress;
pub mod notify;
pub mod prometheus;
pub mod secrets;
