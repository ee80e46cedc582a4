//! `klaxon run`: the client, leader election, HTTP endpoints and logs
//! around the controllers.

pub mod operator;
pub mod server;
pub mod telemetry;
