//! The `klaxon.dev/v1alpha1` API: the kinds users write and the status the
//! operator keeps. This module knows nothing of controllers.

pub mod duration;
pub mod incident;
pub mod limits;
pub mod policy;

pub use duration::Duration;
pub use incident::{Incident, IncidentSpec, IncidentStatus, Phase};
pub use policy::{
    ClusterResponsePolicy, ClusterResponsePolicySpec, PolicyStatus, ResponsePolicy,
    ResponsePolicySpec,
};

pub const GROUP: &str = "klaxon.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "klaxon.dev/v1alpha1";
