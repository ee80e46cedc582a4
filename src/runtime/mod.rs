//! `klaxon run`: the client, leader election, HTTP endpoints and logs
//! around the controllers.

pub mod operator;
pub mod server;
pub mod shards;
pub mod telemetry;
