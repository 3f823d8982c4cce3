//! popsel: SD-WAN PoP selection and tunnel provisioning agent for Atmos Cloud.
//!
//! Stages live in their own modules, each a pure core inside a thin I/O shell: `atmos` (the API
//! client), `sim` (the API emulator), `config`; `cli` turns command lines into calls.

#![forbid(unsafe_code)]

pub mod agent;
pub mod atmos;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod edge;
pub mod locations;
pub mod metrics;
pub mod probe;
pub mod rank;
pub mod reconcile;
pub mod resolve;
pub mod select;
pub mod sim;
pub mod state;
pub mod survey;
mod tls;
