//! The `kubectl incident` plugin: what it prints and how it changes
//! incidents, kept in the library so that what responders read and do is
//! tested like the rest of the product. The binary
//! (`src/bin/kubectl-incident.rs`) only parses flags and calls these.

pub mod connect;
pub mod declare;
pub mod error;
pub mod followup;
pub mod postmortem;
pub mod report;
pub mod view;
pub mod watch;
pub mod write;

pub use self::error::Error;
