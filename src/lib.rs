//! popsel: SD-WAN PoP selection and tunnel provisioning agent for Atmos Cloud.
//!
//! One module per pipeline stage, each a pure core inside a thin I/O shell: `catalog`,
//! `resolve`, `probe`, `rank`, `select`, `reconcile`, `edge` (the hand-off), `status` and
//! `metrics` (the export). `pipeline` is the one place that sequences them; `agent` schedules
//! it; `cli` turns command lines into calls. `atmos` is the API client, `sim` its emulator,
//! `config` parses and assembles each stage's settings. `lab` is the latency lab (a network
//! namespace where the benchmarking range answers ICMP with chosen latency) that `popsel demo`
//! measures in and the network tests run popsel in. The README's "How the code is laid out"
//! has the data flow.

// One audited exception: `probe::icmp` (socket options on surge-ping's socket).
#![deny(unsafe_code)]
// Nothing from the network or the disk may panic popsel: no unwrap, expect or panic outside
// tests. The few exceptions are allowed where they stand, each with the reason it cannot fail.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod agent;
pub mod atmos;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod edge;
pub mod fuzz;
pub mod http_server;
pub mod lab;
pub mod location;
pub mod metrics;
pub mod pipeline;
pub mod probe;
pub mod progress;
pub mod rank;
pub mod reconcile;
pub mod resolve;
pub mod schedule;
pub mod select;
pub mod sim;
pub mod state;
pub mod status;
pub mod survey;
pub mod timestamp;
mod tls;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
