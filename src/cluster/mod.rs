//! What the operator knows of the cluster: shared watch caches of trimmed
//! objects, indexes that map them to the incidents they concern, and
//! PodMetrics samples.

pub mod cache;
pub mod changes;
pub mod index;
pub mod keyed;
pub mod podmetrics;
pub mod shards;
pub mod store;
pub mod watch;
