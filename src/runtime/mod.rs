//! `klaxon run`: the client, leader election or shard Leases, HTTP
//! endpoints and logs around the controllers.

pub mod operator;
pub mod server;
pub mod shards;
pub mod telemetry;
